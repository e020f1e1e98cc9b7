//! `lifecycle moments check DIR` and `lifecycle moments init DIR`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use lifecycle_ingest::config::parse_moment;
use lifecycle_rfm::SegmentTable;

use crate::input_err;

#[derive(Subcommand, Debug)]
pub enum MomentsCommand {
    /// Validate every moment (*.toml) in a folder: file, line and what is wrong
    Check {
        /// The folder of moment definitions
        dir: PathBuf,
    },
    /// Write ready-to-edit moments for the classic lifecycle plays
    Init {
        /// The folder to write (created; existing files are kept)
        dir: PathBuf,
    },
}

pub fn run(command: MomentsCommand) -> Result<()> {
    let table = SegmentTable::default_table();
    match command {
        MomentsCommand::Check { dir } => check(&dir, &table),
        MomentsCommand::Init { dir } => init(&dir, &table),
    }
}

fn moment_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| input_err(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

fn check(dir: &Path, table: &SegmentTable) -> Result<()> {
    let files = moment_files(dir)?;
    if files.is_empty() {
        return Err(input_err(format!(
            "{}: no moment (*.toml) found",
            dir.display()
        )));
    }
    let mut bad = 0;
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?;
        match parse_moment(&text, table) {
            Ok(m) => {
                if let Some((_, other)) = names.iter().find(|(n, _)| *n == m.name) {
                    bad += 1;
                    eprintln!(
                        "{}: the name \"{}\" is already used by {}",
                        f.display(),
                        m.name,
                        other.display()
                    );
                } else {
                    println!("ok  {} ({}, {} steps)", f.display(), m.name, m.steps.len());
                    names.push((m.name, f.clone()));
                }
            }
            Err(problems) => {
                bad += 1;
                for p in problems {
                    eprintln!("{}: {p}", f.display());
                }
            }
        }
    }
    if bad > 0 {
        return Err(input_err(format!(
            "{bad} of {} moments in {} have problems",
            files.len(),
            dir.display()
        )));
    }
    Ok(())
}

fn slug(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// One play of the playbook.
struct Play {
    file: String,
    text: String,
}

fn play(name: &str, goal_comment: &str, trigger: &str, audience: &str, steps: &str) -> Play {
    let s = slug(name);
    Play {
        file: format!("{s}.toml"),
        text: format!(
            "# {goal_comment}\nname = \"{name}\"\nholdout = 0.1\nreentry = \"every 90 days\"\n\n[goal]\nevent = \"Order Completed\"\nwithin_days = 30\n\n[trigger]\n{trigger}\n{audience}\n{steps}"
        ),
    }
}

fn playbook(table: &SegmentTable) -> Vec<Play> {
    let mut plays = Vec::new();
    for seg in table.segments() {
        let s = slug(&seg.name);
        let campaign = seg.campaigns.first().cloned().unwrap_or_default();
        plays.push(play(
            &format!("{} welcome", seg.name),
            &format!("Goal of the segment: {} Suggested: {campaign}.", seg.goal),
            &format!("segment_entered = \"{}\"", seg.name),
            "",
            &format!(
                "[[step]]\nsend = {{ channel = \"email\", template = \"templates/{s}.html\", subject = \"{campaign}\" }}\n\n[[step]]\nwait = {{ days = 7, until = \"Order Completed\" }}\n\n[[step]]\nexit = true\n"
            ),
        ));
    }
    plays.push(play(
        "No second order within the learned window",
        "The tripwire of the best customers' first-to-second order norm: nudge at full margin.",
        "tripwire = \"order_1_to_2\"\nstatus = \"warning\"",
        "",
        "[[step]]\nsend = { channel = \"email\", template = \"templates/second-order.html\", subject = \"Something you may like\" }\n\n[[step]]\nexit = true\n",
    ));
    plays.push(play(
        "Value decline retention",
        "Customers whose predicted value fell: a personal note before they are lost.",
        "value_decline = true",
        "",
        "[[step]]\nsend = { channel = \"email\", template = \"templates/value-decline.html\", subject = \"We have missed you\" }\n\n[[step]]\nexit = true\n",
    ));
    plays.push(play(
        "Cart abandonment",
        "Bring back a cart left behind within a day.",
        "event = \"Cart Abandoned\"",
        "",
        "[[step]]\nwait = { hours = 2, until = \"Order Completed\" }\n\n[[step]]\nsend = { channel = \"email\", template = \"templates/cart.html\", subject = \"Your cart is waiting\" }\n\n[[step]]\nexit = true\n",
    ));
    plays.push(play(
        "Birthday",
        "A birthday treat (date trait `birthday`).",
        "date_trait = \"birthday\"\noffset_days = 0",
        "",
        "[[step]]\nsend = { channel = \"email\", template = \"templates/birthday.html\", subject = \"Happy birthday\" }\n\n[[step]]\nexit = true\n",
    ));
    plays.push(play(
        "First-order anniversary",
        "A year with us (date trait `first_order_date`).",
        "date_trait = \"first_order_date\"\noffset_days = 365",
        "",
        "[[step]]\nsend = { channel = \"email\", template = \"templates/anniversary.html\", subject = \"One year together\" }\n\n[[step]]\nexit = true\n",
    ));
    plays
}

fn init(dir: &Path, table: &SegmentTable) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    let mut written = 0;
    for p in playbook(table) {
        let path = dir.join(&p.file);
        if path.exists() {
            eprintln!("kept {} (exists)", path.display());
            continue;
        }
        std::fs::write(&path, &p.text).with_context(|| format!("{}", path.display()))?;
        written += 1;
    }
    println!(
        "wrote {written} moments to {}; edit them, then `lifecycle moments check {}`",
        dir.display(),
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_play_of_the_playbook_is_a_valid_moment() {
        let table = SegmentTable::default_table();
        let plays = playbook(&table);
        assert_eq!(plays.len(), 11 + 5);
        for p in plays {
            if let Err(e) = parse_moment(&p.text, &table) {
                panic!("{}: {e:?}\n{}", p.file, p.text);
            }
        }
    }
}

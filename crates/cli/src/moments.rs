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
    /// Dry run: replay history through draft moments (who enters, which
    /// messages on which days after caps and quiet hours, the goal rate)
    Simulate(crate::simulate::SimulateArgs),
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
        MomentsCommand::Simulate(args) => crate::simulate::run(args),
    }
}

fn moment_files(dir: &Path) -> Result<Vec<PathBuf>> {
    lifecycle_ingest::config::moment_files(dir).map_err(|e| input_err(e.to_string()))
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
    let templates = lifecycle_deliver::templates::Templates::new(dir);
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
                    continue;
                }
                let missing: Vec<String> = m
                    .steps
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| match &s.step {
                        lifecycle_moments::Step::Send { template, .. } => templates
                            .check(template)
                            .err()
                            .map(|e| format!("step[{}].send.template: {e}", i + 1)),
                        _ => None,
                    })
                    .collect();
                if missing.is_empty() {
                    println!("ok  {} ({}, {} steps)", f.display(), m.name, m.steps.len());
                } else {
                    bad += 1;
                    for p in missing {
                        eprintln!("{}: {p}", f.display());
                    }
                }
                names.push((m.name, f.clone()));
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

/// The email template a play sends: personalised with the customer's
/// traits and scores, with the unsubscribe link every email must carry.
fn template(heading: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html><body style=\"font-family: sans-serif; max-width: 36em\">\n\
<h1>{heading}</h1>\n\
<p>Hi {{{{ traits.first_name | default(\"there\") }}}},</p>\n\
<p>{body}</p>\n\
<p style=\"color: #777; font-size: small\">You receive this because you are a customer of ours.\n\
<a href=\"{{{{ unsubscribe_url }}}}\">Unsubscribe</a>.</p>\n\
</body></html>\n"
    )
}

/// The templates the playbook's moments name (`templates/NAME.html`).
fn playbook_templates(table: &SegmentTable) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = table
        .segments()
        .iter()
        .map(|seg| {
            let campaign = seg.campaigns.first().cloned().unwrap_or_default();
            (
                format!("templates/{}.html", slug(&seg.name)),
                template(
                    &campaign,
                    &format!(
                        "{} (Edit this message: it goes to {} customers.)",
                        seg.goal, seg.name
                    ),
                ),
            )
        })
        .collect();
    for (name, heading, body) in [
        (
            "second-order",
            "Something you may like",
            "Most of our regular customers came back for a second order about now. Here is what others bought next.",
        ),
        (
            "value-decline",
            "We have missed you",
            "It has been a while. Here is a small thank-you for being with us.",
        ),
        (
            "cart",
            "Your cart is waiting",
            "You left something in your cart. It is still there.",
        ),
        (
            "birthday",
            "Happy birthday",
            "A little treat from us on your birthday.",
        ),
        (
            "anniversary",
            "One year together",
            "A year ago you placed your first order with us. Thank you.",
        ),
    ] {
        out.push((format!("templates/{name}.html"), template(heading, body)));
    }
    out
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
        "A birthday treat (date trait `birthday`, YYYY-MM-DD; fires every year on the day plus offset_days).",
        "date_trait = \"birthday\"\noffset_days = 0",
        "",
        "[[step]]\nsend = { channel = \"email\", template = \"templates/birthday.html\", subject = \"Happy birthday\" }\n\n[[step]]\nexit = true\n",
    ));
    plays.push(play(
        "First-order anniversary",
        "Every year since the first order (date trait `first_order_date`, sent with identify; date triggers recur yearly).",
        "date_trait = \"first_order_date\"\noffset_days = 0",
        "",
        "[[step]]\nsend = { channel = \"email\", template = \"templates/anniversary.html\", subject = \"One year together\" }\n\n[[step]]\nexit = true\n",
    ));
    plays
}

fn init(dir: &Path, table: &SegmentTable) -> Result<()> {
    std::fs::create_dir_all(dir.join("templates")).with_context(|| format!("{}", dir.display()))?;
    let mut written = 0;
    let files = playbook(table)
        .into_iter()
        .map(|p| (p.file, p.text))
        .chain(playbook_templates(table));
    for (file, text) in files {
        let path = dir.join(&file);
        if path.exists() {
            eprintln!("kept {} (exists)", path.display());
            continue;
        }
        std::fs::write(&path, &text).with_context(|| format!("{}", path.display()))?;
        written += 1;
    }
    println!(
        "wrote {written} files (moments and their templates) to {}; edit them, then `lifecycle moments check {}`",
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

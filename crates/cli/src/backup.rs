//! `lifecycle backup` and `lifecycle restore`: a logical backup of the
//! whole store (every table's rows as JSON lines, gzip-compressed when the
//! file name ends in .gz), taken in one consistent snapshot while the store
//! is in use, restorable into an empty store of either backend.

use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lifecycle_store::Store;

use crate::{DbArg, input_err};

#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// The backup file (FILE.gz: gzip-compressed). It holds personal data and
    /// the store's secrets: it is created readable by its owner only
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Take it through a running server instead (GET /api/v1/backup), e.g.
    /// http://127.0.0.1:8080: the way while `serve` holds a SQLite store's
    /// events (--db is then not used). Needs a secret key (--key or
    /// LIFECYCLE_KEY)
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The secret API key for --server
    #[arg(
        long,
        env = "LIFECYCLE_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A file written by `lifecycle backup`
    pub backup: PathBuf,
    // The store to restore into: it must be empty (a new one is created).
    #[command(flatten)]
    pub db: DbArg,
}

fn gzip(path: &std::path::Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// The file a backup is written to (beside the target, owner-only) and
/// renamed from once complete: a failed backup never leaves a file that
/// looks whole.
fn partial_file(out: &std::path::Path) -> Result<(PathBuf, std::fs::File)> {
    let partial = out.with_extension(format!(
        "{}.partial",
        out.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(&partial)
        .with_context(|| partial.display().to_string())?;
    Ok((partial, file))
}

pub fn backup(args: BackupArgs) -> Result<()> {
    if let Some(server) = &args.server {
        return backup_through(server, args.key.as_deref(), &args.out);
    }
    let mut store = args.db.open_existing()?;
    let name = args.out.display().to_string();
    let (partial, file) = partial_file(&args.out)?;
    let stats = if gzip(&args.out) {
        let mut out = flate2::write::GzEncoder::new(
            BufWriter::with_capacity(1 << 20, file),
            flate2::Compression::fast(),
        );
        let stats = store.backup(&mut out)?;
        out.finish()?.flush()?;
        stats
    } else {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let stats = store.backup(&mut out)?;
        out.flush()?;
        stats
    };
    std::fs::rename(&partial, &args.out).with_context(|| name.clone())?;
    eprintln!(
        "backed up {} rows of {} tables from {} ({}) to {name}",
        stats.rows,
        stats.tables,
        lifecycle_store::StoreUrl::parse(&args.db.db).map_or_else(|_| String::new(), |u| u.label()),
        store.backend()
    );
    Ok(())
}

/// `backup --server`: the server's backup (gzip), saved as it arrives.
fn backup_through(server: &str, key: Option<&str>, out: &std::path::Path) -> Result<()> {
    let Some(key) = key else {
        return Err(input_err(
            "--server needs a secret API key: --key KEY or LIFECYCLE_KEY".to_string(),
        ));
    };
    let url = format!("{}/api/v1/backup", server.trim_end_matches('/'));
    let client = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .context("cannot make an HTTP client")?;
    let mut response = client
        .get(&url)
        .bearer_auth(key)
        .send()
        .with_context(|| format!("cannot reach the server at {server}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().unwrap_or_default();
        anyhow::bail!("{url}: {status}: {}", body.trim());
    }
    save_whole(&mut response, out, &url)?;
    eprintln!(
        "backed up the store served at {server} to {}",
        out.display()
    );
    Ok(())
}

/// Saves a gzip backup read from `input` (named `from`) to `out`, checked
/// whole (the gzip stream complete, its checksum right) before it is
/// renamed into place; decompressed unless the file name ends in .gz.
fn save_whole(input: &mut dyn std::io::Read, out: &std::path::Path, from: &str) -> Result<()> {
    let name = out.display().to_string();
    let (partial, file) = partial_file(out)?;
    let file = BufWriter::with_capacity(1 << 20, file);
    // Every byte goes through a decoder (which checks the stream); for a
    // .gz name the bytes as received go to the file, else what it decodes.
    let (mut raw, decoded): (Option<BufWriter<std::fs::File>>, Box<dyn Write>) = if gzip(out) {
        (Some(file), Box::new(std::io::sink()))
    } else {
        (None, Box::new(file))
    };
    let mut decoder = flate2::write::GzDecoder::new(decoded);
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    let copied = (|| -> Result<()> {
        loop {
            let n = input
                .read(&mut buf)
                .with_context(|| format!("{from}: the backup stopped part-way"))?;
            if n == 0 {
                break;
            }
            received += n as u64;
            decoder.write_all(&buf[..n])?;
            if let Some(raw) = &mut raw {
                raw.write_all(&buf[..n])?;
            }
        }
        decoder.try_finish()?;
        decoder.get_mut().flush()?;
        if let Some(raw) = &mut raw {
            raw.flush()?;
        }
        Ok(())
    })();
    drop((raw, decoder));
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(e.context(format!(
            "{from}: the backup is incomplete ({received} bytes received); nothing was written to {name}"
        )));
    }
    std::fs::rename(&partial, out).with_context(|| name.clone())?;
    Ok(())
}

pub fn restore(args: RestoreArgs) -> Result<()> {
    let url = args.db.url()?;
    let name = args.backup.display().to_string();
    let file = std::fs::File::open(&args.backup)
        .with_context(|| name.clone())
        .map_err(|e| input_err(format!("{e:#}")))?;
    let mut store = Store::open(&url)?;
    let stats = if gzip(&args.backup) {
        let mut input = BufReader::new(flate2::read::GzDecoder::new(BufReader::new(file)));
        store.restore(&mut input)
    } else {
        let mut input = BufReader::with_capacity(1 << 20, file);
        store.restore(&mut input)
    }
    .map_err(|e| input_err(format!("{name}: {e}")))?;
    eprintln!(
        "restored {} rows of {} tables into {} ({})",
        stats.rows,
        stats.tables,
        url.label(),
        store.backend()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A backup that arrives whole is saved (as sent, or decompressed); one
    /// cut short or altered leaves no file.
    #[test]
    fn a_received_backup_is_saved_only_when_whole() {
        let dir = tempfile::tempdir().unwrap();
        let text = "{\"table\":\"customers\"}\n".repeat(20_000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let whole = gz.finish().unwrap();
        let (packed, plain) = (dir.path().join("b.jsonl.gz"), dir.path().join("b.jsonl"));
        save_whole(&mut whole.as_slice(), &packed, "test").unwrap();
        assert_eq!(std::fs::read(&packed).unwrap(), whole);
        save_whole(&mut whole.as_slice(), &plain, "test").unwrap();
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), text);
        std::fs::remove_file(&packed).unwrap();
        std::fs::remove_file(&plain).unwrap();
        let mut altered = whole.clone();
        let k = altered.len() - 6;
        altered[k] ^= 1;
        for (i, bad) in [
            &whole[..whole.len() / 2],
            &whole[..whole.len() - 4],
            &altered[..],
        ]
        .into_iter()
        .enumerate()
        {
            for out in [&packed, &plain] {
                let e = save_whole(&mut &bad[..], out, "test").unwrap_err();
                assert!(format!("{e:#}").contains("incomplete"), "{i}: {e:#}");
                assert!(!out.exists(), "{i}");
                assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{i}");
            }
        }
    }
}

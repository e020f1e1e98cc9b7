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

pub fn backup(args: BackupArgs) -> Result<()> {
    let mut store = args.db.open_existing()?;
    let name = args.out.display().to_string();
    // Written beside the target and renamed once complete: a failed backup
    // never leaves a file that looks whole.
    let partial = args.out.with_extension(format!(
        "{}.partial",
        args.out.extension().and_then(|e| e.to_str()).unwrap_or("")
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

//! `lifecycle bench`: times `lifecycle analyze` on a generated orders file.
//!
//! Each run is a separate process (this same binary) so that its peak
//! memory is its own; the file is generated once and kept for later runs.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Orders in the generated file
    #[arg(long, default_value_t = 10_000_000)]
    pub rows: u64,
    /// Timed runs (the median is reported)
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Where the generated file and the outputs go
    #[arg(long, default_value = "lifecycle-bench")]
    pub dir: PathBuf,
    /// Seed of the generated file
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Use this orders file instead of generating one
    #[arg(long)]
    pub input: Option<PathBuf>,
}

struct Run {
    seconds: f64,
    peak_rss_kib: u64,
    rows: u64,
    customers: u64,
}

fn field(line: &str, key: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .map(str::to_string)
}

pub fn run(args: BenchArgs) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the lifecycle binary")?;
    std::fs::create_dir_all(&args.dir).with_context(|| format!("{}", args.dir.display()))?;
    let input = match &args.input {
        Some(p) => p.clone(),
        None => {
            let p = args
                .dir
                .join(format!("orders-{}-seed{}.csv", args.rows, args.seed));
            if !p.exists() {
                eprintln!("generating {} ...", p.display());
                let status = Command::new(&exe)
                    .args([
                        "generate",
                        "--rows",
                        &args.rows.to_string(),
                        "--seed",
                        &args.seed.to_string(),
                    ])
                    .arg("--out")
                    .arg(&p)
                    .status()?;
                if !status.success() {
                    bail!("generate failed");
                }
            }
            p
        }
    };
    let bytes = std::fs::metadata(&input)
        .with_context(|| format!("{}", input.display()))?
        .len();
    let mut runs = Vec::new();
    for i in 0..args.runs.max(1) {
        let out = Command::new(&exe)
            .arg("analyze")
            .arg(&input)
            .arg("--out")
            .arg(args.dir.join("out"))
            .arg("--stats")
            .output()?;
        if !out.status.success() {
            bail!("analyze failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr
            .lines()
            .find(|l| l.starts_with("stats:"))
            .context("analyze printed no stats")?;
        let num = |k: &str| {
            field(line, k)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let r = Run {
            seconds: num("seconds"),
            peak_rss_kib: num("peak_rss_kib") as u64,
            rows: num("rows") as u64,
            customers: num("customers") as u64,
        };
        eprintln!(
            "run {}: {:.2} s, peak {} MiB",
            i + 1,
            r.seconds,
            r.peak_rss_kib / 1024
        );
        runs.push(r);
    }
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let median = &runs[runs.len() / 2];
    let peak = runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0);
    println!(
        "lifecycle analyze {}: {} rows ({} bytes), {} customers, {} cores",
        input.display(),
        median.rows,
        bytes,
        median.customers,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "median of {}: {:.2} s, {:.2} M rows/s, {:.1} MB/s, peak memory {} MiB",
        runs.len(),
        median.seconds,
        median.rows as f64 / median.seconds / 1e6,
        bytes as f64 / median.seconds / 1e6,
        peak / 1024
    );
    Ok(())
}

//! The `lifecycle` command: flags in, files and tables out. Everything worth
//! reusing lives in the library crates; this binary only parses arguments,
//! wires the crates together and prints.

/// jemalloc instead of glibc's malloc: under the live load (the soak, with
/// the events' tree) glibc's arenas fragmented (30 MB of a run's growth
/// came back on `malloc_trim`) and `malloc_consolidate` was a tenth of the
/// views' time.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod analyze;
mod backup;
mod bench;
mod bench_journeys;
mod bench_serve;
mod customers;
mod decline;
mod fit;
mod generate;
mod generate_shop;
mod import;
mod lift;
mod moments;
mod predict;
mod select;
mod serve;
mod simulate;
mod soak;
mod summarize;
mod survey;
mod tripwires;
mod value;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A bad argument or input: exit code 2, like a usage error.
#[derive(Debug)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// `--db URL`: the store (one definition for the commands that act on it).
#[derive(clap::Args, Debug)]
pub struct DbArg {
    /// The store: sqlite://PATH or postgres://USER@HOST:PORT/DB
    #[arg(
        long,
        env = "LIFECYCLE_DB",
        default_value = "sqlite://lifecycle.db",
        value_name = "URL",
        hide_env_values = true
    )]
    pub db: String,
}

impl DbArg {
    /// The URL, parsed (a malformed one is an input error).
    pub fn url(&self) -> anyhow::Result<lifecycle_store::StoreUrl> {
        lifecycle_store::StoreUrl::parse(&self.db).map_err(|e| input_err(e.to_string()))
    }

    /// Opens a store that must already exist (a SQLite path that does not
    /// exist is an input error, not a new empty store).
    pub fn open_existing(&self) -> anyhow::Result<lifecycle_store::Store> {
        let url = self.url()?;
        if let lifecycle_store::StoreUrl::Sqlite(p) = &url
            && !p.exists()
        {
            return Err(input_err(format!("--db {}: no such store", self.db)));
        }
        Ok(lifecycle_store::Store::open(&url)?)
    }
}

/// A bad argument: exit code 2.
pub fn input_err(m: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(InputError(m.into()))
}

/// A text field for a CSV written by hand: quoted when needed, a leading
/// `=`, `+`, `-`, `@` neutralised with `'` so spreadsheets do not run it.
pub use lifecycle_insights::csv_text;

/// `--columns SPEC`, or none.
pub fn column_overrides(spec: Option<&str>) -> anyhow::Result<lifecycle_ingest::ColumnOverrides> {
    match spec {
        Some(spec) => lifecycle_ingest::ColumnOverrides::parse(spec)
            .map_err(|m| input_err(format!("--columns: {m}"))),
        None => Ok(lifecycle_ingest::ColumnOverrides::default()),
    }
}

/// A date flag such as `--as-of` or `--calibration-end`.
pub fn day_flag(flag: &str, value: Option<&str>) -> anyhow::Result<Option<lifecycle_rfm::Day>> {
    value
        .map(lifecycle_ingest::parse_day)
        .transpose()
        .map_err(|m| input_err(format!("{flag}: {m}")))
}

#[derive(Parser)]
#[command(
    name = "lifecycle",
    version,
    about = "Customer segments, lifetime value and lifecycle marketing from your order history",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score and segment every customer of an orders file (RFM, 11 lifecycle segments)
    Analyze(analyze::AnalyzeArgs),
    /// Fit a customer-base model (BG/NBD, MBG/NBD, Pareto/NBD, BG/BB, Gamma-Gamma, sBG)
    Fit(fit::FitArgs),
    /// Predict purchases, P(alive) and CLV per customer; score a holdout when given a calibration end
    Predict(predict::PredictArgs),
    /// Per-customer summaries (frequency, recency, T, monetary value) from an orders file, or the SQL that computes them in a warehouse
    Summarize(summarize::SummarizeArgs),
    /// Load an orders file into the store (idempotent: re-running adds nothing)
    Import(import::ImportArgs),
    /// Back up the whole store (one consistent snapshot, while it is in use) to a file
    Backup(backup::BackupArgs),
    /// Restore a backup into an empty store (either backend)
    Restore(backup::RestoreArgs),
    /// Data rights: erase a person's personal data, or export everything held on them
    Customers {
        #[command(subcommand)]
        command: customers::CustomersCommand,
    },
    /// Run the real-time engine: the Segment-compatible event API on the store
    Serve(serve::ServeArgs),
    /// Tripwires: the desired behaviour of the best customers and who deviates from it
    Tripwires {
        #[command(subcommand)]
        command: tripwires::TripwiresCommand,
    },
    /// Moments: validate definitions, write the ready-made playbook
    Moments {
        #[command(subcommand)]
        command: moments::MomentsCommand,
    },
    /// Manage API keys
    Keys {
        #[command(subcommand)]
        command: serve::KeysCommand,
    },
    /// Write a synthetic orders file drawn from the BG/NBD and Gamma-Gamma processes
    Generate(generate::GenerateArgs),
    /// Write a synthetic shop with planted truths: order lines, customer attributes, spend, survey answers
    GenerateShop(generate_shop::GenerateShopArgs),
    /// Print the default segment rules as a --segments TOML file to start from
    Segments,
    /// Time `analyze` on a generated orders file (rows/s, peak memory)
    Bench(bench::BenchArgs),
    /// Load-test `serve` on loopback: events/s through /v1/batch, customer-view latency at a fixed rate
    BenchServe(bench_serve::BenchServeArgs),
    /// Journeys at scale: enrolment, the timer pass with every wait due at once, delivery
    BenchJourneys(bench_journeys::BenchJourneysArgs),
    /// Lift readout: per arm and metric, lift with intervals, p-value or chance to win, incremental totals; SRM first
    Lift(lift::LiftArgs),
    /// Qualitative research: a stratified random sample per RFM segment
    Survey {
        #[command(subcommand)]
        command: survey::SurveyCommand,
    },
}

/// An error and its causes, `: `-separated, leaving out a cause the text so
/// far already ends with (many errors print their source at the end of
/// their own message).
fn chain_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn main() -> ExitCode {
    // A panic that a Parquet read turns into an error naming the file is
    // not printed as a panic too.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !lifecycle_ingest::panic_is_contained(info) {
            default_hook(info);
        }
    }));
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Analyze(args) => analyze::run(args),
        Command::Generate(args) => generate::run(args),
        Command::GenerateShop(args) => generate_shop::run(args),
        Command::Fit(args) => fit::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Bench(args) => bench::run(args),
        Command::BenchServe(args) => bench_serve::run(args),
        Command::BenchJourneys(args) => bench_journeys::run(args),
        Command::Lift(args) => lift::run(args),
        Command::Survey { command } => survey::run(command),
        Command::Import(args) => import::run(args),
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => backup::restore(args),
        Command::Customers { command } => customers::run(command),
        Command::Summarize(args) => summarize::run(args),
        Command::Serve(args) => serve::serve(args),
        Command::Keys { command } => serve::keys(command),
        Command::Tripwires { command } => tripwires::run(command),
        Command::Moments { command } => moments::run(command),
        Command::Segments => {
            print!(
                "{}",
                lifecycle_ingest::config::render_segments(
                    &lifecycle_rfm::SegmentTable::default_table()
                )
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain_text(&e));
            let input = e.chain().any(|c| {
                c.downcast_ref::<lifecycle_ingest::IngestError>().is_some()
                    || matches!(
                        c.downcast_ref::<lifecycle_store::StoreError>(),
                        Some(lifecycle_store::StoreError::Url { .. })
                    )
                    || c.downcast_ref::<InputError>().is_some()
                    || matches!(
                        c.downcast_ref::<lifecycle_models::ModelError>(),
                        Some(
                            lifecycle_models::ModelError::NotIdentified(_)
                                | lifecycle_models::ModelError::BadObservation { .. }
                        )
                    )
            });
            ExitCode::from(if input { 2 } else { 1 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_said_are_not_repeated() {
        #[derive(Debug)]
        struct Inner;
        impl std::fmt::Display for Inner {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("disk is full")
            }
        }
        impl std::error::Error for Inner {}
        #[derive(Debug)]
        struct Outer(Inner);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "s.db: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = anyhow::Error::new(Outer(Inner));
        assert_eq!(format!("{e:#}"), "s.db: disk is full: disk is full");
        assert_eq!(chain_text(&e), "s.db: disk is full");
        let e = e.context("importing orders.csv");
        assert_eq!(chain_text(&e), "importing orders.csv: s.db: disk is full");
    }
}

//! `lifecycle serve` and `lifecycle keys create`.

use anyhow::Result;
use clap::{Args, Subcommand};
use std::time::Duration;

use lifecycle_server::ServeOptions;
use lifecycle_store::{KeyKind, Store, StoreUrl};

use crate::input_err;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The store: sqlite://PATH (embedded; created if missing) or postgres://USER@HOST:PORT/DB
    #[arg(long, default_value = "sqlite://lifecycle.db", value_name = "URL")]
    pub db: String,
    /// Address to listen on (port 0: any free port, printed on start)
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: String,
    /// Refit the models on the stored history and re-score everyone this
    /// often (e.g. 24h, 30m; "off": only on POST /api/v1/models/refit)
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub refit_every: String,
    /// Run on a simulated clock starting at this date-time (e.g.
    /// 2024-01-01T00:00:00Z) that moves only via POST /api/v1/admin/clock:
    /// for tests and for replaying history
    #[arg(long, value_name = "TIME")]
    pub simulated_clock: Option<String>,
    /// Serve /metrics without a key (e.g. for a Prometheus on a private network)
    #[arg(long)]
    pub metrics_open: bool,
    /// Delete raw events older than this many days (orders, profiles and
    /// aggregates are kept)
    #[arg(long, value_name = "DAYS")]
    pub event_retention_days: Option<u32>,
}

/// "24h", "30m", "45s", "2d" or "off".
fn duration(flag: &str, text: &str) -> Result<Option<Duration>> {
    let t = text.trim();
    if t == "off" || t == "0" {
        return Ok(None);
    }
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = number.parse().map_err(|_| {
        input_err(format!(
            "{flag}: \"{text}\" is not a duration like 24h, 30m, 45s or off"
        ))
    })?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" | "" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(input_err(format!(
                "{flag}: \"{text}\" is not a duration like 24h, 30m, 45s or off"
            )));
        }
    };
    Ok(Some(Duration::from_secs(secs.max(1))))
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create an API key and print it (once: only its hash is stored)
    Create {
        /// public (on-site messages), write (event ingestion /v1/*) or secret (API and admin)
        #[arg(long)]
        kind: String,
        /// The store: sqlite://PATH or postgres://USER@HOST:PORT/DB
        #[arg(long, default_value = "sqlite://lifecycle.db", value_name = "URL")]
        db: String,
    },
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let url = StoreUrl::parse(&args.db).map_err(|e| input_err(e.to_string()))?;
    let simulated_clock_ms = match &args.simulated_clock {
        None => None,
        Some(t) => {
            let at: jiff::Timestamp = t
                .parse()
                .or_else(|_| {
                    t.parse::<jiff::civil::Date>()
                        .map_err(|e| e.to_string())
                        .and_then(|d| {
                            d.to_zoned(jiff::tz::TimeZone::UTC)
                                .map(|z| z.timestamp())
                                .map_err(|e| e.to_string())
                        })
                })
                .map_err(|_| {
                    input_err(format!(
                        "--simulated-clock: \"{t}\" is not a date (2024-01-01) or date-time (2024-01-01T00:00:00Z)"
                    ))
                })?;
            Some(at.as_millisecond())
        }
    };
    let options = ServeOptions {
        listen: args.listen,
        refit_every: duration("--refit-every", &args.refit_every)?,
        simulated_clock_ms,
        metrics_open: args.metrics_open,
        due_every: Duration::from_secs(1),
        event_retention: args
            .event_retention_days
            .map(|d| Duration::from_secs(u64::from(d) * 86_400)),
    };
    lifecycle_server::serve(&url, &options, |addr| {
        // The first line of output, for scripts and tests.
        println!("listening on http://{addr}");
    })?;
    Ok(())
}

pub fn keys(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Create { kind, db } => {
            let kind = KeyKind::parse(&kind).ok_or_else(|| {
                input_err(format!("--kind: \"{kind}\" is not public, write or secret"))
            })?;
            let url = StoreUrl::parse(&db).map_err(|e| input_err(e.to_string()))?;
            let mut store = Store::open(&url)?;
            let key = store.create_key(kind)?;
            store.audit(
                jiff::Timestamp::now().as_millisecond(),
                "key created",
                &format!("{{\"kind\":\"{}\"}}", kind.name()),
            )?;
            println!("{key}");
            eprintln!(
                "{} key created in {db}; it is shown only now (the store keeps its hash)",
                kind.name()
            );
            Ok(())
        }
    }
}

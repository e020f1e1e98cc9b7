//! `lifecycle serve` and `lifecycle keys create`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Deserialize;

use lifecycle_server::ServeOptions;
use lifecycle_store::{KeyKind, Store, StoreUrl};

use crate::input_err;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Settings file (TOML; see the README). Default: ./lifecycle.toml when
    /// it exists. Flags and LIFECYCLE_* environment variables override it
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The store: sqlite://PATH (embedded; created if missing) or
    /// postgres://USER@HOST:PORT/DB [default: sqlite://lifecycle.db]
    #[arg(long, env = "LIFECYCLE_DB", value_name = "URL", hide_env_values = true)]
    pub db: Option<String>,
    /// Address to listen on (port 0: any free port, printed on start)
    /// [default: 127.0.0.1:8080]
    #[arg(long, env = "LIFECYCLE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Refit the models on the stored history and re-score everyone this
    /// often (e.g. 24h, 30m; "off": only on POST /api/v1/models/refit)
    /// [default: 24h]
    #[arg(long, env = "LIFECYCLE_REFIT_EVERY", value_name = "DURATION")]
    pub refit_every: Option<String>,
    /// Run on a simulated clock starting at this date-time (e.g.
    /// 2024-01-01T00:00:00Z) that moves only via POST /api/v1/admin/clock:
    /// for tests and for replaying history
    #[arg(long, value_name = "TIME")]
    pub simulated_clock: Option<String>,
    /// Serve /metrics without a key (e.g. for a Prometheus on a private network)
    #[arg(long, env = "LIFECYCLE_METRICS_OPEN")]
    pub metrics_open: bool,
    /// Delete raw events older than this many days (orders, profiles and
    /// aggregates are kept)
    #[arg(long, value_name = "DAYS")]
    pub event_retention_days: Option<u32>,
    /// The folder of moment definitions (*.toml) and their templates; it is
    /// watched for changes
    #[arg(long, env = "LIFECYCLE_MOMENTS", value_name = "DIR")]
    pub moments: Option<PathBuf>,
}

/// `lifecycle.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    engine: EngineSection,
    currency: Option<CurrencySection>,
    #[serde(default)]
    pub(crate) moments: MomentsSection,
    #[serde(default)]
    channels: ChannelsSection,
    kpis: Option<KpisSection>,
}

/// `[kpis]`: the files beside the orders for `GET /api/v1/kpis/insights`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KpisSection {
    /// Customer attributes (customer_id, acquisition channel and cost, city...), relative to the file.
    attributes: Option<PathBuf>,
    /// Order lines (customer_id, date, product_id, category, brand, price, cost...).
    lines: Option<PathBuf>,
    /// Marketing spend by channel and month.
    spend: Option<PathBuf>,
    /// Survey answers, reviews, returns, tickets.
    experience: Option<PathBuf>,
    /// Where the insight files are written (default: `insights` beside the file).
    out: Option<PathBuf>,
    sticky_days: Option<i32>,
    /// The segments of the ideal customer profile (default: Veneration's).
    best: Option<Vec<String>>,
    lookalikes: Option<usize>,
    /// month, quarter or year.
    retention_period: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MomentsSection {
    /// The folder of definitions, relative to the file.
    dir: Option<PathBuf>,
    /// Share of all customers never messaged (default 0.05).
    global_control: Option<f64>,
    /// Daily window in the customer's time zone, e.g. "21:00-08:00".
    quiet_hours: Option<String>,
    /// Channel → "N per D days", across moments.
    #[serde(default)]
    caps: std::collections::BTreeMap<String, String>,
    /// Seconds between checks of the folder (0: not watched).
    watch_seconds: Option<u64>,
    /// The product catalogue (CSV) for suggestions in messages, relative to the file.
    catalogue: Option<PathBuf>,
    /// Upsell rules (the insights' affinities.csv) that rank suggestions;
    /// default: the one `[kpis]` writes when it has order lines.
    affinities: Option<PathBuf>,
    /// Sends in flight at once, each on its own store connection (default 8).
    delivery_workers: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelsSection {
    email: Option<EmailSection>,
    webhook: Option<WebhookSection>,
    sms: Option<SmsSection>,
    push: Option<PushSection>,
    audience: Option<AudienceSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSection {
    url: String,
    secret: String,
    #[serde(default)]
    allow_private: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmsSection {
    base_url: String,
    account: String,
    token: String,
    from: String,
    #[serde(default)]
    allow_private: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushSection {
    base_url: String,
    project: String,
    token: String,
    #[serde(default)]
    allow_private: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AudienceSection {
    /// Where the audience files are written, relative to the file.
    dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailSection {
    smtp: String,
    from: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    db: Option<String>,
    listen: Option<String>,
    refit_every: Option<String>,
    metrics_open: Option<bool>,
    event_retention_days: Option<u32>,
    /// How customers reach this server (links in messages).
    public_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineSection {
    /// Segment rules (the `lifecycle segments` format), relative to the file.
    segments: Option<PathBuf>,
    /// Fixed R/F/M cut points instead of quintiles, relative to the file.
    rfm_thresholds: Option<PathBuf>,
    /// Custom tripwires (TOML), relative to the file.
    tripwires: Option<PathBuf>,
    timezone: Option<String>,
    horizon_days: Option<f64>,
    annual_discount: Option<f64>,
    margin: Option<f64>,
    decline_share: Option<f64>,
    /// Tripwires warn from this share of a norm's days (0: trips only).
    tripwire_warning: Option<f64>,
    /// The personal-rhythm tripwire's threshold (0: off).
    rhythm_threshold: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CurrencySection {
    base: String,
    #[serde(default)]
    rates: HashMap<String, f64>,
}

/// The `[moments]` send policy: the global control share, quiet hours and
/// frequency caps, checked.
pub(crate) fn moments_policy(
    m: &MomentsSection,
    file_name: &Path,
) -> Result<(
    f64,
    Option<lifecycle_deliver::policy::QuietHours>,
    Vec<lifecycle_deliver::policy::Cap>,
)> {
    let global_control = m.global_control.unwrap_or(0.05);
    if !(0.0..0.5).contains(&global_control) {
        return Err(input_err(format!(
            "{}: [moments] global_control = {global_control} must be at least 0 and below 0.5",
            file_name.display()
        )));
    }
    let quiet_hours = match &m.quiet_hours {
        Some(q) => Some(
            lifecycle_deliver::policy::QuietHours::parse(q).map_err(|e| {
                input_err(format!(
                    "{}: [moments] quiet_hours: {e}",
                    file_name.display()
                ))
            })?,
        ),
        None => None,
    };
    let mut caps = Vec::new();
    for (channel, cap) in &m.caps {
        caps.push(
            lifecycle_deliver::policy::Cap::parse(channel, cap).map_err(|e| {
                input_err(format!(
                    "{}: [moments.caps] {channel}: {e}",
                    file_name.display()
                ))
            })?,
        );
    }
    Ok((global_control, quiet_hours, caps))
}

/// Reads the settings file: `path`, or `./lifecycle.toml` if it exists.
pub(crate) fn read_config(path: Option<&Path>) -> Result<(ConfigFile, PathBuf)> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("lifecycle.toml"), false),
    };
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((ConfigFile::default(), dir));
        }
        Err(e) => return Err(input_err(format!("{}: {e}", path.display()))),
    };
    let config: ConfigFile =
        toml::from_str(&text).map_err(|e| input_err(format!("{}: {e}", path.display())))?;
    Ok((config, dir))
}

fn check_share(file: &Path, key: &str, v: Option<f64>, ok: impl Fn(f64) -> bool) -> Result<()> {
    match v {
        Some(x) if !x.is_finite() || !ok(x) => Err(input_err(format!(
            "{}: [engine] {key} = {x} is out of range",
            file.display()
        ))),
        _ => Ok(()),
    }
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
        #[command(flatten)]
        db: crate::DbArg,
    },
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let (file, dir) = read_config(args.config.as_deref())?;
    let file_name = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("lifecycle.toml"));
    let db = args
        .db
        .or(file.server.db)
        .unwrap_or_else(|| "sqlite://lifecycle.db".into());
    let url = StoreUrl::parse(&db).map_err(|e| input_err(e.to_string()))?;
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
    let e = &file.engine;
    let in_dir = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            dir.join(p)
        }
    };
    if let Some(p) = file
        .kpis
        .as_ref()
        .and_then(|k| k.retention_period.as_deref())
        && lifecycle_kpis::Period::parse(p).is_none()
    {
        return Err(input_err(format!(
            "{}: [kpis] retention_period = \"{p}\" is not month, quarter or year",
            file_name.display()
        )));
    }
    let insights = file.kpis.as_ref().map(|k| {
        let defaults = lifecycle_insights::Options::default();
        lifecycle_server::insights::InsightsSettings {
            paths: lifecycle_insights::Paths {
                attributes: k.attributes.as_ref().map(in_dir),
                lines: k.lines.as_ref().map(in_dir),
                spend: k.spend.as_ref().map(in_dir),
                experience: k.experience.as_ref().map(in_dir),
            },
            options: lifecycle_insights::Options {
                sticky_days: k.sticky_days.unwrap_or(defaults.sticky_days),
                best: k.best.clone(),
                lookalikes: k.lookalikes.unwrap_or(defaults.lookalikes),
                margin: e.margin.unwrap_or(defaults.margin),
                retention_period: k
                    .retention_period
                    .as_deref()
                    .and_then(lifecycle_kpis::Period::parse)
                    .unwrap_or(defaults.retention_period),
            },
            out: in_dir(k.out.as_ref().unwrap_or(&PathBuf::from("insights"))),
        }
    });
    if let Some(i) = &insights
        && i.paths.spend.is_some()
        && i.paths.attributes.is_none()
    {
        return Err(input_err(format!(
            "{}: [kpis] spend needs attributes (the customers' acquisition channels)",
            file_name.display()
        )));
    }
    let table = match &e.segments {
        Some(p) => lifecycle_ingest::config::load_segments(&in_dir(p))?,
        None => lifecycle_rfm::SegmentTable::default_table(),
    };
    let custom = match &e.tripwires {
        Some(p) => lifecycle_ingest::config::load_custom_tripwires(&in_dir(p))?,
        None => Vec::new(),
    };
    let scoring = match &e.rfm_thresholds {
        Some(p) => lifecycle_rfm::Scoring::Thresholds(lifecycle_ingest::config::load_thresholds(
            &in_dir(p),
        )?),
        None => lifecycle_rfm::Scoring::Quintiles,
    };
    check_share(&file_name, "horizon_days", e.horizon_days, |x| x > 0.0)?;
    check_share(&file_name, "annual_discount", e.annual_discount, |x| {
        (0.0..1.0).contains(&x)
    })?;
    check_share(&file_name, "margin", e.margin, |x| x > 0.0 && x <= 1.0)?;
    check_share(&file_name, "decline_share", e.decline_share, |x| {
        x > 0.0 && x < 1.0
    })?;
    check_share(&file_name, "tripwire_warning", e.tripwire_warning, |x| {
        (0.0..1.0).contains(&x)
    })?;
    check_share(&file_name, "rhythm_threshold", e.rhythm_threshold, |x| {
        (0.0..1.0).contains(&x)
    })?;
    let base = lifecycle_engine::RunConfig::default();
    let valuation = lifecycle_engine::RunConfig {
        warning_share: match e.tripwire_warning {
            Some(w) if w <= 0.0 => None,
            Some(w) => Some(w),
            None => base.warning_share,
        },
        rhythm: match e.rhythm_threshold {
            Some(r) if r <= 0.0 => None,
            Some(r) => Some(r),
            None => base.rhythm,
        },
        horizon_days: e.horizon_days.unwrap_or(base.horizon_days),
        annual_discount: e.annual_discount.unwrap_or(base.annual_discount),
        margin: e.margin.unwrap_or(base.margin),
        decline_share: e.decline_share.unwrap_or(base.decline_share),
    };
    let timezone = match &e.timezone {
        Some(name) => jiff::tz::TimeZone::get(name).map_err(|_| {
            input_err(format!(
                "{}: [engine] timezone \"{name}\" is not an IANA time zone (e.g. Europe/Paris)",
                file_name.display()
            ))
        })?,
        None => jiff::tz::TimeZone::UTC,
    };
    let currency = match file.currency {
        None => None,
        Some(c) => {
            let base = c.base.trim().to_ascii_uppercase();
            let mut rates = HashMap::new();
            for (code, rate) in c.rates {
                if !rate.is_finite() || rate <= 0.0 {
                    return Err(input_err(format!(
                        "{}: [currency.rates] {code} = {rate} is not a positive number",
                        file_name.display()
                    )));
                }
                rates.insert(code.trim().to_ascii_uppercase(), rate);
            }
            Some(lifecycle_server::Currency { base, rates })
        }
    };
    let m = &file.moments;
    let (global_control, quiet_hours, caps) = moments_policy(m, &file_name)?;
    let journeys = lifecycle_server::JourneyOptions {
        dir: args.moments.clone().or_else(|| m.dir.as_ref().map(in_dir)),
        global_control,
        email: file
            .channels
            .email
            .as_ref()
            .map(|e| lifecycle_server::EmailOptions {
                smtp: e.smtp.clone(),
                from: e.from.clone(),
            }),
        webhook: file.channels.webhook.as_ref().map(|w| {
            lifecycle_server::journeys::WebhookOptions {
                url: w.url.clone(),
                secret: w.secret.clone(),
                allow_private: w.allow_private.clone(),
            }
        }),
        sms: file
            .channels
            .sms
            .as_ref()
            .map(|o| lifecycle_server::journeys::SmsOptions {
                base_url: o.base_url.clone(),
                account: o.account.clone(),
                token: o.token.clone(),
                from: o.from.clone(),
                allow_private: o.allow_private.clone(),
            }),
        push: file
            .channels
            .push
            .as_ref()
            .map(|o| lifecycle_server::journeys::PushOptions {
                base_url: o.base_url.clone(),
                project: o.project.clone(),
                token: o.token.clone(),
                allow_private: o.allow_private.clone(),
            }),
        audience_dir: file.channels.audience.as_ref().map(|a| in_dir(&a.dir)),
        catalogue: m.catalogue.as_ref().map(in_dir),
        affinities: m.affinities.as_ref().map(in_dir).or_else(|| {
            insights
                .as_ref()
                .filter(|i| i.paths.lines.is_some())
                .map(|i| i.out.join("affinities.csv"))
        }),
        workers: match m.delivery_workers {
            Some(n) if !(1..=64).contains(&n) => {
                return Err(input_err(format!(
                    "{}: [moments] delivery_workers = {n} must be 1 to 64",
                    file_name.display()
                )));
            }
            Some(n) => n,
            None => 8,
        },
        public_url: file.server.public_url.clone(),
        caps,
        quiet_hours,
        watch_every: match m.watch_seconds {
            Some(0) => None,
            Some(s) => Some(Duration::from_secs(s)),
            None => Some(Duration::from_secs(2)),
        },
        ..lifecycle_server::JourneyOptions::default()
    };
    let options = ServeOptions {
        listen: args
            .listen
            .or(file.server.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into()),
        refit_every: duration(
            "--refit-every",
            &args
                .refit_every
                .or(file.server.refit_every)
                .unwrap_or_else(|| "24h".into()),
        )?,
        simulated_clock_ms,
        metrics_open: args.metrics_open || file.server.metrics_open.unwrap_or(false),
        due_every: Duration::from_secs(1),
        event_retention: args
            .event_retention_days
            .or(file.server.event_retention_days)
            .map(|d| Duration::from_secs(u64::from(d) * 86_400)),
        settings: lifecycle_server::Settings {
            table,
            scoring,
            valuation,
            custom,
            journeys,
        },
        timezone,
        currency,
        insights,
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
            let mut store = Store::open(&db.url()?)?;
            let key = store.create_key(kind)?;
            store.audit(
                jiff::Timestamp::now().as_millisecond(),
                "key created",
                &format!("{{\"kind\":\"{}\"}}", kind.name()),
            )?;
            println!("{key}");
            eprintln!(
                "{} key created in {}; it is shown only now (the store keeps its hash)",
                kind.name(),
                db.db
            );
            Ok(())
        }
    }
}

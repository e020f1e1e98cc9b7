//! `lifecycle tripwires learn`: the norms of the best customers, in plain
//! words, each with its out-of-sample backtest.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use lifecycle_engine::{ModelRun, RunConfig, live_profile};
use lifecycle_ingest::{ReadOptions, clock_for, format_day, read_events, read_orders};
use lifecycle_rfm::{
    AnalysisConfig, CustomerSummary, Day, OrderEntry, Scoring, SegmentTable, analyze,
};
use lifecycle_tripwires::{
    Backtest, BacktestConfig, History, LearnConfig, Norm, backtest, default_split, describe, learn,
    steps,
};
use serde_json::{Value, json};

use crate::{column_overrides, day_flag, input_err};

#[derive(Subcommand, Debug)]
pub enum TripwiresCommand {
    /// Learn the desired behaviour from the best customers' history
    Learn(LearnArgs),
    /// List every customer at warning or tripped on a day (CSV, JSON)
    Check(CheckArgs),
}

/// What `learn` and `check` share: the input and who the best customers are.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Orders file (any format `analyze` reads)
    pub orders: PathBuf,
    /// Visits / sign-ups (the events file of `analyze --events`): adds the
    /// sign-up to first order norm
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Who the best customers are: "segment in [Champions, Loyal Customers]",
    /// "segment = Champions" or "top-clv-decile"
    #[arg(long, default_value = "segment in [Champions]", value_name = "RULE")]
    pub best: String,
    /// The share of best customers a norm covers
    #[arg(long, default_value_t = 0.8)]
    pub coverage: f64,
    /// Learn k-th to (k+1)-th order norms up to this k
    #[arg(long, default_value_t = 4)]
    pub max_k: u32,
    /// Analysis date; later orders are ignored. Default: the last order date
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Time zone where a purchase day begins and ends
    #[arg(long, default_value = "UTC", value_name = "TZ")]
    pub timezone: String,
    /// Column overrides (see `analyze --help`)
    #[arg(long, value_name = "SPEC")]
    pub columns: Option<String>,
}

/// The validated common inputs, read.
struct Prepared {
    table: SegmentTable,
    best: Best,
    config: LearnConfig,
    data: Loaded,
}

impl CommonArgs {
    fn prepare(&self) -> Result<Prepared> {
        if !(self.coverage > 0.0 && self.coverage < 1.0) {
            return Err(input_err(format!(
                "--coverage {}: must be between 0 and 1 (e.g. 0.8)",
                self.coverage
            )));
        }
        let table = SegmentTable::default_table();
        let best = parse_best(&self.best, &table)?;
        let as_of = day_flag("--as-of", self.as_of.as_deref())?;
        let data = load(
            &self.orders,
            self.events.as_deref(),
            as_of,
            &self.timezone,
            self.columns.as_deref(),
        )?;
        Ok(Prepared {
            table,
            best,
            config: LearnConfig {
                coverage: self.coverage,
                max_k: self.max_k,
                ..LearnConfig::default()
            },
            data,
        })
    }
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Warn from this share of a norm's days ("off": trips only)
    #[arg(long, default_value = "0.75", value_name = "SHARE")]
    pub warning: String,
    /// Personal rhythm: a repeat buyer is overdue once the fitted model gives
    /// this probability that they would have bought again by now ("off": none)
    #[arg(long, default_value = "0.8", value_name = "PROBABILITY")]
    pub rhythm: String,
    /// Output folder for tripwires.csv
    #[arg(long, default_value = "lifecycle-out", value_name = "DIR")]
    pub out: PathBuf,
    /// Custom tripwires (TOML, as for serve); their events come from --events
    #[arg(long, value_name = "FILE")]
    pub custom: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct LearnArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Backtest split: norms are learned on the history up to this date and
    /// judged on deadlines after it. Default, per norm: the day by which
    /// half of the customers had reached the norm's starting point
    #[arg(long, value_name = "DATE")]
    pub split: Option<String>,
    /// Days after a deadline over which the backtest measures repeat orders and revenue
    #[arg(long, default_value_t = 180)]
    pub horizon_days: u32,
}

/// Who counts as a best customer.
#[derive(Debug, Clone, PartialEq)]
pub enum Best {
    Segments(Vec<String>),
    TopClvDecile,
}

pub fn parse_best(rule: &str, table: &SegmentTable) -> Result<Best> {
    let r = rule.trim();
    if r.eq_ignore_ascii_case("top-clv-decile") {
        return Ok(Best::TopClvDecile);
    }
    let bad = || {
        input_err(format!(
            "--best \"{rule}\": expected \"segment in [A, B]\", \"segment = A\" or \"top-clv-decile\""
        ))
    };
    let rest = r.strip_prefix("segment").ok_or_else(bad)?.trim_start();
    let names: Vec<String> = if let Some(list) = rest.strip_prefix("in") {
        let list = list.trim();
        let inner = list
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .ok_or_else(bad)?;
        inner
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty())
            .collect()
    } else if let Some(one) = rest.strip_prefix('=') {
        vec![one.trim().trim_matches('"').to_string()]
    } else {
        return Err(bad());
    };
    if names.is_empty() {
        return Err(bad());
    }
    for n in &names {
        if !table.segments().iter().any(|s| &s.name == n) {
            let known: Vec<&str> = table.segments().iter().map(|s| s.name.as_str()).collect();
            return Err(input_err(format!(
                "--best: no segment \"{n}\"; the segments are {}",
                known.join(", ")
            )));
        }
    }
    Ok(Best::Segments(names))
}

/// Marks the best customers among `summaries` as of `as_of`.
pub fn select_best(
    best: &Best,
    summaries: &[CustomerSummary],
    as_of: Day,
    table: &SegmentTable,
) -> Vec<bool> {
    match best {
        Best::Segments(names) => {
            let wanted: Vec<usize> = table
                .segments()
                .iter()
                .enumerate()
                .filter(|(_, s)| names.contains(&s.name))
                .map(|(i, _)| i)
                .collect();
            let analysis = analyze(
                summaries.to_vec(),
                as_of,
                &AnalysisConfig {
                    scoring: Scoring::Quintiles,
                    segments: table.clone(),
                },
            );
            analysis
                .scores
                .iter()
                .map(|s| wanted.contains(&usize::from(s.segment)))
                .collect()
        }
        Best::TopClvDecile => {
            let run = ModelRun::fit(
                summaries,
                as_of,
                &Scoring::Quintiles,
                table,
                RunConfig::default(),
            );
            let clv: Vec<f64> = summaries
                .iter()
                .map(|s| {
                    live_profile(&run, table, s, as_of)
                        .value
                        .and_then(|v| v.clv)
                        .unwrap_or(f64::NEG_INFINITY)
                })
                .collect();
            let mut sorted: Vec<f64> = clv.iter().copied().filter(|v| v.is_finite()).collect();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let k = (sorted.len() as f64 * 0.1).ceil() as usize;
            match k.checked_sub(1).and_then(|i| sorted.get(i)) {
                Some(&cut) => clv.iter().map(|&v| v.is_finite() && v >= cut).collect(),
                None => vec![false; clv.len()],
            }
        }
    }
}

pub fn best_label(best: &Best) -> String {
    match best {
        Best::Segments(n) => n.join(" and "),
        Best::TopClvDecile => "top-decile customers by CLV".into(),
    }
}

fn norm_json(n: &Norm) -> Value {
    json!({
        "step": n.step.key(),
        "coverage": n.coverage,
        "days": n.days,
        "customers": n.customers,
        "observed": n.observed,
        "share_within": n.share,
        "share_interval": n.share_interval.map(|(a, b)| [a, b]),
        "lift": n.lift.map(|l| json!({
            "target_orders": l.target_orders,
            "kept": {"reached": l.kept.0, "customers": l.kept.1},
            "missed": {"reached": l.missed.0, "customers": l.missed.1},
            "ratio": l.ratio.map(|r| json!({"value": r.value, "low": r.low, "high": r.high})),
        })),
    })
}

fn estimate(e: Option<lifecycle_tripwires::Estimate>) -> Value {
    e.map_or(
        Value::Null,
        |e| json!({"value": e.value, "low": e.low, "high": e.high}),
    )
}

fn backtest_json(b: &Backtest) -> Value {
    let outcome = |o: &lifecycle_tripwires::Outcome| {
        json!({
            "customers": o.customers,
            "repeaters": o.repeaters,
            "revenue_per_customer": o.revenue.mean(),
        })
    };
    json!({
        "split": format_day(b.split),
        "horizon_days": b.horizon_days,
        "norm_days": b.norm.days,
        "kept": outcome(&b.kept),
        "tripped": outcome(&b.tripped),
        "repeat_rate_kept": estimate(b.repeat_rates.0),
        "repeat_rate_tripped": estimate(b.repeat_rates.1),
        "repeat_rate_difference": estimate(b.repeat_difference),
        "revenue_difference": estimate(b.revenue_difference),
    })
}

fn backtest_text(b: &Backtest) -> String {
    let rate = |e: Option<lifecycle_tripwires::Estimate>| {
        e.map_or("n/a".to_string(), |e| format!("{:.1}%", e.value * 100.0))
    };
    let mut s = format!(
        "  backtest (learned up to {}: {} days; judged on {} later deadlines, {} days after each): ",
        format_day(b.split),
        b.norm.days,
        b.kept.customers + b.tripped.customers,
        b.horizon_days
    );
    s.push_str(&format!(
        "kept {} customers, {} ordered again; tripped {}, {} ordered again",
        b.kept.customers,
        rate(b.repeat_rates.0),
        b.tripped.customers,
        rate(b.repeat_rates.1),
    ));
    if let Some(d) = b.repeat_difference {
        s.push_str(&format!(
            "; difference {:+.1} points (95% CI {:+.1} to {:+.1})",
            d.value * 100.0,
            d.low * 100.0,
            d.high * 100.0
        ));
    }
    if let Some(r) = b.revenue_difference {
        s.push_str(&format!(
            "; revenue per customer {:+.2} (95% CI {:+.2} to {:+.2})",
            r.value, r.low, r.high
        ));
    }
    s
}

/// Every customer's history, summary (as of `as_of`) and entries.
pub struct Loaded {
    pub ids: Vec<String>,
    pub entries: Vec<Vec<OrderEntry>>,
    pub histories: Vec<History>,
    pub summaries: Vec<CustomerSummary>,
    pub as_of: Day,
}

pub fn load(
    orders: &std::path::Path,
    events: Option<&std::path::Path>,
    as_of: Option<Day>,
    timezone: &str,
    columns: Option<&str>,
) -> Result<Loaded> {
    let opts = ReadOptions {
        columns: column_overrides(columns)?,
        clock: clock_for(timezone).map_err(input_err)?,
        as_of,
        ..ReadOptions::default()
    };
    let mut builder = read_orders(orders, &opts)?.builder;
    if let Some(path) = events {
        let ev_opts = ReadOptions {
            columns: Default::default(),
            ..opts.clone()
        };
        builder.merge(read_events(path, &ev_opts)?.builder);
    }
    let as_of = match as_of.or(builder.last_order_day()) {
        Some(d) => d,
        None => return Err(input_err(format!("{}: no orders found", orders.display()))),
    };
    if events.is_none() {
        // Orders only: every customer has orders, one pass gives all.
        return Ok(loaded_from_builder(&builder, as_of));
    }
    let mut loaded = Loaded {
        ids: Vec::with_capacity(builder.len()),
        entries: Vec::with_capacity(builder.len()),
        histories: Vec::with_capacity(builder.len()),
        summaries: Vec::with_capacity(builder.len()),
        as_of,
    };
    // With events, visitors (no orders) matter too: join the orders to the
    // finished summaries, which know when each customer was first seen.
    let mut by_id: HashMap<String, Vec<OrderEntry>, foldhash::fast::FixedState> =
        HashMap::default();
    builder.for_each_customer_orders(as_of, |id, e| {
        by_id.insert(id.to_string(), e.to_vec());
    });
    let (finished, _) = builder.finish(as_of);
    for s in finished {
        let e = by_id.remove(&*s.customer_id).unwrap_or_default();
        loaded
            .histories
            .push(History::from_entries(&e, s.first_seen));
        loaded.ids.push(s.customer_id.to_string());
        loaded.entries.push(e);
        loaded.summaries.push(s);
    }
    Ok(loaded)
}

/// Every customer with orders up to `as_of` from a builder (orders only).
pub fn loaded_from_builder(builder: &lifecycle_rfm::SummaryBuilder, as_of: Day) -> Loaded {
    let mut loaded = Loaded {
        ids: Vec::with_capacity(builder.len()),
        entries: Vec::with_capacity(builder.len()),
        histories: Vec::with_capacity(builder.len()),
        summaries: Vec::with_capacity(builder.len()),
        as_of,
    };
    builder.for_each_customer_orders(as_of, |id, e| {
        loaded.histories.push(History::from_entries(e, None));
        loaded
            .summaries
            .push(CustomerSummary::from_entries(id, e, as_of));
        loaded.ids.push(id.to_string());
        loaded.entries.push(e.to_vec());
    });
    loaded
}

/// The tripwires section of `analyze --tripwires`: norms of the Champions
/// with their backtests, and every customer flagged on the analysis day
/// (written to `csv`). Returns the report's JSON.
pub fn report_section(data: &Loaded, table: &SegmentTable, csv: &std::path::Path) -> Result<Value> {
    let best = Best::Segments(vec!["Champions".into()]);
    let config = LearnConfig::default();
    let best_now = select_best(&best, &data.summaries, data.as_of, table);
    let results = norms_with_backtests(data, &best, &best_now, &config, table, None, 180);
    let norms: Vec<Norm> = results.iter().map(|(n, _)| n.clone()).collect();
    let counts = write_flags(data, &norms, Some(0.75), Some(0.8), table, csv, Vec::new())?;
    let label = best_label(&best);
    Ok(json!({
        "best": label,
        "best_customers": best_now.iter().filter(|b| **b).count(),
        "norms": results.iter().map(|(n, b)| {
            let mut v = norm_json(n);
            v["statement"] = json!(describe(n, &label));
            v["backtest"] = b.as_ref().map_or(Value::Null, backtest_json);
            v
        }).collect::<Vec<_>>(),
        "flags": counts.iter().map(|(k, (w, t, v))| json!({
            "tripwire": k, "warning": w, "tripped": t, "clv_at_stake": v,
        })).collect::<Vec<_>>(),
        "file": csv.display().to_string(),
    }))
}

pub fn run(command: TripwiresCommand) -> Result<()> {
    match command {
        TripwiresCommand::Learn(args) => learn_command(args),
        TripwiresCommand::Check(args) => check_command(args),
    }
}

/// "off" or a share strictly between 0 and 1.
fn share_flag(flag: &str, text: &str) -> Result<Option<f64>> {
    if text.trim() == "off" {
        return Ok(None);
    }
    match text.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(Some(v)),
        _ => Err(input_err(format!(
            "{flag} {text}: expected a share between 0 and 1 (e.g. 0.75) or off"
        ))),
    }
}

/// One flagged customer.
pub struct Flag {
    customer: usize,
    tripwire: String,
    status: &'static str,
    since: Day,
    days_overdue: f64,
    probability: Option<f64>,
}

fn check_command(args: CheckArgs) -> Result<()> {
    let warning = share_flag("--warning", &args.warning)?;
    let rhythm = share_flag("--rhythm", &args.rhythm)?;
    let Prepared {
        table,
        best,
        config,
        data,
    } = args.common.prepare()?;
    let as_of = data.as_of;
    let best_now = select_best(&best, &data.summaries, as_of, &table);
    let with_signups = data.histories.iter().any(|h| h.first_seen.is_some());
    let norms: Vec<Norm> = steps(&config, with_signups)
        .into_iter()
        .filter_map(|step| learn(&data.histories, &best_now, step, as_of, &config))
        .collect();
    let extra = match &args.custom {
        Some(file) => custom_flags(file, &args.common, &data)?,
        None => Vec::new(),
    };
    let path = args.out.join("tripwires.csv");
    let summary = write_flags(&data, &norms, warning, rhythm, &table, &path, extra)?;
    let label = best_label(&best);
    if args.common.json {
        let v = json!({
            "as_of": format_day(as_of),
            "customers": data.summaries.len(),
            "file": path.display().to_string(),
            "norms": norms.iter().map(|n| {
                let mut v = norm_json(n);
                v["statement"] = json!(describe(n, &label));
                v
            }).collect::<Vec<_>>(),
            "tripwires": summary.iter().map(|(k, (w, t, v))| json!({
                "tripwire": k, "warning": w, "tripped": t, "clv_at_stake": v,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{} customers as of {}; norms from {} best customers ({label}).",
        data.summaries.len(),
        format_day(as_of),
        best_now.iter().filter(|b| **b).count()
    );
    println!(
        "{:<22} {:>10} {:>10} {:>16}",
        "tripwire", "warning", "tripped", "CLV at stake"
    );
    for (k, (w, t, v)) in &summary {
        println!("{k:<22} {w:>10} {t:>10} {v:>16.2}");
    }
    println!("wrote {}", path.display());
    Ok(())
}

fn learn_command(args: LearnArgs) -> Result<()> {
    let Prepared {
        table,
        best,
        config,
        data,
    } = args.common.prepare()?;
    let as_of = data.as_of;
    let fixed_split = day_flag("--split", args.split.as_deref())?;
    if let Some(split) = fixed_split
        && split >= as_of
    {
        return Err(input_err(format!(
            "--split {}: must be before the analysis date {}",
            format_day(split),
            format_day(as_of)
        )));
    }
    let best_now = select_best(&best, &data.summaries, as_of, &table);
    let label = best_label(&best);
    let results = norms_with_backtests(
        &data,
        &best,
        &best_now,
        &config,
        &table,
        fixed_split,
        args.horizon_days,
    );
    let n_best = best_now.iter().filter(|b| **b).count();
    if args.common.json {
        let v = json!({
            "as_of": format_day(as_of),
            "best": label,
            "best_customers": n_best,
            "customers": data.summaries.len(),
            "norms": results.iter().map(|(n, b)| {
                let mut v = norm_json(n);
                v["statement"] = json!(describe(n, &label));
                v["backtest"] = b.as_ref().map_or(Value::Null, backtest_json);
                v
            }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{} best customers ({label}) of {} as of {}.",
        n_best,
        data.summaries.len(),
        format_day(as_of)
    );
    if results.is_empty() {
        println!(
            "No norm could be learned: fewer than {} best customers took any step, or too many are still censored.",
            config.min_customers
        );
    }
    for (norm, bt) in &results {
        println!("{}", describe(norm, &label));
        match bt {
            Some(b) if b.kept.customers + b.tripped.customers > 0 => {
                println!("{}", backtest_text(b))
            }
            Some(b) => println!(
                "  backtest: no deadline fell between the split {} and {} days before {}; try an earlier --split",
                format_day(b.split),
                b.horizon_days,
                format_day(as_of)
            ),
            None => println!(
                "  backtest: too few best customers before the split to learn this norm out of sample"
            ),
        }
    }
    Ok(())
}

/// The customers at warning or tripped on custom tripwires, from the
/// events file. Date-started tripwires need traits, which only `serve`
/// has: they are skipped here, and said so.
fn custom_flags(file: &std::path::Path, common: &CommonArgs, data: &Loaded) -> Result<Vec<Flag>> {
    use lifecycle_tripwires::{Happening, Start};
    let tripwires = lifecycle_ingest::config::load_custom_tripwires(file)?;
    let Some(events) = common.events.as_deref() else {
        return Err(input_err(format!(
            "--custom {}: custom tripwires need --events FILE (their events)",
            file.display()
        )));
    };
    let mut names: Vec<String> = Vec::new();
    let mut properties: Vec<String> = Vec::new();
    for t in &tripwires {
        let mut matches = vec![&t.action];
        match &t.start {
            Start::Event(m) => matches.push(m),
            Start::DateTrait(_) => eprintln!(
                "note: tripwire \"{}\" starts on a date trait; only `serve` (which keeps traits) checks it",
                t.name
            ),
        }
        for m in matches {
            if !names.contains(&m.event) {
                names.push(m.event.clone());
            }
            for (k, _) in &m.properties {
                if !properties.contains(k) {
                    properties.push(k.clone());
                }
            }
        }
    }
    let opts = ReadOptions {
        columns: column_overrides(common.columns.as_deref())?,
        clock: clock_for(&common.timezone).map_err(input_err)?,
        as_of: Some(data.as_of),
        ..ReadOptions::default()
    };
    let records = lifecycle_ingest::read_event_records(events, &opts, &names, &properties)?;
    let index: HashMap<&str, usize> = data
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut flags = Vec::new();
    // Records are sorted by customer: one group per customer.
    for group in records.chunk_by(|a, b| a.customer == b.customer) {
        let Some(&customer) = index.get(group[0].customer.as_str()) else {
            continue;
        };
        for t in tripwires
            .iter()
            .filter(|t| matches!(t.start, Start::Event(_)))
        {
            let happenings: Vec<Happening> = group
                .iter()
                .filter_map(|r| {
                    let property = |k: &str| {
                        r.properties
                            .iter()
                            .find(|(p, _)| p == k)
                            .map(|(_, v)| v.clone())
                    };
                    let start = match &t.start {
                        Start::Event(m) => m.matches(&r.event, property),
                        Start::DateTrait(_) => false,
                    };
                    let action = t.action.matches(&r.event, property);
                    (start || action).then_some(Happening {
                        day: r.day,
                        start,
                        action,
                    })
                })
                .collect();
            let standing = lifecycle_tripwires::evaluate(t, &happenings, None, data.as_of);
            if let Some((status, since, overdue, _)) = standing.open {
                flags.push(Flag {
                    customer,
                    tripwire: t.name.clone(),
                    status: status.name(),
                    since,
                    days_overdue: f64::from(overdue),
                    probability: None,
                });
            }
        }
    }
    Ok(flags)
}

/// Counts of one tripwire: (at warning, tripped, CLV at stake).
pub type FlagCounts = std::collections::BTreeMap<String, (u64, u64, f64)>;

/// Flags every customer at warning or tripped on `data.as_of` (the norms
/// of the step they are in, and the personal rhythm above `rhythm`),
/// writes them to `path` (CSV, via a temporary file) and returns the counts
/// and CLV at stake per tripwire.
pub fn write_flags(
    data: &Loaded,
    norms: &[Norm],
    warning: Option<f64>,
    rhythm: Option<f64>,
    table: &SegmentTable,
    path: &std::path::Path,
    extra: Vec<Flag>,
) -> Result<FlagCounts> {
    let as_of = data.as_of;
    let mut flags: Vec<Flag> = extra;
    for (i, h) in data.histories.iter().enumerate() {
        if let Some(s) = lifecycle_tripwires::standing(&h.progress(as_of), norms, as_of, warning) {
            flags.push(Flag {
                customer: i,
                tripwire: s.step.key(),
                status: s.status.name(),
                since: s.since,
                days_overdue: f64::from(s.days_overdue),
                probability: None,
            });
        }
    }
    // The model for value at stake and the personal rhythm.
    let run = ModelRun::fit(
        &data.summaries,
        as_of,
        &Scoring::Quintiles,
        table,
        RunConfig::default(),
    );
    if let (Some(threshold), Some(model)) = (rhythm, run.purchase.as_ref()) {
        for (i, s) in data.summaries.iter().enumerate() {
            let (Some(first), Some(last)) = (s.first_order, s.last_order) else {
                continue;
            };
            let x = f64::from(s.frequency());
            if let Some(o) = lifecycle_tripwires::overdue(
                model,
                x,
                f64::from(last - first),
                f64::from(as_of - last),
                threshold,
            ) {
                flags.push(Flag {
                    customer: i,
                    tripwire: "personal_rhythm".into(),
                    status: "tripped",
                    since: as_of - o.days_overdue.floor() as Day,
                    days_overdue: o.days_overdue,
                    probability: Some(o.probability),
                });
            }
        }
    }
    // Customers measured in whole days share histories: value each
    // distinct (x, t_x, T) once.
    let mut cache: HashMap<(u64, u64, u64), Option<f64>, foldhash::fast::FixedState> =
        HashMap::default();
    let mut clv = |i: usize| -> Option<f64> {
        lifecycle_engine::clv_of(&run, &data.summaries[i], as_of, |x, t_x, t| {
            *cache
                .entry((x.to_bits(), t_x.to_bits(), t.to_bits()))
                .or_insert_with(|| lifecycle_engine::discounted_purchases(&run, x, t_x, t))
        })
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    }
    let mut out =
        String::from("customer_id,tripwire,status,since,days_overdue,probability,clv_at_stake\n");
    let mut summary = FlagCounts::default();
    for f in &flags {
        let value = clv(f.customer);
        let e = summary.entry(f.tripwire.clone()).or_default();
        if f.status == "warning" {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
        e.2 += value.unwrap_or(0.0);
        out.push_str(&format!(
            "{},{},{},{},{:.0},{},{}\n",
            crate::csv_text(&data.ids[f.customer]),
            f.tripwire,
            f.status,
            format_day(f.since),
            f.days_overdue,
            f.probability.map_or(String::new(), |p| format!("{p:.4}")),
            value.map_or(String::new(), |v| format!("{v:.2}")),
        ));
    }
    let tmp = path.with_extension("csv.tmp");
    std::fs::write(&tmp, out).map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(summary)
}

/// Every norm the best customers define, each with its backtest (at
/// `fixed_split`, or per norm at the default split).
pub fn norms_with_backtests(
    data: &Loaded,
    best: &Best,
    best_now: &[bool],
    config: &LearnConfig,
    table: &SegmentTable,
    fixed_split: Option<Day>,
    horizon_days: u32,
) -> Vec<(Norm, Option<Backtest>)> {
    let as_of = data.as_of;
    let with_signups = data.histories.iter().any(|h| h.first_seen.is_some());
    let mut best_at: HashMap<Day, Vec<bool>> = HashMap::new();
    let mut results = Vec::new();
    for step in steps(config, with_signups) {
        let Some(norm) = learn(&data.histories, best_now, step, as_of, config) else {
            continue;
        };
        let split = fixed_split.or_else(|| default_split(&data.histories, step, as_of));
        let bt = split.and_then(|split| {
            let best_then = best_at
                .entry(split)
                .or_insert_with(|| best_as_of(best, data, split, table));
            backtest(
                &data.histories,
                best_then,
                step,
                as_of,
                config,
                &BacktestConfig {
                    split,
                    horizon_days,
                    level: 0.95,
                },
            )
        });
        results.push((norm, bt));
    }
    results
}

/// The best customers as they were on `split`, judged on the history then.
fn best_as_of(best: &Best, data: &Loaded, split: Day, table: &SegmentTable) -> Vec<bool> {
    let at_split: Vec<CustomerSummary> = data
        .ids
        .iter()
        .zip(&data.entries)
        .map(|(id, e)| CustomerSummary::from_entries(id, e, split))
        .collect();
    let mut out = vec![false; at_split.len()];
    let buyers: Vec<usize> = (0..at_split.len())
        .filter(|&i| at_split[i].n_orders > 0)
        .collect();
    let summaries: Vec<CustomerSummary> = buyers.iter().map(|&i| at_split[i].clone()).collect();
    if !summaries.is_empty() {
        for (k, b) in select_best(best, &summaries, split, table)
            .into_iter()
            .enumerate()
        {
            out[buyers[k]] = b;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_rules() {
        let t = SegmentTable::default_table();
        assert_eq!(
            parse_best("segment in [Champions, Loyal Customers]", &t).unwrap(),
            Best::Segments(vec!["Champions".into(), "Loyal Customers".into()])
        );
        assert_eq!(
            parse_best("segment = Champions", &t).unwrap(),
            Best::Segments(vec!["Champions".into()])
        );
        assert_eq!(
            parse_best("top-clv-decile", &t).unwrap(),
            Best::TopClvDecile
        );
        let e = parse_best("segment in [Champs]", &t)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no segment \"Champs\""), "{e}");
        assert!(parse_best("best people", &t).is_err());
    }
}

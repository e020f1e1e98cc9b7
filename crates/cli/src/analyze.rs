//! `lifecycle analyze`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use lifecycle_ingest::summary_file::parse_duration;
use lifecycle_ingest::{
    BadRows, ColumnOverrides, ReadOptions, clock_for, config, read_events, read_orders,
};
use lifecycle_report::{ExtraColumn, ExtraKind, RunInfo, build_summary, render_table, write_all};
use lifecycle_rfm::{AnalysisConfig, Scoring, SegmentTable, analyze};

use crate::value::{Outlooks, Purchase, ValueConfig, customer_value};
use crate::{column_overrides, day_flag, input_err};

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Orders file: CSV/TSV, whitespace text, NDJSON (Segment messages too) or Parquet; .gz works
    pub orders: PathBuf,
    /// Analysis date (YYYY-MM-DD); later orders are ignored. Default: the last order date
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Time zone where a purchase day begins and ends (IANA name)
    #[arg(long, default_value = "UTC", value_name = "TZ")]
    pub timezone: String,
    /// Output folder
    #[arg(long, default_value = "lifecycle-out", value_name = "DIR")]
    pub out: PathBuf,
    /// Print summary.json to stdout instead of the table
    #[arg(long)]
    pub json: bool,
    /// Column overrides: customer=..,date=..,amount=.. (also price, quantity, order, status, currency, refunded); names or 1-based numbers
    #[arg(long, value_name = "SPEC")]
    pub columns: Option<String>,
    /// Date format (strftime, e.g. %d/%m/%Y %H:%M); inferred by default
    #[arg(long, value_name = "FORMAT")]
    pub date_format: Option<String>,
    /// Stop at the first bad row (the default)
    #[arg(long, conflicts_with = "skip_bad_rows")]
    pub strict: bool,
    /// Skip bad rows, report how many and the first 10
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Behavioural events (customer, timestamp, event[, email]) for the visitor segments
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Segment rules (TOML) replacing the default table; see `lifecycle segments`
    #[arg(long, value_name = "FILE")]
    pub segments: Option<PathBuf>,
    /// Fixed R/F/M cut points (TOML) instead of quintiles
    #[arg(long, value_name = "FILE")]
    pub rfm_thresholds: Option<PathBuf>,
    /// Currency conversion rates (CSV: CODE,RATE) for files with mixed currencies
    #[arg(long, value_name = "FILE")]
    pub currency_rates: Option<PathBuf>,
    /// Worker threads (default: all cores)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Longest accepted line in bytes
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_line_bytes: usize,
    /// The input is a summaries file from `lifecycle summarize` (also
    /// recognised by its header): RFM scores, segments and --clv from the
    /// per-customer summaries; not with --events, --tripwires or --kpis,
    /// which need every order
    #[arg(long)]
    pub summaries: bool,
    /// Also fit BG/NBD + Gamma-Gamma and append p_alive, expected_purchases, expected_order_value, clv and value_decline to customers.csv
    #[arg(long)]
    pub clv: bool,
    /// Also learn the Champions' tripwire norms (with backtests) and flag
    /// every customer at warning or tripped: tripwires.csv and a report section
    #[arg(long)]
    pub tripwires: bool,
    /// Also compute the KPIs: cohorts by acquisition month (cohorts.csv),
    /// monthly retention (retention.csv), repeat rate, value concentration
    /// (Pareto share, Gini), time between orders
    #[arg(long)]
    pub kpis: bool,
    /// With --kpis: the customer attributes file (customer_id,
    /// acquisition_cost, acquisition_channel, other columns such as
    /// campaign): new-customer stickiness by channel and by every other
    /// column (stickiness.csv)
    #[arg(long, value_name = "FILE")]
    pub attributes: Option<PathBuf>,
    /// With --kpis: the order lines (customer_id, date, product_id and
    /// optionally category, brand, quantity, price or line_total, cost or
    /// margin_rate, discount_code; a line-item orders file works): margin
    /// concentration, stickiness and anomalies by first product, category,
    /// brand and code, upsell affinities (affinities.csv) and each
    /// customer's next best product (next_best.csv)
    #[arg(long, value_name = "FILE")]
    pub lines: Option<PathBuf>,
    /// With --kpis --attributes: marketing spend by channel and month
    /// (channel,month,spend): the acquisition cost of customers the
    /// attributes give none for (LTV:CAC, payback.csv)
    #[arg(long, value_name = "FILE")]
    pub spend: Option<PathBuf>,
    /// With --kpis: survey answers, reviews, returns and tickets
    /// (customer_id,kind,value or a survey export with nps/ces/review
    /// columns): NPS, CES, review score, return and resolution rates by
    /// segment and phase (experience.csv)
    #[arg(long, value_name = "FILE")]
    pub experience: Option<PathBuf>,
    /// With --kpis: the segments whose profile is the ideal customer
    /// profile (comma-separated; default: the Veneration phase's)
    #[arg(long, value_name = "SEGMENTS")]
    pub best: Option<String>,
    /// With --kpis: the period of the headline retention and churn (month,
    /// quarter or year; every period's retention file is written)
    #[arg(long, default_value = "month", value_name = "PERIOD")]
    pub retention_period: String,
    /// With --kpis and attributes or lines: how many lookalikes of the best
    /// customers to list (lookalikes.csv)
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub lookalikes: usize,
    /// With --kpis: a second order within this many days makes a new
    /// customer sticky
    #[arg(long, default_value_t = 90, value_name = "DAYS")]
    pub sticky_days: i32,
    /// CLV horizon (with --clv), e.g. 52w, 12m
    #[arg(long, default_value = "52w")]
    pub horizon: String,
    /// Margin on revenue for CLV (with --clv)
    #[arg(long, default_value_t = 1.0)]
    pub margin: f64,
    /// Annual discount rate for CLV (with --clv)
    #[arg(long, default_value_t = 0.10)]
    pub discount_rate: f64,
    /// Print elapsed time and peak memory to stderr (for benchmarks)
    #[arg(long, hide = true)]
    pub stats: bool,
}

/// Shows a progress bar while `counter` moves towards `total` bytes, on
/// terminals only and for inputs big enough to wait for.
struct Progress {
    done: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(label: &str, total: u64, counter: Arc<AtomicU64>) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        let show =
            std::io::stdout().is_terminal() && std::io::stderr().is_terminal() && total > 16 << 20;
        let handle = show.then(|| {
            let done = done.clone();
            let label = label.to_string();
            std::thread::spawn(move || {
                let bar = indicatif::ProgressBar::new(total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_message(label);
                while !done.load(Ordering::Relaxed) {
                    bar.set_position(counter.load(Ordering::Relaxed).min(total));
                    std::thread::sleep(Duration::from_millis(100));
                }
                bar.finish_and_clear();
            })
        });
        Progress { done, handle }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn run(args: AnalyzeArgs) -> Result<()> {
    let started = Instant::now();
    let clock = clock_for(&args.timezone).map_err(input_err)?;
    let as_of = day_flag("--as-of", args.as_of.as_deref())?;
    let columns = column_overrides(args.columns.as_deref())?;
    let table = match &args.segments {
        Some(p) => config::load_segments(p)?,
        None => SegmentTable::default_table(),
    };
    let scoring = match &args.rfm_thresholds {
        Some(p) => Scoring::Thresholds(config::load_thresholds(p)?),
        None => Scoring::Quintiles,
    };
    let currency_rates = args
        .currency_rates
        .as_deref()
        .map(config::load_currency_rates)
        .transpose()?;
    let counter = Arc::new(AtomicU64::new(0));
    let mut opts = ReadOptions {
        columns,
        date_format: args.date_format.clone(),
        clock,
        as_of,
        bad_rows: if args.skip_bad_rows {
            BadRows::Skip
        } else {
            BadRows::Stop
        },
        currency_rates,
        max_line_bytes: args.max_line_bytes,
        progress: Some(counter.clone()),
        ..ReadOptions::default()
    };
    if let Some(t) = args.threads {
        opts.threads = t.max(1);
    }
    let from_summaries = args.summaries || crate::summarize::is_summaries(&args.orders);
    if from_summaries {
        let refused = [
            (args.events.is_some(), "--events"),
            (args.tripwires, "--tripwires"),
            (args.kpis, "--kpis"),
        ];
        if let Some((_, flag)) = refused.iter().find(|(on, _)| *on) {
            return Err(input_err(format!(
                "{}: a summaries file has no order history; {flag} needs the orders file",
                args.orders.display()
            )));
        }
    }
    let mut customers = if from_summaries {
        let (summaries, day) = crate::summarize::read_summaries(&args.orders)?;
        if let Some(a) = as_of
            && a != day
        {
            return Err(input_err(format!(
                "{}: the summaries are as of {}; --as-of {} needs the orders file",
                args.orders.display(),
                lifecycle_ingest::format_day(day),
                lifecycle_ingest::format_day(a)
            )));
        }
        Customers::Summaries {
            summaries,
            as_of: day,
        }
    } else {
        let size = std::fs::metadata(&args.orders)
            .map(|m| m.len())
            .with_context(|| format!("{}", args.orders.display()))
            .map_err(|e| input_err(format!("{e:#}")))?;
        let _bar = Progress::start("reading orders", size, counter);
        Customers::Orders(Box::new(read_orders(&args.orders, &opts)?))
    };
    let t_read = started.elapsed();
    // Stage times for --stats.
    let mut stages: Vec<(&str, f64)> = Vec::new();
    let mut mark = {
        let mut last = started.elapsed();
        move |stages: &mut Vec<(&'static str, f64)>, name: &'static str| {
            let now = started.elapsed();
            stages.push((name, (now - last).as_secs_f64()));
            last = now;
        }
    };
    let events = match (&args.events, &mut customers) {
        (Some(path), Customers::Orders(orders)) => {
            let ev_opts = ReadOptions {
                columns: ColumnOverrides::default(),
                date_format: None,
                progress: None,
                ..opts.clone()
            };
            let ev = read_events(path, &ev_opts)?;
            orders.builder.merge(ev.builder);
            Some((ev.description, ev.stats))
        }
        _ => None,
    };
    let as_of_day = match (&customers, as_of) {
        (Customers::Summaries { as_of, .. }, _) => *as_of,
        (_, Some(d)) => d,
        (Customers::Orders(orders), None) => orders
            .builder
            .last_order_day()
            .ok_or_else(|| input_err(format!("{}: no orders found", args.orders.display())))?,
    };
    let builder = match &customers {
        Customers::Orders(orders) => Some(&orders.builder),
        Customers::Summaries { .. } => None,
    };
    // The actual curve of the model section's tracking chart.
    let by_day = builder
        .filter(|_| args.clv)
        .map(|b| b.repeat_purchases_by_day(as_of_day, as_of_day));
    let tripwire_data = builder
        .filter(|_| args.tripwires)
        .map(|b| crate::tripwires::loaded_from_builder(b, as_of_day));
    let paths = lifecycle_insights::Paths {
        attributes: args.attributes.clone(),
        lines: args.lines.clone(),
        spend: args.spend.clone(),
        experience: args.experience.clone(),
    };
    let any_input = paths.attributes.is_some()
        || paths.lines.is_some()
        || paths.spend.is_some()
        || paths.experience.is_some();
    if any_input && !args.kpis {
        return Err(input_err(
            "--attributes, --lines, --spend and --experience go with --kpis",
        ));
    }
    mark(&mut stages, "events_and_setup");
    let inputs = if args.kpis {
        let clock = clock_for(&args.timezone).map_err(input_err)?;
        let inputs =
            lifecycle_insights::Inputs::read(&paths, &clock, opts.threads).map_err(insights_err)?;
        for w in &inputs.warnings {
            eprintln!("{w}");
        }
        inputs
    } else {
        lifecycle_insights::Inputs::default()
    };
    mark(&mut stages, "inputs");
    let options = lifecycle_insights::Options {
        sticky_days: args.sticky_days,
        best: args
            .best
            .as_ref()
            .map(|b| b.split(',').map(str::to_string).collect()),
        lookalikes: args.lookalikes,
        margin: args.margin,
        retention_period: lifecycle_kpis::Period::parse(&args.retention_period).ok_or_else(
            || {
                input_err(format!(
                    "--retention-period: \"{}\" is not month, quarter or year",
                    args.retention_period
                ))
            },
        )?,
    };
    let mut pass = if args.kpis {
        Some(lifecycle_insights::Pass::new(&inputs, as_of_day, options).map_err(insights_err)?)
    } else {
        None
    };
    if let (Some(p), Some(b)) = (pass.as_mut(), builder) {
        b.for_each_customer_orders(as_of_day, |id, entries| p.add(id, entries));
    }
    mark(&mut stages, "kpi_pass");
    let (description, read_stats, summaries, finish) = match customers {
        Customers::Orders(orders) => {
            let (summaries, finish) = orders.builder.finish(as_of_day);
            (orders.description, orders.stats, summaries, finish)
        }
        Customers::Summaries { summaries, .. } => (
            summaries_description(&args.orders),
            lifecycle_ingest::ReadStats {
                rows_read: summaries.len() as u64,
                ..Default::default()
            },
            summaries,
            lifecycle_rfm::FinishStats::default(),
        ),
    };
    let t_finish = started.elapsed();
    let config = AnalysisConfig {
        scoring: scoring.clone(),
        segments: table.clone(),
    };
    let analysis = analyze(summaries, as_of_day, &config);
    let t_analyze = started.elapsed();
    let run = RunInfo {
        input: description,
        read: read_stats,
        finish,
        events,
        as_of_given: as_of.is_some(),
        timezone: args.timezone.clone(),
        scoring,
    };
    let mut summary = build_summary(&analysis, &table, &run);
    mark(&mut stages, "summarise_and_segment");
    let extras = if args.clv {
        match value_columns(&args, &analysis, &table, by_day.as_ref()) {
            Ok((columns, model)) => {
                summary.clv = Some(model);
                columns
            }
            Err(e) => {
                summary.notes.push(format!(
                    "No CLV columns: the value model could not be fitted ({e:#})."
                ));
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    mark(&mut stages, "clv");
    if let Some(data) = &tripwire_data {
        summary.tripwires = Some(crate::tripwires::report_section(
            data,
            &table,
            &args.out.join("tripwires.csv"),
        )?);
    }
    if let Some(p) = pass {
        let clv = extras
            .iter()
            .find(|c| c.name == "clv")
            .map(|c| c.values.as_slice());
        summary.kpis = Some(
            p.write(&analysis, &table, clv, &args.out)
                .map_err(insights_err)?,
        );
    }
    mark(&mut stages, "insights");
    let written = write_all(&args.out, &analysis, &table, &summary, &extras)?;
    mark(&mut stages, "customers_and_report");
    let t_write = started.elapsed();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", render_table(&summary));
        let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        eprintln!("\nWrote {}", names.join(", "));
    }
    // Millions of small allocations are about to be freed by the OS at exit;
    // freeing them one by one first only costs time.
    std::mem::forget(analysis);
    if args.stats {
        eprintln!(
            "stats: rows={} customers={} seconds={:.3} read={:.3} finish={:.3} analyze={:.3} write={:.3} peak_rss_kib={}",
            summary.rows.read,
            summary.customers,
            started.elapsed().as_secs_f64(),
            t_read.as_secs_f64(),
            (t_finish - t_read).as_secs_f64(),
            (t_analyze - t_finish).as_secs_f64(),
            (t_write - t_analyze).as_secs_f64(),
            peak_rss_kib().unwrap_or(0)
        );
        let parts: Vec<String> = stages.iter().map(|(n, t)| format!("{n}={t:.3}")).collect();
        eprintln!("stages: {}", parts.join(" "));
    }
    Ok(())
}

/// Where the customers come from: an orders file, or the summaries of one.
enum Customers {
    Orders(Box<lifecycle_ingest::OrdersInput>),
    Summaries {
        summaries: Vec<lifecycle_rfm::CustomerSummary>,
        as_of: lifecycle_rfm::Day,
    },
}

/// How a summaries file is described in the report.
fn summaries_description(path: &std::path::Path) -> lifecycle_ingest::InputDescription {
    lifecycle_ingest::InputDescription {
        path: path.to_path_buf(),
        format: "per-customer summaries (lifecycle summarize)".into(),
        compressed: false,
        has_header: true,
        columns: [
            "frequency",
            "recency",
            "T",
            "monetary_value",
            "orders",
            "total_spend",
        ]
        .iter()
        .map(|c| ((*c).to_string(), (*c).to_string()))
        .collect(),
        date_format: "days".into(),
    }
}

/// Input mistakes of the insights exit with status 2, like other input errors.
fn insights_err(e: lifecycle_insights::InsightsError) -> anyhow::Error {
    match e {
        lifecycle_insights::InsightsError::Ingest(e) => e.into(),
        lifecycle_insights::InsightsError::Input(m) => input_err(m),
        other => other.into(),
    }
}

/// Fits BG/NBD (weeks) and Gamma-Gamma on the analysis and returns the
/// appended customers.csv columns and the model's description.
fn value_columns(
    args: &AnalyzeArgs,
    analysis: &lifecycle_rfm::Analysis,
    table: &SegmentTable,
    by_day: Option<&std::collections::BTreeMap<lifecycle_rfm::Day, u64>>,
) -> Result<(Vec<ExtraColumn>, serde_json::Value)> {
    use lifecycle_models::{BgNbd, FitConfig, GammaGamma, Observation, SpendObservation};
    let (count, unit) =
        parse_duration(&args.horizon).map_err(|m| input_err(format!("--horizon: {m}")))?;
    let weeks = 7.0;
    let horizon = count * unit.days() / weeks;
    let as_of = analysis.as_of;
    let obs: Vec<Option<Observation>> = analysis
        .summaries
        .iter()
        .map(|s| {
            Some(Observation::new(
                f64::from(s.frequency()),
                f64::from(s.recency_days()?) / weeks,
                f64::from(s.age_days(as_of)?) / weeks,
            ))
        })
        .collect();
    let buyers: Vec<Observation> = obs.iter().flatten().copied().collect();
    let config = FitConfig::default();
    let (model, report) = BgNbd::fit(&buyers, &config)?;
    let spend: Vec<SpendObservation> = analysis
        .summaries
        .iter()
        .filter(|s| s.frequency() > 0 && s.repeat_mean_value() > 0.0)
        .map(|s| SpendObservation::new(f64::from(s.frequency()), s.repeat_mean_value()))
        .collect();
    let gg = GammaGamma::fit(&spend, &config).ok();
    let cfg = ValueConfig {
        horizon,
        unit_days: weeks,
        margin: args.margin,
        discount_rate: args.discount_rate,
        decline_threshold: 0.5,
    };
    let purchase = Purchase::Bg(model);
    let n = analysis.len();
    // Each customer's value, in parallel chunks (each with its own cache of
    // outlooks per distinct history).
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let per = n.div_ceil(threads).max(1);
    let rows: Vec<Vec<[f64; 6]>> = std::thread::scope(|scope| {
        let handles: Vec<_> = analysis
            .summaries
            .chunks(per)
            .zip(obs.chunks(per))
            .map(|(sums, obs)| {
                let (purchase, gg, cfg) = (&purchase, gg.as_ref(), &cfg);
                scope.spawn(move || -> Result<Vec<[f64; 6]>> {
                    let mut outlooks = Outlooks::new(purchase, *cfg, None, None);
                    let mut rows = Vec::with_capacity(sums.len());
                    for (s, o) in sums.iter().zip(obs) {
                        let Some(o) = o else {
                            rows.push([f64::NAN; 6]);
                            continue;
                        };
                        let out = outlooks.get(o)?;
                        let v = customer_value(
                            &out,
                            gg.map(|g| &g.0),
                            o,
                            s.repeat_mean_value(),
                            s.avg_order_value(),
                            cfg,
                            None,
                        );
                        let next = out.next_purchase.map_or(f64::NAN, |t| {
                            f64::from(as_of) + (t * weeks).round().min(1e6)
                        });
                        rows.push([
                            v.p_alive,
                            v.expected_purchases,
                            v.order_value,
                            v.clv,
                            f64::from(u8::from(v.value_decline)),
                            next,
                        ]);
                    }
                    Ok(rows)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Result<Vec<_>>>()
    })?;
    let mut cols: Vec<Vec<f64>> = (0..6).map(|_| Vec::with_capacity(n)).collect();
    let mut clv_by_segment = vec![(0.0f64, 0usize); table.segments().len()];
    let mut flagged = 0usize;
    for (i, row) in rows.iter().flatten().enumerate() {
        for (col, v) in cols.iter_mut().zip(row) {
            col.push(*v);
        }
        if obs[i].is_some() {
            flagged += usize::from(row[4] > 0.0);
            let seg = analysis.scores[i].segment as usize;
            clv_by_segment[seg].0 += row[3];
            clv_by_segment[seg].1 += 1;
        }
    }
    let total: f64 = clv_by_segment.iter().map(|s| s.0).sum();
    let histogram = clv_histogram(&cols[3]);
    let names = [
        "p_alive",
        "expected_purchases",
        "expected_order_value",
        "clv",
        "value_decline",
        "next_order",
    ];
    let kinds = [
        ExtraKind::Number(6),
        ExtraKind::Number(6),
        ExtraKind::Number(2),
        ExtraKind::Number(2),
        ExtraKind::Flag,
        ExtraKind::Day,
    ];
    let columns = cols
        .into_iter()
        .zip(names.iter().zip(kinds))
        .map(|(values, (name, kind))| ExtraColumn {
            name: (*name).to_string(),
            values,
            kind,
        })
        .collect();
    let [r, alpha, a, b] = purchase.params();
    let tracking = match by_day {
        Some(by_day) => {
            crate::value::tracking(&analysis.summaries, &purchase, as_of, weeks, by_day)?
        }
        None => None,
    };

    let description = serde_json::json!({
        "model": "bgnbd",
        "time_unit": "weeks",
        "params": {"r": r, "alpha": alpha, "a": a, "b": b},
        "standard_errors": report.names.iter().cloned().zip(report.standard_errors.iter().map(|e| serde_json::json!(e))).collect::<serde_json::Map<_, _>>(),
        "tracking": tracking.map(|p| p.iter().map(|(w, a, e)| serde_json::json!([w, a, e])).collect::<Vec<_>>()),
        "clv_histogram": histogram,
        "log_likelihood": report.log_likelihood,
        "spend_model": gg.as_ref().map(|(g, _)| {
            let [p, q, gamma] = g.params();
            serde_json::json!({"model": "gamma-gamma", "params": {"p": p, "q": q, "gamma": gamma}})
        }),
        "horizon": args.horizon,
        "margin": args.margin,
        "discount_rate": args.discount_rate,
        "total_clv": total,
        "value_decline_flagged": flagged,
        "by_segment": table.segments().iter().zip(&clv_by_segment).map(|(seg, (sum, n))| serde_json::json!({
            "segment": seg.name, "customers": n, "mean_clv": if *n > 0 { sum / *n as f64 } else { 0.0 }, "total_clv": sum
        })).collect::<Vec<_>>(),
    });
    Ok((columns, description))
}

/// Customers per CLV band: 20 equal bands up to the 99th percentile and
/// one for the rest, as `[{"from", "to", "customers"}]`.
fn clv_histogram(clv: &[f64]) -> serde_json::Value {
    let mut v: Vec<f64> = clv.iter().copied().filter(|c| c.is_finite()).collect();
    if v.is_empty() {
        return serde_json::json!([]);
    }
    v.sort_by(f64::total_cmp);
    let top = v[((v.len() - 1) as f64 * 0.99) as usize].max(1e-9);
    let width = top / 20.0;
    let mut counts = [0usize; 21];
    for c in &v {
        counts[((c / width) as usize).min(20)] += 1;
    }
    let max = v[v.len() - 1];
    serde_json::Value::Array(
        counts
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let to = if i == 20 { max } else { width * (i + 1) as f64 };
                serde_json::json!({"from": width * i as f64, "to": to, "customers": n})
            })
            .collect(),
    )
}

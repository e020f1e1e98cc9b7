//! `lifecycle predict`: fits a purchase model (and Gamma-Gamma for spend)
//! on the calibration period and writes per-customer predictions; with a
//! calibration end before the data's end it also scores the holdout.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lifecycle_ingest::summary_file::{TimeUnit, parse_duration};
use lifecycle_ingest::{ReadOptions, clock_for, format_day, read_orders};
use lifecycle_models::{FitConfig, GammaGamma, Observation, SpendObservation};
use lifecycle_rfm::{CustomerSummary, Day, SummaryBuilder};

use crate::fit::ModelKind;
use crate::select;
use crate::{column_overrides, day_flag, input_err};

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Orders file (any format `analyze` reads), or a summaries file `lifecycle summarize` wrote
    pub orders: PathBuf,
    /// Purchase model: bgnbd, mbgnbd, pareto-nbd, or auto (fit all, keep the best on the holdout)
    #[arg(long, value_enum, default_value = "bgnbd")]
    pub model: ModelKind,
    /// How far ahead to predict, e.g. 52w, 365d, 12m
    #[arg(long, default_value = "52w")]
    pub horizon: String,
    /// End of the calibration period; later orders are the holdout that predictions are scored on
    #[arg(long, value_name = "DATE")]
    pub calibration_end: Option<String>,
    /// Time unit of the model's parameters
    #[arg(long, default_value = "week")]
    pub time_unit: String,
    /// Margin on revenue used for CLV (0..1)
    #[arg(long, default_value_t = 1.0)]
    pub margin: f64,
    /// Annual discount rate for CLV
    #[arg(long, default_value_t = 0.10)]
    pub discount_rate: f64,
    /// Flag value decline when the predicted purchase rate falls below (1 - this) x the customer's own rate so far
    #[arg(long, default_value_t = 0.5)]
    pub decline_threshold: f64,
    /// Add per-customer intervals at this level (e.g. 0.9): purchases over the horizon, CLV, P(alive) at its end
    #[arg(long, value_name = "LEVEL")]
    pub interval: Option<f64>,
    /// Customer attributes file (customer_id,acquisition_cost[,acquisition_channel,...]): adds CLV net of acquisition cost
    #[arg(long, value_name = "FILE")]
    pub customers: Option<PathBuf>,
    /// Add residual_clv: the discounted value of the whole remaining lifetime (DERT; closed form for Pareto/NBD)
    #[arg(long)]
    pub lifetime_value: bool,
    /// Add p_0 .. p_N: the probability of exactly n purchases within the horizon (N at most 20)
    #[arg(long, value_name = "N")]
    pub probabilities: Option<usize>,
    /// A previous run's predictions.csv: adds clv_previous, clv_change and clv_decline
    /// (CLV fell below (1 - decline threshold) x the previous one)
    #[arg(long, value_name = "FILE")]
    pub previous: Option<PathBuf>,
    /// Output folder
    #[arg(long, default_value = "lifecycle-out", value_name = "DIR")]
    pub out: PathBuf,
    /// Time zone where a purchase day begins and ends
    #[arg(long, default_value = "UTC", value_name = "TZ")]
    pub timezone: String,
    /// Column overrides (see `analyze --help`)
    #[arg(long, value_name = "SPEC")]
    pub columns: Option<String>,
}

use crate::value::{Outlook, Outlooks, Purchase, ValueConfig, customer_value};

/// Appends `v` with `decimals` decimals, as `format!("{v:.d$}")` but
/// without the general float formatter (millions of rows; ties may round
/// the other way in the last digit).
fn push_fixed(out: &mut String, v: f64, decimals: u32) {
    const SCALES: [f64; 7] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6];
    let scale = SCALES
        .get(decimals as usize)
        .copied()
        .unwrap_or_else(|| 10f64.powi(decimals as i32));
    let scaled = (v * scale).round();
    if !scaled.is_finite() || scaled.abs() >= 9e15 {
        let _ = write!(out, "{v:.*}", decimals as usize);
        return;
    }
    let n = scaled as i64;
    if n < 0 {
        out.push('-');
    }
    let n = n.unsigned_abs();
    let unit = 10u64.pow(decimals);
    push_digits(out, n / unit, 1);
    if decimals > 0 {
        out.push('.');
        push_digits(out, n % unit, decimals as usize);
    }
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
fn push_digits(out: &mut String, mut n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while n > 0 || buf.len() - i < width.max(1) {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    // ASCII digits: always valid UTF-8.
    if let Ok(digits) = std::str::from_utf8(&buf[i..]) {
        out.push_str(digits);
    }
}

/// Calibration by frequency (FHL 2005, Figure 4): the mean holdout
/// purchases of the customers with 0, 1, ..., 7+ repeat purchases in the
/// calibration period, actual and as the model expected, as CSV and SVG.
fn write_by_frequency(
    args: &PredictArgs,
    obs: &[Observation],
    expected: &[f64],
    actual: &[f64],
) -> Result<()> {
    const GROUPS: usize = 8;
    let mut sums = [(0usize, 0.0f64, 0.0f64); GROUPS];
    for ((o, e), a) in obs.iter().zip(expected).zip(actual) {
        let g = (o.x as usize).min(GROUPS - 1);
        sums[g].0 += 1;
        sums[g].1 += a;
        sums[g].2 += e;
    }
    let mut csv = String::from("repeat_purchases,customers,actual_mean,expected_mean\n");
    let mut points = Vec::new();
    for (g, (n, a, e)) in sums.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let label = if g == GROUPS - 1 {
            format!("{g}+")
        } else {
            g.to_string()
        };
        let (am, em) = (a / *n as f64, e / *n as f64);
        let _ = writeln!(csv, "{label},{n},{am:.4},{em:.4}");
        points.push((label, am, em));
    }
    std::fs::write(args.out.join("by_frequency.csv"), csv)?;
    std::fs::write(
        args.out.join("by_frequency.svg"),
        lifecycle_report::grouped_bars_svg(
            &points,
            "repeat purchases in the calibration period",
            "mean holdout purchases",
        ),
    )?;
    Ok(())
}

/// The distinct (x, t_x, T) and each customer's index into them.
fn distinct_histories(obs: &[Observation]) -> (Vec<Observation>, Vec<u32>) {
    let mut index: std::collections::HashMap<[u64; 3], u32, foldhash::fast::FixedState> =
        Default::default();
    let mut distinct = Vec::new();
    let of = obs
        .iter()
        .map(|o| {
            *index
                .entry([o.x.to_bits(), o.t_x.to_bits(), o.t_big.to_bits()])
                .or_insert_with(|| {
                    distinct.push(*o);
                    (distinct.len() - 1) as u32
                })
        })
        .collect();
    (distinct, of)
}

/// `f` over contiguous chunks of `items`, one per core, results in order.
fn par_chunks<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &[T]) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if items.len() < 10_000 || threads == 1 {
        return vec![f(0, items)];
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(k, c)| {
                let f = &f;
                scope.spawn(move || f(k * chunk, c))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

fn read(args: &PredictArgs, as_of: Option<Day>) -> Result<(SummaryBuilder, Day)> {
    let columns = column_overrides(args.columns.as_deref())?;
    let opts = ReadOptions {
        columns,
        clock: clock_for(&args.timezone).map_err(input_err)?,
        as_of,
        ..ReadOptions::default()
    };
    let input = read_orders(&args.orders, &opts)?;
    let end = match as_of {
        Some(d) => d,
        None => input
            .builder
            .last_order_day()
            .ok_or_else(|| input_err("no orders found"))?,
    };
    Ok((input.builder, end))
}

fn buyers(builder: SummaryBuilder, end: Day) -> Vec<CustomerSummary> {
    let (s, _) = builder.finish(end);
    s.into_iter().filter(|c| c.n_orders > 0).collect()
}

pub fn run(args: PredictArgs) -> Result<()> {
    let unit = TimeUnit::parse(&args.time_unit).ok_or_else(|| {
        input_err(format!(
            "--time-unit: \"{}\" is not day, week, month or year",
            args.time_unit
        ))
    })?;
    let (h_count, h_unit) =
        parse_duration(&args.horizon).map_err(|m| input_err(format!("--horizon: {m}")))?;
    let horizon_days = h_count * h_unit.days();
    let horizon = horizon_days / unit.days();
    if !(0.0..=1.0).contains(&args.margin) || !(0.0..1.0).contains(&args.discount_rate) {
        return Err(input_err(
            "--margin must be in 0..1 and --discount-rate in 0..1",
        ));
    }
    let calibration_end = day_flag("--calibration-end", args.calibration_end.as_deref())?;
    let level = args.interval;
    if level.is_some_and(|l| !(l > 0.0 && l < 1.0)) {
        return Err(input_err(
            "--interval must be a level between 0 and 1, e.g. 0.9",
        ));
    }
    if args.probabilities.is_some_and(|n| n > 20) {
        return Err(input_err("--probabilities: at most 20"));
    }
    // The side files first: a mistake in them fails before any work.
    let attributes = match &args.customers {
        Some(p) => Some(lifecycle_ingest::attributes::read_attributes(p)?),
        None => None,
    };
    let previous = match &args.previous {
        Some(p) => Some(crate::decline::read_previous(p)?),
        None => None,
    };
    let (calibration, end) = if crate::summarize::is_summaries(&args.orders) {
        if calibration_end.is_some() {
            return Err(input_err(
                "--calibration-end needs the orders: a summaries file holds no later purchases",
            ));
        }
        crate::summarize::read_summaries(&args.orders)?
    } else {
        let (builder, end) = read(&args, calibration_end)?;
        (buyers(builder, end), end)
    };
    let d = unit.days();
    let obs: Vec<Observation> = calibration
        .iter()
        .map(|s| {
            Observation::new(
                f64::from(s.frequency()),
                f64::from(s.recency_days().unwrap_or(0)) / d,
                f64::from(s.age_days(end).unwrap_or(0)) / d,
            )
        })
        .collect();
    let config = FitConfig::default();
    let spend: Vec<SpendObservation> = calibration
        .iter()
        .filter(|s| s.frequency() > 0 && s.repeat_mean_value() > 0.0)
        .map(|s| SpendObservation::new(f64::from(s.frequency()), s.repeat_mean_value()))
        .collect();
    let gg = GammaGamma::fit(&spend, &config).ok().map(|(m, _)| m);

    // Holdout: purchase days after the calibration end, within the horizon.
    let mut by_day = None;
    let holdout = match calibration_end {
        Some(cal) => {
            let last = cal + horizon_days.round() as Day;
            let (builder, _) = read(&args, Some(last))?;
            by_day = Some(builder.repeat_purchases_by_day(last, cal));
            if let Some(data_end) = builder.last_order_day().filter(|&d| d < last) {
                eprintln!(
                    "note: the orders end on {}, {} days before the horizon does: holdout purchases cover {} of its {} days, while predictions cover all of them",
                    format_day(data_end),
                    last - data_end,
                    data_end - cal,
                    last - cal
                );
            }
            Some(select::holdout_counts(&calibration, &buyers(builder, last)))
        }
        None => None,
    };

    // Fit the candidates; with --model auto keep the best on the holdout
    // (mean absolute error per customer), or by BIC without one.
    let kinds = select::purchase_kinds(args.model)?;
    let mut candidates =
        select::fit_candidates(&kinds, &obs, &config, horizon, holdout.as_deref())?;
    let chosen = select::best(&candidates);
    if candidates.len() > 1 {
        select::print_table(&candidates, chosen);
    }
    let select::Candidate {
        kind,
        model,
        report,
        errors,
    } = candidates.swap_remove(chosen);

    let cfg = ValueConfig {
        horizon,
        unit_days: d,
        margin: args.margin,
        discount_rate: args.discount_rate,
        decline_threshold: args.decline_threshold,
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}", args.out.display()))?;
    // Written to a temporary name and renamed when complete: a failed run
    // never leaves a truncated file (or clobbers the --previous one).
    let path = args.out.join("predictions.csv");
    let partial = args.out.join(".predictions.csv.partial");
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&partial).with_context(|| format!("{}", partial.display()))?,
    );
    let mut header = String::from(
        "customer_id,frequency,recency,T,p_alive,expected_purchases,expected_order_value,clv,next_order,historical_rate,predicted_rate,value_decline",
    );
    if level.is_some() {
        header.push_str(",purchases_lo,purchases_hi,clv_lo,clv_hi,p_alive_end");
    }
    if args.lifetime_value {
        header.push_str(",residual_clv");
    }
    if let Some(n) = args.probabilities {
        for k in 0..=n {
            let _ = write!(header, ",p_{k}");
        }
    }
    if previous.is_some() {
        header.push_str(",clv_previous,clv_change,clv_decline");
    }
    if attributes.is_some() {
        header.push_str(",acquisition_cost,clv_net_of_cac");
    }
    if holdout.is_some() {
        header.push_str(",holdout_purchases");
    }
    writeln!(w, "{header}")?;
    // Outlooks once per distinct history, on all cores; then each
    // customer's line, formatted on all cores and written in order.
    let (histories, history_of) = distinct_histories(&obs);
    let covariance = report.covariance.as_deref();
    let outlooks: Vec<Outlook> = par_chunks(&histories, |_, chunk| {
        let mut o = Outlooks::new(&model, cfg, covariance, level);
        if args.lifetime_value {
            o = o.with_lifetime();
        }
        chunk.iter().map(|h| o.get(h)).collect::<Result<Vec<_>>>()
    })
    .into_iter()
    .collect::<Result<Vec<_>>>()?
    .into_iter()
    .flatten()
    .collect();
    let costs: Option<Vec<Option<f64>>> = attributes.as_ref().map(|a| {
        calibration
            .iter()
            .map(|s| {
                a.customers
                    .get(&*s.customer_id)
                    .and_then(|c| c.acquisition_cost)
            })
            .collect()
    });
    let value_of = |i: usize| {
        let (s, o) = (&calibration[i], &obs[i]);
        let out = &outlooks[history_of[i] as usize];
        let v = customer_value(
            out,
            gg.as_ref(),
            o,
            s.repeat_mean_value(),
            s.avg_order_value(),
            &cfg,
            level,
        );
        (out, v)
    };
    let format_rows = |rows: std::ops::Range<usize>, text: &mut String| -> Result<()> {
        text.clear();
        for i in rows {
            let (s, o) = (&calibration[i], &obs[i]);
            let (out, v) = value_of(i);
            let next_order = out
                .next_purchase
                .map(|t| format_day(end + (t * d).round().min(1e6) as Day))
                .unwrap_or_default();
            text.push_str(&s.customer_id);
            text.push(',');
            push_fixed(text, o.x, 0);
            for (value, decimals) in [
                (o.t_x, 4),
                (o.t_big, 4),
                (v.p_alive, 6),
                (v.expected_purchases, 6),
                (v.order_value, 2),
                (v.clv, 2),
            ] {
                text.push(',');
                push_fixed(text, value, decimals);
            }
            text.push(',');
            text.push_str(&next_order);
            text.push(',');
            if let Some(h) = v.historical_rate {
                push_fixed(text, h, 6);
            }
            text.push(',');
            push_fixed(text, v.predicted_rate, 6);
            text.push_str(if v.value_decline { ",true" } else { ",false" });
            if let (Some(spread), Some((lo, hi))) = (out.spread, v.clv_interval) {
                let _ = write!(
                    text,
                    ",{},{},{lo:.2},{hi:.2},{:.6}",
                    spread.purchases.0, spread.purchases.1, spread.p_alive_end
                );
            }
            if let Some(r) = v.residual_clv {
                let _ = write!(text, ",{r:.2}");
            }
            if let Some(n) = args.probabilities {
                let f = model.future(horizon, o)?;
                for k in 0..=n {
                    text.push(',');
                    push_fixed(text, f.probability(k), 6);
                }
            }
            if let Some(previous) = &previous {
                match previous.get(&*s.customer_id) {
                    Some(&before) => {
                        text.push(',');
                        push_fixed(text, before, 2);
                        text.push(',');
                        push_fixed(text, v.clv - before, 2);
                        let falling = v.clv < (1.0 - args.decline_threshold) * before;
                        text.push_str(if falling { ",true" } else { ",false" });
                    }
                    None => text.push_str(",,,"),
                }
            }
            if let Some(costs) = &costs {
                match costs[i] {
                    Some(cost) => {
                        let _ = write!(text, ",{cost:.2},{:.2}", v.clv - cost);
                    }
                    None => text.push_str(",,"),
                }
            }
            if let Some(h) = &holdout {
                text.push(',');
                push_fixed(text, h[i], 0);
            }
            text.push('\n');
        }
        Ok(())
    };
    // Batches of rows formatted on all cores into buffers that are reused
    // (fresh multi-megabyte strings would cost page faults), written in order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut buffers: Vec<String> = vec![String::new(); threads];
    const BATCH: usize = 1 << 17;
    for batch_start in (0..calibration.len()).step_by(BATCH) {
        let batch_end = (batch_start + BATCH).min(calibration.len());
        let per = (batch_end - batch_start).div_ceil(threads);
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = buffers
                .iter_mut()
                .enumerate()
                .map(|(k, buf)| {
                    let from = (batch_start + k * per).min(batch_end);
                    let to = (from + per).min(batch_end);
                    let format_rows = &format_rows;
                    scope.spawn(move || format_rows(from..to, buf))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for (result, buf) in results.into_iter().zip(&buffers) {
            result?;
            w.write_all(buf.as_bytes())?;
        }
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&partial, &path).with_context(|| format!("{}", path.display()))?;
    let mut outcomes: Vec<crate::decline::Outcome> = Vec::new();
    let (mut with_cost, mut cost_total, mut clv_of_costed) = (0usize, 0.0, 0.0);
    for i in 0..calibration.len() {
        let needs_value = costs.as_ref().is_some_and(|c| c[i].is_some()) || holdout.is_some();
        if !needs_value {
            continue;
        }
        let (_, v) = value_of(i);
        if let Some(cost) = costs.as_ref().and_then(|c| c[i]) {
            with_cost += 1;
            cost_total += cost;
            clv_of_costed += v.clv;
        }
        if let Some(h) = &holdout
            && v.historical_rate.is_some()
        {
            outcomes.push(crate::decline::Outcome {
                x: obs[i].x,
                t_weeks: obs[i].t_big * d / 7.0,
                flagged: v.value_decline,
                holdout: h[i],
            });
        }
    }
    // The distinct histories with their customer counts.
    let mut weighted = histories.clone();
    for h in &mut weighted {
        h.weight = 0.0;
    }
    for (o, &k) in obs.iter().zip(&history_of) {
        weighted[k as usize].weight += o.weight;
    }
    let forecast = model.forecast(covariance, horizon, &weighted)?;
    let print_level = level.unwrap_or(0.9);
    let (lo, hi) = forecast.interval(print_level);
    println!(
        "next {}: {:.0} repeat purchases expected ({:.0}% interval {lo:.0}-{hi:.0}; spread from the purchase process {:.0}, from the parameters {:.0})",
        args.horizon,
        forecast.mean,
        100.0 * print_level,
        forecast.process_sd,
        forecast.parameter_sd
    );
    let new_customer = model.new_customer(horizon)?;
    println!(
        "a new customer: {:.3} repeat purchases expected in the first {} after their first (P(none) {:.3})",
        new_customer.mean(),
        args.horizon,
        new_customer.probability(0)
    );
    if let Some(a) = &attributes {
        println!(
            "acquisition cost known for {with_cost} of {} customers ({} in the file): total {cost_total:.2}, their CLV {clv_of_costed:.2}, LTV:CAC {}",
            calibration.len(),
            a.customers.len(),
            if cost_total > 0.0 {
                format!("{:.2}", clv_of_costed / cost_total)
            } else {
                "-".into()
            }
        );
    }
    if let Some(e) = errors {
        println!(
            "holdout: predicted {:.1} repeat purchases, actual {:.0} ({} the {:.0}% interval); MAE {:.4}, RMSE {:.4} per customer",
            e.predicted_total,
            e.actual_total,
            if (lo..=hi).contains(&e.actual_total) {
                "inside"
            } else {
                "outside"
            },
            100.0 * print_level,
            e.mae,
            e.rmse
        );
        let (flagged, unflagged) = crate::decline::raw(&outcomes);
        println!(
            "value decline (repeat buyers): {} flagged bought {} each in the holdout, {} unflagged {} (95% intervals)",
            flagged.n,
            flagged.show(),
            unflagged.n,
            unflagged.show()
        );
        match crate::decline::matched(&outcomes) {
            Some(m) => println!(
                "  with similar history (same repeat purchases, tenure in the same 4-week band; {} groups): {} flagged bought {}, matched unflagged {}; difference {}",
                m.groups,
                m.flagged.n,
                m.flagged.show(),
                m.matched_unflagged.show(),
                m.difference.show()
            ),
            None => println!("  no flagged customer has an unflagged one with similar history"),
        }
    }
    println!(
        "{} customers ({} distinct histories, {:.1} customers each), model {}, calibration end {}, horizon {} ({:.2} {})",
        calibration.len(),
        histories.len(),
        calibration.len() as f64 / histories.len().max(1) as f64,
        kind.name(),
        format_day(end),
        args.horizon,
        horizon,
        unit.name()
    );
    if let Some(h) = &holdout {
        if let Some(by_day) = &by_day {
            write_tracking(&args, &calibration, &model, end, horizon_days, d, by_day)?;
        }
        let expected: Vec<f64> = (0..calibration.len())
            .map(|i| outlooks[history_of[i] as usize].expected)
            .collect();
        write_by_frequency(&args, &obs, &expected, h)?;
    }
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// The weekly cumulative repeat purchases of the cohort, actual and
/// predicted (FHL 2005, Figure 2), as CSV and SVG.
fn write_tracking(
    args: &PredictArgs,
    calibration: &[CustomerSummary],
    model: &Purchase,
    cal_end: Day,
    horizon_days: f64,
    unit_days: f64,
    by_day: &std::collections::BTreeMap<Day, u64>,
) -> Result<()> {
    let last = cal_end + horizon_days.round() as Day;
    let Some(points) = crate::value::tracking(calibration, model, last, unit_days, by_day)? else {
        return Ok(());
    };
    let mut csv = String::from("week,actual_cumulative,predicted_cumulative\n");
    for (w, a, p) in &points {
        let _ = writeln!(csv, "{w},{a},{p:.2}");
    }
    std::fs::write(args.out.join("tracking.csv"), csv)?;
    let start = calibration
        .iter()
        .filter_map(|s| s.first_order)
        .min()
        .unwrap_or(cal_end);
    std::fs::write(
        args.out.join("tracking.svg"),
        lifecycle_report::tracking_svg(&points, Some(((cal_end - start) / 7 + 1) as usize)),
    )?;
    Ok(())
}

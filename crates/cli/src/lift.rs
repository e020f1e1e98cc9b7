//! `lifecycle lift CUSTOMERS.csv`: the offline lift readout. One row per
//! customer with an arm and metric columns (the shape Lifecycle exports
//! for a moment); per treatment arm and metric: n, means, absolute and
//! relative lift with intervals, p-value or chance to win, and the
//! incremental total. The sample-ratio check comes first.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lifecycle_lift::bayes::Prior;
use lifecycle_lift::readout::{Method, Stat, readout};
use lifecycle_lift::{
    Arm, CupedKind, CupedSums, RatioSums, TestResult, multiple, sequential, srm, winsor,
};
use lifecycle_report::lift_json::{num, test_json};
use serde_json::{Value, json};

use crate::input_err;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct LiftArgs {
    #[command(subcommand)]
    pub plan: Option<LiftCommand>,
    /// One row per customer: an arm column and metric columns (CSV)
    #[arg(required = true)]
    pub customers: Option<PathBuf>,
    /// The column naming each customer's arm
    #[arg(long, default_value = "arm")]
    pub arm_col: String,
    /// The control arm's name
    #[arg(long, default_value = "control")]
    pub control: String,
    /// A metric: COLUMN:proportion, COLUMN:mean or NUM/DEN:ratio (repeat)
    #[arg(long = "metric", value_name = "SPEC")]
    pub metrics: Vec<String>,
    /// Regression adjustment: METRIC=PRE_PERIOD_COLUMN (repeat)
    #[arg(long, value_name = "METRIC=COLUMN")]
    pub cuped: Vec<String>,
    /// frequentist (t tests), bayesian (effect model) or sequential
    /// (confidence sequences, for results watched while running)
    #[arg(long, default_value = "frequentist")]
    pub method: String,
    /// A proper prior on the relative lift for --method bayesian: MEAN,SD
    /// (GrowthBook's default is 0,0.3); flat when absent
    #[arg(long, value_name = "MEAN,SD")]
    pub prior: Option<String>,
    /// none, holm, bh (Benjamini-Hochberg) or bonferroni, across arms and metrics
    #[arg(long, default_value = "none")]
    pub correction: String,
    /// Cap mean metrics at this quantile of their non-zero values (e.g. 0.99)
    #[arg(long, value_name = "Q")]
    pub winsorize: Option<f64>,
    /// Metrics where lower is better (e.g. unsubscribed) (repeat)
    #[arg(long, value_name = "METRIC")]
    pub inverse: Vec<String>,
    /// Expected shares of the arms for the sample-ratio check:
    /// ARM=WEIGHT,... [default: equal]
    #[arg(long, value_name = "ARM=W,...")]
    pub split: Option<String>,
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Print JSON instead of the table
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML report (forest plot and table) here
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum LiftCommand {
    /// Power and minimum detectable effect for a planned moment, from history
    Plan(PlanArgs),
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Orders history (any format `analyze` reads): the baseline conversion
    /// and revenue of a window
    #[arg(long, value_name = "ORDERS")]
    pub baseline_from: PathBuf,
    /// Customers the moment will reach (treated and held out)
    #[arg(long)]
    pub audience: u64,
    /// The share held out (the moment's holdout plus the global control)
    #[arg(long, default_value_t = 0.145)]
    pub holdout: f64,
    /// The goal's window in days (the baseline is measured over the last
    /// window of the history, among customers who bought before it)
    #[arg(long, default_value_t = 30)]
    pub window_days: i32,
    /// The relative effect to plan for (0.05 = +5%)
    #[arg(long, default_value_t = 0.05)]
    pub effect: f64,
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// The power wanted
    #[arg(long, default_value_t = 0.8)]
    pub power: f64,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `lifecycle lift plan`.
pub fn plan(args: PlanArgs) -> Result<()> {
    use lifecycle_lift::power;
    if !(args.holdout > 0.0 && args.holdout < 1.0) || args.audience < 2 || args.window_days < 1 {
        return Err(input_err(
            "--holdout must be in (0, 1), --audience at least 2, --window-days at least 1",
        ));
    }
    if !(args.alpha > 0.0 && args.alpha < 0.5 && args.power > 0.0 && args.power < 1.0) {
        return Err(input_err(
            "--alpha must be in (0, 0.5) and --power in (0, 1)",
        ));
    }
    let input = lifecycle_ingest::read_orders(
        &args.baseline_from,
        &lifecycle_ingest::ReadOptions::default(),
    )?;
    let end = input
        .builder
        .last_order_day()
        .ok_or_else(|| input_err(format!("{}: no orders", args.baseline_from.display())))?;
    let start = end - args.window_days + 1;
    // Customers who bought before the window: did they order in it, and for how much?
    let (mut n, mut conv, mut s, mut q) = (0u64, 0.0, 0.0, 0.0);
    input.builder.for_each_customer_orders(end, |_, entries| {
        if !entries.iter().any(|e| e.day < start && e.is_order) {
            return;
        }
        let revenue: f64 = entries
            .iter()
            .filter(|e| e.day >= start)
            .map(|e| e.amount)
            .sum();
        let ordered = entries.iter().any(|e| e.day >= start && e.is_order);
        n += 1;
        conv += f64::from(u8::from(ordered));
        s += revenue;
        q += revenue * revenue;
    });
    if n < 2 {
        return Err(input_err(format!(
            "{}: fewer than two customers bought before the last {} days",
            args.baseline_from.display(),
            args.window_days
        )));
    }
    let p = Arm::proportion(n, conv);
    let r = Arm::mean(n, s, q);
    let n_control = args.audience as f64 * args.holdout;
    let n_treated = args.audience as f64 - n_control;
    let row = |name: &str, a: &Arm| {
        let pw = |seq| {
            power::power_split(
                a.mean,
                a.var,
                n_control,
                n_treated,
                args.effect,
                args.alpha,
                seq,
            )
        };
        let mde = |seq| {
            power::mde_split(
                a.mean, a.var, n_control, n_treated, args.alpha, args.power, seq,
            )
        };
        json!({
            "metric": name, "baseline_mean": num(a.mean), "unit_variance": num(a.var),
            "power": pw(None).map(num), "mde": mde(None).map(num),
            "sequential": {"power": pw(Some(sequential::DEFAULT_TUNING)).map(num), "mde": mde(Some(sequential::DEFAULT_TUNING)).map(num)},
        })
    };
    let metrics = vec![row("converted", &p), row("revenue", &r)];
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "history_customers": n, "window_days": args.window_days,
                "audience": args.audience, "treated": n_treated, "held_out": n_control,
                "effect": args.effect, "alpha": args.alpha, "target_power": args.power,
                "metrics": metrics,
            }))?
        );
        return Ok(());
    }
    println!(
        "Baseline: {n} customers who bought before the last {} days of {}",
        args.window_days,
        args.baseline_from.display()
    );
    println!(
        "Plan: {} customers, {:.0} treated, {:.0} held out; effect {:+.1}%, alpha {}, power wanted {:.0}%",
        args.audience,
        n_treated,
        n_control,
        100.0 * args.effect,
        args.alpha,
        100.0 * args.power
    );
    let pct = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "-".to_string(), |x| format!("{:.1}%", 100.0 * x))
    };
    println!();
    println!(
        "{:<10} {:>12} {:>16} {:>12} {:>12} {:>18} {:>16}",
        "metric",
        "baseline",
        "sd per customer",
        "power",
        "MDE",
        "power (sequential)",
        "MDE (sequential)"
    );
    for m in &metrics {
        println!(
            "{:<10} {:>12.4} {:>16.4} {:>12} {:>12} {:>18} {:>16}",
            m["metric"].as_str().unwrap_or(""),
            m["baseline_mean"].as_f64().unwrap_or(f64::NAN),
            m["unit_variance"].as_f64().unwrap_or(f64::NAN).sqrt(),
            pct(&m["power"]),
            pct(&m["mde"]),
            pct(&m["sequential"]["power"]),
            pct(&m["sequential"]["mde"]),
        );
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Proportion(String),
    Mean(String),
    Ratio(String, String),
}

#[derive(Debug, Clone)]
struct MetricSpec {
    name: String,
    kind: Kind,
    cuped: Option<String>,
    inverse: bool,
}

fn parse_metric(spec: &str) -> Result<MetricSpec> {
    let bad = || {
        input_err(format!(
            "--metric {spec}: expected COLUMN:proportion, COLUMN:mean or NUM/DEN:ratio"
        ))
    };
    let (cols, kind) = spec.rsplit_once(':').ok_or_else(bad)?;
    let kind = match kind {
        "proportion" => Kind::Proportion(cols.to_string()),
        "mean" => Kind::Mean(cols.to_string()),
        "ratio" => {
            let (n, d) = cols.split_once('/').ok_or_else(bad)?;
            Kind::Ratio(n.to_string(), d.to_string())
        }
        _ => return Err(bad()),
    };
    Ok(MetricSpec {
        name: cols.to_string(),
        kind,
        cuped: None,
        inverse: false,
    })
}

/// The columns read, by name, as numbers per row.
struct Table {
    arms: Vec<String>,
    /// Arm index of each row.
    arm_of: Vec<u32>,
    columns: HashMap<String, Vec<f64>>,
}

fn read_table(args: &LiftArgs, needed: &[String]) -> Result<Table> {
    let path = args
        .customers
        .as_deref()
        .unwrap_or(std::path::Path::new("-"));
    let mut r = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| input_err(format!("{}: {e}", path.display())))?;
    let headers = r
        .headers()
        .map_err(|e| input_err(format!("{}: {e}", path.display())))?
        .clone();
    let position = |name: &str| -> Result<usize> {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| {
                input_err(format!(
                    "{}: no column \"{name}\" (the columns are {})",
                    path.display(),
                    headers.iter().collect::<Vec<_>>().join(", ")
                ))
            })
    };
    let arm_at = position(&args.arm_col)?;
    let at: Vec<(String, usize)> = needed
        .iter()
        .map(|c| position(c).map(|i| (c.clone(), i)))
        .collect::<Result<_>>()?;
    let mut table = Table {
        arms: Vec::new(),
        arm_of: Vec::new(),
        columns: needed.iter().map(|c| (c.clone(), Vec::new())).collect(),
    };
    let mut arm_index: HashMap<String, u32> = HashMap::new();
    let mut record = csv::StringRecord::new();
    let mut line = 1u64;
    loop {
        match r.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(input_err(format!("{}: {e}", path.display()))),
        }
        line += 1;
        let arm = record.get(arm_at).unwrap_or("").trim();
        if arm.is_empty() {
            return Err(input_err(format!(
                "{}: line {line}, column {}: the arm is empty",
                path.display(),
                args.arm_col
            )));
        }
        let k = match arm_index.get(arm) {
            Some(&k) => k,
            None => {
                let k = table.arms.len() as u32;
                table.arms.push(arm.to_string());
                arm_index.insert(arm.to_string(), k);
                k
            }
        };
        table.arm_of.push(k);
        for (name, i) in &at {
            let text = record.get(*i).unwrap_or("").trim();
            let v = if text.is_empty() {
                0.0
            } else {
                match text {
                    "true" | "TRUE" | "True" => 1.0,
                    "false" | "FALSE" | "False" => 0.0,
                    _ => text
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| {
                            input_err(format!(
                                "{}: line {line}, column {name}: \"{text}\" is not a number",
                                path.display()
                            ))
                        })?,
                }
            };
            if let Some(c) = table.columns.get_mut(name) {
                c.push(v);
            }
        }
    }
    Ok(table)
}

/// Per-arm sums of one metric.
fn arm_stat(table: &Table, m: &MetricSpec, arm: u32, kind: CupedKind) -> Result<Stat> {
    let col = |name: &str| table.columns.get(name).map(Vec::as_slice).unwrap_or(&[]);
    let rows = table
        .arm_of
        .iter()
        .enumerate()
        .filter(|(_, a)| **a == arm)
        .map(|(i, _)| i);
    match (&m.kind, &m.cuped) {
        (Kind::Ratio(num, den), _) => {
            let (mv, dv) = (col(num), col(den));
            let mut s = RatioSums::default();
            for i in rows {
                let (x, d) = (mv[i], dv[i]);
                s.n += 1;
                s.m_sum += x;
                s.m_sum_squares += x * x;
                s.d_sum += d;
                s.d_sum_squares += d * d;
                s.md_sum += x * d;
            }
            Ok(Stat::Ratio(s))
        }
        (Kind::Proportion(c) | Kind::Mean(c), Some(pre)) => {
            let (y, x) = (col(c), col(pre));
            let mut s = CupedSums::default();
            for i in rows {
                s.n += 1;
                s.y_sum += y[i];
                s.y_sum_squares += y[i] * y[i];
                s.x_sum += x[i];
                s.x_sum_squares += x[i] * x[i];
                s.xy_sum += x[i] * y[i];
            }
            Ok(Stat::Cuped(s, kind))
        }
        (Kind::Proportion(c), None) => {
            let y = col(c);
            let (mut n, mut sum) = (0u64, 0.0);
            for i in rows {
                n += 1;
                sum += y[i];
            }
            Ok(Stat::Plain(Arm::proportion(n, sum)))
        }
        (Kind::Mean(c), None) => {
            let y = col(c);
            let (mut n, mut sum, mut sq) = (0u64, 0.0, 0.0);
            for i in rows {
                n += 1;
                sum += y[i];
                sq += y[i] * y[i];
            }
            Ok(Stat::Plain(Arm::mean(n, sum, sq)))
        }
    }
}

pub fn run(mut args: LiftArgs) -> Result<()> {
    if let Some(LiftCommand::Plan(p)) = args.plan.take() {
        return plan(p);
    }
    let Some(customers) = args.customers.clone() else {
        return Err(input_err("lift: give CUSTOMERS.csv (or `lift plan`)"));
    };
    if args.metrics.is_empty() {
        return Err(input_err("lift: give at least one --metric"));
    }
    let _ = &customers;
    if !(args.alpha > 0.0 && args.alpha < 0.5) {
        return Err(input_err(format!(
            "--alpha {}: expected a level between 0 and 0.5 (e.g. 0.05)",
            args.alpha
        )));
    }
    let method = args.method.as_str();
    if !matches!(method, "frequentist" | "bayesian" | "sequential") {
        return Err(input_err(format!(
            "--method {method}: expected frequentist, bayesian or sequential"
        )));
    }
    let prior = match &args.prior {
        None => None,
        Some(p) => {
            let parts: Vec<f64> = p.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            match parts.as_slice() {
                [m, s] if *s > 0.0 => Some(Prior { mean: *m, sd: *s }),
                _ => {
                    return Err(input_err(format!(
                        "--prior {p}: expected MEAN,SD with SD > 0 (e.g. 0,0.3)"
                    )));
                }
            }
        }
    };
    let mut metrics: Vec<MetricSpec> = args
        .metrics
        .iter()
        .map(|m| parse_metric(m))
        .collect::<Result<_>>()?;
    for c in &args.cuped {
        let (metric, pre) = c
            .split_once('=')
            .ok_or_else(|| input_err(format!("--cuped {c}: expected METRIC=PRE_PERIOD_COLUMN")))?;
        let m = metrics
            .iter_mut()
            .find(|m| m.name == metric)
            .ok_or_else(|| input_err(format!("--cuped {c}: no --metric {metric}")))?;
        if matches!(m.kind, Kind::Ratio(..)) {
            return Err(input_err(format!("--cuped {c}: not for ratio metrics")));
        }
        m.cuped = Some(pre.to_string());
    }
    for inv in &args.inverse {
        let m = metrics
            .iter_mut()
            .find(|m| &m.name == inv)
            .ok_or_else(|| input_err(format!("--inverse {inv}: no --metric {inv}")))?;
        m.inverse = true;
    }
    if let Some(q) = args.winsorize
        && !(q > 0.0 && q <= 1.0)
    {
        return Err(input_err(format!(
            "--winsorize {q}: expected a quantile in (0, 1]"
        )));
    }
    let mut needed: Vec<String> = Vec::new();
    for m in &metrics {
        let cols = match &m.kind {
            Kind::Proportion(c) | Kind::Mean(c) => vec![c.clone()],
            Kind::Ratio(n, d) => vec![n.clone(), d.clone()],
        };
        for c in cols.into_iter().chain(m.cuped.clone()) {
            if !needed.contains(&c) {
                needed.push(c);
            }
        }
    }
    let mut table =
        read_table(&args, &needed).with_context(|| format!("reading {}", customers.display()))?;
    let Some(control) = table.arms.iter().position(|a| a == &args.control) else {
        return Err(input_err(format!(
            "{}: no arm \"{}\" in column {} (the arms are {})",
            customers.display(),
            args.control,
            args.arm_col,
            table.arms.join(", ")
        )));
    };
    // Winsorisation of mean metrics: the cap over the pooled non-zero values.
    let mut caps: Vec<(String, f64)> = Vec::new();
    if let Some(q) = args.winsorize {
        for m in &metrics {
            if let Kind::Mean(c) = &m.kind
                && let Some(values) = table.columns.get_mut(c)
                && let Some(cap) = winsor::cap(&[values.as_slice()], q)
            {
                winsor::apply(values, cap);
                caps.push((c.clone(), cap));
            }
        }
    }
    // The sample-ratio check on the units per arm.
    let mut counts = vec![0u64; table.arms.len()];
    for &a in &table.arm_of {
        counts[a as usize] += 1;
    }
    let weights: Vec<f64> = match &args.split {
        None => vec![1.0; table.arms.len()],
        Some(s) => {
            let mut w = vec![0.0; table.arms.len()];
            for part in s.split(',') {
                let (arm, v) = part
                    .split_once('=')
                    .ok_or_else(|| input_err(format!("--split {s}: expected ARM=WEIGHT,...")))?;
                let v: f64 = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| input_err(format!("--split {s}: \"{v}\" is not a weight")))?;
                let k = table
                    .arms
                    .iter()
                    .position(|a| a == arm.trim())
                    .ok_or_else(|| input_err(format!("--split {s}: no arm \"{}\"", arm.trim())))?;
                w[k] = v;
            }
            w
        }
    };
    let srm_p = srm::p_value(&counts, &weights);
    let srm_flagged = srm_p < srm::FLAG_BELOW;

    // Every (treatment arm, metric).
    struct Row {
        metric: String,
        arm: String,
        n: u64,
        mean: Option<f64>,
        control_n: u64,
        control_mean: Option<f64>,
        absolute: Option<TestResult>,
        relative: Option<TestResult>,
        chance_to_win: Option<f64>,
        risk: Option<(f64, f64)>,
        total: Option<(f64, (f64, f64))>,
        inverse: bool,
    }
    let mut rows: Vec<Row> = Vec::new();
    for m in &metrics {
        let kind = if matches!(m.kind, Kind::Proportion(_)) {
            CupedKind::Proportions
        } else {
            CupedKind::Means
        };
        let c = arm_stat(&table, m, control as u32, kind)?;
        for (k, arm) in table.arms.iter().enumerate() {
            if k == control {
                continue;
            }
            let t = arm_stat(&table, m, k as u32, kind)?;
            let how = match method {
                "sequential" => Method::Sequential(sequential::DEFAULT_TUNING),
                "bayesian" => Method::Bayesian(prior),
                _ => Method::Frequentist,
            };
            let r = readout(&c, &t, how, args.alpha, m.inverse);
            rows.push(Row {
                metric: m.name.clone(),
                arm: arm.clone(),
                n: r.n,
                mean: r.mean,
                control_n: r.control_n,
                control_mean: r.control_mean,
                total: r.incremental_total,
                absolute: r.absolute,
                relative: r.relative,
                chance_to_win: r.chance_to_win,
                risk: r.risk,
                inverse: m.inverse,
            });
        }
    }
    // Corrections across every arm and metric (on the relative lifts).
    let correction = args.correction.as_str();
    let adjusted: Option<Vec<f64>> = if method == "bayesian" || correction == "none" {
        if !matches!(correction, "none" | "holm" | "bh" | "bonferroni") {
            return Err(input_err(format!(
                "--correction {correction}: expected none, holm, bh or bonferroni"
            )));
        }
        None
    } else {
        let p: Vec<f64> = rows
            .iter()
            .map(|r| r.relative.map_or(1.0, |t| t.p_value))
            .collect();
        Some(match correction {
            "holm" => multiple::holm(&p),
            "bh" => multiple::benjamini_hochberg(&p),
            "bonferroni" => multiple::bonferroni(&p),
            other => {
                return Err(input_err(format!(
                    "--correction {other}: expected none, holm, bh or bonferroni"
                )));
            }
        })
    };
    if let Some(adj) = &adjusted {
        let m = rows.len().max(1) as f64;
        for (r, &p) in rows.iter_mut().zip(adj) {
            let n_total = (r.n + r.control_n) as f64;
            if let Some(t) = r.relative.as_mut() {
                t.p_value = p;
                let ci = if correction == "bonferroni" {
                    // F15: the interval of the test itself at alpha/m.
                    let a = args.alpha / m;
                    let half = if method == "sequential" {
                        (t.se * t.se * n_total).sqrt()
                            * sequential::factor(n_total, a, sequential::DEFAULT_TUNING)
                    } else {
                        lifecycle_lift::t_quantile(1.0 - a / 2.0, t.dof) * t.se
                    };
                    Some((t.estimate - half, t.estimate + half))
                } else {
                    // GrowthBook's interval for an adjusted p-value.
                    multiple::adjusted_ci(t.estimate, p, args.alpha)
                };
                if let Some(ci) = ci.filter(|c| c.0.is_finite() && c.1.is_finite()) {
                    t.ci = ci;
                }
            }
        }
    }

    if let Some(path) = &args.html {
        let srm_line = if srm_flagged {
            format!(
                "!! Sample ratio mismatch (p = {srm_p:.2e}): the arms' sizes do not match the split; fix the assignment before trusting any lift."
            )
        } else {
            format!("Sample ratio: ok (p = {srm_p:.4}).")
        };
        let context = vec![
            format!(
                "{}: {} ({}), method {method}, alpha {}, correction {correction}.",
                customers.display(),
                table
                    .arms
                    .iter()
                    .zip(&counts)
                    .map(|(a, n)| format!("{a} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                args.arm_col,
                args.alpha
            ),
            srm_line,
        ];
        let forest: Vec<lifecycle_report::ForestRow> = rows
            .iter()
            .filter_map(|r| {
                let t = r.relative?;
                Some(lifecycle_report::ForestRow {
                    label: format!("{} · {}", r.metric, r.arm),
                    estimate: t.estimate,
                    ci: t.ci,
                    note: match r.chance_to_win {
                        Some(c) => format!("P(win) {:.0}%", 100.0 * c),
                        None => format!("p {:.3}", t.p_value),
                    },
                })
            })
            .collect();
        let mut cells = vec![vec![
            "metric".to_string(),
            "arm".into(),
            "n".into(),
            "mean".into(),
            "control".into(),
            "absolute lift".into(),
            "relative lift".into(),
            "interval".into(),
            "incremental total".into(),
        ]];
        for r in &rows {
            let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
            cells.push(vec![
                r.metric.clone(),
                r.arm.clone(),
                r.n.to_string(),
                f(r.mean),
                f(r.control_mean),
                r.absolute
                    .map_or_else(|| "-".into(), |t| format!("{:+.4}", t.estimate)),
                r.relative
                    .map_or_else(|| "-".into(), |t| format!("{:+.2}%", 100.0 * t.estimate)),
                r.relative.map_or_else(
                    || "-".into(),
                    |t| format!("[{:+.2}%, {:+.2}%]", 100.0 * t.ci.0, 100.0 * t.ci.1),
                ),
                r.total.map_or_else(
                    || "-".into(),
                    |(e, (lo, hi))| format!("{e:+.1} [{lo:+.1}, {hi:+.1}]"),
                ),
            ]);
        }
        let page = lifecycle_report::lift_html("Lift readout", &context, &forest, &cells);
        std::fs::write(path, page).with_context(|| format!("{}", path.display()))?;
    }
    if args.json {
        let results: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "metric": r.metric, "arm": r.arm, "control": args.control,
                    "n": r.n, "mean": r.mean.map(num), "control_n": r.control_n,
                    "control_mean": r.control_mean.map(num),
                    "absolute": test_json(r.absolute.as_ref()),
                    "relative": test_json(r.relative.as_ref()),
                    "chance_to_win": r.chance_to_win.map(num),
                    "risk": r.risk.map(|(a, b)| json!([num(a), num(b)])),
                    "incremental_total": r.total.map(|(e, (lo, hi))| json!({"estimate": num(e), "ci": [num(lo), num(hi)]})),
                    "inverse": r.inverse,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "method": method, "alpha": args.alpha, "correction": correction,
                "srm": {"p_value": num(srm_p), "flagged": srm_flagged,
                        "arms": table.arms.iter().zip(&counts).map(|(a, n)| json!({"arm": a, "n": n})).collect::<Vec<_>>()},
                "winsorized": caps.iter().map(|(c, v)| json!({"column": c, "cap": num(*v)})).collect::<Vec<_>>(),
                "results": results,
            }))?
        );
        return Ok(());
    }
    if srm_flagged {
        println!(
            "!! SAMPLE RATIO MISMATCH (p = {srm_p:.2e}): the arms' sizes ({}) do not match the split; fix the assignment before trusting any lift below.",
            table
                .arms
                .iter()
                .zip(&counts)
                .map(|(a, n)| format!("{a} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else {
        println!("sample ratio: ok (p = {srm_p:.4})");
    }
    for (c, v) in &caps {
        println!("{c} winsorized at {v:.4}");
    }
    let pct = |x: f64| format!("{:+.2}%", 100.0 * x);
    println!();
    println!(
        "{:<18} {:<12} {:>9} {:>12} {:>12} {:>12} {:>28} {:>10} {:>22}",
        "metric",
        "arm",
        "n",
        "mean",
        "control",
        "abs lift",
        format!("rel lift [{:.0}% CI]", 100.0 * (1.0 - args.alpha)),
        if method == "bayesian" {
            "P(win)"
        } else {
            "p-value"
        },
        "incremental total"
    );
    for r in &rows {
        let fmt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
        let rel = r.relative.map_or_else(
            || "-".to_string(),
            |t| format!("{} [{}, {}]", pct(t.estimate), pct(t.ci.0), pct(t.ci.1)),
        );
        let p = match (r.chance_to_win, r.relative) {
            (Some(c), _) => format!("{:.1}%", 100.0 * c),
            (None, Some(t)) => format!("{:.4}", t.p_value),
            _ => "-".into(),
        };
        let total = r.total.map_or_else(
            || "-".to_string(),
            |(e, (lo, hi))| format!("{e:+.1} [{lo:+.1}, {hi:+.1}]"),
        );
        println!(
            "{:<18} {:<12} {:>9} {:>12} {:>12} {:>12} {:>28} {:>10} {:>22}",
            format!(
                "{}{}",
                r.metric,
                if r.inverse { " (lower is better)" } else { "" }
            ),
            r.arm,
            r.n,
            fmt(r.mean),
            fmt(r.control_mean),
            r.absolute
                .map_or_else(|| "-".to_string(), |t| format!("{:+.4}", t.estimate)),
            rel,
            p,
            total
        );
    }
    Ok(())
}

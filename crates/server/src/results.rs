//! Live lift readouts: a moment's treated customers against its held-out
//! ones (the moment's holdout and the global control group, neither
//! messaged), and the global control group against everyone else ("all
//! lifecycle marketing vs none"), with the statistics of `lifecycle-lift`:
//! fixed-horizon and sequential intervals (so results can be watched while
//! a moment runs), SRM, incremental totals.

use lifecycle_lift::readout::{Method, MetricReadout, Stat, readout};
use lifecycle_lift::{Arm, CupedKind, CupedSums, sequential, srm};
use lifecycle_report::lift_json::{num, test_json};
use lifecycle_store::MomentRow;
use serde_json::{Value, json};

fn metric_json(name: &str, fixed: &MetricReadout, seq: &MetricReadout) -> Value {
    json!({
        "metric": name,
        "n": fixed.n, "mean": fixed.mean.map(num),
        "control_n": fixed.control_n, "control_mean": fixed.control_mean.map(num),
        "absolute": test_json(fixed.absolute.as_ref()),
        "relative": test_json(fixed.relative.as_ref()),
        "sequential": {"absolute": test_json(seq.absolute.as_ref()), "relative": test_json(seq.relative.as_ref())},
        "incremental_total": fixed.incremental_total.map(|(e, (lo, hi))| json!({"estimate": num(e), "ci": [num(lo), num(hi)]})),
    })
}

fn plain(values: impl Iterator<Item = f64>, proportion: bool) -> Stat {
    let (mut n, mut s, mut q) = (0u64, 0.0, 0.0);
    for v in values {
        n += 1;
        s += v;
        q += v * v;
    }
    Stat::Plain(if proportion {
        Arm::proportion(n, s)
    } else {
        Arm::mean(n, s, q)
    })
}

fn cuped(pairs: impl Iterator<Item = (f64, f64)>) -> Stat {
    let mut c = CupedSums::default();
    for (y, x) in pairs {
        c.n += 1;
        c.y_sum += y;
        c.y_sum_squares += y * y;
        c.x_sum += x;
        c.x_sum_squares += x * x;
        c.xy_sum += x * y;
    }
    Stat::Cuped(c, CupedKind::Means)
}

/// Both readouts of one metric: fixed horizon and sequential.
fn both(control: &Stat, treatment: &Stat, alpha: f64) -> (MetricReadout, MetricReadout) {
    (
        readout(control, treatment, Method::Frequentist, alpha, false),
        readout(
            control,
            treatment,
            Method::Sequential(sequential::DEFAULT_TUNING),
            alpha,
            false,
        ),
    )
}

/// A moment's readout: treated vs held out. `holdout` is the moment's
/// share, `global` the global control share (the expected split for SRM).
pub fn moment_results(rows: &[MomentRow], holdout: f64, global: f64, alpha: f64) -> Value {
    let (treated, held): (Vec<&MomentRow>, Vec<&MomentRow>) =
        rows.iter().partition(|r| !r.held_out);
    let expected_held = global + (1.0 - global) * holdout;
    let counts = [treated.len() as u64, held.len() as u64];
    let srm_p = srm::p_value(&counts, &[1.0 - expected_held, expected_held]);
    let mut metrics = Vec::new();
    type Get = fn(&MomentRow) -> f64;
    let simple: [(&str, Get, bool); 4] = [
        ("converted", |r| f64::from(u8::from(r.converted)), true),
        ("revenue", |r| r.revenue, false),
        ("orders", |r| r.orders as f64, false),
        ("visits", |r| r.visits as f64, false),
    ];
    for (name, get, proportion) in simple {
        let c = plain(held.iter().map(|r| get(r)), proportion);
        let t = plain(treated.iter().map(|r| get(r)), proportion);
        let (fixed, seq) = both(&c, &t, alpha);
        metrics.push(metric_json(name, &fixed, &seq));
    }
    // Predicted CLV now, adjusted by the predicted CLV at entry (CUPED).
    let with_clv = |rs: &[&MomentRow]| -> Vec<(f64, f64)> {
        rs.iter()
            .filter_map(|r| Some((r.clv_now?, r.clv_at_entry?)))
            .collect()
    };
    let (cc, tc) = (with_clv(&held), with_clv(&treated));
    if !cc.is_empty() && !tc.is_empty() {
        let (fixed, seq) = both(&cuped(cc.into_iter()), &cuped(tc.into_iter()), alpha);
        metrics.push(metric_json("pclv", &fixed, &seq));
    }
    json!({
        "arms": [{"arm": "treatment", "n": counts[0]}, {"arm": "control", "n": counts[1], "note": "the moment's holdout and the global control group"}],
        "expected_control_share": expected_held,
        "srm": {"p_value": num(srm_p), "flagged": srm_p < srm::FLAG_BELOW},
        "alpha": alpha,
        "metrics": metrics,
    })
}

/// The per-customer rows of a moment in the shape `lifecycle lift` reads.
pub fn moment_csv(rows: &[MomentRow]) -> String {
    let mut out = String::from(
        "customer_id,arm,converted,revenue,orders,visits,pclv,pre_pclv,goal_value,global_control\n",
    );
    let f = |v: Option<f64>| v.map_or_else(String::new, |v| v.to_string());
    for r in rows {
        let id = crate::http::csv_field(&r.customer_id);
        out.push_str(&format!(
            "{id},{},{},{},{},{},{},{},{},{}\n",
            if r.held_out { "control" } else { "treatment" },
            u8::from(r.converted),
            r.revenue,
            r.orders,
            r.visits,
            f(r.clv_now),
            f(r.clv_at_entry),
            r.goal_value,
            u8::from(r.global_control)
        ));
    }
    out
}

/// The global control group against everyone else: (revenue, orders, CLV)
/// per customer over the period.
pub fn global_results(
    rows: &[(bool, f64, f64, Option<f64>)],
    share: f64,
    alpha: f64,
    days: i64,
) -> Value {
    let (control, rest): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.0);
    let counts = [rest.len() as u64, control.len() as u64];
    let srm_p = srm::p_value(&counts, &[1.0 - share, share]);
    let mut metrics = Vec::new();
    type Get = fn(&&(bool, f64, f64, Option<f64>)) -> f64;
    let simple: [(&str, Get); 3] = [
        ("revenue", |r| r.1),
        ("orders", |r| r.2),
        ("pclv", |r| r.3.unwrap_or(0.0)),
    ];
    for (name, get) in simple {
        let c = plain(control.iter().map(get), false);
        let t = plain(rest.iter().map(get), false);
        let (fixed, seq) = both(&c, &t, alpha);
        metrics.push(metric_json(name, &fixed, &seq));
    }
    json!({
        "days": days,
        "arms": [{"arm": "marketed", "n": counts[0]}, {"arm": "global control", "n": counts[1]}],
        "srm": {"p_value": num(srm_p), "flagged": srm_p < srm::FLAG_BELOW},
        "alpha": alpha,
        "metrics": metrics,
    })
}

/// The global control group's readout over the last `days` days of the
/// store (every customer's revenue, orders and CLV, each assigned by the
/// same hash the journeys use).
pub fn global_readout(
    engine: &crate::engine::Engine,
    days: i64,
    alpha: f64,
) -> Result<Value, lifecycle_store::StoreError> {
    let since = i64::from(engine.clock.today()) - days;
    let share = engine.journey_options.global_control;
    let rows: Vec<(bool, f64, f64, Option<f64>)> = engine
        .read(|s| s.customer_activity(since))?
        .into_iter()
        .map(|(id, rev, orders, clv)| {
            (
                lifecycle_moments::assignment::held_out("global", &id, share),
                rev,
                orders,
                clv,
            )
        })
        .collect();
    Ok(global_results(&rows, share, alpha, days))
}

/// A readout (the JSON of [`moment_results`] or [`global_results`]) as a
/// self-contained HTML page: a forest plot of the relative lifts (fixed
/// horizon; the sequential interval in the table) and the table.
pub fn readout_html(title: &str, v: &Value) -> String {
    let (context, forest, table) = readout_parts(v);
    lifecycle_report::lift_html(title, &context, &forest, &table)
}

/// A readout's lines of context (`!! ` marks a warning), forest rows and
/// table (header first): for the lift page and the dashboard.
pub type ReadoutParts = (
    Vec<String>,
    Vec<lifecycle_report::ForestRow>,
    Vec<Vec<String>>,
);

pub fn readout_parts(v: &Value) -> ReadoutParts {
    let f = |x: &Value| x.as_f64();
    let pct = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |x| format!("{:+.2}%", 100.0 * x));
    let arms: Vec<String> = v["arms"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{} {}", a["arm"].as_str().unwrap_or(""), a["n"]))
        .collect();
    let srm_p = f(&v["srm"]["p_value"]).unwrap_or(1.0);
    let mut context = vec![format!("Arms: {}.", arms.join(", "))];
    context.push(if v["srm"]["flagged"] == true {
        format!("!! Sample ratio mismatch (p = {srm_p:.2e}): the arms' sizes do not match the expected split; check the assignment before trusting the lift.")
    } else {
        format!("Sample ratio: ok (p = {srm_p:.4}).")
    });
    let mut forest = Vec::new();
    let mut table = vec![vec![
        "metric".to_string(),
        "n".into(),
        "mean".into(),
        "control".into(),
        "relative lift".into(),
        "interval".into(),
        "sequential interval".into(),
        "p-value".into(),
        "incremental total".into(),
    ]];
    for m in v["metrics"].as_array().into_iter().flatten() {
        let name = m["metric"].as_str().unwrap_or("").to_string();
        let rel = &m["relative"];
        let ci = (f(&rel["ci"][0]), f(&rel["ci"][1]));
        if let (Some(e), (Some(lo), Some(hi))) = (f(&rel["estimate"]), ci) {
            forest.push(lifecycle_report::ForestRow {
                label: name.clone(),
                estimate: e,
                ci: (lo, hi),
                note: f(&rel["p_value"]).map_or_else(String::new, |p| format!("p {p:.3}")),
            });
        }
        let seq = &m["sequential"]["relative"]["ci"];
        table.push(vec![
            name,
            m["n"].to_string(),
            f(&m["mean"]).map_or_else(|| "-".into(), |x| format!("{x:.4}")),
            f(&m["control_mean"]).map_or_else(|| "-".into(), |x| format!("{x:.4}")),
            pct(f(&rel["estimate"])),
            format!("[{}, {}]", pct(ci.0), pct(ci.1)),
            format!("[{}, {}]", pct(f(&seq[0])), pct(f(&seq[1]))),
            f(&rel["p_value"]).map_or_else(|| "-".into(), |p| format!("{p:.4}")),
            match (
                f(&m["incremental_total"]["estimate"]),
                f(&m["incremental_total"]["ci"][0]),
                f(&m["incremental_total"]["ci"][1]),
            ) {
                (Some(e), Some(lo), Some(hi)) => format!("{e:+.1} [{lo:+.1}, {hi:+.1}]"),
                _ => "-".into(),
            },
        ]);
    }
    (context, forest, table)
}

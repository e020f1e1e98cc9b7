//! A model run as JSON (what `model_runs.params` holds and the API shows),
//! and back.

use lifecycle_engine::{ModelRun, RunConfig, Scale};
use lifecycle_models::{BgNbd, GammaGamma};
use std::collections::BTreeMap;

use lifecycle_rfm::{Better, Day};
use lifecycle_store::SegmentTotal;
use lifecycle_tripwires::{
    BacktestConfig, Estimate, History, LearnConfig, Lift, Norm, Step, backtest, default_split,
};
use serde_json::{Value, json};

fn bound(b: f64) -> Value {
    if b == f64::INFINITY {
        json!("inf")
    } else if b == f64::NEG_INFINITY {
        json!("-inf")
    } else {
        json!(b)
    }
}

fn scale_json(s: &Scale) -> Value {
    Value::Array(
        s.steps()
            .iter()
            .map(|&(b, score)| json!({"bound": bound(b), "score": score}))
            .collect(),
    )
}

/// The run's parameters: score scales (steps of bound and score; recency:
/// upper bounds in days, orders and spend: lower bounds), the BG/NBD (per
/// day) and Gamma-Gamma parameters, the valuation settings and notes.
pub fn run_to_json(run: &ModelRun) -> String {
    let purchase = run.purchase.map(|m| {
        let [r, alpha, a, b] = m.params();
        json!({"model": "bg/nbd", "time_unit": "day", "r": r, "alpha": alpha, "a": a, "b": b})
    });
    let spend = run.spend_model.map(|m| {
        let [p, q, gamma] = m.params();
        json!({"model": "gamma-gamma", "p": p, "q": q, "gamma": gamma})
    });
    json!({
        "as_of_day": run.as_of,
        "scales": {
            "recency_days": scale_json(&run.recency),
            "orders": scale_json(&run.orders),
            "spend": scale_json(&run.spend),
        },
        "purchase_model": purchase,
        "spend_model": spend,
        "valuation": {
            "horizon_days": run.config.horizon_days,
            "annual_discount": run.config.annual_discount,
            "margin": run.config.margin,
            "decline_share": run.config.decline_share,
        },
        "notes": run.notes,
        "tripwire_norms": run.norms.iter().map(|n| json!({
            "step": n.step.key(), "days": n.days, "coverage": n.coverage,
            "customers": n.customers, "observed": n.observed, "share": n.share,
            "lift": n.lift.map(|l| json!({
                "target_orders": l.target_orders,
                "kept": [l.kept.0, l.kept.1], "missed": [l.missed.0, l.missed.1],
                "ratio": l.ratio.map(|e| json!({"value": e.value, "low": e.low, "high": e.high})),
            })),
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

fn scale_of(v: &Value, better: Better) -> Option<Scale> {
    let steps = v
        .as_array()?
        .iter()
        .map(|s| {
            let b = match &s["bound"] {
                Value::String(t) if t == "inf" => f64::INFINITY,
                Value::String(t) if t == "-inf" => f64::NEG_INFINITY,
                other => other.as_f64()?,
            };
            Some((b, u8::try_from(s["score"].as_u64()?).ok()?))
        })
        .collect::<Option<Vec<_>>>()?;
    Scale::from_steps(better, steps).ok()
}

fn lift_of(v: &Value) -> Option<Lift> {
    let pair = |p: &Value| Some((p[0].as_u64()?, p[1].as_u64()?));
    let r = &v["ratio"];
    Some(Lift {
        target_orders: u32::try_from(v["target_orders"].as_u64()?).ok()?,
        kept: pair(&v["kept"])?,
        missed: pair(&v["missed"])?,
        ratio: Some(Estimate {
            value: r["value"].as_f64()?,
            low: r["low"].as_f64()?,
            high: r["high"].as_f64()?,
        })
        .filter(|_| !r.is_null()),
    })
}

/// Reads a stored run back; `None` when it is not one this version wrote.
pub fn run_from_json(text: &str, config: RunConfig) -> Option<ModelRun> {
    let v: Value = serde_json::from_str(text).ok()?;
    let f = |p: &Value, k: &str| p[k].as_f64();
    let purchase = match &v["purchase_model"] {
        Value::Null => None,
        p => Some(BgNbd::new(f(p, "r")?, f(p, "alpha")?, f(p, "a")?, f(p, "b")?).ok()?),
    };
    let spend_model = match &v["spend_model"] {
        Value::Null => None,
        p => Some(GammaGamma::new(f(p, "p")?, f(p, "q")?, f(p, "gamma")?).ok()?),
    };
    Some(ModelRun {
        as_of: i32::try_from(v["as_of_day"].as_i64()?).ok()?,
        recency: scale_of(&v["scales"]["recency_days"], Better::Lower)?,
        orders: scale_of(&v["scales"]["orders"], Better::Higher)?,
        spend: scale_of(&v["scales"]["spend"], Better::Higher)?,
        purchase,
        spend_model,
        config,
        notes: v["notes"]
            .as_array()
            .map(|n| {
                n.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        norms: v["tripwire_norms"]
            .as_array()
            .map(|ns| {
                ns.iter()
                    .filter_map(|n| {
                        Some(Norm {
                            step: Step::from_key(n["step"].as_str()?)?,
                            coverage: n["coverage"].as_f64()?,
                            days: u32::try_from(n["days"].as_u64()?).ok()?,
                            customers: usize::try_from(n["customers"].as_u64()?).ok()?,
                            observed: usize::try_from(n["observed"].as_u64()?).ok()?,
                            share: n["share"].as_f64()?,
                            share_interval: None,
                            lift: lift_of(&n["lift"]),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// The figures a run takes from the histories it was fitted on (`today`
/// is its day): active customers (an order in the last 365 days), the
/// 12-month retention (of the customers who ordered in the 365 days
/// before those, the share who ordered again in them), the repeat rate
/// and the tracking chart (weekly cumulative repeat purchases, actual and
/// expected by the run's BG/NBD).
pub fn history_figures(run: &ModelRun, histories: &[History], today: Day) -> Value {
    let (mut buyers, mut repeaters, mut active, mut base, mut retained) = (0u64, 0, 0, 0, 0);
    let mut firsts: BTreeMap<Day, f64> = BTreeMap::new();
    let mut repeats: BTreeMap<Day, u64> = BTreeMap::new();
    let year = today - 365;
    let year_before = today - 730;
    for h in histories {
        let days: Vec<Day> = h.days.iter().copied().filter(|&d| d <= today).collect();
        let Some(&first) = days.first() else {
            continue;
        };
        buyers += 1;
        repeaters += u64::from(days.len() > 1);
        *firsts.entry(first).or_default() += 1.0;
        for &d in &days[1..] {
            *repeats.entry(d).or_default() += 1;
        }
        let recent = days.iter().any(|&d| d > year);
        active += u64::from(recent);
        if days.iter().any(|&d| d > year_before && d <= year) {
            base += 1;
            retained += u64::from(recent);
        }
    }
    let tracking = run.purchase.and_then(|m| {
        lifecycle_engine::tracking(&firsts, &repeats, today, 1.0, |t| m.expected_purchases(t))
            .ok()
            .flatten()
    });
    let share = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    json!({
        "buyers": buyers,
        "active": active,
        "repeat_rate": share(repeaters, buyers),
        "retention": {"rate": share(retained, base), "retained": retained, "base": base},
        "tracking": tracking.map(|p| p.iter().map(|&(w, a, e)| json!([w, a, e])).collect::<Vec<_>>()),
    })
}

/// Each norm's backtest (`best_at(split)`: who the best customers were on
/// a day, in the histories' order): learned on the history before the
/// step's default split, judged on the deadlines after it over `horizon`
/// days. `{step key: backtest}`; norms without a split or too few
/// customers are left out.
pub fn backtests_json(
    run: &ModelRun,
    histories: &[History],
    today: Day,
    horizon_days: u32,
    mut best_at: impl FnMut(Day) -> Vec<bool>,
) -> Value {
    let mut cache: Vec<(Day, Vec<bool>)> = Vec::new();
    let mut out = serde_json::Map::new();
    for n in &run.norms {
        let Some(split) = default_split(histories, n.step, today) else {
            continue;
        };
        if !cache.iter().any(|c| c.0 == split) {
            cache.push((split, best_at(split)));
        }
        let Some(best) = cache.iter().find(|c| c.0 == split).map(|c| &c.1) else {
            continue;
        };
        let config = BacktestConfig {
            split,
            horizon_days,
            level: 0.95,
        };
        let Some(b) = backtest(
            histories,
            best,
            n.step,
            today,
            &LearnConfig::default(),
            &config,
        ) else {
            continue;
        };
        let estimate = |e: Option<Estimate>| {
            e.map(|e| json!({"value": e.value, "low": e.low, "high": e.high}))
        };
        let outcome = |o: &lifecycle_tripwires::Outcome| json!({"customers": o.customers, "repeaters": o.repeaters, "revenue_per_customer": o.revenue.mean()});
        out.insert(
            n.step.key(),
            json!({
                "split_day": b.split, "horizon_days": b.horizon_days, "norm_days": b.norm.days,
                "kept": outcome(&b.kept), "tripped": outcome(&b.tripped),
                "repeat_rate_kept": estimate(b.repeat_rates.0),
                "repeat_rate_tripped": estimate(b.repeat_rates.1),
                "repeat_rate_difference": estimate(b.repeat_difference),
                "revenue_difference": estimate(b.revenue_difference),
            }),
        );
    }
    Value::Object(out)
}

/// Customers by CLV band: 0–1, 1–2, 2–5, 5–10, … (bands on a 1-2-5 scale
/// up to the largest value).
pub fn clv_bands(values: &[f64]) -> Vec<(f64, f64, u64)> {
    let max = values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let mut edges = vec![0.0];
    let mut decade = 1.0;
    while edges.last().is_some_and(|&e| e <= max) && edges.len() < 40 {
        for m in [1.0, 2.0, 5.0] {
            edges.push(m * decade);
        }
        decade *= 10.0;
    }
    let mut counts = vec![0u64; edges.len() - 1];
    for &v in values.iter().filter(|v| v.is_finite()) {
        let i = edges
            .partition_point(|&e| e <= v.max(0.0))
            .saturating_sub(1);
        if let Some(c) = counts.get_mut(i.min(edges.len() - 2)) {
            *c += 1;
        }
    }
    let mut bands: Vec<(f64, f64, u64)> = edges
        .windows(2)
        .zip(counts)
        .map(|(e, c)| (e[0], e[1], c))
        .collect();
    while bands.last().is_some_and(|b| b.2 == 0) {
        bands.pop();
    }
    bands
}

/// Adds what the store holds under the run once it has re-scored
/// everyone: customers, revenue and CLV by segment, customer equity and
/// the CLV distribution (bands and percentiles).
pub fn add_store_figures(figures: &mut Value, totals: &[SegmentTotal], clv: &[f64]) {
    let mut sorted: Vec<f64> = clv.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        (!sorted.is_empty()).then(|| {
            sorted[((p * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
        })
    };
    let more = json!({
        "customers": totals.iter().map(|t| t.customers).sum::<u64>(),
        "revenue": totals.iter().map(|t| t.revenue).sum::<f64>(),
        "equity": totals.iter().map(|t| t.clv).sum::<f64>(),
        "segments": totals.iter().map(|t| json!({
            "segment": t.segment, "customers": t.customers, "revenue": t.revenue, "clv": t.clv,
        })).collect::<Vec<_>>(),
        "clv": {
            "customers": sorted.len(),
            "mean": (!sorted.is_empty()).then(|| sorted.iter().sum::<f64>() / sorted.len() as f64),
            "p10": pct(0.1), "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99),
            "bands": clv_bands(&sorted).iter().map(|&(a, b, n)| json!([a, b, n])).collect::<Vec<_>>(),
        },
    });
    if let (Some(f), Value::Object(m)) = (figures.as_object_mut(), more) {
        f.extend(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_survives_json() {
        let mut run = ModelRun::empty(19_000, RunConfig::default());
        assert_eq!(
            run_from_json(&run_to_json(&run), run.config),
            Some(run.clone())
        );
        run.purchase = Some(BgNbd::new(0.243, 31.0, 0.793, 2.426).unwrap());
        run.spend_model = Some(GammaGamma::new(6.25, 3.74, 15.44).unwrap());
        run.norms = vec![Norm {
            step: Step::NextOrder(1),
            coverage: 0.8,
            days: 30,
            customers: 100,
            observed: 90,
            share: 0.81,
            share_interval: None,
            lift: None,
        }];
        assert_eq!(
            run_from_json(&run_to_json(&run), run.config),
            Some(run.clone())
        );
        assert_eq!(run_from_json("{}", RunConfig::default()), None);
        run.norms[0].lift = Some(Lift {
            target_orders: 3,
            kept: (40, 90),
            missed: (2, 10),
            ratio: Some(Estimate {
                value: 2.2,
                low: 0.6,
                high: 8.1,
            }),
        });
        assert_eq!(run_from_json(&run_to_json(&run), run.config), Some(run));
    }

    #[test]
    fn history_figures_count_by_hand() {
        let h = |days: &[Day]| History {
            first_seen: None,
            days: days.to_vec(),
            values: vec![10.0; days.len()],
        };
        let today = 1000;
        // Ordered in the year before last and again: retained; only before:
        // lost; only this year: active, not in the base; never.
        let histories = [h(&[400, 700]), h(&[400]), h(&[900, 950]), h(&[])];
        let run = ModelRun::empty(today, RunConfig::default());
        let f = history_figures(&run, &histories, today);
        assert_eq!(f["buyers"], 3);
        assert_eq!(f["active"], 2);
        assert_eq!(f["retention"]["base"], 2);
        assert_eq!(f["retention"]["retained"], 1);
        assert_eq!(f["retention"]["rate"], 0.5);
        assert!((f["repeat_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!(f["tracking"].is_null(), "no purchase model, no chart");
    }

    #[test]
    fn clv_bands_on_a_one_two_five_scale() {
        let bands = clv_bands(&[0.5, 1.5, 3.0, 3.0, 120.0]);
        assert_eq!(bands[0], (0.0, 1.0, 1));
        assert_eq!(bands[1], (1.0, 2.0, 1));
        assert_eq!(bands[2], (2.0, 5.0, 2));
        assert_eq!(bands.last(), Some(&(100.0, 200.0, 1)));
        assert_eq!(bands.iter().map(|b| b.2).sum::<u64>(), 5);
        assert!(clv_bands(&[]).is_empty());
        let mut f = json!({});
        add_store_figures(&mut f, &[], &[3.0, 1.0, 2.0]);
        assert_eq!(f["clv"]["p50"], 2.0);
        assert_eq!(f["clv"]["customers"], 3);
    }
}

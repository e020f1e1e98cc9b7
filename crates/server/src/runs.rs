//! A model run as JSON (what `model_runs.params` holds and the API shows),
//! and back.

use lifecycle_engine::{ModelRun, RunConfig, Scale};
use lifecycle_models::{BgNbd, GammaGamma};
use lifecycle_rfm::Better;
use lifecycle_tripwires::{Norm, Step};
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
                            lift: None,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
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
        assert_eq!(run_from_json(&run_to_json(&run), run.config), Some(run));
        assert_eq!(run_from_json("{}", RunConfig::default()), None);
    }
}

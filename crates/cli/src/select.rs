//! Model choice for `fit --model auto` and `predict --model auto`: fit every
//! applicable purchase model, score each on the holdout when there is one
//! (mean absolute error per customer), else on BIC, and say which won and why.

use anyhow::Result;
use lifecycle_models::{BgNbd, FitConfig, FitReport, MbgNbd, Observation, ParetoNbd};
use lifecycle_rfm::CustomerSummary;
use serde_json::{Value, json};

use crate::fit::ModelKind;
use crate::input_err;
use crate::value::Purchase;

/// How well a model's conditional expectations matched the holdout.
#[derive(Debug, Clone, Copy)]
pub struct HoldoutErrors {
    pub mae: f64,
    pub rmse: f64,
    pub predicted_total: f64,
    pub actual_total: f64,
}

/// One fitted purchase model and how it did.
pub struct Candidate {
    pub kind: ModelKind,
    pub model: Purchase,
    pub report: FitReport,
    pub errors: Option<HoldoutErrors>,
}

/// The purchase models `kind` stands for: all three for `auto`.
pub fn purchase_kinds(kind: ModelKind) -> Result<Vec<ModelKind>> {
    match kind {
        ModelKind::Auto => Ok(vec![
            ModelKind::Bgnbd,
            ModelKind::Mbgnbd,
            ModelKind::ParetoNbd,
        ]),
        ModelKind::Bgnbd | ModelKind::Mbgnbd | ModelKind::ParetoNbd => Ok(vec![kind]),
        other => Err(input_err(format!(
            "a purchase model is needed (bgnbd, mbgnbd, pareto-nbd or auto), not {}",
            other.name()
        ))),
    }
}

/// Fits one purchase model.
pub fn fit_purchase(
    kind: ModelKind,
    obs: &[Observation],
    config: &FitConfig,
) -> Result<(Purchase, FitReport), lifecycle_models::ModelError> {
    match kind {
        ModelKind::Bgnbd => BgNbd::fit(obs, config).map(|(m, r)| (Purchase::Bg(m), r)),
        ModelKind::Mbgnbd => MbgNbd::fit(obs, config).map(|(m, r)| (Purchase::Mbg(m), r)),
        _ => ParetoNbd::fit(obs, config).map(|(m, r)| (Purchase::Pareto(m), r)),
    }
}

/// Fits each kind; with more than one, a model that cannot be fitted is
/// reported on stderr and left out rather than failing the run.
pub fn fit_candidates(
    kinds: &[ModelKind],
    obs: &[Observation],
    config: &FitConfig,
    horizon: f64,
    holdout: Option<&[f64]>,
) -> Result<Vec<Candidate>> {
    let mut candidates = Vec::new();
    for &kind in kinds {
        let (model, report) = match fit_purchase(kind, obs, config) {
            Ok(f) => f,
            Err(e) if kinds.len() > 1 => {
                eprintln!("{}: not fitted ({e})", kind.name());
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let errors = match holdout {
            Some(h) => {
                let expected: Result<Vec<f64>> = obs
                    .iter()
                    .map(|o| model.conditional(horizon, o.x, o.t_x, o.t_big))
                    .collect();
                match expected {
                    Ok(e) => Some(holdout_errors(&e, h)),
                    Err(e) if kinds.len() > 1 => {
                        eprintln!("{}: left out, its predictions failed ({e:#})", kind.name());
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        candidates.push(Candidate {
            kind,
            model,
            report,
            errors,
        });
    }
    if candidates.is_empty() {
        return Err(input_err("no purchase model could be fitted"));
    }
    Ok(candidates)
}

fn holdout_errors(expected: &[f64], actual: &[f64]) -> HoldoutErrors {
    let n = actual.len().max(1) as f64;
    let mae = expected
        .iter()
        .zip(actual)
        .map(|(e, a)| (e - a).abs())
        .sum::<f64>()
        / n;
    let rmse = (expected
        .iter()
        .zip(actual)
        .map(|(e, a)| (e - a).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    HoldoutErrors {
        mae,
        rmse,
        predicted_total: expected.iter().sum(),
        actual_total: actual.iter().sum(),
    }
}

/// The index of the chosen candidate: lowest holdout MAE, else lowest BIC.
pub fn best(candidates: &[Candidate]) -> usize {
    let key = |c: &Candidate| c.errors.map_or(c.report.bic, |e| e.mae);
    (0..candidates.len())
        .min_by(|&i, &j| key(&candidates[i]).total_cmp(&key(&candidates[j])))
        .unwrap_or(0)
}

/// Why the chosen model won, in words.
pub fn reason(candidates: &[Candidate]) -> &'static str {
    if candidates.iter().any(|c| c.errors.is_some()) {
        "lowest mean absolute error per customer on the holdout"
    } else {
        "lowest BIC (no holdout: give --calibration-end before the data's end to compare on one)"
    }
}

/// Prints the comparison table and the choice.
pub fn print_table(candidates: &[Candidate], chosen: usize) {
    println!(
        "{:<12} {:>14} {:>12} {:>12} {:>12} {:>12} {:>22}",
        "model", "log-lik.", "AIC", "BIC", "holdout MAE", "RMSE", "predicted / actual"
    );
    for (i, c) in candidates.iter().enumerate() {
        let (mae, rmse, pt) = match c.errors {
            Some(e) => (
                format!("{:.4}", e.mae),
                format!("{:.4}", e.rmse),
                format!("{:.0} / {:.0}", e.predicted_total, e.actual_total),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<12} {:>14.2} {:>12.2} {:>12.2} {:>12} {:>12} {:>22}{}",
            c.kind.name(),
            c.report.log_likelihood,
            c.report.aic,
            c.report.bic,
            mae,
            rmse,
            pt,
            if i == chosen { "  <- chosen" } else { "" }
        );
    }
    println!(
        "chose {}: {}\n",
        candidates[chosen].kind.name(),
        reason(candidates)
    );
}

/// One candidate as JSON: the fit and its holdout scores.
pub fn candidate_json(c: &Candidate) -> Value {
    let mut v = report_json(c.kind, &c.report);
    if let Some(e) = c.errors {
        v["holdout"] = json!({
            "mae": e.mae, "rmse": e.rmse,
            "predicted_purchases": e.predicted_total, "actual_purchases": e.actual_total,
        });
    }
    v
}

/// A fit report as JSON with the papers' parameter names.
pub fn report_json(kind: ModelKind, report: &FitReport) -> Value {
    let mut params = serde_json::Map::new();
    let mut errors = serde_json::Map::new();
    for (i, name) in report.names.iter().enumerate() {
        params.insert(name.clone(), json!(report.params[i]));
        errors.insert(name.clone(), json!(report.standard_errors[i]));
    }
    json!({
        "model": kind.name(),
        "params": Value::Object(params),
        "standard_errors": Value::Object(errors),
        "log_likelihood": report.log_likelihood,
        "aic": report.aic,
        "bic": report.bic,
        "distinct_rows": report.n_rows,
        "iterations": report.iterations,
        "converged": report.converged,
    })
}

/// Repeat purchase days each calibration customer made after the
/// calibration end, from summaries of the same file taken at a later date.
pub fn holdout_counts(calibration: &[CustomerSummary], later: &[CustomerSummary]) -> Vec<f64> {
    let by_id: std::collections::HashMap<&str, u32> = later
        .iter()
        .map(|s| (&*s.customer_id, s.n_purchase_days))
        .collect();
    calibration
        .iter()
        .map(|s| {
            f64::from(
                by_id
                    .get(&*s.customer_id)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(s.n_purchase_days),
            )
        })
        .collect()
}

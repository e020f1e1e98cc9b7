//! F11, GrowthBook's sequential testing: an asymptotic confidence sequence
//! (Waudby-Smith et al.), valid however often the results are looked at.

use crate::{Effect, TestResult, in_unit, normal_quantile, normal_sf, positive};

/// GrowthBook's default tuning parameter N*.
pub const DEFAULT_TUNING: f64 = 5000.0;

/// ρ for `alpha` and the tuning parameter N*.
pub fn rho(alpha: f64, tuning: f64) -> f64 {
    let l = -2.0 * alpha.ln();
    ((l + (l + 1.0).ln()) / tuning).sqrt()
}

/// The confidence-sequence half-width factor for N units: the half-width
/// is `√(Var·N) · factor(N)`.
pub fn factor(n: f64, alpha: f64, tuning: f64) -> f64 {
    let r = rho(alpha, tuning);
    let a = n * r * r + 1.0;
    (2.0 * a * (a.sqrt() / alpha).ln() / (n * n * r * r)).sqrt()
}

/// The sequential interval and p-value of an effect over `n_total = n_A +
/// n_B` units; `None` for alpha outside (0, 1), no units or a bad tuning.
pub fn test(e: &Effect, n_total: f64, alpha: f64, tuning: f64) -> Option<TestResult> {
    if !(in_unit(alpha) && positive(n_total) && positive(tuning)) {
        return None;
    }
    let var = e.var.max(0.0);
    let se = var.sqrt();
    let half = (var * n_total).sqrt() * factor(n_total, alpha, tuning);
    let r = rho(alpha, tuning);
    let a = n_total * r * r + 1.0;
    let p = if var > 0.0 {
        let st2 = e.estimate * e.estimate * n_total / var;
        let log_e = r * r * st2 / (2.0 * a) - 0.5 * a.ln();
        // p = min(1, 1/E), computed in logs (E can overflow).
        (-log_e).exp().min(1.0)
    } else if e.estimate == 0.0 {
        1.0
    } else {
        0.0
    };
    Some(TestResult {
        estimate: e.estimate,
        se,
        ci: (e.estimate - half, e.estimate + half),
        p_value: p,
        dof: e.dof,
    })
}

/// F12, Eppo's documented sequential interval (Howard et al.'s normal
/// mixture): `Δ ± se·B` with `B = √((t + ρ) ln((t + ρ)/(ρ(1 − c)²)) / t)`,
/// `ρ = N_tune/(ln ln(e/(1 − c)²) − 2 ln(1 − c))`, `t = n_A + n_B`.
pub fn eppo(delta: f64, se: f64, n_total: f64, confidence: f64, n_tune: f64) -> Option<(f64, f64)> {
    if !(in_unit(confidence) && positive(n_total) && positive(n_tune)) {
        return None;
    }
    let one_c = 1.0 - confidence;
    let rho = n_tune / ((std::f64::consts::E / (one_c * one_c)).ln().ln() - 2.0 * one_c.ln());
    let t = n_total;
    let b = ((t + rho) * ((t + rho) / (rho * one_c * one_c)).ln()).sqrt() / t.sqrt();
    Some((delta - se * b, delta + se * b))
}

/// F13, Statsig's documented mSPRT: interval and p-value from the arms'
/// unit variances and sizes.
pub fn statsig(
    delta: f64,
    var_a: f64,
    n_a: f64,
    var_b: f64,
    n_b: f64,
    alpha: f64,
) -> Option<((f64, f64), f64)> {
    if !(in_unit(alpha) && positive(n_a) && positive(n_b)) {
        return None;
    }
    let v = var_a / n_a + var_b / n_b;
    let z = normal_quantile(1.0 - alpha / 2.0);
    let tau = z * z * (var_a + var_b) / (n_a + n_b);
    if !(positive(v) && positive(tau)) {
        return None;
    }
    let z_star = ((v + tau) / tau * (-2.0 * (alpha / 2.0).ln() - (v / (v + tau)).ln())).sqrt();
    let half = z_star * v.sqrt();
    // σ = Z*/(√2 erfinv(1 − α)) = Z*/Φ⁻¹(1 − α/2).
    let sigma = z_star / z;
    let p = (2.0 * normal_sf((delta / v.sqrt()).abs() / sigma)).clamp(0.0, 1.0);
    Some(((delta - half, delta + half), p))
}

/// F14, the normal-mixture mSPRT (Johari et al.) at one look: the
/// likelihood ratio Λ, the look's p-value `min(1, 1/Λ)` and the interval.
pub fn johari(delta: f64, v: f64, tau2: f64, alpha: f64) -> Option<(f64, f64, (f64, f64))> {
    if !(in_unit(alpha) && positive(v) && positive(tau2)) {
        return None;
    }
    let log_lambda = 0.5 * (v / (v + tau2)).ln() + delta * delta * tau2 / (2.0 * v * (v + tau2));
    let p = (-log_lambda).exp().min(1.0);
    let half = (v * (v + tau2) / tau2 * (2.0 * (1.0 / alpha).ln() + ((v + tau2) / v).ln())).sqrt();
    Some((log_lambda.exp(), p, (delta - half, delta + half)))
}

/// The always-valid p-values of a sequence of looks: the running minimum.
pub fn always_valid(p_per_look: &[f64]) -> Vec<f64> {
    let mut running: f64 = 1.0;
    p_per_look
        .iter()
        .map(|&p| {
            running = running.min(p);
            running
        })
        .collect()
}

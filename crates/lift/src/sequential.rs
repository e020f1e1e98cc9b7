//! F11, GrowthBook's sequential testing: an asymptotic confidence sequence
//! (Waudby-Smith et al.), valid however often the results are looked at.

use crate::{Effect, TestResult, in_unit, positive};

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

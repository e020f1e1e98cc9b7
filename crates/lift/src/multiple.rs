//! F15, multiple-testing corrections across arms and metrics.

use crate::{in_unit, normal_quantile};

fn order(p: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    idx
}

/// Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut out = vec![1.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order(p).iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// Benjamini–Hochberg adjusted p-values (step-up, monotone, capped at 1).
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut out = vec![1.0; m];
    let idx = order(p);
    let mut running: f64 = 1.0;
    for (rank, &i) in idx.iter().enumerate().rev() {
        running = running.min((p[i] * m as f64 / (rank + 1) as f64).min(1.0));
        out[i] = running;
    }
    out
}

/// Bonferroni: `p·m`, capped at 1.
pub fn bonferroni(p: &[f64]) -> Vec<f64> {
    let m = p.len() as f64;
    p.iter().map(|&x| (x * m).min(1.0)).collect()
}

/// GrowthBook's interval for an adjusted p-value: `sd = |lift/Φ⁻¹(1 −
/// p_adj/2)|`, `lift ± Φ⁻¹(1 − α/2)·sd`; `None` when `p_adj` is 1 (or 0).
pub fn adjusted_ci(lift: f64, p_adjusted: f64, alpha: f64) -> Option<(f64, f64)> {
    if !(in_unit(p_adjusted) && in_unit(alpha)) {
        return None;
    }
    let sd = (lift / normal_quantile(1.0 - p_adjusted / 2.0)).abs();
    let q = normal_quantile(1.0 - alpha / 2.0);
    Some((lift - q * sd, lift + q * sd))
}

/// Eppo's preferential Bonferroni: `(α_primary, α_other) = (γα/k,
/// (1 − γ)α/(k(m − 1)))` for k treatments and m metrics (m ≥ 2).
pub fn eppo_preferential(alpha: f64, gamma: f64, k: u32, m: u32) -> Option<(f64, f64)> {
    if !(in_unit(alpha) && in_unit(gamma)) || k == 0 || m < 2 {
        return None;
    }
    let (k, m) = (f64::from(k), f64::from(m));
    Some((gamma * alpha / k, (1.0 - gamma) * alpha / (k * (m - 1.0))))
}

//! F16 and F16b, power, minimum detectable effect and sample size
//! (GrowthBook's `power.ts` and the classic formula).

use crate::{in_unit, normal_cdf, normal_quantile, positive, sequential};

/// The standard error of the relative effect `e` with `n_a` control and
/// `n_b` treated units, baseline mean `mu` and unit variance `v`.
fn se(mu: f64, v: f64, n_a: f64, n_b: f64, e: f64) -> f64 {
    (v / (mu * mu * n_a) + v * (mu * (1.0 + e)).powi(2) / (mu.powi(4) * n_b)).sqrt()
}

/// The sequential variance inflation `(z_seq/z)²` for `n` units in all.
fn inflation(n_total: f64, alpha: f64, tuning: f64) -> f64 {
    let z = normal_quantile(1.0 - alpha / 2.0);
    let z_seq = n_total.sqrt() * sequential::factor(n_total, alpha, tuning);
    (z_seq / z).powi(2)
}

/// The power to detect the relative effect `e` with `n` units per arm;
/// `sequential`: with GrowthBook's sequential testing (tuning N*).
pub fn power(mu: f64, v: f64, n: f64, e: f64, alpha: f64, sequential: Option<f64>) -> Option<f64> {
    power_split(mu, v, n, n, e, alpha, sequential)
}

/// [`power`] with `n_a` control and `n_b` treated units (a holdout).
pub fn power_split(
    mu: f64,
    v: f64,
    n_a: f64,
    n_b: f64,
    e: f64,
    alpha: f64,
    sequential: Option<f64>,
) -> Option<f64> {
    if mu == 0.0 || !(positive(n_a) && positive(n_b) && v >= 0.0 && in_unit(alpha)) {
        return None;
    }
    let mut s = se(mu, v, n_a, n_b, e);
    if let Some(t) = sequential {
        s *= inflation(n_a + n_b, alpha, t).sqrt();
    }
    if !positive(s) {
        return None;
    }
    let z = normal_quantile(1.0 - alpha / 2.0);
    Some(1.0 - normal_cdf(z - e / s) + normal_cdf(-z - e / s))
}

/// The smallest relative effect detected with power `target` (e.g. 0.8)
/// with `n` units per arm; `None` when `n ≤ v k²/μ²` (no such effect).
pub fn mde(
    mu: f64,
    v: f64,
    n: f64,
    alpha: f64,
    target: f64,
    sequential: Option<f64>,
) -> Option<f64> {
    mde_split(mu, v, n, n, alpha, target, sequential)
}

/// [`mde`] with `n_a` control and `n_b` treated units: the larger root of
/// `(μ² − k²v/n_B) μ_B² − 2μ³ μ_B + (μ⁴ − k²vμ²/n_A) = 0` (F16's
/// quadratic divided by n when the arms are equal).
pub fn mde_split(
    mu: f64,
    v: f64,
    n_a: f64,
    n_b: f64,
    alpha: f64,
    target: f64,
    sequential: Option<f64>,
) -> Option<f64> {
    if mu == 0.0 || !(positive(n_a) && positive(n_b) && in_unit(alpha) && in_unit(target)) {
        return None;
    }
    let v = match sequential {
        Some(t) => v * inflation(n_a + n_b, alpha, t),
        None => v,
    };
    let k = normal_quantile(1.0 - alpha / 2.0) - normal_quantile(1.0 - target);
    let a = mu * mu - k * k * v / n_b;
    if a <= 0.0 {
        return None;
    }
    let b = -2.0 * mu.powi(3);
    let c = mu.powi(4) - k * k * v * mu * mu / n_a;
    let disc = b * b - 4.0 * a * c;
    if disc < 0.0 {
        return None;
    }
    let mu_b = (-b + disc.sqrt()) / (2.0 * a);
    Some((mu_b - mu) / mu)
}

/// F16b, units per arm to detect an absolute difference `delta` with
/// power `target`: `(z_{1−α/2} + z_π)² (v_A + v_B)/δ²`.
pub fn sample_size(v_a: f64, v_b: f64, delta: f64, alpha: f64, target: f64) -> Option<f64> {
    if delta == 0.0 || !(in_unit(alpha) && in_unit(target)) {
        return None;
    }
    let z = normal_quantile(1.0 - alpha / 2.0) + normal_quantile(target);
    Some(z * z * (v_a + v_b) / (delta * delta))
}

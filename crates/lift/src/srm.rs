//! F10, the sample-ratio-mismatch check (GrowthBook's `check_srm`).

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The threshold GrowthBook and Eppo flag below.
pub const FLAG_BELOW: f64 = 0.001;

/// The χ² p-value of the observed units per arm against the expected
/// weights: `Σ_{w>0} (o − e)²/e` with `k − 1` degrees of freedom (k counts
/// every arm); 1 when there are no units or fewer than two arms.
pub fn p_value(observed: &[u64], weights: &[f64]) -> f64 {
    let total: f64 = observed.iter().map(|&o| o as f64).sum();
    let weight: f64 = weights.iter().filter(|w| w.is_finite() && **w > 0.0).sum();
    if total == 0.0 || observed.len() < 2 || observed.len() != weights.len() || weight <= 0.0 {
        return 1.0;
    }
    let x2: f64 = observed
        .iter()
        .zip(weights)
        .filter(|(_, w)| w.is_finite() && **w > 0.0)
        .map(|(&o, &w)| {
            let e = w / weight * total;
            (o as f64 - e).powi(2) / e
        })
        .sum();
    match ChiSquared::new((observed.len() - 1) as f64) {
        Ok(c) => c.sf(x2).clamp(0.0, 1.0),
        Err(_) => 1.0,
    }
}

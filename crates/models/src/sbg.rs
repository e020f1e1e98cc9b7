//! The shifted-beta-geometric (sBG) retention model of Fader & Hardie (2007),
//! "How to project customer retention", Journal of Interactive Marketing
//! 21(1), 76-90 (FH2007 below): each customer renews each period with
//! probability 1 − θ, θ ~ Beta(α, β).

use statrs::function::beta::ln_beta;
use statrs::function::gamma::digamma;

use crate::fit::{FitConfig, FitReport, Likelihood, maximize};
use crate::{ModelError, check_param};

/// sBG parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftedBetaGeometric {
    alpha: f64,
    beta: f64,
}

/// A cohort: customers alive at the start of each period (the first entry is
/// the cohort's size).
struct Data {
    survivors: Vec<f64>,
}

impl Likelihood for Data {
    const NAMES: &'static [&'static str] = &["alpha", "beta"];

    /// FH2007 eq. (6): Σ_t (S(t−1) − S(t)) ln P(T = t) + S(n) ln S(n), with
    /// P(T = t) = B(α+1, β+t−1)/B(α, β) and S(t) = B(α, β+t)/B(α, β).
    fn log_likelihood(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (al, be) = (theta[0], theta[1]);
        let (lb0, d_ab, d_a, d_b) = (ln_beta(al, be), digamma(al + be), digamma(al), digamma(be));
        let mut ll = 0.0;
        let mut g = [0.0f64; 2];
        let n = self.survivors.len() - 1;
        for t in 1..=n {
            let tf = t as f64;
            let lost = self.survivors[t - 1] - self.survivors[t];
            if lost != 0.0 {
                ll += lost * (ln_beta(al + 1.0, be + tf - 1.0) - lb0);
                let s = digamma(al + be + tf);
                g[0] += lost * (digamma(al + 1.0) - s - d_a + d_ab);
                g[1] += lost * (digamma(be + tf - 1.0) - s - d_b + d_ab);
            }
        }
        let alive = self.survivors[n];
        if alive != 0.0 {
            let nf = n as f64;
            ll += alive * (ln_beta(al, be + nf) - lb0);
            let s = digamma(al + be + nf);
            g[0] += alive * (d_ab - s);
            g[1] += alive * (digamma(be + nf) - s - d_b + d_ab);
        }
        (ll, g.to_vec())
    }

    fn total_weight(&self) -> f64 {
        self.survivors[0]
    }

    fn n_rows(&self) -> usize {
        self.survivors.len()
    }
}

impl ShiftedBetaGeometric {
    pub fn new(alpha: f64, beta: f64) -> Result<Self, ModelError> {
        Ok(ShiftedBetaGeometric {
            alpha: check_param("alpha", alpha)?,
            beta: check_param("beta", beta)?,
        })
    }

    /// `[alpha, beta]`.
    pub fn params(&self) -> [f64; 2] {
        [self.alpha, self.beta]
    }

    /// Fits to a cohort's survivor counts: the customers still active at the
    /// start of period 0, 1, 2, … (non-increasing, at least two periods).
    pub fn fit(survivors: &[f64], config: &FitConfig) -> Result<(Self, FitReport), ModelError> {
        if survivors.len() < 3 {
            return Err(ModelError::NotIdentified(
                "need the cohort size and at least two periods".into(),
            ));
        }
        for (i, w) in survivors.windows(2).enumerate() {
            if !(w[0].is_finite() && w[1].is_finite() && w[1] >= 0.0 && w[1] <= w[0]) {
                return Err(ModelError::BadObservation {
                    index: i + 1,
                    message: format!("survivors must not increase: {} then {}", w[0], w[1]),
                });
            }
        }
        let report = maximize(
            &Data {
                survivors: survivors.to_vec(),
            },
            config,
        )?;
        Ok((
            ShiftedBetaGeometric::new(report.params[0], report.params[1])?,
            report,
        ))
    }

    /// S(t): the share of a cohort still active after t periods.
    pub fn survival(&self, t: f64) -> f64 {
        (ln_beta(self.alpha, self.beta + t) - ln_beta(self.alpha, self.beta)).exp()
    }

    /// r(t) = S(t)/S(t−1) = (β + t − 1)/(α + β + t − 1): the retention rate
    /// in period t (FH2007 eq. 4).
    pub fn retention_rate(&self, t: f64) -> f64 {
        (self.beta + t - 1.0) / (self.alpha + self.beta + t - 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences() {
        let data = Data {
            survivors: vec![1000.0, 631.0, 468.0, 382.0, 326.0],
        };
        crate::fit::assert_gradient(&data, &[0.7, 1.2]);
    }
}

//! The Gamma-Gamma model of spend per transaction: Fader, Hardie & Lee
//! (2005), "RFM and CLV: using iso-value curves for customer base analysis",
//! Journal of Marketing Research 42(4), 415-430 (FHL-RFM below), section 3,
//! after Colombo & Jiang (1999).
//!
//! A customer's transaction values are Gamma(p, ν) around their mean p/ν,
//! and ν varies across customers as Gamma(q, γ). It is fitted on repeat
//! buyers: `x` repeat transactions with mean value `m`.

use statrs::function::gamma::{digamma, ln_gamma};

use crate::fit::{FitConfig, FitReport, Likelihood, maximize};
use crate::{ModelError, check_param};

/// A repeat buyer's number of repeat transactions `x` (> 0) and their mean
/// value `m` (> 0), for `weight` customers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpendObservation {
    pub x: f64,
    pub m: f64,
    pub weight: f64,
}

impl SpendObservation {
    pub fn new(x: f64, m: f64) -> Self {
        SpendObservation { x, m, weight: 1.0 }
    }
}

/// Gamma-Gamma parameters (money in the caller's currency).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    p: f64,
    q: f64,
    gamma: f64,
}

struct Data {
    rows: Vec<SpendObservation>,
    total: f64,
}

impl Likelihood for Data {
    const NAMES: &'static [&'static str] = &["p", "q", "gamma"];

    /// The marginal likelihood of the mean spend (FHL-RFM, eq. 3 with the
    /// distribution of the mean of x Gamma(p, ν) values), summed with
    /// weights; analytic gradient.
    fn log_likelihood(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (p, q, g) = (theta[0], theta[1], theta[2]);
        let (lg_q, dg_q, ln_g) = (ln_gamma(q), digamma(q), g.ln());
        let mut ll = 0.0;
        let mut grad = [0.0f64; 3];
        for o in &self.rows {
            let (x, m, w) = (o.x, o.m, o.weight);
            let px = p * x;
            let (ln_m, ln_x, ln_xm_g) = (m.ln(), x.ln(), (x * m + g).ln());
            let l =
                ln_gamma(px + q) - ln_gamma(px) - lg_q + q * ln_g + (px - 1.0) * ln_m + px * ln_x
                    - (px + q) * ln_xm_g;
            ll += w * l;
            let psi = digamma(px + q);
            grad[0] += w * x * (psi - digamma(px) + ln_m + ln_x - ln_xm_g);
            grad[1] += w * (psi - dg_q + ln_g - ln_xm_g);
            grad[2] += w * (q / g - (px + q) / (x * m + g));
        }
        (ll, grad.to_vec())
    }

    fn total_weight(&self) -> f64 {
        self.total
    }

    fn n_rows(&self) -> usize {
        self.rows.len()
    }

    /// p = 1, q = 2 and γ the mean spend, so that the start's expected
    /// spend pγ/(q−1) is the data's whatever the currency.
    fn initial(&self) -> Vec<f64> {
        let spend: f64 = self.rows.iter().map(|o| o.weight * o.m).sum();
        let mean = spend / self.total;
        vec![
            1.0,
            2.0,
            if mean.is_finite() && mean > 0.0 {
                mean
            } else {
                1.0
            },
        ]
    }
}

impl GammaGamma {
    pub fn new(p: f64, q: f64, gamma: f64) -> Result<Self, ModelError> {
        Ok(GammaGamma {
            p: check_param("p", p)?,
            q: check_param("q", q)?,
            gamma: check_param("gamma", gamma)?,
        })
    }

    /// `[p, q, gamma]`.
    pub fn params(&self) -> [f64; 3] {
        [self.p, self.q, self.gamma]
    }

    /// Fits on repeat buyers (x > 0, m > 0); identical rows are collapsed.
    pub fn fit(
        data: &[SpendObservation],
        config: &FitConfig,
    ) -> Result<(GammaGamma, FitReport), ModelError> {
        let mut index = std::collections::HashMap::new();
        let mut rows: Vec<SpendObservation> = Vec::new();
        for (i, o) in data.iter().enumerate() {
            if !(o.x.is_finite()
                && o.m.is_finite()
                && o.weight.is_finite()
                && o.x > 0.0
                && o.m > 0.0
                && o.weight > 0.0)
            {
                return Err(ModelError::BadObservation {
                    index: i,
                    message: format!(
                        "x = {}, m = {}: the spend model needs repeat buyers (x > 0) with a positive mean value",
                        o.x, o.m
                    ),
                });
            }
            match index.get(&(o.x.to_bits(), o.m.to_bits())) {
                Some(&k) => {
                    let row: &mut SpendObservation = &mut rows[k];
                    row.weight += o.weight;
                }
                None => {
                    index.insert((o.x.to_bits(), o.m.to_bits()), rows.len());
                    rows.push(*o);
                }
            }
        }
        if rows.len() < 2 {
            return Err(ModelError::NotIdentified(
                "fewer than two distinct repeat buyers' spend values".into(),
            ));
        }
        let total = rows.iter().map(|o| o.weight).sum();
        let data = Data { rows, total };
        let report = maximize(&data, config)?;
        let p = &report.params;
        Ok((GammaGamma::new(p[0], p[1], p[2])?, report))
    }

    /// Expected mean transaction value of a customer with `x` repeat
    /// transactions of mean `m` (FHL-RFM eq. 5): a weighted average of the
    /// population mean and the customer's own mean. With x = 0 it is the
    /// population mean pγ/(q−1) (infinite when q <= 1).
    pub fn conditional_expected_value(&self, x: f64, m: f64) -> f64 {
        let (p, q, g) = (self.p, self.q, self.gamma);
        (p * (g + x * m)) / (p * x + q - 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences() {
        let data = Data {
            rows: vec![
                SpendObservation::new(1.0, 11.77),
                SpendObservation::new(2.0, 22.35),
                SpendObservation {
                    x: 6.0,
                    m: 40.1,
                    weight: 4.0,
                },
            ],
            total: 6.0,
        };
        crate::fit::assert_gradient(&data, &[6.0, 3.7, 15.0]);
    }

    #[test]
    fn expected_value_is_between_population_and_own_mean() {
        let gg = GammaGamma::new(6.25, 3.74, 15.44).unwrap();
        let population = 6.25 * 15.44 / 2.74;
        let v = gg.conditional_expected_value(3.0, 100.0);
        assert!(v > population && v < 100.0);
        assert!((gg.conditional_expected_value(0.0, 0.0) - population).abs() < 1e-12);
    }
}

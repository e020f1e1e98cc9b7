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

/// Rows with what does not change during the fit precomputed: ln m, and
/// each row's x as an index into the distinct values of x.
struct Data {
    rows: Vec<SpendObservation>,
    total: f64,
    ln_m: Vec<f64>,
    xs: Vec<f64>,
    x_index: Vec<u32>,
}

impl Data {
    fn new(rows: Vec<SpendObservation>, total: f64) -> Data {
        let (xs, x_index) = crate::fit::distinct_values(rows.iter().map(|o| o.x));
        Data {
            ln_m: rows.iter().map(|o| o.m.ln()).collect(),
            rows,
            total,
            xs,
            x_index,
        }
    }
}

impl Likelihood for Data {
    const NAMES: &'static [&'static str] = &["p", "q", "gamma"];

    /// The marginal likelihood of the mean spend (FHL-RFM, eq. 3 with the
    /// distribution of the mean of x Gamma(p, ν) values), summed with
    /// weights; analytic gradient.
    fn log_likelihood(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (p, q, g) = (theta[0], theta[1], theta[2]);
        let (lg_q, dg_q, ln_g) = (ln_gamma(q), digamma(q), g.ln());
        // Per distinct x: [lnΓ(px+q) − lnΓ(px) + px ln x, ψ(px+q), ψ(px) − ln x].
        let per_x: Vec<[f64; 3]> = self
            .xs
            .iter()
            .map(|&x| {
                let px = p * x;
                let ln_x = x.ln();
                [
                    ln_gamma(px + q) - ln_gamma(px) + px * ln_x,
                    digamma(px + q),
                    digamma(px) - ln_x,
                ]
            })
            .collect();
        let (ll, grad) = crate::fit::parallel_sum(&self.rows, |start, rows| {
            let mut ll = 0.0;
            let mut grad = [0.0f64; 3];
            for (k, o) in rows.iter().enumerate() {
                let (x, m, w) = (o.x, o.m, o.weight);
                let c = &per_x[self.x_index[start + k] as usize];
                let ln_m = self.ln_m[start + k];
                let px = p * x;
                let ln_xm_g = (x * m + g).ln();
                ll += w * (c[0] - lg_q + q * ln_g + (px - 1.0) * ln_m - (px + q) * ln_xm_g);
                grad[0] += w * x * (c[1] - c[2] + ln_m - ln_xm_g);
                grad[1] += w * (c[1] - dg_q + ln_g - ln_xm_g);
                grad[2] += w * (q / g - (px + q) / (x * m + g));
            }
            (ll, grad)
        });
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
        let mut index: crate::FastMap<(u64, u64), usize> = crate::FastMap::default();
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
        let data = Data::new(rows, total);
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
        let data = Data::new(
            vec![
                SpendObservation::new(1.0, 11.77),
                SpendObservation::new(2.0, 22.35),
                SpendObservation {
                    x: 6.0,
                    m: 40.1,
                    weight: 4.0,
                },
            ],
            6.0,
        );
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

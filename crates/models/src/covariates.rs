//! BG/NBD with time-invariant covariates (Fader & Hardie 2007,
//! "Incorporating time-invariant covariates into the Pareto/NBD and BG/NBD
//! models", note 019; the parameterisation of CLVTools' static covariates):
//! customer i with covariates zᵢ has
//!
//! - purchase process: αᵢ = α₀ · exp(−γ_transᵀ zᵢ), so E[λᵢ] = r/α₀ ·
//!   exp(γ_transᵀ zᵢ): a positive coefficient means more purchases;
//! - drop-out process (optional): bᵢ = b₀ · exp(γ_lifeᵀ zᵢ), so E[pᵢ] =
//!   a/(a + bᵢ): a positive coefficient means a lower drop-out probability
//!   after each purchase, a longer life. (Note 019 also lets a vary; with
//!   one coefficient on b the mean drop-out moves, which CLVTools' shared
//!   coefficient on a and b cannot do.)
//!
//! The likelihood is FHL eq. (6) with αᵢ, bᵢ; the gradient follows by the
//! chain rule from the per-customer derivatives. Coefficients are real
//! parameters (not logged) with standard errors from the same observed
//! information. Each customer's predictions are those of the plain BG/NBD
//! with their own αᵢ, bᵢ ([`BgNbdCovariates::for_customer`]).

use statrs::function::gamma::{digamma, ln_gamma};

use crate::fit::{FitConfig, FitReport, Likelihood, maximize};
use crate::{BgNbd, ModelError, Observation};

/// A fitted BG/NBD with covariates.
#[derive(Debug, Clone, PartialEq)]
pub struct BgNbdCovariates {
    /// r, α₀, a, b₀.
    pub base: [f64; 4],
    /// One coefficient per covariate on the purchase rate.
    pub trans: Vec<f64>,
    /// One coefficient per covariate on the drop-out, if fitted.
    pub life: Option<Vec<f64>>,
}

struct Data<'a> {
    rows: &'a [Observation],
    /// Row-major, `k` per row.
    z: &'a [f64],
    k: usize,
    life: bool,
    total: f64,
    names: Vec<String>,
    start_alpha: f64,
}

/// ℓ and ∂ℓ/∂(r, α, a, b) of one customer (FHL eq. 6).
fn row(r: f64, alpha: f64, a: f64, b: f64, o: &Observation) -> (f64, [f64; 4]) {
    let (x, t_x, tt) = (o.x, o.t_x, o.t_big);
    let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
    let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
    let ln_at = (alpha + tt).ln();
    let a3 = -(r + x) * ln_at;
    let (psi_ab, psi_abx) = (digamma(a + b), digamma(a + b + x));
    let mut d = [
        digamma(r + x) - digamma(r) + alpha.ln() - ln_at,
        r / alpha - (r + x) / (alpha + tt),
        psi_ab - psi_abx,
        psi_ab + digamma(b + x) - digamma(b) - psi_abx,
    ];
    if x <= 0.0 {
        return (a1 + a2 + a3, d);
    }
    let ln_atx = (alpha + t_x).ln();
    let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * ln_atx;
    let m = a3.max(a4);
    let (e3, e4) = ((a3 - m).exp(), (a4 - m).exp());
    let s = e3 + e4;
    let (w3, w4) = (e3 / s, e4 / s);
    d[0] = digamma(r + x) - digamma(r) + alpha.ln() - w3 * ln_at - w4 * ln_atx;
    d[1] = r / alpha - w3 * (r + x) / (alpha + tt) - w4 * (r + x) / (alpha + t_x);
    d[2] += w4 / a;
    d[3] -= w4 / (b + x - 1.0);
    (a1 + a2 + m + s.ln(), d)
}

impl Likelihood for Data<'_> {
    const NAMES: &'static [&'static str] = &[];

    fn log_likelihood(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (r, alpha0, a, b0) = (theta[0], theta[1], theta[2], theta[3]);
        let k = self.k;
        let trans = &theta[4..4 + k];
        let life = if self.life {
            &theta[4 + k..4 + 2 * k]
        } else {
            &[][..]
        };
        let n = theta.len();
        let mut ll = 0.0;
        let mut g = vec![0.0; n];
        for (i, o) in self.rows.iter().enumerate() {
            let z = &self.z[i * k..(i + 1) * k];
            let dot = |c: &[f64]| c.iter().zip(z).map(|(c, z)| c * z).sum::<f64>();
            let alpha = alpha0 * (-dot(trans)).exp();
            let b = if self.life { b0 * dot(life).exp() } else { b0 };
            let (l, d) = row(r, alpha, a, b, o);
            let w = o.weight;
            ll += w * l;
            g[0] += w * d[0];
            g[1] += w * d[1] * alpha / alpha0;
            g[2] += w * d[2];
            g[3] += w * d[3] * b / b0;
            for (j, zj) in z.iter().enumerate() {
                g[4 + j] -= w * d[1] * alpha * zj;
                if self.life {
                    g[4 + k + j] += w * d[3] * b * zj;
                }
            }
        }
        (ll, g)
    }

    fn total_weight(&self) -> f64 {
        self.total
    }

    fn n_rows(&self) -> usize {
        self.rows.len()
    }

    fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn n_positive(&self) -> usize {
        4
    }

    fn initial(&self) -> Vec<f64> {
        let mut v = vec![1.0, self.start_alpha, 1.0, 1.0];
        v.resize(self.names.len(), 0.0);
        v
    }
}

impl BgNbdCovariates {
    /// Fits r, α₀, a, b₀ and a purchase-rate coefficient per covariate
    /// (and a drop-out coefficient per covariate with `life`).
    /// `covariates` holds `names.len()` values per observation, row-major.
    /// Parameter names in the report: r, alpha, a, b, then `trans.NAME`
    /// and `life.NAME` (as CLVTools).
    pub fn fit(
        data: &[Observation],
        covariates: &[f64],
        names: &[String],
        life: bool,
        config: &FitConfig,
    ) -> Result<(BgNbdCovariates, FitReport), ModelError> {
        let k = names.len();
        if covariates.len() != data.len() * k {
            return Err(ModelError::BadObservation {
                index: 0,
                message: format!(
                    "{} covariate values for {} customers and {k} covariates",
                    covariates.len(),
                    data.len()
                ),
            });
        }
        for (i, o) in data.iter().enumerate() {
            o.check(i)?;
            if let Some(v) = covariates[i * k..(i + 1) * k]
                .iter()
                .find(|v| !v.is_finite())
            {
                return Err(ModelError::BadObservation {
                    index: i,
                    message: format!("covariate value {v} is not finite"),
                });
            }
        }
        if !data.iter().any(|o| o.x > 0.0) {
            return Err(ModelError::NotIdentified(
                "no customer has a repeat purchase (x > 0), so the drop-out process cannot be estimated".into(),
            ));
        }
        for j in 0..k {
            let first = covariates.get(j).copied().unwrap_or(0.0);
            if (0..data.len()).all(|i| covariates[i * k + j] == first) {
                return Err(ModelError::NotIdentified(format!(
                    "covariate {} has the same value for every customer",
                    names[j]
                )));
            }
        }
        let mut all_names: Vec<String> = ["r", "alpha", "a", "b"].map(String::from).to_vec();
        all_names.extend(names.iter().map(|n| format!("trans.{n}")));
        if life {
            all_names.extend(names.iter().map(|n| format!("life.{n}")));
        }
        let model = Data {
            rows: data,
            z: covariates,
            k,
            life,
            total: data.iter().map(|o| o.weight).sum(),
            names: all_names,
            start_alpha: crate::bgnbd::start_alpha(data),
        };
        let report = maximize(&model, config)?;
        let p = &report.params;
        let fitted = BgNbdCovariates {
            base: [p[0], p[1], p[2], p[3]],
            trans: p[4..4 + k].to_vec(),
            life: life.then(|| p[4 + k..4 + 2 * k].to_vec()),
        };
        Ok((fitted, report))
    }

    /// The plain BG/NBD of a customer with covariates `z`.
    pub fn for_customer(&self, z: &[f64]) -> Result<BgNbd, ModelError> {
        let dot = |c: &[f64]| c.iter().zip(z).map(|(c, z)| c * z).sum::<f64>();
        let [r, alpha0, a, b0] = self.base;
        let b = match &self.life {
            Some(life) => b0 * dot(life).exp(),
            None => b0,
        };
        BgNbd::new(r, alpha0 * (-dot(&self.trans)).exp(), a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences() {
        let rows = vec![
            Observation::new(0.0, 0.0, 38.86),
            Observation::new(2.0, 30.43, 38.86),
            Observation {
                x: 5.0,
                t_x: 20.0,
                t_big: 30.0,
                weight: 3.0,
            },
            Observation::new(1.0, 1.71, 38.86),
        ];
        let z = [1.0, 0.5, 0.0, -1.0, 1.0, 2.0, 0.0, 0.0];
        let data = Data {
            rows: &rows,
            z: &z,
            k: 2,
            life: true,
            total: 6.0,
            names: (0..8).map(|i| i.to_string()).collect(),
            start_alpha: 1.0,
        };
        crate::fit::assert_gradient(&data, &[0.3, 4.0, 0.8, 2.4, 0.2, -0.4, 0.3, 0.5]);
    }

    /// With all coefficients zero the model is the plain BG/NBD.
    #[test]
    fn zero_coefficients_are_the_plain_model() {
        let m = BgNbdCovariates {
            base: [0.243, 4.414, 0.793, 2.426],
            trans: vec![0.0],
            life: Some(vec![0.0]),
        };
        assert_eq!(
            m.for_customer(&[3.0]).unwrap(),
            BgNbd::new(0.243, 4.414, 0.793, 2.426).unwrap()
        );
    }
}

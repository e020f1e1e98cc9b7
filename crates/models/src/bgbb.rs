//! The BG/BB model for discrete-time opportunities: Fader, Hardie & Shang
//! (2010), "Customer-base analysis in a discrete-time noncontractual
//! setting", Marketing Science 29(6), 1086-1108 (FHS below).
//!
//! At each of n opportunities an active customer transacts with probability
//! p ~ Beta(α, β) and, after each opportunity, becomes inactive with
//! probability θ ~ Beta(γ, δ). A customer's history is `x` transactions, the
//! last at opportunity `t_x`, out of `n`.

use statrs::function::beta::ln_beta;
use statrs::function::gamma::{digamma, ln_gamma};

use crate::fit::{FitConfig, FitReport, Likelihood, maximize};
use crate::{ModelError, check_param};

/// `weight` customers with x transactions, the last at opportunity t_x, of n.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinomialObservation {
    pub x: f64,
    pub t_x: f64,
    pub n: f64,
    pub weight: f64,
}

impl BinomialObservation {
    pub fn new(x: f64, t_x: f64, n: f64) -> Self {
        BinomialObservation {
            x,
            t_x,
            n,
            weight: 1.0,
        }
    }

    fn check(&self, index: usize) -> Result<(), ModelError> {
        let BinomialObservation { x, t_x, n, weight } = *self;
        let whole = |v: f64| v.is_finite() && v >= 0.0 && v.fract() == 0.0;
        if !(whole(x)
            && whole(t_x)
            && whole(n)
            && weight.is_finite()
            && weight > 0.0
            && x <= t_x
            && t_x <= n
            && (x > 0.0 || t_x == 0.0))
        {
            return Err(ModelError::BadObservation {
                index,
                message: format!(
                    "x = {x}, t_x = {t_x}, n = {n}, weight = {weight}: need whole numbers 0 <= x <= t_x <= n (t_x = 0 when x = 0) and a positive weight"
                ),
            });
        }
        Ok(())
    }
}

/// BG/BB parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgBb {
    alpha: f64,
    beta: f64,
    gamma: f64,
    delta: f64,
}

struct Data {
    rows: Vec<BinomialObservation>,
    total: f64,
}

/// One term B(α+x, β+m)/B(α,β) · B(γ+e, δ+f)/B(γ,δ) of the likelihood, as
/// (log value, gradient of the log).
fn term(theta: &[f64], x: f64, m: f64, e: f64, f: f64) -> (f64, [f64; 4]) {
    let (al, be, ga, de) = (theta[0], theta[1], theta[2], theta[3]);
    let v = ln_beta(al + x, be + m) - ln_beta(al, be) + ln_beta(ga + e, de + f) - ln_beta(ga, de);
    let (s1, s0) = (digamma(al + x + be + m), digamma(al + be));
    let (t1, t0) = (digamma(ga + e + de + f), digamma(ga + de));
    let g = [
        digamma(al + x) - s1 - digamma(al) + s0,
        digamma(be + m) - s1 - digamma(be) + s0,
        digamma(ga + e) - t1 - digamma(ga) + t0,
        digamma(de + f) - t1 - digamma(de) + t0,
    ];
    (v, g)
}

impl Likelihood for Data {
    const NAMES: &'static [&'static str] = &["alpha", "beta", "gamma", "delta"];

    /// FHS eq. (5): alive through all n opportunities, or inactive after
    /// opportunity t_x + i for some i in 0..n−t_x; log-sum-exp over the terms.
    fn log_likelihood(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let mut ll = 0.0;
        let mut grad = [0.0f64; 4];
        let mut terms: Vec<(f64, [f64; 4])> = Vec::new();
        for o in &self.rows {
            let (x, t_x, n, w) = (o.x, o.t_x, o.n, o.weight);
            terms.clear();
            terms.push(term(theta, x, n - x, 0.0, n));
            let mut i = 0.0;
            while i < n - t_x {
                terms.push(term(theta, x, t_x - x + i, 1.0, t_x + i));
                i += 1.0;
            }
            let m = terms.iter().fold(f64::NEG_INFINITY, |m, t| m.max(t.0));
            let s: f64 = terms.iter().map(|t| (t.0 - m).exp()).sum();
            ll += w * (m + s.ln());
            for (v, g) in &terms {
                let weight = (v - m).exp() / s;
                for (acc, gj) in grad.iter_mut().zip(g) {
                    *acc += w * weight * gj;
                }
            }
        }
        (ll, grad.to_vec())
    }

    fn total_weight(&self) -> f64 {
        self.total
    }

    fn n_rows(&self) -> usize {
        self.rows.len()
    }
}

impl BgBb {
    pub fn new(alpha: f64, beta: f64, gamma: f64, delta: f64) -> Result<Self, ModelError> {
        Ok(BgBb {
            alpha: check_param("alpha", alpha)?,
            beta: check_param("beta", beta)?,
            gamma: check_param("gamma", gamma)?,
            delta: check_param("delta", delta)?,
        })
    }

    /// `[alpha, beta, gamma, delta]`.
    pub fn params(&self) -> [f64; 4] {
        [self.alpha, self.beta, self.gamma, self.delta]
    }

    pub fn fit(
        data: &[BinomialObservation],
        config: &FitConfig,
    ) -> Result<(BgBb, FitReport), ModelError> {
        let mut index = std::collections::HashMap::new();
        let mut rows: Vec<BinomialObservation> = Vec::new();
        for (i, o) in data.iter().enumerate() {
            o.check(i)?;
            let key = (o.x.to_bits(), o.t_x.to_bits(), o.n.to_bits());
            match index.get(&key) {
                Some(&k) => {
                    let row: &mut BinomialObservation = &mut rows[k];
                    row.weight += o.weight;
                }
                None => {
                    index.insert(key, rows.len());
                    rows.push(*o);
                }
            }
        }
        if !rows.iter().any(|o| o.x > 0.0) {
            return Err(ModelError::NotIdentified(
                "no customer has a transaction".into(),
            ));
        }
        let total = rows.iter().map(|o| o.weight).sum();
        let report = maximize(&Data { rows, total }, config)?;
        let p = &report.params;
        Ok((BgBb::new(p[0], p[1], p[2], p[3])?, report))
    }

    /// The log-likelihood of one history (FHS eq. 5).
    pub fn log_likelihood(&self, x: f64, t_x: f64, n: f64) -> f64 {
        let data = Data {
            rows: vec![BinomialObservation::new(x, t_x, n)],
            total: 1.0,
        };
        data.log_likelihood(&self.params()).0
    }

    /// P(active at opportunity n + m | x, t_x, n) (FHS eq. 11, with m
    /// further opportunities survived).
    pub fn p_alive(&self, m: f64, x: f64, t_x: f64, n: f64) -> f64 {
        let (al, be, ga, de) = (self.alpha, self.beta, self.gamma, self.delta);
        let alive = ln_beta(al + x, be + n - x) - ln_beta(al, be) + ln_beta(ga, de + n + m)
            - ln_beta(ga, de);
        (alive - self.log_likelihood(x, t_x, n)).exp().min(1.0)
    }

    /// Expected transactions in the next `m` opportunities (FHS eq. 13).
    pub fn conditional_expected_transactions(&self, m: f64, x: f64, t_x: f64, n: f64) -> f64 {
        let (al, be, ga, de) = (self.alpha, self.beta, self.gamma, self.delta);
        let l = self.log_likelihood(x, t_x, n);
        let lead = (ln_beta(al + x + 1.0, be + n - x) - ln_beta(al, be) - l).exp() * de
            / (ga - 1.0)
            * (ln_gamma(ga + de) - ln_gamma(1.0 + de)).exp();
        let tail = |k: f64| (ln_gamma(1.0 + de + k) - ln_gamma(ga + de + k)).exp();
        lead * (tail(n) - tail(n + m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences() {
        let rows = vec![
            BinomialObservation {
                x: 0.0,
                t_x: 0.0,
                n: 6.0,
                weight: 3464.0,
            },
            BinomialObservation {
                x: 3.0,
                t_x: 4.0,
                n: 6.0,
                weight: 10.0,
            },
            BinomialObservation {
                x: 6.0,
                t_x: 6.0,
                n: 6.0,
                weight: 2.0,
            },
        ];
        crate::fit::assert_gradient(
            &Data {
                rows,
                total: 3476.0,
            },
            &[1.2, 0.75, 0.66, 2.8],
        );
    }

    #[test]
    fn bad_histories_are_errors() {
        let bad = [BinomialObservation::new(3.0, 2.0, 6.0)];
        assert!(BgBb::fit(&bad, &FitConfig::default()).is_err());
        let bad = [BinomialObservation::new(1.5, 2.0, 6.0)];
        assert!(BgBb::fit(&bad, &FitConfig::default()).is_err());
    }
}

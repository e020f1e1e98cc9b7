//! The Pareto/NBD model of Schmittlein, Morrison & Colombo (1987), "Counting
//! your customers: who are they and what will they do next?", Management
//! Science 33(1), with the likelihood and predictions as derived in Fader &
//! Hardie (2005), "A note on deriving the Pareto/NBD model and related
//! expressions" (note 008 below).
//!
//! While alive a customer buys as a Poisson process with rate λ ~ Gamma(r,
//! α); their lifetime is exponential with rate μ ~ Gamma(s, β). The
//! likelihood (note 008, eq. 22) holds a difference of two hypergeometric
//! terms; it is evaluated in log space so that large x and T stay finite, and
//! differentiated automatically (forward mode) for the optimiser.

use crate::bgnbd::collapse;
use crate::dual::{Dual, ln_hyp2f1_series, log_add_exp, log_sub_exp};
use crate::fit::{FitConfig, FitReport, Likelihood, maximize};
use crate::{ModelError, Observation, check_param};

type D = Dual<4>;

/// Pareto/NBD parameters (time in the caller's unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParetoNbd {
    r: f64,
    alpha: f64,
    s: f64,
    beta: f64,
}

struct Data {
    rows: Vec<Observation>,
    total: f64,
    start: Vec<f64>,
    /// Distinct (x, u) with u a row's t_x or T: the hypergeometric terms
    /// depend on these pairs only, and are evaluated once per pair.
    pairs: Vec<(f64, f64)>,
    /// Each row's pair index for (x, t_x) and (x, T).
    pair_of: Vec<(u32, u32)>,
}

impl Data {
    fn new(rows: Vec<Observation>, total: f64, start: Vec<f64>) -> Data {
        let mut index: crate::FastMap<[u64; 2], u32> = crate::FastMap::default();
        let mut pairs = Vec::new();
        let mut id = |x: f64, u: f64| {
            *index.entry([x.to_bits(), u.to_bits()]).or_insert_with(|| {
                pairs.push((x, u));
                (pairs.len() - 1) as u32
            })
        };
        let pair_of = rows
            .iter()
            .map(|o| (id(o.x, o.t_x), id(o.x, o.t_big)))
            .collect();
        Data {
            rows,
            total,
            start,
            pairs,
            pair_of,
        }
    }
}

/// The hypergeometric term of A₀ (note 008, eq. 23-24) at time u:
/// ln[2F1(r+s+x, b; r+s+x+1; |α−β|/(m+u)) / (m+u)^{r+s+x}].
fn a0_term(r: D, alpha: D, s: D, beta: D, x: f64, u: f64) -> Option<D> {
    let rsx = r + s + x;
    let (big, small, b_param) = if alpha.v >= beta.v {
        (alpha, beta, s + 1.0)
    } else {
        (beta, alpha, r + x)
    };
    let base = big + u;
    let z = (big - small) / base;
    Some(ln_hyp2f1_series(rsx, b_param, rsx + 1.0, z)? - rsx * base.ln())
}

/// ln A₀ of note 008 (eq. 23-24) for one history, or None when it cannot be
/// evaluated.
fn ln_a0(r: D, alpha: D, s: D, beta: D, x: f64, t_x: f64, t_big: f64) -> Option<D> {
    let rsx = r + s + x;
    let (big, small, b_param) = if alpha.v >= beta.v {
        (alpha, beta, s + 1.0)
    } else {
        (beta, alpha, r + x)
    };
    let c = rsx + 1.0;
    let term = |t: f64| -> Option<D> {
        let base = big + t;
        let z = (big - small) / base;
        Some(ln_hyp2f1_series(rsx, b_param, c, z)? - rsx * base.ln())
    };
    let first = term(t_x)?;
    let second = term(t_big)?;
    if first.v <= second.v {
        return None;
    }
    Some(log_sub_exp(first, second))
}

/// ln A₀, or NaN when it cannot be evaluated; `None` when it is zero (t_x = T).
fn ln_a0_or_nan(r: D, alpha: D, s: D, beta: D, x: f64, t_x: f64, t_big: f64) -> Option<D> {
    if t_x >= t_big {
        return None;
    }
    Some(ln_a0(r, alpha, s, beta, x, t_x, t_big).unwrap_or(D::constant(f64::NAN)))
}

/// One history's log-likelihood (note 008, eq. 22) with its gradient.
fn row_log_likelihood(theta: [f64; 4], x: f64, t_x: f64, t_big: f64) -> D {
    let r = D::variable(theta[0], 0);
    let alpha = D::variable(theta[1], 1);
    let s = D::variable(theta[2], 2);
    let beta = D::variable(theta[3], 3);
    let lead = (r + x).ln_gamma() - r.ln_gamma() + r * alpha.ln() + s * beta.ln();
    let alive_all_along = -((r + x) * (alpha + t_big).ln()) - s * (beta + t_big).ln();
    let inside = match ln_a0_or_nan(r, alpha, s, beta, x, t_x, t_big) {
        Some(la0) => log_add_exp(alive_all_along, (s / (r + s + x)).ln() + la0),
        None => alive_all_along,
    };
    lead + inside
}

impl Likelihood for Data {
    const NAMES: &'static [&'static str] = &["r", "alpha", "s", "beta"];

    /// Note 008, eq. 22, with the terms of each distinct (x, u) computed
    /// once (on all cores) and combined per row; the same value as
    /// `row_log_likelihood` row by row.
    fn log_likelihood(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let r = D::variable(theta[0], 0);
        let alpha = D::variable(theta[1], 1);
        let s = D::variable(theta[2], 2);
        let beta = D::variable(theta[3], 3);
        let terms: Vec<Option<D>> =
            crate::fit::par_map(&self.pairs, |&(x, u)| a0_term(r, alpha, s, beta, x, u));
        let (lg_r, ln_alpha, ln_beta) = (r.ln_gamma(), alpha.ln(), beta.ln());
        let (ll, g) = crate::fit::parallel_sum(&self.rows, |start, rows| {
            let mut ll = 0.0;
            let mut g = [0.0f64; 4];
            for (k, o) in rows.iter().enumerate() {
                let (x, t_x, t_big) = (o.x, o.t_x, o.t_big);
                let lead = (r + x).ln_gamma() - lg_r + r * ln_alpha + s * ln_beta;
                let alive_all_along = -((r + x) * (alpha + t_big).ln()) - s * (beta + t_big).ln();
                let inside = if t_x >= t_big {
                    alive_all_along
                } else {
                    let (p_tx, p_t) = self.pair_of[start + k];
                    let la0 = match (terms[p_tx as usize], terms[p_t as usize]) {
                        (Some(first), Some(second)) if first.v > second.v => {
                            log_sub_exp(first, second)
                        }
                        _ => D::constant(f64::NAN),
                    };
                    log_add_exp(alive_all_along, (s / (r + s + x)).ln() + la0)
                };
                let l = lead + inside;
                ll += o.weight * l.v;
                for (acc, d) in g.iter_mut().zip(l.d) {
                    *acc += o.weight * d;
                }
            }
            (ll, g)
        });
        (ll, g.to_vec())
    }

    fn total_weight(&self) -> f64 {
        self.total
    }

    fn n_rows(&self) -> usize {
        self.rows.len()
    }

    fn initial(&self) -> Vec<f64> {
        self.start.clone()
    }
}

impl ParetoNbd {
    pub fn new(r: f64, alpha: f64, s: f64, beta: f64) -> Result<Self, ModelError> {
        Ok(ParetoNbd {
            r: check_param("r", r)?,
            alpha: check_param("alpha", alpha)?,
            s: check_param("s", s)?,
            beta: check_param("beta", beta)?,
        })
    }

    /// `[r, alpha, s, beta]`.
    pub fn params(&self) -> [f64; 4] {
        [self.r, self.alpha, self.s, self.beta]
    }

    /// One history's log-likelihood (note 008, eq. 22).
    pub fn log_likelihood(&self, x: f64, t_x: f64, t_big: f64) -> f64 {
        row_log_likelihood(self.params(), x, t_x, t_big).v
    }

    pub fn fit(
        data: &[Observation],
        config: &FitConfig,
    ) -> Result<(ParetoNbd, FitReport), ModelError> {
        let rows = collapse(data)?;
        if !rows.iter().any(|o| o.x > 0.0) {
            return Err(ModelError::NotIdentified(
                "no customer has a repeat purchase (x > 0), so the lifetime process cannot be estimated".into(),
            ));
        }
        let total = rows.iter().map(|o| o.weight).sum();
        // Start from the purchase process of a BG/NBD fit (same r, α
        // meaning) and a lifetime process of the same time scale: the
        // hypergeometric terms stay well-conditioned on the way to the optimum.
        let start = match crate::BgNbd::fit(&rows, config) {
            Ok((bg, _)) => {
                let [r, alpha, _, _] = bg.params();
                vec![r, alpha, 1.0, alpha]
            }
            Err(_) => vec![1.0; 4],
        };
        let report = maximize(&Data::new(rows, total, start), config)?;
        let p = &report.params;
        Ok((ParetoNbd::new(p[0], p[1], p[2], p[3])?, report))
    }

    /// P(alive at T | x, t_x, T) (note 008, eq. 24 ff.).
    pub fn p_alive(&self, x: f64, t_x: f64, t_big: f64) -> f64 {
        let c = |v: f64| D::constant(v);
        let (r, alpha, s, beta) = (c(self.r), c(self.alpha), c(self.s), c(self.beta));
        match ln_a0(r, alpha, s, beta, x, t_x, t_big) {
            Some(la0) => {
                let log_odds = (self.s / (self.r + self.s + x)).ln()
                    + (self.r + x) * (self.alpha + t_big).ln()
                    + self.s * (self.beta + t_big).ln()
                    + la0.v;
                crate::alive_from_log_odds(log_odds)
            }
            None => 1.0,
        }
    }

    /// Expected purchases of a new customer in (0, t] (note 008, eq. 27):
    /// rβ/(α(s−1)) [1 − (β/(β+t))^{s−1}].
    pub fn expected_purchases(&self, t: f64) -> f64 {
        let (r, alpha, s, beta) = (self.r, self.alpha, self.s, self.beta);
        if (s - 1.0).abs() < 1e-12 {
            return r * beta / alpha * (1.0 + t / beta).ln();
        }
        r * beta / (alpha * (s - 1.0)) * (1.0 - (beta / (beta + t)).powf(s - 1.0))
    }

    /// Expected purchases in the next `t` of a customer with history (x,
    /// t_x, T) (note 008, eq. 41): P(alive) × (r+x)(β+T)/((α+T)(s−1)) × [1 −
    /// ((β+T)/(β+T+t))^{s−1}].
    pub fn conditional_expected_purchases(
        &self,
        t: f64,
        x: f64,
        t_x: f64,
        t_big: f64,
    ) -> Result<f64, ModelError> {
        Observation::new(x, t_x, t_big).check(0)?;
        Ok(self.p_alive(x, t_x, t_big) * self.expected_if_alive(t, x, t_big))
    }

    /// E[purchases in the next t | history, alive at T] (x and T only).
    pub(crate) fn expected_if_alive(&self, t: f64, x: f64, t_big: f64) -> f64 {
        let (r, alpha, s, beta) = (self.r, self.alpha, self.s, self.beta);
        if (s - 1.0).abs() < 1e-12 {
            (r + x) / (alpha + t_big) * (beta + t_big) * (1.0 + t / (beta + t_big)).ln()
        } else {
            (r + x) * (beta + t_big) / ((alpha + t_big) * (s - 1.0))
                * (1.0 - ((beta + t_big) / (beta + t_big + t)).powf(s - 1.0))
        }
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
        ];
        let data = Data::new(rows.clone(), 5.0, vec![]);
        crate::fit::assert_gradient(&data, &[0.55, 10.6, 0.6, 11.7]);
        // Also with alpha < beta (the other branch of A₀).
        crate::fit::assert_gradient(&data, &[0.55, 8.0, 0.6, 11.7]);
        // The per-pair evaluation equals the row-by-row one.
        for theta in [[0.55, 10.6, 0.6, 11.7], [0.55, 8.0, 0.6, 11.7]] {
            let (ll, g) = data.log_likelihood(&theta);
            let (mut want, mut want_g) = (0.0, [0.0; 4]);
            for o in &rows {
                let l = row_log_likelihood(theta, o.x, o.t_x, o.t_big);
                want += o.weight * l.v;
                for (w, d) in want_g.iter_mut().zip(l.d) {
                    *w += o.weight * d;
                }
            }
            assert!((ll - want).abs() < 1e-12 * want.abs());
            for (a, b) in g.iter().zip(want_g) {
                assert!((a - b).abs() < 1e-12 * b.abs().max(1.0));
            }
        }
    }

    #[test]
    fn likelihood_is_finite_for_large_histories() {
        let m = ParetoNbd::new(0.553, 10.578, 0.606, 11.669).unwrap();
        for (x, t_x, t_big) in [
            (500.0, 4999.0, 5000.0),
            (500.0, 10.0, 5000.0),
            (0.0, 0.0, 5000.0),
        ] {
            let ll = m.log_likelihood(x, t_x, t_big);
            assert!(ll.is_finite(), "LL({x}, {t_x}, {t_big}) = {ll}");
            let p = m.p_alive(x, t_x, t_big);
            assert!((0.0..=1.0).contains(&p), "{p}");
        }
    }
}

//! The BG/NBD model of Fader, Hardie & Lee (2005), "Counting your customers
//! the easy way: an alternative to the Pareto/NBD model", Marketing Science
//! 24(2), 275-284 (FHL below).
//!
//! While active, a customer buys as a Poisson process with rate λ ~ Gamma(r,
//! α); after each purchase they become inactive with probability p ~ Beta(a,
//! b). Symbols: `x` repeat purchases, `t_x` time of the last purchase, `t_big`
//! (T) the length of observation, all from the first purchase.

use statrs::function::gamma::{digamma, ln_gamma};

use crate::fit::{FitConfig, FitReport, Likelihood, maximize};
use crate::special::hyp2f1;
use crate::{ModelError, check_param};

/// One customer's history, or `weight` customers with the same history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub x: f64,
    pub t_x: f64,
    pub t_big: f64,
    pub weight: f64,
}

impl Observation {
    pub fn new(x: f64, t_x: f64, t_big: f64) -> Self {
        Observation {
            x,
            t_x,
            t_big,
            weight: 1.0,
        }
    }

    pub(crate) fn check(&self, index: usize) -> Result<(), ModelError> {
        let bad = |message: String| Err(ModelError::BadObservation { index, message });
        let Observation {
            x,
            t_x,
            t_big,
            weight,
        } = *self;
        if !(x.is_finite() && t_x.is_finite() && t_big.is_finite() && weight.is_finite()) {
            return bad("values must be finite".into());
        }
        if x < 0.0 || t_x < 0.0 || t_big < 0.0 || weight <= 0.0 {
            return bad(format!(
                "x = {x}, t_x = {t_x}, T = {t_big}, weight = {weight}: no negative values, positive weight"
            ));
        }
        if t_x > t_big {
            return bad(format!("t_x = {t_x} is after T = {t_big}"));
        }
        if x == 0.0 && t_x != 0.0 {
            return bad(format!(
                "t_x = {t_x} with no repeat purchase (x = 0 needs t_x = 0)"
            ));
        }
        Ok(())
    }
}

/// Fitted or given BG/NBD parameters (time in the caller's unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    r: f64,
    alpha: f64,
    a: f64,
    b: f64,
}

/// Collapsed, validated data, with each row's x as an index into the
/// distinct values of x: the special functions of x are evaluated once per
/// distinct x, not once per row.
struct Data {
    rows: Vec<Observation>,
    total: f64,
    xs: Vec<f64>,
    x_index: Vec<u32>,
    /// The distinct values of t_x and T together, and each row's index of
    /// its t_x and its T: ln(α + t) is taken once per distinct time.
    times: Vec<f64>,
    time_index: Vec<(u32, u32)>,
}

impl Data {
    fn new(rows: Vec<Observation>, total: f64) -> Data {
        let (xs, x_index) = crate::fit::distinct_values(rows.iter().map(|o| o.x));
        let (times, flat) = crate::fit::distinct_values(rows.iter().flat_map(|o| [o.t_x, o.t_big]));
        let time_index = flat.chunks(2).map(|c| (c[0], c[1])).collect();
        Data {
            rows,
            total,
            xs,
            x_index,
            times,
            time_index,
        }
    }
}

/// A time scale for the optimiser's start: α starts at a tenth of the
/// longest observation (as lifetimes rescales time so that max T = 10), so
/// that the start is equally good in days, weeks or months.
pub(crate) fn start_alpha(rows: &[Observation]) -> f64 {
    let longest = rows.iter().map(|o| o.t_big).fold(0.0, f64::max);
    if longest > 0.0 { longest / 10.0 } else { 1.0 }
}

/// Sums the weights of identical (x, t_x, T) rows, keeping first-seen order.
pub(crate) fn collapse(data: &[Observation]) -> Result<Vec<Observation>, ModelError> {
    let mut index: crate::FastMap<(u64, u64, u64), usize> = crate::FastMap::default();
    let mut rows: Vec<Observation> = Vec::new();
    for (i, o) in data.iter().enumerate() {
        o.check(i)?;
        let key = (o.x.to_bits(), o.t_x.to_bits(), o.t_big.to_bits());
        match index.get(&key) {
            Some(&k) => rows[k].weight += o.weight,
            None => {
                index.insert(key, rows.len());
                rows.push(*o);
            }
        }
    }
    Ok(rows)
}

impl Likelihood for Data {
    const NAMES: &'static [&'static str] = &["r", "alpha", "a", "b"];

    /// FHL eq. (6), summed with weights; the gradient is analytic.
    fn log_likelihood(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (r, alpha, a, b) = (theta[0], theta[1], theta[2], theta[3]);
        let (lg_r, dg_r, ln_alpha) = (ln_gamma(r), digamma(r), alpha.ln());
        let (lg_ab, dg_ab, lg_b, dg_b) = (ln_gamma(a + b), digamma(a + b), ln_gamma(b), digamma(b));
        // Per distinct x: the x-only part of ℓ and of each derivative.
        let per_x: Vec<[f64; 5]> = self
            .xs
            .iter()
            .map(|&x| {
                let (psi_rx, psi_bx, psi_abx) =
                    (digamma(r + x), digamma(b + x), digamma(a + b + x));
                [
                    ln_gamma(r + x) - lg_r + r * ln_alpha + lg_ab + ln_gamma(b + x)
                        - lg_b
                        - ln_gamma(a + b + x),
                    psi_rx - dg_r + ln_alpha,
                    dg_ab - psi_abx,
                    dg_ab + psi_bx - dg_b - psi_abx,
                    if x > 0.0 {
                        a.ln() - (b + x - 1.0).ln()
                    } else {
                        0.0
                    },
                ]
            })
            .collect();
        let ln_times: Vec<f64> = self.times.iter().map(|t| (alpha + t).ln()).collect();
        let (ll, g) = crate::fit::parallel_sum(&self.rows, |start, rows| {
            let mut ll = 0.0;
            let mut g = [0.0f64; 4];
            for (k, o) in rows.iter().enumerate() {
                let (x, t_x, tt, w) = (o.x, o.t_x, o.t_big, o.weight);
                let c = &per_x[self.x_index[start + k] as usize];
                let (i_tx, i_t) = self.time_index[start + k];
                let ln_at = ln_times[i_t as usize];
                let a3 = -(r + x) * ln_at;
                let mut dr = c[1] - ln_at;
                let mut dalpha = r / alpha - (r + x) / (alpha + tt);
                let mut da = c[2];
                let mut db = c[3];
                let term = if x > 0.0 {
                    let ln_atx = ln_times[i_tx as usize];
                    let a4 = c[4] - (r + x) * ln_atx;
                    // log(e^a3 + e^a4) with one exp: the larger term
                    // carries weight 1/(1+e), the smaller e/(1+e).
                    let e = (-(a3 - a4).abs()).exp();
                    let (w_big, w_small) = (1.0 / (1.0 + e), e / (1.0 + e));
                    let (w3, w4) = if a3 >= a4 {
                        (w_big, w_small)
                    } else {
                        (w_small, w_big)
                    };
                    dr = c[1] - w3 * ln_at - w4 * ln_atx;
                    dalpha = r / alpha - w3 * (r + x) / (alpha + tt) - w4 * (r + x) / (alpha + t_x);
                    da += w4 / a;
                    db -= w4 / (b + x - 1.0);
                    a3.max(a4) + e.ln_1p()
                } else {
                    a3
                };
                ll += w * (c[0] + term);
                g[0] += w * dr;
                g[1] += w * dalpha;
                g[2] += w * da;
                g[3] += w * db;
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
        vec![1.0, start_alpha(&self.rows), 1.0, 1.0]
    }
}

/// (1 − z)^{a−1} 2F1(a+b−1−r, a−1; a+b+x−1; z): FHL's (α+T)/(α+T+t))^{r+x}
/// 2F1(r+x, b+x; a+b+x−1; z) after Euler's transformation (A&S 15.3.3),
/// whose series converges fast even for large x.
fn euler_term(r: f64, a: f64, b: f64, x: f64, z: f64) -> Result<f64, ModelError> {
    let f = hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z)
        .map_err(|e| ModelError::Numerical(format!("2F1 failed: {e:?}")))?;
    Ok((1.0 - z).powf(a - 1.0) * f)
}

impl BgNbd {
    pub fn new(r: f64, alpha: f64, a: f64, b: f64) -> Result<Self, ModelError> {
        Ok(BgNbd {
            r: check_param("r", r)?,
            alpha: check_param("alpha", alpha)?,
            a: check_param("a", a)?,
            b: check_param("b", b)?,
        })
    }

    /// `[r, alpha, a, b]`.
    pub fn params(&self) -> [f64; 4] {
        [self.r, self.alpha, self.a, self.b]
    }

    /// The same model with time measured in units `scale` times longer
    /// (e.g. 7 to go from days to weeks): only α changes.
    pub fn rescaled(&self, scale: f64) -> Result<Self, ModelError> {
        BgNbd::new(self.r, self.alpha / scale, self.a, self.b)
    }

    /// One customer's log-likelihood (FHL eq. 6).
    pub fn log_likelihood(&self, x: f64, t_x: f64, t_big: f64) -> f64 {
        let data = Data::new(vec![Observation::new(x, t_x, t_big)], 1.0);
        data.log_likelihood(&self.params()).0
    }

    /// Fits the model by maximum likelihood; identical rows are collapsed
    /// first, so the cost grows with distinct (x, t_x, T), not customers.
    pub fn fit(data: &[Observation], config: &FitConfig) -> Result<(BgNbd, FitReport), ModelError> {
        let rows = collapse(data)?;
        if !rows.iter().any(|o| o.x > 0.0) {
            return Err(ModelError::NotIdentified(
                "no customer has a repeat purchase (x > 0), so the drop-out process cannot be estimated".into(),
            ));
        }
        let total = rows.iter().map(|o| o.weight).sum();
        let data = Data::new(rows, total);
        let report = maximize(&data, config)?;
        let p = &report.params;
        let model = BgNbd::new(p[0], p[1], p[2], p[3])?;
        Ok((model, report))
    }

    /// Expected purchases of a new customer in (0, t]: E[X(t)], FHL eq. (7).
    pub fn expected_purchases(&self, t: f64) -> Result<f64, ModelError> {
        if t <= 0.0 {
            return Ok(0.0);
        }
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let z = t / (alpha + t);
        Ok(ratio_times_one_minus(
            a + b - 1.0,
            a,
            euler_term(r, a, b, 0.0, z)?,
        ))
    }

    /// Expected purchases in the next `t` of a customer with history (x,
    /// t_x, T): FHL eq. (10).
    pub fn conditional_expected_purchases(
        &self,
        t: f64,
        x: f64,
        t_x: f64,
        t_big: f64,
    ) -> Result<f64, ModelError> {
        Observation::new(x, t_x, t_big).check(0)?;
        if t <= 0.0 {
            return Ok(0.0);
        }
        Ok(self.expected_if_alive(t, x, t_big)? * self.p_alive(x, t_x, t_big))
    }

    /// E[purchases in the next t | history, alive at T]: depends on x and
    /// T only (FHL eq. 10 without its P(alive) factor).
    pub(crate) fn expected_if_alive(&self, t: f64, x: f64, t_big: f64) -> Result<f64, ModelError> {
        if t <= 0.0 {
            return Ok(0.0);
        }
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let z = t / (alpha + t_big + t);
        Ok(ratio_times_one_minus(
            a + b + x - 1.0,
            a,
            euler_term(r, a, b, x, z)?,
        ))
    }

    /// P(X(t) = n): the probability that a new customer makes exactly `n`
    /// repeat purchases in (0, t] (FHL eq. 8), in logs for large n.
    pub fn probability_of_purchases(&self, t: f64, n: u32) -> f64 {
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        if t <= 0.0 {
            return if n == 0 { 1.0 } else { 0.0 };
        }
        let nf = f64::from(n);
        let (lp, lq) = ((alpha / (alpha + t)).ln(), (t / (alpha + t)).ln());
        // ln of the NBD probability Γ(r+j)/(Γ(r) j!) p^r q^j.
        let nbd = |j: f64| ln_gamma(r + j) - ln_gamma(r) - ln_gamma(j + 1.0) + r * lp + j * lq;
        let ln_beta_ab = statrs::function::beta::ln_beta(a, b);
        let mut p = (statrs::function::beta::ln_beta(a, b + nf) - ln_beta_ab + nbd(nf)).exp();
        if n > 0 {
            let partial: f64 = (0..n).map(|j| nbd(f64::from(j)).exp()).sum();
            p += (statrs::function::beta::ln_beta(a + 1.0, b + nf - 1.0) - ln_beta_ab).exp()
                * (1.0 - partial).max(0.0);
        }
        p
    }

    /// Probability that a customer with history (x, t_x, T) is still active
    /// at T (FHL appendix, eq. 13): 1 for x = 0.
    pub fn p_alive(&self, x: f64, t_x: f64, t_big: f64) -> f64 {
        if x <= 0.0 {
            return 1.0;
        }
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let log_odds =
            a.ln() - (b + x - 1.0).ln() + (r + x) * ((alpha + t_big).ln() - (alpha + t_x).ln());
        crate::alive_from_log_odds(log_odds)
    }
}

/// c/(a−1) · (1 − e). (At exactly a = 1 both factors degenerate; a fit
/// never lands there exactly.)
fn ratio_times_one_minus(c: f64, a: f64, e: f64) -> f64 {
    c / (a - 1.0) * (1.0 - e)
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
        crate::fit::assert_gradient(&Data::new(rows, 6.0), &[0.3, 4.0, 0.8, 2.4]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(BgNbd::new(0.0, 1.0, 1.0, 1.0).is_err());
        assert!(BgNbd::new(1.0, f64::NAN, 1.0, 1.0).is_err());
        let m = BgNbd::new(0.243, 4.414, 0.793, 2.426).unwrap();
        assert!(
            m.conditional_expected_purchases(39.0, 1.0, 40.0, 38.0)
                .is_err()
        );
        assert!(BgNbd::fit(&[Observation::new(0.0, 0.0, 10.0)], &FitConfig::default()).is_err());
    }
}

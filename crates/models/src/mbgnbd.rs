//! The MBG/NBD model of Batislam, Denizel & Filiztekin (2007), "Empirical
//! validation and comparison of models for customer base analysis",
//! International Journal of Research in Marketing 24(3), 201-209: the BG/NBD
//! of [`crate::BgNbd`] where a customer may also drop out right after the
//! first purchase, so customers without repeat purchases are not assumed
//! active.

use statrs::function::gamma::{digamma, ln_gamma};

use crate::bgnbd::{collapse, start_alpha};
use crate::fit::{FitConfig, FitReport, Likelihood, maximize};
use crate::special::hyp2f1;
use crate::{ModelError, Observation, check_param};

/// MBG/NBD parameters (time in the caller's unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MbgNbd {
    r: f64,
    alpha: f64,
    a: f64,
    b: f64,
}

struct Data {
    rows: Vec<Observation>,
    total: f64,
}

impl Likelihood for Data {
    const NAMES: &'static [&'static str] = &["r", "alpha", "a", "b"];

    /// L = Γ(r+x)α^r/Γ(r) · B(a, b+x+1)/B(a, b) · [(α+T)^{−(r+x)} +
    /// a/(b+x) (α+t_x)^{−(r+x)}], with weights; analytic gradient.
    fn log_likelihood(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (r, alpha, a, b) = (theta[0], theta[1], theta[2], theta[3]);
        let (lg_r, dg_r, ln_alpha) = (ln_gamma(r), digamma(r), alpha.ln());
        let (lg_ab, dg_ab, lg_b, dg_b) = (ln_gamma(a + b), digamma(a + b), ln_gamma(b), digamma(b));
        let mut ll = 0.0;
        let mut g = [0.0f64; 4];
        for o in &self.rows {
            let (x, t_x, tt, w) = (o.x, o.t_x, o.t_big, o.weight);
            let a1 = ln_gamma(r + x) - lg_r + r * ln_alpha;
            let a2 = lg_ab + ln_gamma(b + x + 1.0) - lg_b - ln_gamma(a + b + x + 1.0);
            let a3 = -(r + x) * (alpha + tt).ln();
            let a4 = a.ln() - (b + x).ln() - (r + x) * (alpha + t_x).ln();
            let m = a3.max(a4);
            let s = (a3 - m).exp() + (a4 - m).exp();
            let (w3, w4) = ((a3 - m).exp() / s, (a4 - m).exp() / s);
            ll += w * (a1 + a2 + m + s.ln());
            let psi_abx1 = digamma(a + b + x + 1.0);
            g[0] += w
                * (digamma(r + x) - dg_r + ln_alpha
                    - w3 * (alpha + tt).ln()
                    - w4 * (alpha + t_x).ln());
            g[1] += w * (r / alpha - w3 * (r + x) / (alpha + tt) - w4 * (r + x) / (alpha + t_x));
            g[2] += w * (dg_ab - psi_abx1 + w4 / a);
            g[3] += w * (dg_ab + digamma(b + x + 1.0) - dg_b - psi_abx1 - w4 / (b + x));
        }
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

impl MbgNbd {
    pub fn new(r: f64, alpha: f64, a: f64, b: f64) -> Result<Self, ModelError> {
        Ok(MbgNbd {
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

    pub fn fit(
        data: &[Observation],
        config: &FitConfig,
    ) -> Result<(MbgNbd, FitReport), ModelError> {
        let rows = collapse(data)?;
        if !rows.iter().any(|o| o.x > 0.0) {
            return Err(ModelError::NotIdentified(
                "no customer has a repeat purchase (x > 0), so the drop-out process cannot be estimated".into(),
            ));
        }
        let total = rows.iter().map(|o| o.weight).sum();
        let report = maximize(&Data { rows, total }, config)?;
        let p = &report.params;
        Ok((MbgNbd::new(p[0], p[1], p[2], p[3])?, report))
    }

    /// One history's log-likelihood.
    pub fn log_likelihood(&self, x: f64, t_x: f64, t_big: f64) -> f64 {
        let data = Data {
            rows: vec![Observation::new(x, t_x, t_big)],
            total: 1.0,
        };
        data.log_likelihood(&self.params()).0
    }

    /// P(active at T | x, t_x, T) = 1 / (1 + a/(b+x) ((α+T)/(α+t_x))^{r+x}).
    pub fn p_alive(&self, x: f64, t_x: f64, t_big: f64) -> f64 {
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let log_odds =
            a.ln() - (b + x).ln() + (r + x) * ((alpha + t_big).ln() - (alpha + t_x).ln());
        crate::alive_from_log_odds(log_odds)
    }

    /// Expected purchases of a new customer in (0, t]:
    /// b/(a−1) [1 − (α/(α+t))^r 2F1(r, b+1; a+b; t/(α+t))].
    pub fn expected_purchases(&self, t: f64) -> Result<f64, ModelError> {
        if t <= 0.0 {
            return Ok(0.0);
        }
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let z = t / (alpha + t);
        // Euler's transformation of the 2F1 term, as for the BG/NBD.
        let f = hyp2f1(a + b - r, a - 1.0, a + b, z)
            .map_err(|e| ModelError::Numerical(format!("2F1: {e:?}")))?;
        Ok(b / (a - 1.0) * (1.0 - (1.0 - z).powf(a - 1.0) * f))
    }

    /// Expected purchases in the next `t` of a customer with history (x,
    /// t_x, T): (a+b+x)/(a−1) [1 − ((α+T)/(α+T+t))^{r+x} 2F1(r+x, b+x+1;
    /// a+b+x; z)] × P(alive).
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

    /// E[purchases in the next t | history, alive at T] (x and T only).
    pub(crate) fn expected_if_alive(&self, t: f64, x: f64, t_big: f64) -> Result<f64, ModelError> {
        if t <= 0.0 {
            return Ok(0.0);
        }
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let z = t / (alpha + t_big + t);
        let f = hyp2f1(a + b - r, a - 1.0, a + b + x, z)
            .map_err(|e| ModelError::Numerical(format!("2F1: {e:?}")))?;
        Ok((a + b + x) / (a - 1.0) * (1.0 - (1.0 - z).powf(a - 1.0) * f))
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
        crate::fit::assert_gradient(&Data { rows, total: 5.0 }, &[0.5, 6.0, 0.9, 1.6]);
    }
}

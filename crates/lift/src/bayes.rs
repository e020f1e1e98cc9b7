//! F7, GrowthBook's Bayesian effect model: the data's Gaussian estimate of
//! the effect, combined with a flat (improper) or a normal prior on the
//! relative scale; chance to win, credible interval and risk.

use crate::{Effect, Scale, in_unit, normal_cdf, normal_pdf, normal_quantile, positive};

/// A normal prior on the relative lift, `N(mean, sd²)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    pub mean: f64,
    pub sd: f64,
}

impl Prior {
    /// GrowthBook's default proper prior, `N(0, 0.3²)`.
    pub const GROWTHBOOK: Prior = Prior { mean: 0.0, sd: 0.3 };
}

/// The posterior of the effect and what it says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BayesResult {
    pub mean: f64,
    pub sd: f64,
    /// P(the treatment is better): P(effect > 0), or P(effect < 0) for an
    /// inverse metric.
    pub chance_to_win: f64,
    pub ci: (f64, f64),
    /// [expected loss choosing control, expected loss choosing treatment].
    pub risk: (f64, f64),
}

/// The posterior for `e` (on `scale`) under `prior` (`None`: flat). A
/// proper prior is on the relative scale and is rescaled by |μ_A| for
/// absolute effects. `None` when the posterior has no spread or alpha is
/// not in (0, 1).
pub fn posterior(
    e: &Effect,
    scale: Scale,
    prior: Option<Prior>,
    inverse: bool,
    alpha: f64,
) -> Option<BayesResult> {
    if !(in_unit(alpha) && positive(e.var)) {
        return None;
    }
    let (mean, sd) = match prior {
        None => (e.estimate, e.var.sqrt()),
        Some(p) => {
            let (m, s2) = match scale {
                Scale::Relative => (p.mean, p.sd * p.sd),
                Scale::Absolute => (
                    p.mean * e.control_mean.abs(),
                    p.sd * p.sd * e.control_mean * e.control_mean,
                ),
            };
            if !positive(s2) {
                return None;
            }
            let precision = 1.0 / e.var + 1.0 / s2;
            (
                (e.estimate / e.var + m / s2) / precision,
                precision.powf(-0.5),
            )
        }
    };
    let z = mean / sd;
    let ctw = normal_cdf(z);
    let q = normal_quantile(1.0 - alpha / 2.0);
    let risk_control = mean * normal_cdf(z) + sd * normal_pdf(z);
    let risk_treatment = sd * normal_pdf(z) - mean * normal_cdf(-z);
    let (chance_to_win, risk) = if inverse {
        (1.0 - ctw, (risk_treatment, risk_control))
    } else {
        (ctw, (risk_control, risk_treatment))
    };
    Some(BayesResult {
        mean,
        sd,
        chance_to_win,
        ci: (mean - q * sd, mean + q * sd),
        risk: (risk.0.max(0.0), risk.1.max(0.0)),
    })
}

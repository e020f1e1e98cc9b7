//! One metric's readout for a treatment arm against control: the effect on
//! both scales by the chosen method, the Bayesian view when asked, and the
//! incremental total. Shared by the offline `lifecycle lift` and the live
//! moment results.

use crate::bayes::{Prior, posterior};
use crate::{
    Arm, CupedKind, CupedSums, Effect, RatioSums, Scale, TestResult, cuped_effect, effect,
    incremental_total, sequential, t_test,
};

/// An arm's sums for one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// A mean or proportion (F1/F2).
    Plain(Arm),
    /// A ratio of sums (F8).
    Ratio(RatioSums),
    /// A metric with its pre-period covariate (F9).
    Cuped(CupedSums, CupedKind),
}

impl Stat {
    pub fn n(&self) -> u64 {
        match self {
            Stat::Plain(a) => a.n as u64,
            Stat::Ratio(r) => r.n,
            Stat::Cuped(c, _) => c.n,
        }
    }

    /// The arm's (unadjusted) mean.
    pub fn mean(&self) -> Option<f64> {
        match self {
            Stat::Plain(a) => (a.n > 0.0).then_some(a.mean),
            Stat::Ratio(r) => (r.d_sum != 0.0).then(|| r.m_sum / r.d_sum),
            Stat::Cuped(c, _) => (c.n > 0).then(|| c.y_sum / c.n as f64),
        }
    }
}

/// The effect of `treatment` over `control`; `None` for mismatched kinds
/// or degenerate arms.
pub fn effect_of(control: &Stat, treatment: &Stat, scale: Scale) -> Option<Effect> {
    match (control, treatment) {
        (Stat::Plain(a), Stat::Plain(b)) => effect(a, b, scale),
        (Stat::Ratio(a), Stat::Ratio(b)) => effect(&Arm::ratio(a)?, &Arm::ratio(b)?, scale),
        (Stat::Cuped(a, k), Stat::Cuped(b, _)) => cuped_effect(a, b, *k, scale),
        _ => None,
    }
}

/// How the readout tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    Frequentist,
    /// Confidence sequences with this tuning parameter N*.
    Sequential(f64),
    /// The effect model with a proper prior, or flat (`None`).
    Bayesian(Option<Prior>),
}

/// One metric's readout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricReadout {
    pub n: u64,
    pub mean: Option<f64>,
    pub control_n: u64,
    pub control_mean: Option<f64>,
    pub absolute: Option<TestResult>,
    /// For the Bayesian method: the posterior mean, sd and credible interval
    /// (the p-value is then NaN, not meaningful).
    pub relative: Option<TestResult>,
    pub chance_to_win: Option<f64>,
    pub risk: Option<(f64, f64)>,
    /// The absolute effect times the treated units, with its interval.
    pub incremental_total: Option<(f64, (f64, f64))>,
}

/// The readout of one metric.
pub fn readout(
    control: &Stat,
    treatment: &Stat,
    method: Method,
    alpha: f64,
    inverse: bool,
) -> MetricReadout {
    let abs = effect_of(control, treatment, Scale::Absolute);
    let rel = effect_of(control, treatment, Scale::Relative);
    let n_total = (control.n() + treatment.n()) as f64;
    let test = |e: &Effect| match method {
        Method::Sequential(tuning) => sequential::test(e, n_total, alpha, tuning),
        _ => t_test(e, alpha),
    };
    let absolute = abs.as_ref().and_then(test);
    let mut relative = rel.as_ref().and_then(test);
    let (mut chance_to_win, mut risk) = (None, None);
    if let Method::Bayesian(prior) = method
        && let Some(b) = rel
            .as_ref()
            .and_then(|e| posterior(e, Scale::Relative, prior, inverse, alpha))
    {
        relative = Some(TestResult {
            estimate: b.mean,
            se: b.sd,
            ci: b.ci,
            p_value: f64::NAN,
            dof: rel.map_or(f64::INFINITY, |e| e.dof),
        });
        chance_to_win = Some(b.chance_to_win);
        risk = Some(b.risk);
    }
    MetricReadout {
        n: treatment.n(),
        mean: treatment.mean(),
        control_n: control.n(),
        control_mean: control.mean(),
        incremental_total: absolute
            .as_ref()
            .map(|a| incremental_total(a, treatment.n() as f64)),
        absolute,
        relative,
        chance_to_win,
        risk,
    }
}

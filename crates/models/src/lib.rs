//! Probabilistic models of customer bases: who is still a customer, how much
//! they will buy, and what they are worth.
//!
//! This crate owns the models and their fitting: [`BgNbd`] (Fader, Hardie &
//! Lee 2005, "Counting your customers the easy way"), [`MbgNbd`] (Batislam,
//! Denizel & Filiztekin 2007), [`BgBb`] (Fader, Hardie & Shang 2010),
//! [`ShiftedBetaGeometric`] (Fader & Hardie 2007), [`ParetoNbd`]
//! (Schmittlein, Morrison & Colombo 1987) and [`GammaGamma`] (Fader,
//! Hardie & Lee 2005, "RFM and CLV: using iso-value curves for customer base
//! analysis"), fitted by maximum likelihood with a
//! quasi-Newton optimiser (BFGS from `argmin`) on log-parameters, with
//! analytic gradients (forward-mode automatic ones for the Pareto/NBD),
//! weights for collapsed identical rows, an optional L2 penalty, and
//! standard errors from the observed information.
//!
//! It is pure: no IO, no async, no clock, no serialisation. Time is a plain
//! number in whatever unit the caller chose (the parameters then carry that
//! unit). It must never depend on ingestion, storage, server or CLI crates.
//!
//! Symbols follow the papers: a customer's repeat purchases `x`, the time of
//! the last purchase `t_x` and the length of observation `T` (all measured
//! from the first purchase); BG/NBD parameters `r, alpha, a, b`; Gamma-Gamma
//! parameters `p, q, gamma`.

mod bgbb;
mod bgnbd;
mod covariates;
mod dual;
mod fit;
mod gamma_gamma;
mod mbgnbd;
mod pareto_nbd;
mod predictive;
mod sbg;
pub mod special;

pub use bgbb::{BgBb, BinomialObservation};
pub use bgnbd::{BgNbd, Observation};
pub use covariates::BgNbdCovariates;
pub use fit::{FitConfig, FitReport};
pub use gamma_gamma::{GammaGamma, SpendObservation};
pub use mbgnbd::MbgNbd;
pub use pareto_nbd::ParetoNbd;
pub use predictive::{
    Forecast, FuturePurchases, PurchaseModel, dert_by_quadrature, expected_purchases_se,
    forecast_total, normal_quantile,
};
pub use sbg::ShiftedBetaGeometric;

/// Errors of model parameters and fitting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("parameter {name} = {value} must be finite and positive")]
    BadParameter { name: &'static str, value: f64 },
    #[error("observation {index}: {message}")]
    BadObservation { index: usize, message: String },
    #[error("the data cannot identify the model: {0}")]
    NotIdentified(String),
    #[error(
        "the fit did not converge after {iterations} iterations (gradient norm {gradient_norm:.3e})"
    )]
    NoConvergence { iterations: u64, gradient_norm: f64 },
    #[error("optimiser failed: {0}")]
    Optimiser(String),
    #[error("numerical failure: {0}")]
    Numerical(String),
}

/// 1 / (1 + e^{log_odds}), stable for large |log_odds|: the P(alive) of the
/// models, whose odds of being inactive are computed in logs.
pub(crate) fn alive_from_log_odds(log_odds: f64) -> f64 {
    if log_odds > 0.0 {
        let e = (-log_odds).exp();
        e / (1.0 + e)
    } else {
        1.0 / (1.0 + log_odds.exp())
    }
}

/// A hash map with a fixed-seed fast hasher (deterministic, not DoS-safe:
/// keys are the caller's own numbers).
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

pub(crate) fn check_param(name: &'static str, value: f64) -> Result<f64, ModelError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ModelError::BadParameter { name, value })
    }
}

//! The live engine's rules: how one customer is scored, segmented and
//! valued between model runs, and when the passing of time alone will move
//! them to another segment.
//!
//! It owns [`ModelRun`] (the population-wide facts frozen at a run: score
//! [`Scale`]s taken from the run's quintile bands, the BG/NBD and
//! Gamma-Gamma parameters, the valuation settings), [`live_profile`] (a
//! customer's scores, segment, P(alive), CLV and expected next order on a
//! given day) and the *due day* on which a customer's recency next crosses
//! a score boundary, which the server keeps in its due-time index. It is
//! pure: no IO, no async, no clock (the day is always an argument). It
//! depends only on the pure `lifecycle-rfm`, `lifecycle-models` and
//! `lifecycle-tripwires`; it must
//! never depend on the store, server or CLI crates. Tripwires (`tripwires`):
//! a customer's open tripwires under the run's norms and personal rhythm,
//! and the next day one opens (the deadline index's key).

mod profile;
mod run;
mod scale;
mod tracking;

pub use profile::{
    LiveProfile, OpenTripwire, TripwireState, Value, clv_of, discounted_purchases, live_profile,
    progress, segment_of, tripwires,
};
pub use run::{ModelRun, RunConfig, default_scales};
pub use scale::Scale;
pub use tracking::{TrackingPoint, tracking};

/// Errors of the engine's rules.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("a stored score scale is malformed ({0})")]
    BadScale(String),
}

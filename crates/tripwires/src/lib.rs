//! Tripwires: the desired behaviour learned from the best customers, and
//! every deviation from it.
//!
//! It owns the Kaplan-Meier estimator ([`km`]) used to learn norms from
//! censored histories ("80% of your Champions placed their 2nd order
//! within 27 days of their 1st"), the norms with their evidence and the
//! temporal backtest that judges them out of sample ([`norms`]), the
//! interval estimates those need ([`stats`]), the personal-rhythm
//! tripwire from a fitted purchase model ([`rhythm`]), and who is at
//! warning or tripped on a day and when that next changes ([`check`]),
//! and custom tripwires: an action due within a window after a starting
//! event or date ([`custom`]). It is pure: no IO,
//! no async, no clock (the day is always an argument); it depends only on
//! `lifecycle-rfm` and `lifecycle-models` and must never depend on the
//! store, server, ingestion or CLI crates.

pub mod check;
pub mod custom;
pub mod km;
pub mod norms;
pub mod rhythm;
pub mod stats;

pub use check::{Progress, Standing, Status, current_step, next_deadline, standing, thresholds};
pub use custom::{CustomStanding, CustomTripwire, EventMatch, Happening, Start, evaluate};
pub use km::KaplanMeier;
pub use norms::{
    Backtest, BacktestConfig, History, LearnConfig, Lift, Norm, Outcome, Step, backtest,
    default_split, describe, durations, learn, steps,
};
pub use rhythm::{Overdue, overdue};
pub use stats::{Estimate, Moments};

//! Customer summaries, RFM scores and the lifecycle segments.
//!
//! This crate owns the path from parsed order rows to scored, segmented
//! customers: [`SummaryBuilder`] aggregates rows (one pass, mergeable across
//! threads) into [`CustomerSummary`] values; [`analyze`] scores R, F and M
//! ([`Scoring`]) and assigns each customer exactly one segment of a validated
//! [`SegmentTable`], grouped into five [`Phase`]s.
//!
//! It is pure: no IO, no async, no clock (the analysis day is an argument),
//! no serialisation. It must never depend on the ingestion, storage, server
//! or CLI crates; they depend on it.
//!
//! Glossary: a *customer* is one id in the input; an *order* is the rows
//! sharing an order id (or, without one, a customer and timestamp); a
//! *purchase day* is a calendar day with at least one order; *frequency*,
//! *recency* and *T* follow Fader, Hardie & Lee (2005) "Counting your
//! customers the easy way": repeat purchase days, days from first to last
//! purchase day, and days from first purchase day to the analysis date.

mod analysis;
mod score;
mod segment;
mod summary;

pub use analysis::{
    Analysis, AnalysisConfig, Boundaries, CustomerScore, ScoredCustomer, Scores, SegmentStats, Sum,
    Totals, analyze, pareto_share,
};
pub use score::{Better, Cuts, ScoreBand, Scoring, Thresholds, score_values};
pub use segment::{Kind, Phase, Profile, Rule, Segment, SegmentTable, default_segments};
pub use summary::{CustomerSummary, Day, FinishStats, OrderEntry, OrderRow, SummaryBuilder};

/// Errors of rule tables and score definitions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScoreError {
    #[error("score cut points must be finite and strictly ascending, got {0:?}")]
    CutsNotAscending(Vec<f64>),
    #[error("the segment table is empty")]
    NoSegments,
    #[error("too many segments ({0})")]
    TooManySegments(usize),
    #[error("segment '{0}' is defined twice")]
    DuplicateSegment(String),
    #[error("segment '{segment}': score range {score} = {range} is not within 1-5")]
    BadRange {
        segment: String,
        score: &'static str,
        range: String,
    },
    #[error(
        "no segment matches customers with {0}; every customer must land in exactly one segment"
    )]
    Gap(String),
    #[error(
        "customers with {profile} match both '{first}' and '{second}'; every customer must land in exactly one segment"
    )]
    Overlap {
        profile: String,
        first: String,
        second: String,
    },
    #[error("scores out of range 1-5: {0}")]
    ScoreOutOfRange(String),
}

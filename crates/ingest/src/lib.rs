//! Reading order and event files for Lifecycle.
//!
//! This crate owns everything between a file on disk and a
//! [`lifecycle_rfm::SummaryBuilder`]: recognising the format (CSV/TSV,
//! whitespace text, NDJSON including Segment `Order Completed` messages,
//! Parquet, each optionally gzip-compressed), the delimiter, the header and
//! the columns by their common names; parsing dates and amounts; and
//! reporting every bad row by file, line and column. Entry points:
//! [`read_orders`] and [`read_events`], configured by [`ReadOptions`]; plus
//! the configuration files in [`config`].
//!
//! Text files are cut into chunks of whole records by one thread and parsed
//! on all cores; the per-customer aggregates are merged at the end.
//!
//! It depends on the pure `lifecycle-rfm` crate and must never depend on the
//! report, server or CLI crates.

pub mod attributes;
pub mod config;
mod datetime;
mod error;
mod events;
pub mod experience;
mod layout;
pub mod lines;
mod number;
mod orders;
mod parquet_source;
mod pipeline;
mod record;
mod small_csv;
pub mod spend;
pub mod summary_file;

pub use datetime::{Clock, DateStyle, civil_from_days, days_from_civil, format_day};
pub use error::{IngestError, Location, RowError};
pub use events::{EventRecord, EventsInput, event_leaves_email, read_event_records, read_events};
pub use layout::{ColumnOverrides, is_parquet, normalize};
pub use number::parse_amount;
pub use orders::{
    BadRows, InputDescription, OrdersInput, ReadOptions, ReadStats, order_key, read_orders,
    status_excludes,
};
pub use parquet_source::panic_is_contained;

/// Parses an `--as-of` style date (`YYYY-MM-DD` or `YYYYMMDD`) into a day.
pub fn parse_day(s: &str) -> Result<lifecycle_rfm::Day, String> {
    let s = s.trim();
    let style = if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        DateStyle::Compact
    } else {
        DateStyle::Iso
    };
    datetime::parse(s, &style)
        .map(|c| c.days)
        .map_err(|e| format!("\"{s}\" is not a date like 2024-03-31 ({e})"))
}

/// The time zone named by `--timezone`.
pub fn clock_for(tz: &str) -> Result<Clock, String> {
    jiff::tz::TimeZone::get(tz)
        .map(Clock::new)
        .map_err(|e| format!("unknown time zone '{tz}': {e}"))
}

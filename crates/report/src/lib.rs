//! The outputs of `lifecycle analyze`: `customers.csv`, `segments.csv`,
//! `summary.json`, `report.html` (self-contained, charts as inline SVG) and
//! the terminal table.
//!
//! This crate owns the wire formats of those files ([`Summary`] is the
//! serialised contract of `summary.json`). It depends on the pure
//! `lifecycle-rfm` crate and on `lifecycle-ingest` for the description of
//! the input; it must never depend on the CLI, and it does no analysis of
//! its own beyond arranging results for display.

mod html;
mod summary;
mod table;

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use lifecycle_ingest::format_day;
use lifecycle_rfm::{Analysis, SegmentTable};

pub use html::render_html;
pub use summary::{RunInfo, Summary, build_summary};
pub use table::render_table;

/// Errors writing the outputs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("summary.json: {0}")]
    Json(#[from] serde_json::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The leading columns of `customers.csv`; later features append columns,
/// never rename these.
pub const CUSTOMER_COLUMNS: [&str; 13] = [
    "customer_id",
    "first_order",
    "last_order",
    "n_orders",
    "n_purchase_days",
    "total_spend",
    "avg_order_value",
    "days_since_last_order",
    "r_score",
    "f_score",
    "m_score",
    "segment",
    "phase",
];

/// Writes `customers.csv`.
pub fn write_customers(
    path: &Path,
    analysis: &Analysis,
    table: &SegmentTable,
) -> Result<(), ReportError> {
    let file = fs::File::create(path).map_err(io_err(path))?;
    let mut w = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, file));
    let csv_err = |source| ReportError::Csv {
        path: path.to_path_buf(),
        source,
    };
    w.write_record(CUSTOMER_COLUMNS).map_err(csv_err)?;
    for c in &analysis.customers {
        let s = &c.summary;
        let seg = &table.segments()[c.segment];
        let opt_day = |d: Option<i32>| d.map(format_day).unwrap_or_default();
        let score = |f: fn(&lifecycle_rfm::Scores) -> u8| {
            c.scores.map(|s| f(&s).to_string()).unwrap_or_default()
        };
        let record: [&str; 13] = [
            &s.customer_id,
            &opt_day(s.first_order),
            &opt_day(s.last_order),
            &s.n_orders.to_string(),
            &s.n_purchase_days.to_string(),
            &money(s.total_spend),
            &money(s.avg_order_value()),
            &c.days_since_last_order
                .map(|d| d.to_string())
                .unwrap_or_default(),
            &score(|s| s.r),
            &score(|s| s.f),
            &score(|s| s.m),
            &seg.name,
            seg.phase.name(),
        ];
        w.write_record(record).map_err(csv_err)?;
    }
    w.flush().map_err(io_err(path))?;
    Ok(())
}

/// Two decimals, no `-0.00`.
pub fn money(v: f64) -> String {
    let s = format!("{v:.2}");
    if s == "-0.00" { "0.00".into() } else { s }
}

/// The rows of `segments.csv` and of the terminal table.
pub const SEGMENT_COLUMNS: [&str; 12] = [
    "segment",
    "phase",
    "customers",
    "customer_share",
    "revenue",
    "revenue_share",
    "mean_days_since_last_order",
    "mean_orders",
    "mean_spend",
    "description",
    "goal",
    "campaigns",
];

/// Writes `segments.csv`.
pub fn write_segments(path: &Path, summary: &Summary) -> Result<(), ReportError> {
    let file = fs::File::create(path).map_err(io_err(path))?;
    let mut w = csv::Writer::from_writer(file);
    let csv_err = |source| ReportError::Csv {
        path: path.to_path_buf(),
        source,
    };
    w.write_record(SEGMENT_COLUMNS).map_err(csv_err)?;
    let opt = |v: Option<f64>, d: usize| v.map(|x| format!("{x:.d$}")).unwrap_or_default();
    for s in &summary.segments {
        w.write_record([
            s.name.as_str(),
            &s.phase,
            &s.customers.to_string(),
            &format!("{:.4}", s.customer_share),
            &money(s.revenue),
            &format!("{:.4}", s.revenue_share),
            &opt(s.mean_days_since_last_order, 1),
            &opt(s.mean_orders, 2),
            &opt(s.mean_spend, 2),
            &s.description,
            &s.goal,
            &s.campaigns.join("; "),
        ])
        .map_err(csv_err)?;
    }
    w.flush().map_err(io_err(path))?;
    Ok(())
}

/// Writes every output into `dir` (created if needed); returns the paths.
pub fn write_all(
    dir: &Path,
    analysis: &Analysis,
    table: &SegmentTable,
    summary: &Summary,
) -> Result<Vec<PathBuf>, ReportError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let customers = dir.join("customers.csv");
    let segments = dir.join("segments.csv");
    let json = dir.join("summary.json");
    let html = dir.join("report.html");
    write_customers(&customers, analysis, table)?;
    write_segments(&segments, summary)?;
    let mut f = BufWriter::new(fs::File::create(&json).map_err(io_err(&json))?);
    serde_json::to_writer_pretty(&mut f, summary)?;
    f.write_all(b"\n").map_err(io_err(&json))?;
    f.flush().map_err(io_err(&json))?;
    fs::write(&html, render_html(analysis, table, summary)).map_err(io_err(&html))?;
    Ok(vec![customers, segments, json, html])
}

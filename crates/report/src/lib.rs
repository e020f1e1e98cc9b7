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

use lifecycle_rfm::{Analysis, SegmentTable};

pub mod lift_json;

pub use html::{
    ForestRow, bars_svg, forest_svg, grouped_bars_svg, kpis_html, lift_html, render_html,
    tracking_svg,
};
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

/// A column appended to `customers.csv` after the leading ones (later
/// features add these; the leading columns never change).
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraColumn {
    pub name: String,
    /// One value per customer, in the analysis order; NaN writes an empty
    /// field.
    pub values: Vec<f64>,
    pub kind: ExtraKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExtraKind {
    /// A number with this many decimals.
    Number(usize),
    /// 0 or 1, written as false/true.
    Flag,
    /// A day number (days since 1970-01-01), written as YYYY-MM-DD.
    Day,
}

fn push_extra(buf: &mut Vec<u8>, c: &ExtraColumn, i: usize) {
    buf.push(b',');
    let v = c.values.get(i).copied().unwrap_or(f64::NAN);
    if v.is_nan() {
        return;
    }
    match c.kind {
        ExtraKind::Flag => buf.extend_from_slice(if v != 0.0 { b"true" } else { b"false" }),
        ExtraKind::Day => push_day(buf, Some(v as i32)),
        ExtraKind::Number(2) => push_money(buf, v),
        ExtraKind::Number(d) => buf.extend_from_slice(format!("{v:.d$}").as_bytes()),
    }
}

/// Writes `customers.csv`. Rows are formatted on all cores into buffers and
/// written in order (for millions of customers this is the slowest output).
pub fn write_customers(
    path: &Path,
    analysis: &Analysis,
    table: &SegmentTable,
    extras: &[ExtraColumn],
) -> Result<(), ReportError> {
    let file = fs::File::create(path).map_err(io_err(path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut header = CUSTOMER_COLUMNS.join(",");
    for e in extras {
        header.push(',');
        header.push_str(&String::from_utf8_lossy(&csv_field(&e.name)));
    }
    w.write_all(header.as_bytes()).map_err(io_err(path))?;
    w.write_all(b"\n").map_err(io_err(path))?;
    let labels: Vec<(Vec<u8>, Vec<u8>)> = table
        .segments()
        .iter()
        .map(|s| (csv_field(&s.name), csv_field(s.phase.name())))
        .collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let n = analysis.len();
    let block = 1 << 18;
    for start in (0..n).step_by(block) {
        let end = (start + block).min(n);
        let per = (end - start).div_ceil(threads).max(1);
        let buffers: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (start..end)
                .step_by(per)
                .map(|from| {
                    let labels = &labels;
                    let to = (from + per).min(end);
                    scope.spawn(move || {
                        let mut buf = Vec::with_capacity((to - from) * 96);
                        for i in from..to {
                            format_customer(&mut buf, &analysis.customer(i), labels);
                            if !extras.is_empty() {
                                buf.pop(); // the newline
                                for e in extras {
                                    push_extra(&mut buf, e, i);
                                }
                                buf.push(b'\n');
                            }
                        }
                        buf
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        for b in buffers {
            w.write_all(&b).map_err(io_err(path))?;
        }
    }
    w.flush().map_err(io_err(path))?;
    Ok(())
}

/// A CSV field, quoted when it must be.
fn csv_field(s: &str) -> Vec<u8> {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
        || s.starts_with(' ')
        || s.ends_with(' ')
    {
        let mut out = Vec::with_capacity(s.len() + 2);
        out.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
        out
    } else {
        s.as_bytes().to_vec()
    }
}

fn push_int(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    let mut n = v.unsigned_abs();
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn push_money(buf: &mut Vec<u8>, v: f64) {
    let cents = (v * 100.0).round();
    if !cents.is_finite() || cents.abs() >= 9.0e18 {
        buf.extend_from_slice(money(v).as_bytes());
        return;
    }
    let cents = cents as i64;
    if cents < 0 {
        buf.push(b'-');
    }
    let c = cents.unsigned_abs();
    push_int(buf, (c / 100) as i64);
    buf.push(b'.');
    buf.push(b'0' + (c / 10 % 10) as u8);
    buf.push(b'0' + (c % 10) as u8);
}

fn push_day(buf: &mut Vec<u8>, day: Option<i32>) {
    if let Some(d) = day {
        let (y, m, dd) = lifecycle_ingest::civil_from_days(d);
        push_int(buf, i64::from(y));
        buf.push(b'-');
        buf.push(b'0' + (m / 10) as u8);
        buf.push(b'0' + (m % 10) as u8);
        buf.push(b'-');
        buf.push(b'0' + (dd / 10) as u8);
        buf.push(b'0' + (dd % 10) as u8);
    }
}

fn format_customer(
    buf: &mut Vec<u8>,
    c: &lifecycle_rfm::ScoredCustomer<'_>,
    labels: &[(Vec<u8>, Vec<u8>)],
) {
    let s = &c.summary;
    let id = &s.customer_id;
    if id.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
        || id.starts_with(' ')
        || id.ends_with(' ')
    {
        buf.extend_from_slice(&csv_field(id));
    } else {
        buf.extend_from_slice(id.as_bytes());
    }
    buf.push(b',');
    push_day(buf, s.first_order);
    buf.push(b',');
    push_day(buf, s.last_order);
    buf.push(b',');
    push_int(buf, i64::from(s.n_orders));
    buf.push(b',');
    push_int(buf, i64::from(s.n_purchase_days));
    buf.push(b',');
    push_money(buf, s.total_spend);
    buf.push(b',');
    push_money(buf, s.avg_order_value());
    buf.push(b',');
    if let Some(d) = c.days_since_last_order {
        push_int(buf, i64::from(d));
    }
    for score in [
        c.scores.map(|s| s.r),
        c.scores.map(|s| s.f),
        c.scores.map(|s| s.m),
    ] {
        buf.push(b',');
        if let Some(v) = score {
            buf.push(b'0' + v);
        }
    }
    let (name, phase) = &labels[c.segment];
    buf.push(b',');
    buf.extend_from_slice(name);
    buf.push(b',');
    buf.extend_from_slice(phase);
    buf.push(b'\n');
}

/// Two decimals, no `-0.00`.
pub fn money(v: f64) -> String {
    if (v * 100.0).round() == 0.0 {
        return "0.00".into();
    }
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
    extras: &[ExtraColumn],
) -> Result<Vec<PathBuf>, ReportError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let customers = dir.join("customers.csv");
    let segments = dir.join("segments.csv");
    let json = dir.join("summary.json");
    let html = dir.join("report.html");
    write_customers(&customers, analysis, table, extras)?;
    write_segments(&segments, summary)?;
    let mut f = BufWriter::new(fs::File::create(&json).map_err(io_err(&json))?);
    serde_json::to_writer_pretty(&mut f, summary)?;
    f.write_all(b"\n").map_err(io_err(&json))?;
    f.flush().map_err(io_err(&json))?;
    fs::write(&html, render_html(analysis, table, summary)).map_err(io_err(&html))?;
    Ok(vec![customers, segments, json, html])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formatting_table() {
        let money_of = |v: f64| {
            let mut b = Vec::new();
            push_money(&mut b, v);
            String::from_utf8(b).unwrap()
        };
        for (v, want) in [
            (0.0, "0.00"),
            (-0.001, "0.00"),
            (11.77, "11.77"),
            (2500315.63, "2500315.63"),
            (-3.5, "-3.50"),
            (0.07, "0.07"),
            (1e-9, "0.00"),
        ] {
            assert_eq!(money_of(v), want, "{v}");
            assert_eq!(money(v), want, "{v}");
        }
        let mut b = Vec::new();
        push_day(&mut b, Some(9862));
        push_int(&mut b, -120);
        assert_eq!(b, b"1997-01-01-120");
        assert_eq!(csv_field("a,b"), b"\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), b"\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), b"plain");
    }
}

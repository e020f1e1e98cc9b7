//! Reading order files into a [`SummaryBuilder`].

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use hashbrown::HashMap;
use lifecycle_rfm::{Day, OrderRow, SummaryBuilder};

use crate::datetime::{Clock, DateStyle, StyleInference, parse as parse_date};
use crate::error::{IngestError, Location, RowError};
use crate::layout::{
    AmountSpec, Column, ColumnOverrides, Format, OrderColumns, Sniffed, Source, infer_date_style,
    normalize, order_columns, sniff, split_records,
};
use crate::number::parse_amount;
use crate::pipeline::{Chunk, CountingReader, SplitError, Splitter, run};
use crate::record::{Field, Rec, split_whitespace};

/// What to do with a bad row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadRows {
    /// Stop at the first bad row (`--strict`, the default).
    #[default]
    Stop,
    /// Count bad rows, keep the first ten, go on (`--skip-bad-rows`).
    Skip,
}

/// How to read an input file.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub columns: ColumnOverrides,
    /// `--date-format`; inferred from the data when `None`.
    pub date_format: Option<String>,
    pub clock: Clock,
    /// Rows after this day are counted and ignored.
    pub as_of: Option<Day>,
    pub bad_rows: BadRows,
    /// Multipliers into the reporting currency, by upper-case code.
    pub currency_rates: Option<HashMap<String, f64>>,
    pub threads: usize,
    pub max_line_bytes: usize,
    /// Bytes of the file read so far, for a progress bar.
    pub progress: Option<Arc<AtomicU64>>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            columns: ColumnOverrides::default(),
            date_format: None,
            clock: Clock::utc(),
            as_of: None,
            bad_rows: BadRows::Stop,
            currency_rates: None,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_line_bytes: 1 << 20,
            progress: None,
        }
    }
}

/// Counts of what happened to the rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadStats {
    /// Data rows (or messages) read, header excluded.
    pub rows_read: u64,
    /// Rows that became part of an order or refund.
    pub rows_used: u64,
    pub rows_rejected: u64,
    /// The first bad rows (up to ten), by line.
    pub first_rejected: Vec<RowError>,
    pub rows_after_as_of: u64,
    /// Rows without a customer id (anonymous orders): left out.
    pub rows_without_customer: u64,
    /// Rows whose status says the order did not happen (refunded, voided,
    /// cancelled, failed...): left out.
    pub rows_excluded_by_status: u64,
    /// Line-item rows of an order whose total is on another row.
    pub continuation_rows: u64,
    /// Segment messages that are not orders or refunds.
    pub events_skipped: u64,
    /// Refund messages without an amount: left out.
    pub refunds_without_amount: u64,
    pub zero_amount_rows: u64,
    pub negative_amount_rows: u64,
    /// Sum of the amounts of the rows used (after conversion).
    pub amount_total: f64,
    /// The same sum in millionths, each row's amount rounded to a
    /// millionth: an integer sum, so the total does not depend on how the
    /// rows were split among threads (exact for amounts of up to six
    /// decimals).
    pub amount_micros: i128,
    /// The currency the amounts are in, when the file says.
    pub currency: Option<String>,
}

/// An amount in millionths (rounded; saturating far beyond any amount).
fn amount_to_micros(amount: f64) -> i128 {
    (amount * 1e6).round() as i128
}

fn micros_to_amount(micros: i128) -> f64 {
    // Whole units and the remainder apart, so that totals beyond 2^53
    // millionths keep their cents.
    (micros / 1_000_000) as f64 + (micros % 1_000_000) as f64 / 1e6
}

impl ReadStats {
    pub(crate) fn merge(&mut self, o: ReadStats) {
        self.rows_read += o.rows_read;
        self.rows_used += o.rows_used;
        self.rows_rejected += o.rows_rejected;
        self.first_rejected.extend(o.first_rejected);
        self.first_rejected.sort_by_key(|e| e.location);
        self.first_rejected.truncate(MAX_REPORTED);
        self.rows_after_as_of += o.rows_after_as_of;
        self.rows_without_customer += o.rows_without_customer;
        self.rows_excluded_by_status += o.rows_excluded_by_status;
        self.continuation_rows += o.continuation_rows;
        self.events_skipped += o.events_skipped;
        self.refunds_without_amount += o.refunds_without_amount;
        self.zero_amount_rows += o.zero_amount_rows;
        self.negative_amount_rows += o.negative_amount_rows;
        self.amount_micros += o.amount_micros;
        self.amount_total = micros_to_amount(self.amount_micros);
        if self.currency.is_none() {
            self.currency = o.currency;
        }
    }
}

const MAX_REPORTED: usize = 10;

/// How the file was understood, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct InputDescription {
    pub path: PathBuf,
    pub format: String,
    pub compressed: bool,
    pub has_header: bool,
    /// Role → column, e.g. `("amount", "Quantity × UnitPrice")`.
    pub columns: Vec<(String, String)>,
    pub date_format: String,
}

/// The result of reading one orders file.
#[derive(Debug)]
pub struct OrdersInput {
    pub builder: SummaryBuilder,
    pub stats: ReadStats,
    pub description: InputDescription,
}

/// Statuses that mean the order did not (or no longer) count.
pub fn status_excludes(status: &str) -> bool {
    let s = normalize(status);
    let s = s.strip_prefix("wc").unwrap_or(&s);
    matches!(
        s,
        "refunded"
            | "voided"
            | "void"
            | "cancelled"
            | "canceled"
            | "failed"
            | "declined"
            | "expired"
            | "trash"
            | "draft"
            | "paymentfailed"
            | "reversed"
            | "chargedback"
    )
}

/// FNV-1a: a stable 64-bit order key, the same on every thread and run
/// (and for an order id arriving through the event API).
pub fn order_key(id: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in id {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(crate) fn text<'a>(
    f: Field<'a>,
    loc: Location,
    col: &Column,
) -> Result<Option<&'a str>, RowError> {
    match f {
        Field::Missing => Ok(None),
        Field::Text(b) => std::str::from_utf8(b)
            .map(|s| Some(s.trim()).filter(|s| !s.is_empty()))
            .map_err(|_| RowError::new(loc, Some(&col.label), "is not valid UTF-8")),
        _ => Ok(None),
    }
}

/// A customer id: trimmed; emails lower-cased so that `Ann@x.com` and
/// `ann@x.com` are one customer.
pub(crate) fn customer_id<'a>(
    f: Field<'a>,
    loc: Location,
    col: &Column,
) -> Result<Option<std::borrow::Cow<'a, str>>, RowError> {
    use std::borrow::Cow;
    Ok(match f {
        Field::Int(i) => Some(Cow::Owned(i.to_string())),
        Field::Float(x) if x.fract() == 0.0 && x.abs() < 1e15 => {
            Some(Cow::Owned(format!("{x:.0}")))
        }
        Field::Float(_) | Field::Bool(_) | Field::Other | Field::Date(_) | Field::Micros { .. } => {
            return Err(RowError::new(loc, Some(&col.label), "is not a customer id"));
        }
        f => match text(f, loc, col)? {
            None => None,
            Some(s) if s.contains('@') && s.bytes().any(|b| b.is_ascii_uppercase()) => {
                Some(Cow::Owned(s.to_ascii_lowercase()))
            }
            Some(s) => Some(Cow::Borrowed(s)),
        },
    })
}

/// Parses a date field into the local (day, second).
pub(crate) fn date_value(
    f: Field<'_>,
    loc: Location,
    col: &Column,
    style: &DateStyle,
    clock: &Clock,
    naive_is_utc: bool,
) -> Result<(Day, i64), RowError> {
    let err = |m: String| RowError::new(loc, Some(&col.label), m);
    match f {
        Field::Missing => Err(err("is empty".into())),
        Field::Date(d) => Ok((d, i64::from(d) * 86_400)),
        Field::Micros { value, utc } => {
            let secs = value.div_euclid(1_000_000);
            if utc {
                Ok(clock.localize_epoch(secs))
            } else {
                Ok((secs.div_euclid(86_400) as Day, secs))
            }
        }
        Field::Int(i) => {
            let secs = if i.unsigned_abs() >= 100_000_000_000 {
                i.div_euclid(1000)
            } else {
                i
            };
            crate::datetime::epoch_civil(secs)
                .map(|c| clock.localize(c, true))
                .map_err(|m| err(format!("{i}: {m}")))
        }
        Field::Text(_) => {
            let s = text(f, loc, col)?.ok_or_else(|| err("is empty".into()))?;
            let civil = parse_date(s, style).map_err(|m| {
                err(format!(
                    "\"{}\" is not a date ({}: {m})",
                    clip(s),
                    style.describe()
                ))
            })?;
            Ok(clock.localize(civil, naive_is_utc))
        }
        _ => Err(err("is not a date".into())),
    }
}

pub(crate) fn clip(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

fn number(f: Field<'_>, loc: Location, col: &Column) -> Result<Option<f64>, RowError> {
    let err = |m: String| RowError::new(loc, Some(&col.label), m);
    match f {
        Field::Missing => Ok(None),
        Field::Int(i) => Ok(Some(i as f64)),
        Field::Float(x) if x.is_finite() => Ok(Some(x)),
        Field::Text(b) if let Some(v) = crate::number::fast_decimal(b.trim_ascii()) => Ok(Some(v)),
        Field::Text(_) => match text(f, loc, col)? {
            None => Ok(None),
            Some(s) => parse_amount(s)
                .map(Some)
                .map_err(|m| err(format!("\"{}\" {m}", clip(s)))),
        },
        _ => Err(err("is not a number".into())),
    }
}

/// Everything a worker needs to turn records into order rows.
pub(crate) struct OrderParser {
    pub path: PathBuf,
    pub format: Format,
    pub has_header: bool,
    pub n_fields: usize,
    pub min_fields: usize,
    pub cols: OrderColumns,
    pub style: DateStyle,
    pub clock: Clock,
    pub as_of: Option<Day>,
    pub rates: Option<HashMap<String, f64>>,
    pub first_currency: OnceLock<(String, Location)>,
    pub bad_rows: BadRows,
    pub halt: AtomicU64,
}

impl OrderParser {
    pub(crate) fn new(
        path: &Path,
        (format, has_header, n_fields, min_fields): (Format, bool, usize, usize),
        cols: OrderColumns,
        style: DateStyle,
        opts: &ReadOptions,
    ) -> Self {
        OrderParser {
            path: path.to_path_buf(),
            format,
            has_header,
            n_fields,
            min_fields,
            cols,
            style,
            clock: opts.clock.clone(),
            as_of: opts.as_of,
            rates: opts.currency_rates.clone(),
            first_currency: OnceLock::new(),
            bad_rows: opts.bad_rows,
            halt: AtomicU64::new(u64::MAX),
        }
    }
}

pub(crate) struct OrderWorker {
    pub builder: SummaryBuilder,
    pub stats: ReadStats,
    pub fatal: Option<RowError>,
}

impl OrderWorker {
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// A worker expecting about `customers` customers (saves regrowing).
    pub fn with_capacity(customers: usize) -> Self {
        OrderWorker {
            builder: SummaryBuilder::with_capacity(customers),
            stats: ReadStats::default(),
            fatal: None,
        }
    }

    /// Records a bad row; `Break` when reading must stop.
    pub fn reject(&mut self, e: RowError, p: &OrderParser) -> ControlFlow<()> {
        self.reject_with(e, p.bad_rows, &p.halt)
    }

    pub fn reject_with(
        &mut self,
        e: RowError,
        bad_rows: BadRows,
        halt: &AtomicU64,
    ) -> ControlFlow<()> {
        match bad_rows {
            BadRows::Stop => {
                halt.fetch_min(e.location.index(), Ordering::Relaxed);
                if self.fatal.as_ref().is_none_or(|f| e.location < f.location) {
                    self.fatal = Some(e);
                }
                ControlFlow::Break(())
            }
            BadRows::Skip => {
                self.stats.rows_rejected += 1;
                if self.stats.first_rejected.len() < MAX_REPORTED {
                    self.stats.first_rejected.push(e);
                }
                ControlFlow::Continue(())
            }
        }
    }

    pub fn finish(mut self) -> Self {
        self.stats.amount_total = micros_to_amount(self.stats.amount_micros);
        self
    }
}

impl OrderParser {
    pub fn row(&self, w: &mut OrderWorker, rec: &Rec<'_>, loc: Location) -> Result<(), RowError> {
        w.stats.rows_read += 1;
        if let Some(n) = rec.len() {
            let shape_ok = match self.format {
                Format::Delimited(_) => n == self.n_fields,
                _ => n >= self.min_fields,
            };
            if !shape_ok {
                let want = if let Format::Delimited(_) = self.format {
                    self.n_fields
                } else {
                    self.min_fields
                };
                return Err(RowError::new(
                    loc,
                    None,
                    format!("has {n} fields where {want} were expected (a cut or malformed row?)"),
                ));
            }
        }
        let c = &self.cols;
        let mut sign = 1.0;
        if let Some((type_col, event_col)) = &c.segment_event {
            let ty = text(rec.get(type_col), loc, type_col)?.unwrap_or("track");
            let ev = text(rec.get(event_col), loc, event_col)?.unwrap_or("");
            match (ty, normalize(ev).as_str()) {
                ("track", "ordercompleted" | "completedorder") => {}
                ("track", "orderrefunded" | "refundedorder") => sign = -1.0,
                _ => {
                    w.stats.events_skipped += 1;
                    return Ok(());
                }
            }
        }
        if let Some(col) = &c.status
            && let Some(status) = text(rec.get(col), loc, col)?
            && status_excludes(status)
        {
            w.stats.rows_excluded_by_status += 1;
            return Ok(());
        }
        let order_id = match &c.order_id {
            Some(col) => match rec.get(col) {
                Field::Int(i) => Some(order_key(&i.to_le_bytes())),
                // Any bytes identify an order; no need to check UTF-8.
                Field::Text(b) => Some(b.trim_ascii())
                    .filter(|b| !b.is_empty())
                    .map(order_key),
                f => text(f, loc, col)?.map(|s| order_key(s.as_bytes())),
            },
            None => None,
        };
        let amount = match &c.amount {
            AmountSpec::Column(col) => number(rec.get(col), loc, col)?,
            AmountSpec::PriceTimesQuantity { price, quantity } => {
                match (
                    number(rec.get(price), loc, price)?,
                    number(rec.get(quantity), loc, quantity)?,
                ) {
                    (Some(p), Some(q)) => Some(p * q),
                    (None, None) => None,
                    (None, Some(_)) => {
                        return Err(RowError::new(loc, Some(&price.label), "is empty"));
                    }
                    (Some(_), None) => {
                        return Err(RowError::new(loc, Some(&quantity.label), "is empty"));
                    }
                }
            }
        };
        let Some(mut amount) = amount else {
            if order_id.is_some() && sign > 0.0 {
                w.stats.continuation_rows += 1;
                return Ok(());
            }
            if sign < 0.0 {
                w.stats.refunds_without_amount += 1;
                return Ok(());
            }
            let label = match &c.amount {
                AmountSpec::Column(col) => col.label.clone(),
                AmountSpec::PriceTimesQuantity { price, .. } => price.label.clone(),
            };
            return Err(RowError::new(loc, Some(&label), "is empty"));
        };
        let Some(customer) = customer_id(rec.get(&c.customer), loc, &c.customer)? else {
            w.stats.rows_without_customer += 1;
            return Ok(());
        };
        if let Some(col) = &c.refunded
            && let Some(r) = number(rec.get(col), loc, col)?
        {
            amount -= r;
        }
        amount *= sign;
        if let Some(col) = &c.currency
            && let Some(cur) = text(rec.get(col), loc, col)?
        {
            let cur = cur.to_ascii_uppercase();
            match &self.rates {
                Some(rates) => match rates.get(&cur) {
                    Some(rate) => amount *= rate,
                    None => {
                        return Err(RowError::new(
                            loc,
                            Some(&col.label),
                            format!("no rate for currency '{cur}' in --currency-rates"),
                        ));
                    }
                },
                None => {
                    let (first, at) = self.first_currency.get_or_init(|| (cur.clone(), loc));
                    if *first != cur {
                        return Err(RowError::new(
                            loc,
                            Some(&col.label),
                            format!(
                                "currency '{cur}' differs from '{first}' (seen at {}); mixed currencies need --currency-rates FILE",
                                describe_location(*at)
                            ),
                        ));
                    }
                }
            }
        }
        let (day, secs) = date_value(
            rec.get(&c.date),
            loc,
            &c.date,
            &self.style,
            &self.clock,
            c.naive_is_utc,
        )?;
        if self.as_of.is_some_and(|a| day > a) {
            w.stats.rows_after_as_of += 1;
            return Ok(());
        }
        if amount == 0.0 {
            w.stats.zero_amount_rows += 1;
        } else if amount < 0.0 {
            w.stats.negative_amount_rows += 1;
        }
        w.stats.rows_used += 1;
        w.stats.amount_micros += amount_to_micros(amount);
        w.builder.add_order(
            &customer,
            loc.index(),
            OrderRow {
                day,
                order_key: order_id.unwrap_or(secs as u64),
                amount,
                is_order_total: order_id.is_some() && c.amount_is_order_total,
            },
        );
        Ok(())
    }
}

fn describe_location(l: Location) -> String {
    match l {
        Location::Line(n) => format!("line {n}"),
        Location::Row(n) => format!("row {n}"),
    }
}

/// Calls `f` for each record of a text chunk with its line.
pub(crate) fn for_each_record(
    chunk: &Chunk,
    format: Format,
    has_header: bool,
    mut f: impl FnMut(Result<Rec<'_>, RowError>, Location) -> ControlFlow<()>,
) {
    let skip_first = chunk.seq == 0 && has_header;
    match format {
        Format::Delimited(d) if !chunk.quoted => {
            // No quotes anywhere in the chunk: split on bytes directly.
            let mut fields: Vec<&[u8]> = Vec::with_capacity(16);
            let mut first = true;
            for (i, line) in chunk.data.split(|&b| b == b'\n').enumerate() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.is_empty() {
                    continue;
                }
                if std::mem::take(&mut first) && skip_first {
                    continue;
                }
                fields.clear();
                fields.extend(line.split(|&b| b == d));
                if f(
                    Ok(Rec::Fields(&fields)),
                    Location::Line(chunk.first_line + i as u64),
                )
                .is_break()
                {
                    break;
                }
            }
        }
        Format::Delimited(d) => {
            let mut rdr = csv::ReaderBuilder::new()
                .delimiter(d)
                .has_headers(false)
                .flexible(true)
                .from_reader(&chunk.data[..]);
            let mut rec = csv::ByteRecord::new();
            let mut first = true;
            loop {
                let line = chunk.first_line + rdr.position().line().saturating_sub(1);
                match rdr.read_byte_record(&mut rec) {
                    Ok(false) => break,
                    Ok(true) => {
                        let line = rec
                            .position()
                            .map_or(line, |p| chunk.first_line + p.line() - 1);
                        if std::mem::take(&mut first) && skip_first {
                            continue;
                        }
                        let r = Rec::Csv(&rec);
                        if f(Ok(r), Location::Line(line)).is_break() {
                            break;
                        }
                    }
                    Err(e) => {
                        let err = RowError::new(
                            Location::Line(line),
                            None,
                            format!("malformed CSV: {e}"),
                        );
                        if f(Err(err), Location::Line(line)).is_break() {
                            break;
                        }
                    }
                }
            }
        }
        Format::Whitespace => {
            let mut fields: Vec<&[u8]> = Vec::with_capacity(8);
            let mut first = true;
            for (i, line) in chunk.data.split(|&b| b == b'\n').enumerate() {
                split_whitespace(line, &mut fields);
                if fields.is_empty() {
                    continue;
                }
                if std::mem::take(&mut first) && skip_first {
                    continue;
                }
                if f(
                    Ok(Rec::Fields(&fields)),
                    Location::Line(chunk.first_line + i as u64),
                )
                .is_break()
                {
                    break;
                }
            }
        }
        Format::NdJson { .. } => {
            for (i, line) in chunk.data.split(|&b| b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let loc = Location::Line(chunk.first_line + i as u64);
                let flow = match serde_json::from_slice::<serde_json::Value>(line) {
                    Ok(v @ serde_json::Value::Object(_)) => f(Ok(Rec::Json(&v)), loc),
                    Ok(_) => f(Err(RowError::new(loc, None, "is not a JSON object")), loc),
                    Err(e) => f(
                        Err(RowError::new(loc, None, format!("is not valid JSON: {e}"))),
                        loc,
                    ),
                };
                if flow.is_break() {
                    break;
                }
            }
        }
        Format::Parquet => {}
    }
}

pub(crate) fn split_error(path: &Path, e: SplitError, gz: bool, max_line: usize) -> IngestError {
    match e {
        SplitError::Io(e) if gz => IngestError::format(
            path,
            format!("the gzip stream is corrupt or truncated ({e})"),
        ),
        SplitError::Io(e) => IngestError::io(path, e),
        SplitError::LineTooLong { line } => IngestError::LineTooLong {
            path: path.to_path_buf(),
            line,
            limit: max_line,
        },
        SplitError::EndsInQuote { line } => IngestError::Row {
            path: path.to_path_buf(),
            row: RowError::new(
                Location::Line(line),
                None,
                "a quoted field opens here and never closes: the file ends mid-row",
            ),
        },
    }
}

/// Values of one column in the sniffed sample.
fn sample_values(s: &Sniffed, col: &Column) -> Vec<String> {
    match s.format {
        Format::NdJson { .. } => s
            .json_sample
            .iter()
            .filter_map(|v| match Rec::Json(v).get(col) {
                Field::Text(t) => std::str::from_utf8(t).ok().map(str::to_string),
                _ => None,
            })
            .collect(),
        _ => s
            .sample
            .iter()
            .filter_map(|r| match col.sources.first() {
                Some(Source::Index(i)) => r.get(*i).cloned(),
                _ => None,
            })
            .collect(),
    }
}

/// Decides the date style: `--date-format`, or inferred from the sample and,
/// when slashed dates stay ambiguous, from the rest of the file.
pub(crate) fn decide_date_style(
    path: &Path,
    s: &Sniffed,
    col: &Column,
    date_format: Option<&str>,
) -> Result<DateStyle, IngestError> {
    if let Some(f) = date_format {
        return Ok(DateStyle::from_format(f));
    }
    let sample = sample_values(s, col);
    if sample.is_empty() {
        // Typed values (numbers) or nothing yet: ISO for any text that comes.
        return Ok(DateStyle::Iso);
    }
    infer_date_style(sample.into_iter(), |inf| scan_dates(path, s, col, inf))
        .map_err(|m| IngestError::format(path, format!("column '{}': {m}", col.label)))
}

/// Feeds the whole file's date column to `inf` until it is settled.
fn scan_dates(path: &Path, s: &Sniffed, col: &Column, inf: &mut StyleInference) {
    let Ok((reader, _)) = crate::layout::open(path) else {
        return;
    };
    let Some(Source::Index(idx)) = col.sources.first().cloned() else {
        return;
    };
    let mut buf = String::new();
    for line in crate::layout::lines_of(reader) {
        let Ok(line) = line else { return };
        buf.clear();
        buf.push_str(&line);
        buf.push('\n');
        if let Ok(recs) = split_records(&buf, s.format, 1)
            && let Some(v) = recs.first().and_then(|r| r.get(idx))
        {
            inf.add(v);
            if inf.settled() {
                return;
            }
        }
    }
}

/// Reads an orders file (any supported format) with all cores.
pub fn read_orders(path: &Path, opts: &ReadOptions) -> Result<OrdersInput, IngestError> {
    if crate::layout::is_parquet(path)? {
        return crate::parquet_source::read_orders(path, opts);
    }
    let s = sniff(path)?;
    let cols = order_columns(&s, &opts.columns).map_err(|m| IngestError::format(path, m))?;
    let style = decide_date_style(path, &s, &cols.date, opts.date_format.as_deref())?;
    let description = describe(path, &s, &cols, &style);
    let min_fields = max_index(&cols) + 1;
    let parser = OrderParser::new(
        path,
        (s.format, s.has_header, s.header.len(), min_fields),
        cols,
        style,
        opts,
    );
    // Reserve for the customers a worker may see: a guess from the file
    // size and the sample's row length, bounded so that a wrong guess costs
    // little (untouched capacity is only address space).
    let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let est_rows = if s.compression == crate::layout::Compression::None {
        file_len / s.sample_bytes_per_record.max(8)
    } else {
        0
    };
    let per_worker = (est_rows / 2 / opts.threads.max(1) as u64).min(1 << 22) as usize;
    let workers = run_text(
        path,
        opts,
        s.format,
        &parser.halt,
        || OrderWorker::with_capacity(per_worker),
        |w: &mut OrderWorker, chunk: &Chunk| {
            for_each_record(chunk, parser.format, parser.has_header, |rec, loc| {
                if loc.index() > parser.halt.load(Ordering::Relaxed) {
                    return ControlFlow::Break(());
                }
                match rec.and_then(|r| parser.row(w, &r, loc)) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => w.reject(e, &parser),
                }
            });
        },
    )?;
    finish_orders(
        &parser.path,
        workers,
        parser.first_currency.into_inner().map(|(c, _)| c),
        description,
    )
}

/// Merges the workers' aggregates; the first bad row in file order (with
/// `BadRows::Stop`) becomes the error.
pub(crate) fn merge_workers(
    path: &Path,
    workers: Vec<OrderWorker>,
) -> Result<(SummaryBuilder, ReadStats), IngestError> {
    let mut builder = SummaryBuilder::new();
    let mut stats = ReadStats::default();
    let mut fatal: Option<RowError> = None;
    for w in workers {
        let w = w.finish();
        if let Some(e) = w.fatal
            && fatal.as_ref().is_none_or(|f| e.location < f.location)
        {
            fatal = Some(e);
        }
        builder.merge(w.builder);
        stats.merge(w.stats);
    }
    match fatal {
        Some(row) => Err(IngestError::Row {
            path: path.to_path_buf(),
            row,
        }),
        None => Ok((builder, stats)),
    }
}

pub(crate) fn finish_orders(
    path: &Path,
    workers: Vec<OrderWorker>,
    currency: Option<String>,
    description: InputDescription,
) -> Result<OrdersInput, IngestError> {
    let (builder, mut stats) = merge_workers(path, workers)?;
    stats.currency = currency;
    if stats.rows_read == 0 {
        return Err(IngestError::format(
            path,
            "the file has a header but no rows",
        ));
    }
    if builder.is_empty() {
        let why = if stats.rows_without_customer > 0 {
            format!(
                "all {} rows lack a customer id",
                stats.rows_without_customer
            )
        } else if stats.rows_excluded_by_status > 0
            || stats.events_skipped > 0
            || stats.rows_after_as_of > 0
        {
            "no row is a completed order on or before the analysis date".to_string()
        } else {
            "no usable rows".to_string()
        };
        return Err(IngestError::format(path, format!("no orders found: {why}")));
    }
    Ok(OrdersInput {
        builder,
        stats,
        description,
    })
}

/// Streams a text file through the splitter and `process` on all cores.
pub(crate) fn run_text<W>(
    path: &Path,
    opts: &ReadOptions,
    format: Format,
    halt: &AtomicU64,
    make: impl Fn() -> W + Sync,
    process: impl Fn(&mut W, &Chunk) + Sync,
) -> Result<Vec<W>, IngestError>
where
    W: Send,
{
    let (reader, compression) = open_counted(path, opts.progress.clone())?;
    let quote = matches!(format, Format::Delimited(_)).then_some(b'"');
    let mut splitter = Splitter::new(reader, quote, opts.max_line_bytes, 4 << 20);
    run(&mut splitter, opts.threads, halt, make, process).map_err(|e| {
        split_error(
            path,
            e,
            compression == crate::layout::Compression::Gzip,
            opts.max_line_bytes,
        )
    })
}

fn open_counted(
    path: &Path,
    progress: Option<Arc<AtomicU64>>,
) -> Result<(Box<dyn std::io::Read + Send>, crate::layout::Compression), IngestError> {
    let count = progress.unwrap_or_default();
    crate::layout::open_with(path, |inner| CountingReader { inner, count })
}

fn max_index(c: &OrderColumns) -> usize {
    let mut cols: Vec<&Column> = vec![&c.customer, &c.date];
    match &c.amount {
        AmountSpec::Column(a) => cols.push(a),
        AmountSpec::PriceTimesQuantity { price, quantity } => {
            cols.push(price);
            cols.push(quantity);
        }
    }
    cols.extend(
        c.order_id
            .iter()
            .chain(&c.status)
            .chain(&c.currency)
            .chain(&c.refunded),
    );
    cols.iter()
        .flat_map(|c| c.sources.iter())
        .filter_map(|s| match s {
            Source::Index(i) => Some(*i),
            Source::Path(_) => None,
        })
        .max()
        .unwrap_or(0)
}

pub(crate) fn describe(
    path: &Path,
    s: &Sniffed,
    c: &OrderColumns,
    style: &DateStyle,
) -> InputDescription {
    let mut columns = vec![
        ("customer".to_string(), c.customer.label.clone()),
        ("date".to_string(), c.date.label.clone()),
        ("amount".to_string(), c.amount.describe()),
    ];
    for (role, col) in [
        ("order", &c.order_id),
        ("status", &c.status),
        ("currency", &c.currency),
        ("refunded", &c.refunded),
    ] {
        if let Some(col) = col {
            columns.push((role.to_string(), col.label.clone()));
        }
    }
    InputDescription {
        path: path.to_path_buf(),
        format: s.format.describe(),
        compressed: s.compression == crate::layout::Compression::Gzip,
        has_header: s.has_header,
        columns,
        date_format: style.describe(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_of(amounts: &[f64]) -> ReadStats {
        let mut w = OrderWorker::new();
        for &a in amounts {
            w.stats.amount_micros += amount_to_micros(a);
        }
        w.finish().stats
    }

    /// However the rows are split among workers, and in whatever order
    /// their counts are merged, the amount total is the same to the bit
    /// (a floating-point sum per worker differed in the last digits).
    #[test]
    fn the_amount_total_does_not_depend_on_the_split() {
        let amounts: Vec<f64> = (0..1000)
            .map(|i| f64::from(i * 7919 % 100_003) / 100.0 + if i % 3 == 0 { 1e9 } else { 0.0 })
            .chain([0.1, 0.2, 0.3, -12.34, 1e-7])
            .collect();
        let mut totals = Vec::new();
        for split in [1, 2, 3, 17, 500] {
            for reversed in [false, true] {
                let mut parts: Vec<ReadStats> = amounts.chunks(split).map(stats_of).collect();
                if reversed {
                    parts.reverse();
                }
                let mut all = ReadStats::default();
                for p in parts {
                    all.merge(p);
                }
                totals.push(all.amount_total.to_bits());
            }
        }
        assert!(totals.windows(2).all(|w| w[0] == w[1]), "{totals:?}");
        assert_eq!(stats_of(&[0.1, 0.2, 0.3]).amount_total, 0.6);
        let want: f64 = amounts.iter().sum();
        let got = f64::from_bits(totals[0]);
        assert!((got - want).abs() < 1e-3, "{got} vs {want}");
    }
}

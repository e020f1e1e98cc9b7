//! Reading behavioural events (visits, sign-ups) for the Acquisition
//! segments.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::IngestError;
use crate::datetime::DateStyle;
use crate::error::{Location, RowError};
use crate::layout::{
    Column, EventColumns, Format, event_columns, normalize, property_column, sniff,
};
use crate::orders::{
    InputDescription, OrderWorker, ReadOptions, ReadStats, customer_id, date_value,
    decide_date_style, for_each_record, merge_workers, run_text, text,
};
use crate::record::Rec;
use lifecycle_rfm::SummaryBuilder;

/// Event names (Segment spec and common variants) that record an email
/// address even when the file has no email column.
pub fn event_leaves_email(event: &str) -> bool {
    matches!(
        normalize(event).as_str(),
        "signedup"
            | "emailsubscribed"
            | "subscribed"
            | "newslettersubscribed"
            | "accountcreated"
            | "emailcaptured"
            | "leadcaptured"
            | "formsubmitted"
    )
}

/// The result of reading an events file.
#[derive(Debug)]
pub struct EventsInput {
    pub builder: SummaryBuilder,
    pub stats: ReadStats,
    pub description: InputDescription,
}

struct EventParser {
    cols: EventColumns,
    style: DateStyle,
    opts: ReadOptions,
    halt: AtomicU64,
}

impl EventParser {
    fn row(&self, w: &mut OrderWorker, rec: &Rec<'_>, loc: Location) -> Result<(), RowError> {
        w.stats.rows_read += 1;
        let c = &self.cols;
        let Some(customer) = customer_id(rec.get(&c.customer), loc, &c.customer)? else {
            w.stats.rows_without_customer += 1;
            return Ok(());
        };
        let (day, _) = date_value(
            rec.get(&c.date),
            loc,
            &c.date,
            &self.style,
            &self.opts.clock,
            c.naive_is_utc,
        )?;
        if self.opts.as_of.is_some_and(|a| day > a) {
            w.stats.rows_after_as_of += 1;
            return Ok(());
        }
        let mut email = false;
        if let Some(col) = &c.email {
            email |= text(rec.get(col), loc, col)?.is_some_and(|e| e.contains('@'));
        }
        if let Some(col) = &c.event {
            email |= text(rec.get(col), loc, col)?.is_some_and(event_leaves_email);
        }
        w.stats.rows_used += 1;
        // Visitors come after the customers of the orders file.
        w.builder
            .add_visit(&customer, (1 << 62) + loc.index(), day, email);
        Ok(())
    }
}

/// Reads an events file: CSV/TSV/NDJSON with customer, timestamp and event
/// columns (and optionally email), or Segment messages.
pub fn read_events(path: &Path, opts: &ReadOptions) -> Result<EventsInput, IngestError> {
    if crate::layout::is_parquet(path)? {
        return Err(IngestError::format(
            path,
            "events files are read as CSV/TSV or NDJSON; Parquet events are not supported yet",
        ));
    }
    let s = sniff(path)?;
    let cols = event_columns(&s, &opts.columns).map_err(|m| IngestError::format(path, m))?;
    let style = decide_date_style(path, &s, &cols.date, opts.date_format.as_deref())?;
    let mut columns = vec![
        ("customer".to_string(), cols.customer.label.clone()),
        ("date".to_string(), cols.date.label.clone()),
    ];
    for (role, col) in [("event", &cols.event), ("email", &cols.email)] {
        if let Some(c) = col {
            columns.push((role.to_string(), c.label.clone()));
        }
    }
    let description = InputDescription {
        path: path.to_path_buf(),
        format: s.format.describe(),
        compressed: s.compression == crate::layout::Compression::Gzip,
        has_header: s.has_header,
        columns,
        date_format: style.describe(),
    };
    let parser = EventParser {
        cols,
        style,
        opts: opts.clone(),
        halt: AtomicU64::new(u64::MAX),
    };
    let (format, has_header) = (s.format, s.has_header);
    let format = match format {
        Format::Parquet => Format::Delimited(b','),
        f => f,
    };
    let parser_ref = &parser;
    let workers = run_text(
        path,
        opts,
        format,
        &parser.halt,
        OrderWorker::new,
        |w: &mut OrderWorker, chunk| {
            for_each_record(chunk, format, has_header, |rec, loc| {
                if loc.index() > parser_ref.halt.load(Ordering::Relaxed) {
                    return ControlFlow::Break(());
                }
                match rec.and_then(|r| parser_ref.row(w, &r, loc)) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => w.reject_with(e, opts.bad_rows, &parser_ref.halt),
                }
            });
        },
    )?;
    let (builder, stats) = merge_workers(path, workers)?;
    Ok(EventsInput {
        builder,
        stats,
        description,
    })
}

/// One event of a named kind, with the properties asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub customer: String,
    pub day: lifecycle_rfm::Day,
    pub event: String,
    /// (property, value as text) for the properties asked for that the
    /// event has.
    pub properties: Vec<(String, String)>,
}

struct RecordWorker {
    inner: OrderWorker,
    records: Vec<EventRecord>,
}

/// Reads the events called one of `events` from an events file (the
/// formats of [`read_events`]), with the values of `properties` (NDJSON:
/// `properties.NAME`; delimited files: the column NAME). Bad rows are
/// reported as [`read_events`] reports them.
pub fn read_event_records(
    path: &Path,
    opts: &ReadOptions,
    events: &[String],
    properties: &[String],
) -> Result<Vec<EventRecord>, IngestError> {
    if crate::layout::is_parquet(path)? {
        return Err(IngestError::format(
            path,
            "events files are read as CSV/TSV or NDJSON; Parquet events are not supported yet",
        ));
    }
    let s = sniff(path)?;
    let cols = event_columns(&s, &opts.columns).map_err(|m| IngestError::format(path, m))?;
    let Some(event_col) = cols.event.clone() else {
        return Err(IngestError::format(
            path,
            "custom tripwires need an event column (the event's name)",
        ));
    };
    let style = decide_date_style(path, &s, &cols.date, opts.date_format.as_deref())?;
    let props: Vec<(String, Column)> = properties
        .iter()
        .filter_map(|p| property_column(&s, p).map(|c| (p.clone(), c)))
        .collect();
    let format = match s.format {
        Format::Parquet => Format::Delimited(b','),
        f => f,
    };
    let has_header = s.has_header;
    let halt = AtomicU64::new(u64::MAX);
    let workers = run_text(
        path,
        opts,
        format,
        &halt,
        || RecordWorker {
            inner: OrderWorker::new(),
            records: Vec::new(),
        },
        |w: &mut RecordWorker, chunk| {
            for_each_record(chunk, format, has_header, |rec, loc| {
                if loc.index() > halt.load(Ordering::Relaxed) {
                    return ControlFlow::Break(());
                }
                let row = rec.and_then(|r| -> Result<(), RowError> {
                    w.inner.stats.rows_read += 1;
                    let Some(name) = text(r.get(&event_col), loc, &event_col)? else {
                        return Ok(());
                    };
                    if !events.iter().any(|e| e == name) {
                        return Ok(());
                    }
                    let Some(customer) = customer_id(r.get(&cols.customer), loc, &cols.customer)?
                    else {
                        return Ok(());
                    };
                    let (day, _) = date_value(
                        r.get(&cols.date),
                        loc,
                        &cols.date,
                        &style,
                        &opts.clock,
                        cols.naive_is_utc,
                    )?;
                    if opts.as_of.is_some_and(|a| day > a) {
                        return Ok(());
                    }
                    let mut values = Vec::new();
                    for (p, c) in &props {
                        if let Some(v) = text(r.get(c), loc, c)? {
                            values.push((p.clone(), v.to_string()));
                        }
                    }
                    w.inner.stats.rows_used += 1;
                    w.records.push(EventRecord {
                        customer: customer.to_string(),
                        day,
                        event: name.to_string(),
                        properties: values,
                    });
                    Ok(())
                });
                match row {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => w.inner.reject_with(e, opts.bad_rows, &halt),
                }
            });
        },
    )?;
    let mut records = Vec::new();
    let mut inner = Vec::with_capacity(workers.len());
    for w in workers {
        records.extend(w.records);
        inner.push(w.inner);
    }
    // The first bad row (in file order) stops the read, as for orders.
    merge_workers(path, inner)?;
    records.sort_by(|a, b| (&a.customer, a.day).cmp(&(&b.customer, b.day)));
    Ok(records)
}

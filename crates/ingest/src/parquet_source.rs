//! Parquet order and line files: row groups are read in parallel, each
//! through typed column readers in batches (only the columns the file's
//! layout needs), with the same column recognition as text files. Files
//! with nested or unusual columns are read through the `parquet` crate's
//! record API instead, with the same values.

use std::fs::File;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parquet::basic::{ConvertedType, LogicalType, TimeUnit, Type as PhysicalType};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FixedLenByteArray, FixedLenByteArrayType,
    FloatType, Int32Type, Int64Type, Int96, Int96Type,
};
use parquet::file::reader::{FileReader, RowGroupReader, SerializedFileReader};
use parquet::record::Field as PqField;
use parquet::schema::types::SchemaDescriptor;

use crate::IngestError;
use crate::error::{Location, RowError};
use crate::layout::{Column, Compression, Format, Sniffed, Source, order_columns};
use crate::orders::{
    OrderParser, OrderWorker, OrdersInput, ReadOptions, decide_date_style, describe, finish_orders,
};
use crate::record::{Field, Rec};

/// Rows decoded at a time per column.
const BATCH: usize = 4096;

fn open_reader(path: &Path) -> Result<SerializedFileReader<File>, IngestError> {
    let f = File::open(path).map_err(|e| IngestError::io(path, e))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    let reader = SerializedFileReader::new(f)
        .map_err(|e| IngestError::format(path, format!("not a readable Parquet file: {e}")))?;
    // Column chunks must lie inside the file (the reader asserts on
    // negative offsets and sizes instead of failing).
    let meta = reader.metadata();
    for g in 0..meta.num_row_groups() {
        for c in meta.row_group(g).columns() {
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let len = c.compressed_size();
            let inside = start >= 0
                && len >= 0
                && (start as u64)
                    .checked_add(len as u64)
                    .is_some_and(|end| end <= size);
            if !inside {
                return Err(IngestError::format(
                    path,
                    format!(
                        "not a readable Parquet file: row group {g} has a column chunk outside the file (offset {start}, {len} bytes)"
                    ),
                ));
            }
        }
    }
    Ok(reader)
}

/// A big-endian two's complement unscaled decimal, scaled.
fn decimal_bytes_to_f64(bytes: &[u8], scale: i32) -> f64 {
    let mut v: i128 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for &b in bytes.iter().take(16) {
        v = (v << 8) | i128::from(b);
    }
    v as f64 / 10f64.powi(scale)
}

/// What a column's timestamps are: instants (UTC) or wall-clock times, and
/// whether a plain INT64 holds nanoseconds (a `TIMESTAMP(NANOS)` column,
/// which has no converted type).
#[derive(Debug, Clone, Copy)]
struct TimeInfo {
    utc: bool,
    nanos: bool,
}

fn time_info(schema: &SchemaDescriptor) -> Vec<TimeInfo> {
    schema
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| match f.get_basic_info().logical_type_ref() {
            Some(LogicalType::Timestamp(t)) => TimeInfo {
                utc: t.is_adjusted_to_u_t_c,
                nanos: matches!(t.unit, TimeUnit::NANOS),
            },
            _ => TimeInfo {
                utc: true,
                nanos: false,
            },
        })
        .collect()
}

/// Converts one value of the record API.
fn convert(f: &PqField, t: TimeInfo) -> Field<'_> {
    match f {
        PqField::Null => Field::Missing,
        PqField::Bool(b) => Field::Bool(*b),
        PqField::Byte(v) => Field::Int(i64::from(*v)),
        PqField::Short(v) => Field::Int(i64::from(*v)),
        PqField::Int(v) => Field::Int(i64::from(*v)),
        PqField::Long(v) if t.nanos => Field::Micros {
            value: v.div_euclid(1000),
            utc: t.utc,
        },
        PqField::Long(v) => Field::Int(*v),
        PqField::UByte(v) => Field::Int(i64::from(*v)),
        PqField::UShort(v) => Field::Int(i64::from(*v)),
        PqField::UInt(v) => Field::Int(i64::from(*v)),
        PqField::ULong(v) => i64::try_from(*v).map_or(Field::Other, Field::Int),
        PqField::Float16(v) => Field::Float(f64::from(*v)),
        PqField::Float(v) => Field::Float(f64::from(*v)),
        PqField::Double(v) => Field::Float(*v),
        PqField::Decimal(d) => Field::Float(decimal_bytes_to_f64(d.data(), d.scale())),
        PqField::Str(s) => Field::Text(s.as_bytes()),
        PqField::Bytes(b) => Field::Text(b.data()),
        PqField::Date(d) => Field::Date(*d),
        PqField::TimestampMillis(ms) => Field::Micros {
            value: ms.saturating_mul(1000),
            utc: t.utc,
        },
        PqField::TimestampMicros(us) => Field::Micros {
            value: *us,
            utc: t.utc,
        },
        _ => Field::Other,
    }
}

/// A value as sample text (for recognising columns and the date style).
/// Dates and times are written here, never by the `parquet` crate's
/// `Display`, which panics on a timestamp outside chrono's range (found by
/// fuzzing); nested values are left empty.
fn as_text(f: &PqField) -> String {
    /// Days from 1970 within years 0 to 9999, the range dates are written in.
    fn day_text(day: i64) -> Option<String> {
        (-719_528..=2_932_896)
            .contains(&day)
            .then(|| crate::datetime::format_day(day as i32))
    }
    fn stamp(seconds: i64) -> String {
        let (day, s) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
        match day_text(day) {
            Some(d) => format!("{d} {:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
            None => seconds.to_string(),
        }
    }
    match f {
        PqField::Str(s) => s.clone(),
        PqField::Null => String::new(),
        PqField::Bytes(b) => String::from_utf8_lossy(b.data()).into_owned(),
        PqField::Date(d) => day_text(i64::from(*d)).unwrap_or_else(|| d.to_string()),
        PqField::TimestampMillis(ms) => stamp(ms.div_euclid(1000)),
        PqField::TimestampMicros(us) => stamp(us.div_euclid(1_000_000)),
        PqField::Decimal(d) => decimal_bytes_to_f64(d.data(), d.scale()).to_string(),
        PqField::Bool(_)
        | PqField::Byte(_)
        | PqField::Short(_)
        | PqField::Int(_)
        | PqField::Long(_)
        | PqField::UByte(_)
        | PqField::UShort(_)
        | PqField::UInt(_)
        | PqField::ULong(_)
        | PqField::Float16(_)
        | PqField::Float(_)
        | PqField::Double(_) => f.to_string(),
        _ => String::new(),
    }
}

/// How a primitive column's values become fields (as the record API
/// would give them).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    Int32,
    UInt32,
    Date,
    Decimal(i32),
    Int64,
    UInt64,
    Millis(bool),
    Micros(bool),
    Nanos(bool),
    Int96(bool),
    Float,
    Text,
    Other,
}

/// One column the typed path reads: its field index, leaf column, kind
/// and maximum definition level (0: never null).
#[derive(Debug, Clone, Copy)]
struct Wanted {
    field: usize,
    leaf: usize,
    kind: Kind,
    max_def: i16,
}

/// The typed reading plan for the `needed` top-level fields, or `None` when
/// one of them is nested or of a type only the record API reads.
fn typed_plan(
    schema: &SchemaDescriptor,
    times: &[TimeInfo],
    needed: &[usize],
) -> Option<Vec<Wanted>> {
    let fields = schema.root_schema().get_fields();
    let mut plan = Vec::with_capacity(needed.len());
    for &field in needed {
        let ty = fields.get(field)?;
        if !ty.is_primitive() {
            return None;
        }
        let leaf = (0..schema.num_columns()).find(|&j| schema.get_column_root_idx(j) == field)?;
        let d = schema.column(leaf);
        if d.max_rep_level() != 0 || d.max_def_level() > 1 {
            return None;
        }
        let utc = times.get(field).is_none_or(|t| t.utc);
        let nanos = times.get(field).is_some_and(|t| t.nanos);
        let kind = match (d.physical_type(), d.converted_type()) {
            (PhysicalType::BOOLEAN, _) => Kind::Bool,
            (
                PhysicalType::INT32,
                ConvertedType::NONE
                | ConvertedType::INT_8
                | ConvertedType::INT_16
                | ConvertedType::INT_32
                | ConvertedType::UINT_8
                | ConvertedType::UINT_16,
            ) => Kind::Int32,
            (PhysicalType::INT32, ConvertedType::UINT_32) => Kind::UInt32,
            (PhysicalType::INT32, ConvertedType::DATE) => Kind::Date,
            (PhysicalType::INT32, ConvertedType::DECIMAL) => Kind::Decimal(d.type_scale()),
            (PhysicalType::INT32, ConvertedType::TIME_MILLIS) => Kind::Other,
            (PhysicalType::INT64, ConvertedType::NONE | ConvertedType::INT_64) if nanos => {
                Kind::Nanos(utc)
            }
            (PhysicalType::INT64, ConvertedType::NONE | ConvertedType::INT_64) => Kind::Int64,
            (PhysicalType::INT64, ConvertedType::UINT_64) => Kind::UInt64,
            (PhysicalType::INT64, ConvertedType::TIMESTAMP_MILLIS) => Kind::Millis(utc),
            (PhysicalType::INT64, ConvertedType::TIMESTAMP_MICROS) => Kind::Micros(utc),
            (PhysicalType::INT64, ConvertedType::DECIMAL) => Kind::Decimal(d.type_scale()),
            (PhysicalType::INT64, ConvertedType::TIME_MICROS) => Kind::Other,
            (PhysicalType::INT96, _) => Kind::Int96(utc),
            (PhysicalType::FLOAT, _) => Kind::Float,
            (PhysicalType::DOUBLE, _) => Kind::Float,
            (
                PhysicalType::BYTE_ARRAY,
                ConvertedType::UTF8
                | ConvertedType::ENUM
                | ConvertedType::JSON
                | ConvertedType::BSON
                | ConvertedType::NONE,
            ) => Kind::Text,
            (
                PhysicalType::BYTE_ARRAY | PhysicalType::FIXED_LEN_BYTE_ARRAY,
                ConvertedType::DECIMAL,
            ) => Kind::Decimal(d.type_scale()),
            _ => return None,
        };
        plan.push(Wanted {
            field,
            leaf,
            kind,
            max_def: d.max_def_level(),
        });
    }
    Some(plan)
}

/// A typed column reader and the buffers of its current batch.
enum Col {
    Bool(ColumnReaderImpl<BoolType>, Vec<bool>),
    Int32(ColumnReaderImpl<Int32Type>, Vec<i32>),
    Int64(ColumnReaderImpl<Int64Type>, Vec<i64>),
    Int96(ColumnReaderImpl<Int96Type>, Vec<Int96>),
    Float(ColumnReaderImpl<FloatType>, Vec<f32>),
    Double(ColumnReaderImpl<DoubleType>, Vec<f64>),
    Bytes(ColumnReaderImpl<ByteArrayType>, Vec<ByteArray>),
    Fixed(
        ColumnReaderImpl<FixedLenByteArrayType>,
        Vec<FixedLenByteArray>,
    ),
}

impl Col {
    fn new(r: ColumnReader) -> Self {
        match r {
            ColumnReader::BoolColumnReader(r) => Col::Bool(r, Vec::new()),
            ColumnReader::Int32ColumnReader(r) => Col::Int32(r, Vec::new()),
            ColumnReader::Int64ColumnReader(r) => Col::Int64(r, Vec::new()),
            ColumnReader::Int96ColumnReader(r) => Col::Int96(r, Vec::new()),
            ColumnReader::FloatColumnReader(r) => Col::Float(r, Vec::new()),
            ColumnReader::DoubleColumnReader(r) => Col::Double(r, Vec::new()),
            ColumnReader::ByteArrayColumnReader(r) => Col::Bytes(r, Vec::new()),
            ColumnReader::FixedLenByteArrayColumnReader(r) => Col::Fixed(r, Vec::new()),
        }
    }

    /// Reads up to `n` records; returns how many.
    fn read(&mut self, n: usize, def: Option<&mut Vec<i16>>) -> parquet::errors::Result<usize> {
        macro_rules! go {
            ($r:expr, $v:expr) => {{
                $v.clear();
                $r.read_records(n, def, None, $v)
                    .map(|(records, _, _)| records)
            }};
        }
        match self {
            Col::Bool(r, v) => go!(r, v),
            Col::Int32(r, v) => go!(r, v),
            Col::Int64(r, v) => go!(r, v),
            Col::Int96(r, v) => go!(r, v),
            Col::Float(r, v) => go!(r, v),
            Col::Double(r, v) => go!(r, v),
            Col::Bytes(r, v) => go!(r, v),
            Col::Fixed(r, v) => go!(r, v),
        }
    }

    /// The `k`-th non-null value of the batch as a field.
    fn field(&self, k: usize, kind: Kind) -> Field<'_> {
        let int = |v: i64| match kind {
            Kind::Date => i32::try_from(v).map_or(Field::Other, Field::Date),
            Kind::UInt32 => Field::Int(i64::from(v as u32)),
            Kind::UInt64 => i64::try_from(v as u64).map_or(Field::Other, Field::Int),
            Kind::Decimal(scale) => Field::Float(v as f64 / 10f64.powi(scale)),
            Kind::Millis(utc) => Field::Micros {
                value: v.saturating_mul(1000),
                utc,
            },
            Kind::Micros(utc) => Field::Micros { value: v, utc },
            Kind::Nanos(utc) => Field::Micros {
                value: v.div_euclid(1000),
                utc,
            },
            Kind::Other => Field::Other,
            _ => Field::Int(v),
        };
        fn bytes(b: &[u8], kind: Kind) -> Field<'_> {
            match kind {
                Kind::Decimal(scale) => Field::Float(decimal_bytes_to_f64(b, scale)),
                _ => Field::Text(b),
            }
        }
        match self {
            Col::Bool(_, v) => v.get(k).map_or(Field::Missing, |b| Field::Bool(*b)),
            Col::Int32(_, v) => v.get(k).map_or(Field::Missing, |x| int(i64::from(*x))),
            Col::Int64(_, v) => v.get(k).map_or(Field::Missing, |x| int(*x)),
            Col::Int96(_, v) => v.get(k).map_or(Field::Missing, |x| Field::Micros {
                value: x.to_millis().saturating_mul(1000),
                utc: matches!(kind, Kind::Int96(true)),
            }),
            Col::Float(_, v) => v
                .get(k)
                .map_or(Field::Missing, |x| Field::Float(f64::from(*x))),
            Col::Double(_, v) => v.get(k).map_or(Field::Missing, |x| Field::Float(*x)),
            Col::Bytes(_, v) => v.get(k).map_or(Field::Missing, |x| bytes(x.data(), kind)),
            Col::Fixed(_, v) => v.get(k).map_or(Field::Missing, |x| bytes(x.data(), kind)),
        }
    }
}

/// One row of a batch: its values (or why it cannot be decoded) and its
/// 1-based row number in the file.
pub(crate) type RowItem<'a> = (Result<Rec<'a>, RowError>, Location);

/// What to read and how far.
pub(crate) struct Scan<'s> {
    /// Top-level fields the caller reads (`None`: all); the others are
    /// given as missing.
    pub needed: Option<Vec<usize>>,
    /// Stop before the row whose index reaches this (a fatal row error).
    pub halt: Option<&'s AtomicU64>,
    /// Compressed bytes read so far.
    pub progress: Option<Arc<AtomicU64>>,
    /// Read through typed column readers when the columns allow it (the
    /// record API otherwise; tests compare the two).
    pub typed: bool,
}

/// Calls `process(state, first row index, rows)` for every batch of every
/// row group, on up to `threads` workers each with its own state from
/// `make`. Batches come in no particular order; the first row index orders
/// them.
fn for_each_batch_inner<W: Send>(
    path: &Path,
    threads: usize,
    scan: &Scan<'_>,
    make: impl Fn() -> W + Sync,
    process: impl Fn(&mut W, u64, &mut dyn Iterator<Item = RowItem<'_>>) + Sync,
) -> Result<Vec<W>, IngestError> {
    let reader = open_reader(path)?;
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let n_fields = schema.root_schema().get_fields().len();
    let times = time_info(schema);
    let needed: Vec<usize> = match &scan.needed {
        Some(n) => n.clone(),
        None => (0..n_fields).collect(),
    };
    let plan = typed_plan(schema, &times, &needed).filter(|_| scan.typed);
    let starts: Vec<u64> = (0..reader.num_row_groups())
        .scan(0u64, |acc, i| {
            let s = *acc;
            *acc += meta.row_group(i).num_rows().max(0) as u64;
            Some(s)
        })
        .collect();
    let halted = |row: u64| {
        scan.halt
            .is_some_and(|h| row + 1 > h.load(Ordering::Relaxed))
    };
    let next_group = AtomicU64::new(0);
    let threads = threads.clamp(1, starts.len().max(1));
    let results: Vec<Result<W, IngestError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (make, process, next_group, starts, times, plan, halted) = (
                    &make,
                    &process,
                    &next_group,
                    &starts,
                    &times,
                    &plan,
                    &halted,
                );
                scope.spawn(move || -> Result<W, IngestError> {
                    let reader = open_reader(path)?;
                    let mut state = make();
                    loop {
                        let g = next_group.fetch_add(1, Ordering::Relaxed) as usize;
                        if g >= starts.len() || halted(starts[g]) {
                            break;
                        }
                        let rg = reader.get_row_group(g).map_err(|e| {
                            IngestError::format(path, format!("row group {g}: {e}"))
                        })?;
                        let at =
                            |e: String| IngestError::format(path, format!("row group {g}: {e}"));
                        match plan {
                            Some(plan) => typed_group(
                                &*rg, plan, n_fields, starts[g], &mut state, process, halted,
                            )
                            .map_err(at)?,
                            None => {
                                record_group(&*rg, times, starts[g], &mut state, process, halted)
                                    .map_err(at)?
                            }
                        }
                        if let Some(p) = &scan.progress {
                            let size = rg.metadata().compressed_size().max(0) as u64;
                            p.fetch_add(size, Ordering::Relaxed);
                        }
                    }
                    Ok(state)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results.into_iter().collect()
}

/// One row group through typed column readers.
fn typed_group<W>(
    rg: &dyn RowGroupReader,
    plan: &[Wanted],
    n_fields: usize,
    start: u64,
    state: &mut W,
    process: &(impl Fn(&mut W, u64, &mut dyn Iterator<Item = RowItem<'_>>) + Sync),
    halted: &dyn Fn(u64) -> bool,
) -> Result<(), String> {
    let total = rg.metadata().num_rows().max(0) as u64;
    let mut cols = plan
        .iter()
        .map(|w| rg.get_column_reader(w.leaf).map(Col::new))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut defs: Vec<Vec<i16>> = vec![Vec::new(); plan.len()];
    let mut done = 0u64;
    while done < total {
        let first = start + done;
        if halted(first) {
            break;
        }
        let want = (total - done).min(BATCH as u64) as usize;
        for ((col, w), def) in cols.iter_mut().zip(plan).zip(&mut defs) {
            def.clear();
            let got = col
                .read(want, (w.max_def > 0).then_some(def))
                .map_err(|e| e.to_string())?;
            if got != want {
                return Err(format!(
                    "column {} has {got} values where {want} rows were expected",
                    w.field + 1
                ));
            }
        }
        let mut cells = vec![Field::Missing; want * n_fields];
        for ((col, w), def) in cols.iter().zip(plan).zip(&defs) {
            let mut k = 0;
            for r in 0..want {
                let present = w.max_def == 0 || def.get(r).is_some_and(|d| *d == w.max_def);
                if present {
                    cells[r * n_fields + w.field] = col.field(k, w.kind);
                    k += 1;
                }
            }
        }
        let mut rows = cells
            .chunks(n_fields.max(1))
            .enumerate()
            .map(|(r, v)| (Ok(Rec::Values(v)), Location::Row(first + r as u64 + 1)));
        process(state, first, &mut rows);
        done += want as u64;
    }
    Ok(())
}

/// One row group through the record API (nested or unusual columns).
fn record_group<W>(
    rg: &dyn RowGroupReader,
    times: &[TimeInfo],
    start: u64,
    state: &mut W,
    process: &(impl Fn(&mut W, u64, &mut dyn Iterator<Item = RowItem<'_>>) + Sync),
    halted: &dyn Fn(u64) -> bool,
) -> Result<(), String> {
    let mut iter = rg.get_row_iter(None).map_err(|e| e.to_string())?.peekable();
    let mut first = start;
    while iter.peek().is_some() {
        if halted(first) {
            break;
        }
        let rows: Vec<Result<parquet::record::Row, String>> = iter
            .by_ref()
            .take(BATCH)
            .map(|r| r.map_err(|e| format!("cannot be decoded: {e}")))
            .collect();
        let values: Vec<Option<Vec<Field<'_>>>> = rows
            .iter()
            .map(|r| {
                r.as_ref().ok().map(|row| {
                    row.get_column_iter()
                        .enumerate()
                        .map(|(i, (_, f))| {
                            let t = times.get(i).copied().unwrap_or(TimeInfo {
                                utc: true,
                                nanos: false,
                            });
                            convert(f, t)
                        })
                        .collect()
                })
            })
            .collect();
        let mut items = rows.iter().zip(&values).enumerate().map(|(k, (r, v))| {
            let loc = Location::Row(first + k as u64 + 1);
            let rec = match (r, v) {
                (Ok(_), Some(v)) => Ok(Rec::Values(v)),
                (Err(m), _) => Err(RowError::new(loc, None, m.clone())),
                (Ok(_), None) => Err(RowError::new(loc, None, "cannot be decoded")),
            };
            (rec, loc)
        });
        process(state, first, &mut items);
        first += rows.len() as u64;
    }
    Ok(())
}

/// The top-level fields a column reads.
fn column_fields(c: &Column) -> impl Iterator<Item = usize> + '_ {
    c.sources.iter().filter_map(|s| match s {
        Source::Index(i) => Some(*i),
        Source::Path(_) => None,
    })
}

/// The top-level fields an order layout reads.
fn order_fields(c: &crate::layout::OrderColumns) -> Vec<usize> {
    let mut cols: Vec<&Column> = vec![&c.customer, &c.date];
    match &c.amount {
        crate::layout::AmountSpec::Column(a) => cols.push(a),
        crate::layout::AmountSpec::PriceTimesQuantity { price, quantity } => {
            cols.extend([price, quantity]);
        }
    }
    cols.extend(c.order_id.iter());
    cols.extend(c.status.iter());
    cols.extend(c.currency.iter());
    cols.extend(c.refunded.iter());
    if let Some((a, b)) = &c.segment_event {
        cols.extend([a, b]);
    }
    let mut fields: Vec<usize> = cols.into_iter().flat_map(column_fields).collect();
    fields.sort_unstable();
    fields.dedup();
    fields
}

fn read_orders_inner(path: &Path, opts: &ReadOptions) -> Result<OrdersInput, IngestError> {
    let (header, sample) = header_and_sample(path)?;
    let sniffed = Sniffed {
        compression: Compression::None,
        format: Format::Parquet,
        has_header: true,
        header: header.clone(),
        sample,
        json_sample: Vec::new(),
        sample_bytes_per_record: 0,
    };
    let cols = order_columns(&sniffed, &opts.columns).map_err(|m| IngestError::format(path, m))?;
    let style = decide_date_style(path, &sniffed, &cols.date, opts.date_format.as_deref())?;
    let mut description = describe(path, &sniffed, &cols, &style);
    description.format = "Parquet".into();
    let needed = order_fields(&cols);
    let parser = OrderParser::new(
        path,
        (Format::Parquet, true, header.len(), 0),
        cols,
        style,
        opts,
    );
    let scan = Scan {
        needed: Some(needed),
        halt: Some(&parser.halt),
        progress: opts.progress.clone(),
        typed: true,
    };
    let workers = for_each_batch(path, opts.threads, &scan, OrderWorker::new, |w, _, rows| {
        for (rec, loc) in rows {
            if let Err(e) = rec.and_then(|rec| parser.row(w, &rec, loc))
                && w.reject(e, &parser) == ControlFlow::Break(())
            {
                break;
            }
        }
    })?;
    finish_orders(
        path,
        workers,
        parser.first_currency.into_inner().map(|(c, _)| c),
        description,
    )
}

/// A Parquet file's column names and the first 1,000 rows as text (for
/// recognising columns and the date style).
fn header_and_sample_inner(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>), IngestError> {
    let reader = open_reader(path)?;
    let header: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let mut sample = Vec::new();
    if let Ok(iter) = reader.get_row_iter(None) {
        for row in iter.take(1000) {
            let row =
                row.map_err(|e| IngestError::format(path, format!("cannot read rows: {e}")))?;
            sample.push(row.get_column_iter().map(|(_, f)| as_text(f)).collect());
        }
    }
    Ok((header, sample))
}

/// A small Parquet table (a summary file) as CSV text: its `lifecycle.*`
/// key-value metadata as `# key: value` lines (`lifecycle.time_unit` →
/// `# time unit: days`), then the header and every row.
fn to_csv_text_inner(path: &Path) -> Result<String, IngestError> {
    let (header, _) = header_and_sample(path)?;
    let reader = open_reader(path)?;
    let mut out = String::new();
    if let Some(kv) = reader.metadata().file_metadata().key_value_metadata() {
        for k in kv {
            if let (Some(name), Some(v)) = (k.key.strip_prefix("lifecycle."), &k.value) {
                out.push_str(&format!("# {}: {v}\n", name.replace('_', " ")));
            }
        }
    }
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    let io = |e: csv::Error| IngestError::format(path, e.to_string());
    w.write_record(&header).map_err(io)?;
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| IngestError::format(path, format!("cannot read rows: {e}")))?;
    for (k, row) in rows.enumerate() {
        let row = row.map_err(|e| {
            IngestError::format(path, format!("row {}: cannot be decoded: {e}", k + 1))
        })?;
        let cells: Vec<String> = row.get_column_iter().map(|(_, f)| as_text(f)).collect();
        w.write_record(&cells).map_err(io)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| IngestError::format(path, e.to_string()))?;
    out.push_str(&String::from_utf8_lossy(&bytes));
    Ok(out)
}

/// Guarded Parquet reads under way (any thread).
static GUARDED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether a panic is one a Parquet read contains: raised inside the
/// `parquet` crate while a guarded read is under way, so that the read
/// reports the file as unreadable. A panic hook may keep quiet about it
/// (the user sees the error naming the file, not a panic message), and a
/// fuzzer may let it unwind instead of aborting.
pub fn panic_is_contained(info: &std::panic::PanicHookInfo<'_>) -> bool {
    GUARDED.load(std::sync::atomic::Ordering::SeqCst) > 0
        && info.location().is_some_and(|l| {
            let file = l.file().replace('\\', "/");
            file.contains("/parquet-")
        })
}

/// Counts a guarded read while it lives.
struct Guard;

impl Guard {
    fn new() -> Guard {
        GUARDED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Guard
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        GUARDED.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Runs `f`, turning a panic inside the `parquet` crate (it asserts on
/// some malformed files; found by fuzzing) into an error naming the file.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, IngestError>) -> Result<T, IngestError> {
    let _guard = Guard::new();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the Parquet reader failed".into());
        Err(IngestError::format(
            path,
            format!("not a readable Parquet file (corrupt or unsupported: {why})"),
        ))
    })
}

/// See [`for_each_batch_inner`]; a malformed file is an error, never a panic.
pub(crate) fn for_each_batch<W: Send>(
    path: &Path,
    threads: usize,
    scan: &Scan<'_>,
    make: impl Fn() -> W + Sync,
    process: impl Fn(&mut W, u64, &mut dyn Iterator<Item = RowItem<'_>>) + Sync,
) -> Result<Vec<W>, IngestError> {
    guarded(path, || {
        for_each_batch_inner(path, threads, scan, make, process)
    })
}

/// Reads a Parquet orders file; a malformed file is an error, never a panic.
pub(crate) fn read_orders(path: &Path, opts: &ReadOptions) -> Result<OrdersInput, IngestError> {
    guarded(path, || read_orders_inner(path, opts))
}

/// A Parquet file's column names and the first 1,000 rows as text.
pub(crate) fn header_and_sample(
    path: &Path,
) -> Result<(Vec<String>, Vec<Vec<String>>), IngestError> {
    guarded(path, || header_and_sample_inner(path))
}

/// A small Parquet table as CSV text (see [`to_csv_text_inner`]).
pub(crate) fn to_csv_text(path: &Path) -> Result<String, IngestError> {
    guarded(path, || to_csv_text_inner(path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use parquet::data_type::Int96;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    /// Writes `rows` rows in row groups of `group` with every kind of column
    /// the typed path reads, nulls in the optional ones.
    fn write_file(path: &Path, rows: usize, group: usize) {
        let schema = Arc::new(
            parse_message_type(
                "message m {
                    optional binary customer (UTF8);
                    required int32 day (DATE);
                    optional int64 ts_nanos (TIMESTAMP(NANOS,false));
                    required int64 ts_millis (TIMESTAMP(MILLIS,true));
                    optional int64 cents (DECIMAL(12,2));
                    required int32 small (DECIMAL(6,3));
                    optional fixed_len_byte_array(8) big (DECIMAL(18,4));
                    required float f;
                    optional double d;
                    required boolean b;
                    required int96 legacy;
                    required int32 n;
                }",
            )
            .unwrap(),
        );
        let file = File::create(path).unwrap();
        let mut w =
            SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
                .unwrap();
        let mut at = 0;
        while at < rows {
            let n = group.min(rows - at);
            let idx: Vec<usize> = (at..at + n).collect();
            let def = |every: usize| -> Vec<i16> {
                idx.iter().map(|i| i16::from(i % every != 0)).collect()
            };
            let present = |every: usize| idx.iter().filter(move |i| *i % every != 0).copied();
            let mut rg = w.next_row_group().unwrap();
            let mut c = 0;
            while let Some(mut col) = rg.next_column().unwrap() {
                match c {
                    0 => {
                        let v: Vec<ByteArray> = present(7)
                            .map(|i| format!("C{i}").as_str().into())
                            .collect();
                        col.typed::<ByteArrayType>()
                            .write_batch(&v, Some(&def(7)), None)
                            .unwrap();
                    }
                    1 => {
                        let v: Vec<i32> = idx.iter().map(|i| 19_000 + (*i as i32 % 900)).collect();
                        col.typed::<Int32Type>()
                            .write_batch(&v, None, None)
                            .unwrap();
                    }
                    2 => {
                        let v: Vec<i64> = present(5)
                            .map(|i| 1_700_000_000_123_456_789 - i as i64 * 86_400_000_000_001)
                            .collect();
                        col.typed::<Int64Type>()
                            .write_batch(&v, Some(&def(5)), None)
                            .unwrap();
                    }
                    3 => {
                        let v: Vec<i64> =
                            idx.iter().map(|i| 1_600_000_000_000 + *i as i64).collect();
                        col.typed::<Int64Type>()
                            .write_batch(&v, None, None)
                            .unwrap();
                    }
                    4 => {
                        let v: Vec<i64> = present(3).map(|i| i as i64 * 137 - 5_000).collect();
                        col.typed::<Int64Type>()
                            .write_batch(&v, Some(&def(3)), None)
                            .unwrap();
                    }
                    5 => {
                        let v: Vec<i32> = idx.iter().map(|i| *i as i32 - 777).collect();
                        col.typed::<Int32Type>()
                            .write_batch(&v, None, None)
                            .unwrap();
                    }
                    6 => {
                        let v: Vec<FixedLenByteArray> = present(4)
                            .map(|i| {
                                let x = (i as i64 - 300) * 123_457;
                                FixedLenByteArray::from(ByteArray::from(x.to_be_bytes().to_vec()))
                            })
                            .collect();
                        col.typed::<FixedLenByteArrayType>()
                            .write_batch(&v, Some(&def(4)), None)
                            .unwrap();
                    }
                    7 => {
                        let v: Vec<f32> = idx.iter().map(|i| *i as f32 * 0.25).collect();
                        col.typed::<FloatType>()
                            .write_batch(&v, None, None)
                            .unwrap();
                    }
                    8 => {
                        let v: Vec<f64> = present(2).map(|i| i as f64 * 1.01).collect();
                        col.typed::<DoubleType>()
                            .write_batch(&v, Some(&def(2)), None)
                            .unwrap();
                    }
                    9 => {
                        let v: Vec<bool> = idx.iter().map(|i| i % 3 == 0).collect();
                        col.typed::<BoolType>().write_batch(&v, None, None).unwrap();
                    }
                    10 => {
                        let v: Vec<Int96> = idx
                            .iter()
                            .map(|i| {
                                let mut x = Int96::new();
                                x.set_data(0, (*i as u32) * 1000, 2_460_000 + *i as u32 % 50);
                                x
                            })
                            .collect();
                        col.typed::<Int96Type>()
                            .write_batch(&v, None, None)
                            .unwrap();
                    }
                    _ => {
                        let v: Vec<i32> = idx.iter().map(|i| *i as i32).collect();
                        col.typed::<Int32Type>()
                            .write_batch(&v, None, None)
                            .unwrap();
                    }
                }
                col.close().unwrap();
                c += 1;
            }
            rg.close().unwrap();
            at += n;
        }
        w.close().unwrap();
    }

    /// Every row as (row number, debug text of each field), in file order.
    fn rows(path: &Path, typed: bool, needed: Option<Vec<usize>>) -> Vec<(u64, String)> {
        let scan = Scan {
            needed,
            halt: None,
            progress: None,
            typed,
        };
        let parts = for_each_batch(path, 2, &scan, Vec::new, |out, _, rows| {
            for (rec, loc) in rows {
                let text = match rec {
                    Ok(Rec::Values(v)) => format!("{v:?}"),
                    Ok(_) => "other".into(),
                    Err(e) => format!("error {e:?}"),
                };
                out.push((loc.index(), text));
            }
        })
        .unwrap();
        let mut all: Vec<(u64, String)> = parts.into_iter().flatten().collect();
        all.sort();
        all
    }

    #[test]
    fn typed_columns_read_what_the_record_api_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kinds.parquet");
        write_file(&path, 10_000, 3_000);
        let reader = open_reader(&path).unwrap();
        let schema = reader.metadata().file_metadata().schema_descr();
        let all: Vec<usize> = (0..12).collect();
        assert!(typed_plan(schema, &time_info(schema), &all).is_some());
        let typed = rows(&path, true, None);
        let records = rows(&path, false, None);
        assert_eq!(typed.len(), 10_000);
        assert_eq!(typed, records);
        // Spot checks: a null customer, a nanosecond timestamp as micros,
        // decimals scaled.
        assert!(typed[0].1.starts_with("[Missing, Date(19000), Missing,"));
        assert!(
            typed[1]
                .1
                .contains("Micros { value: 1699913600123456, utc: false }")
        );
        assert!(typed[1].1.contains("Float(-0.776)"), "{}", typed[1].1);
        // Only some fields: the others are missing in both paths.
        let some = Some(vec![0, 4, 8]);
        let typed = rows(&path, true, some.clone());
        assert!(
            typed[1]
                .1
                .starts_with("[Text([67, 49]), Missing, Missing, Missing, Float(-48.63)")
        );
    }

    #[test]
    fn nested_columns_use_the_record_api() {
        let schema = parse_message_type(
            "message m { required binary c (UTF8); optional group g { required int32 x; } }",
        )
        .unwrap();
        let descr = SchemaDescriptor::new(Arc::new(schema));
        let times = time_info(&descr);
        assert!(typed_plan(&descr, &times, &[0]).is_some());
        assert!(typed_plan(&descr, &times, &[0, 1]).is_none());
    }
}

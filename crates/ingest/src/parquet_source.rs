//! Parquet order files: row groups are read in parallel through the
//! `parquet` crate's record API (no Arrow), with the same column recognition
//! as text files.

use std::fs::File;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use parquet::basic::LogicalType;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field as PqField;

use crate::IngestError;
use crate::error::{Location, RowError};
use crate::layout::{Compression, Format, Sniffed, order_columns};
use crate::orders::{
    OrderParser, OrderWorker, OrdersInput, ReadOptions, decide_date_style, describe, finish_orders,
};
use crate::record::{Field, Rec};

fn open_reader(path: &Path) -> Result<SerializedFileReader<File>, IngestError> {
    let f = File::open(path).map_err(|e| IngestError::io(path, e))?;
    SerializedFileReader::new(f)
        .map_err(|e| IngestError::format(path, format!("not a readable Parquet file: {e}")))
}

fn decimal_to_f64(d: &parquet::data_type::Decimal) -> f64 {
    let bytes = d.data();
    let mut v: i128 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for &b in bytes.iter().take(16) {
        v = (v << 8) | i128::from(b);
    }
    v as f64 / 10f64.powi(d.scale())
}

/// Converts one Parquet value; `utc` says whether timestamps are instants.
fn convert<'a>(f: &'a PqField, utc: bool) -> Field<'a> {
    match f {
        PqField::Null => Field::Missing,
        PqField::Bool(b) => Field::Bool(*b),
        PqField::Byte(v) => Field::Int(i64::from(*v)),
        PqField::Short(v) => Field::Int(i64::from(*v)),
        PqField::Int(v) => Field::Int(i64::from(*v)),
        PqField::Long(v) => Field::Int(*v),
        PqField::UByte(v) => Field::Int(i64::from(*v)),
        PqField::UShort(v) => Field::Int(i64::from(*v)),
        PqField::UInt(v) => Field::Int(i64::from(*v)),
        PqField::ULong(v) => i64::try_from(*v).map_or(Field::Other, Field::Int),
        PqField::Float16(v) => Field::Float(f64::from(*v)),
        PqField::Float(v) => Field::Float(f64::from(*v)),
        PqField::Double(v) => Field::Float(*v),
        PqField::Decimal(d) => Field::Float(decimal_to_f64(d)),
        PqField::Str(s) => Field::Text(s.as_bytes()),
        PqField::Bytes(b) => Field::Text(b.data()),
        PqField::Date(d) => Field::Date(*d),
        PqField::TimestampMillis(ms) => Field::Micros {
            value: ms.saturating_mul(1000),
            utc,
        },
        PqField::TimestampMicros(us) => Field::Micros { value: *us, utc },
        _ => Field::Other,
    }
}

fn as_text(f: &PqField) -> String {
    match f {
        PqField::Str(s) => s.clone(),
        PqField::Null => String::new(),
        other => other.to_string(),
    }
}

pub(crate) fn read_orders(path: &Path, opts: &ReadOptions) -> Result<OrdersInput, IngestError> {
    let reader = open_reader(path)?;
    let meta = reader.metadata();
    let fields = meta
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .to_vec();
    let header: Vec<String> = fields.iter().map(|f| f.name().to_string()).collect();
    let utc: Vec<bool> = fields
        .iter()
        .map(|f| match f.get_basic_info().logical_type_ref() {
            Some(LogicalType::Timestamp(t)) => t.is_adjusted_to_u_t_c,
            _ => true,
        })
        .collect();
    let group_rows: Vec<u64> = (0..reader.num_row_groups())
        .map(|i| meta.row_group(i).num_rows().max(0) as u64)
        .collect();
    // A sample of text values for the date style.
    let mut sample = Vec::new();
    if let Ok(iter) = reader.get_row_iter(None) {
        for row in iter.take(1000) {
            let row =
                row.map_err(|e| IngestError::format(path, format!("cannot read rows: {e}")))?;
            sample.push(row.get_column_iter().map(|(_, f)| as_text(f)).collect());
        }
    }
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
    let parser = OrderParser::new(
        path,
        (Format::Parquet, true, header.len(), 0),
        cols,
        style,
        opts,
    );
    let starts: Vec<u64> = group_rows
        .iter()
        .scan(0u64, |acc, &n| {
            let s = *acc;
            *acc += n;
            Some(s)
        })
        .collect();
    let threads = opts.threads.clamp(1, group_rows.len().max(1));
    let next_group = AtomicU64::new(0);
    let results: Vec<Result<OrderWorker, IngestError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (parser, next_group, starts, utc) = (&parser, &next_group, &starts, &utc);
                scope.spawn(move || -> Result<OrderWorker, IngestError> {
                    let reader = open_reader(path)?;
                    let mut w = OrderWorker::new();
                    loop {
                        let g = next_group.fetch_add(1, Ordering::Relaxed) as usize;
                        if g >= starts.len() || starts[g] + 1 > parser.halt.load(Ordering::Relaxed)
                        {
                            break;
                        }
                        let rg = reader.get_row_group(g).map_err(|e| {
                            IngestError::format(path, format!("row group {g}: {e}"))
                        })?;
                        let group = rg.get_row_iter(None).map_err(|e| {
                            IngestError::format(path, format!("row group {g}: {e}"))
                        })?;
                        for (k, row) in group.enumerate() {
                            let n = starts[g] + k as u64 + 1;
                            let loc = Location::Row(n);
                            let row = match row {
                                Ok(r) => r,
                                Err(e) => {
                                    return Err(IngestError::Row {
                                        path: path.to_path_buf(),
                                        row: RowError::new(
                                            loc,
                                            None,
                                            format!("cannot be decoded: {e}"),
                                        ),
                                    });
                                }
                            };
                            let values: Vec<Field<'_>> = row
                                .get_column_iter()
                                .enumerate()
                                .map(|(i, (_, f))| convert(f, utc.get(i).copied().unwrap_or(true)))
                                .collect();
                            if let Err(e) = parser.row(&mut w, &Rec::Values(&values), loc)
                                && w.reject(e, parser) == ControlFlow::Break(())
                            {
                                break;
                            }
                        }
                        if let Some(p) = &opts.progress {
                            let size =
                                reader.metadata().row_group(g).compressed_size().max(0) as u64;
                            p.fetch_add(size, Ordering::Relaxed);
                        }
                    }
                    Ok(w)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let workers = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    finish_orders(
        path,
        workers,
        parser.first_currency.into_inner().map(|(c, _)| c),
        description,
    )
}

/// A Parquet file's column names and the first 1,000 rows as text (for
/// recognising columns and the date style).
pub(crate) fn header_and_sample(
    path: &Path,
) -> Result<(Vec<String>, Vec<Vec<String>>), IngestError> {
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

/// One row of a row group: its values (or why it cannot be decoded) and
/// its 1-based row number in the file.
pub(crate) type RowItem<'a> = (Result<Rec<'a>, RowError>, Location);

/// Calls `process(state, group index, rows)` for every row group, on up to
/// `threads` workers each with its own state from `make`.
pub(crate) fn for_each_row_group<W: Send>(
    path: &Path,
    threads: usize,
    make: impl Fn() -> W + Sync,
    process: impl Fn(&mut W, u64, &mut dyn Iterator<Item = RowItem<'_>>) + Sync,
) -> Result<Vec<W>, IngestError> {
    let reader = open_reader(path)?;
    let meta = reader.metadata();
    let utc: Vec<bool> = meta
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| match f.get_basic_info().logical_type_ref() {
            Some(LogicalType::Timestamp(t)) => t.is_adjusted_to_u_t_c,
            _ => true,
        })
        .collect();
    let starts: Vec<u64> = (0..reader.num_row_groups())
        .scan(0u64, |acc, i| {
            let s = *acc;
            *acc += meta.row_group(i).num_rows().max(0) as u64;
            Some(s)
        })
        .collect();
    let next_group = AtomicU64::new(0);
    let threads = threads.clamp(1, starts.len().max(1));
    let results: Vec<Result<W, IngestError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (make, process, next_group, starts, utc) =
                    (&make, &process, &next_group, &starts, &utc);
                scope.spawn(move || -> Result<W, IngestError> {
                    let reader = open_reader(path)?;
                    let mut state = make();
                    loop {
                        let g = next_group.fetch_add(1, Ordering::Relaxed) as usize;
                        if g >= starts.len() {
                            break;
                        }
                        let rg = reader.get_row_group(g).map_err(|e| {
                            IngestError::format(path, format!("row group {g}: {e}"))
                        })?;
                        let group = rg.get_row_iter(None).map_err(|e| {
                            IngestError::format(path, format!("row group {g}: {e}"))
                        })?;
                        let rows: Vec<(Result<parquet::record::Row, String>, Location)> = group
                            .enumerate()
                            .map(|(k, row)| {
                                (
                                    row.map_err(|e| format!("cannot be decoded: {e}")),
                                    Location::Row(starts[g] + k as u64 + 1),
                                )
                            })
                            .collect();
                        let values: Vec<Option<Vec<Field<'_>>>> = rows
                            .iter()
                            .map(|(r, _)| {
                                r.as_ref().ok().map(|row| {
                                    row.get_column_iter()
                                        .enumerate()
                                        .map(|(i, (_, f))| {
                                            convert(f, utc.get(i).copied().unwrap_or(true))
                                        })
                                        .collect()
                                })
                            })
                            .collect();
                        let mut items = rows.iter().zip(&values).map(|((r, loc), v)| {
                            let rec = match (r, v) {
                                (Ok(_), Some(v)) => Ok(Rec::Values(v)),
                                (Err(m), _) => Err(RowError::new(*loc, None, m.clone())),
                                (Ok(_), None) => {
                                    Err(RowError::new(*loc, None, "cannot be decoded"))
                                }
                            };
                            (rec, *loc)
                        });
                        process(&mut state, g as u64, &mut items);
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

//! Uniform access to one input record, whatever the format.

use crate::layout::{Column, Source};

/// One field's value as the format gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    Missing,
    /// Text bytes (not yet checked to be UTF-8).
    Text(&'a [u8]),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A Parquet DATE: days since 1970-01-01.
    Date(i32),
    /// A Parquet TIMESTAMP: microseconds since 1970 (UTC when `utc`).
    Micros {
        value: i64,
        utc: bool,
    },
    /// An object or array where a scalar was expected.
    Other,
}

impl Field<'_> {
    /// Missing, null or blank.
    pub fn is_empty(&self) -> bool {
        match self {
            Field::Missing => true,
            Field::Text(t) => t.iter().all(u8::is_ascii_whitespace),
            _ => false,
        }
    }
}

/// One record.
pub enum Rec<'a> {
    /// Delimited or whitespace fields.
    Fields(&'a [&'a [u8]]),
    Csv(&'a csv::ByteRecord),
    Json(&'a serde_json::Value),
    Values(&'a [Field<'a>]),
}

impl<'a> Rec<'a> {
    pub fn source(&self, s: &Source) -> Field<'a> {
        match (self, s) {
            (Rec::Fields(f), Source::Index(i)) => {
                f.get(*i).map_or(Field::Missing, |b| Field::Text(b))
            }
            (Rec::Csv(r), Source::Index(i)) => r.get(*i).map_or(Field::Missing, Field::Text),
            (Rec::Values(v), Source::Index(i)) => v.get(*i).copied().unwrap_or(Field::Missing),
            (Rec::Json(v), Source::Path(p)) => {
                let mut cur: &'a serde_json::Value = v;
                for k in p {
                    match cur.get(k) {
                        Some(next) => cur = next,
                        None => return Field::Missing,
                    }
                }
                json_field(cur)
            }
            _ => Field::Missing,
        }
    }

    /// The first non-empty alternative of a column.
    pub fn get(&self, c: &Column) -> Field<'a> {
        for s in &c.sources {
            let f = self.source(s);
            if !f.is_empty() {
                return f;
            }
        }
        Field::Missing
    }

    /// The number of fields of a delimited record.
    pub fn len(&self) -> Option<usize> {
        match self {
            Rec::Fields(f) => Some(f.len()),
            Rec::Csv(r) => Some(r.len()),
            _ => None,
        }
    }
}

fn json_field(v: &serde_json::Value) -> Field<'_> {
    match v {
        serde_json::Value::Null => Field::Missing,
        serde_json::Value::Bool(b) => Field::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Field::Int(i),
            None => n.as_f64().map_or(Field::Other, Field::Float),
        },
        serde_json::Value::String(s) => Field::Text(s.as_bytes()),
        _ => Field::Other,
    }
}

/// Splits a whitespace-separated line into `out`.
pub fn split_whitespace<'a>(line: &'a [u8], out: &mut Vec<&'a [u8]>) {
    out.clear();
    out.extend(
        line.split(|b| matches!(b, b' ' | b'\t' | b'\r'))
            .filter(|f| !f.is_empty()),
    );
}

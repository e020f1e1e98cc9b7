//! The small side files (attributes, spend, survey answers): read whole,
//! UTF-8 with an optional BOM, comma, tab or semicolon separated (whichever
//! the header line has most of), with a header.

use std::path::Path;

use crate::{IngestError, Location, RowError};

pub(crate) struct SmallCsv {
    text: String,
    delimiter: u8,
    pub header: Vec<String>,
}

impl SmallCsv {
    pub(crate) fn open(path: &Path) -> Result<SmallCsv, IngestError> {
        let bytes = std::fs::read(path).map_err(|e| IngestError::io(path, e))?;
        let text = String::from_utf8(
            bytes
                .strip_prefix(b"\xEF\xBB\xBF")
                .unwrap_or(&bytes)
                .to_vec(),
        )
        .map_err(|_| IngestError::format(path, "is not UTF-8 text"))?;
        let first = text.lines().next().unwrap_or("");
        let delimiter = [b',', b'\t', b';']
            .into_iter()
            .max_by_key(|d| first.bytes().filter(|b| b == d).count())
            .unwrap_or(b',');
        let mut out = SmallCsv {
            text,
            delimiter,
            header: Vec::new(),
        };
        out.header = out
            .reader()
            .headers()
            .map_err(|e| IngestError::format(path, format!("header: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        Ok(out)
    }

    /// The file's size in bytes (for capacity guesses).
    pub(crate) fn len(&self) -> usize {
        self.text.len()
    }

    /// Calls `f` with each record and a maker of errors naming its line and
    /// a column; a malformed record is an error naming its line.
    pub(crate) fn each(
        &self,
        path: &Path,
        mut f: impl FnMut(
            &csv::StringRecord,
            &dyn Fn(usize, String) -> IngestError,
        ) -> Result<(), IngestError>,
    ) -> Result<(), IngestError> {
        let mut reader = self.reader();
        let mut record = csv::StringRecord::new();
        loop {
            let more = reader
                .read_record(&mut record)
                .map_err(|e| IngestError::Row {
                    path: path.to_path_buf(),
                    row: RowError::new(
                        Location::Line(e.position().map_or(0, |p| p.line())),
                        None,
                        e.to_string(),
                    ),
                })?;
            if !more {
                return Ok(());
            }
            let line = record.position().map_or(0, |p| p.line());
            let err = |col: usize, m: String| IngestError::Row {
                path: path.to_path_buf(),
                row: RowError::new(
                    Location::Line(line),
                    self.header.get(col).map(String::as_str),
                    m,
                ),
            };
            f(&record, &err)?;
        }
    }

    /// A reader over the records (the header is its own).
    pub(crate) fn reader(&self) -> csv::Reader<&[u8]> {
        csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .flexible(false)
            .from_reader(self.text.as_bytes())
    }
}

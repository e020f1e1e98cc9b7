//! Errors that say where: file, line (or Parquet row) and column.

use std::fmt;
use std::path::PathBuf;

/// Where in a file a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Location {
    /// 1-based line of a text file.
    Line(u64),
    /// 1-based row of a Parquet file.
    Row(u64),
}

impl Location {
    pub fn index(self) -> u64 {
        match self {
            Location::Line(n) | Location::Row(n) => n,
        }
    }
}

/// A problem with one input row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub location: Location,
    /// The column as the file names it (or `column 3` without a header).
    pub column: Option<String>,
    pub message: String,
}

impl RowError {
    pub fn new(location: Location, column: Option<&str>, message: impl Into<String>) -> Self {
        RowError {
            location,
            column: column.map(str::to_string),
            message: message.into(),
        }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Location::Line(n) => write!(f, "{n}: ")?,
            Location::Row(n) => write!(f, " row {n}: ")?,
        }
        if let Some(c) = &self.column {
            write!(f, "column '{c}': ")?;
        }
        f.write_str(&self.message)
    }
}

/// Everything that can go wrong reading an input file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A bad row (with `--strict`, the first one).
    #[error("{}:{row}", path.display())]
    Row { path: PathBuf, row: RowError },
    /// The file as a whole cannot be read as orders or events.
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("{}:{line}: line is longer than the limit of {limit} bytes (is this really a text export?)", path.display())]
    LineTooLong {
        path: PathBuf,
        line: u64,
        limit: usize,
    },
    /// A configuration file (segments, thresholds, currency rates).
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
}

impl IngestError {
    pub fn format(path: &std::path::Path, message: impl Into<String>) -> Self {
        IngestError::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        IngestError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

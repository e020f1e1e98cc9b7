//! Per-customer summary files, the form the published model data come in:
//! `frequency,recency,T[,monetary_value]` (or `x,t_x,T[,zbar]`, as
//! `cdnow_customers_summary.csv`), discrete-time patterns
//! `frequency,recency,periods,weights` (as `donations.csv`), and cohort
//! survivor counts `survivors` (one row per period).
//!
//! A continuous-time summary must state its time unit, in a first-line
//! comment `# time unit: weeks` or by the caller; it is never assumed.

use std::path::Path;

use crate::IngestError;
use crate::layout::normalize;

/// The unit of a continuous-time summary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimeUnit {
    Day,
    Week,
    Month,
    Year,
}

impl TimeUnit {
    /// Parses `day`, `days`, `d`, `week`, `w`, `month`, `m`, `year`, `y`.
    pub fn parse(s: &str) -> Option<TimeUnit> {
        match s.trim().to_ascii_lowercase().as_str() {
            "d" | "day" | "days" => Some(TimeUnit::Day),
            "w" | "week" | "weeks" => Some(TimeUnit::Week),
            "m" | "month" | "months" => Some(TimeUnit::Month),
            "y" | "year" | "years" => Some(TimeUnit::Year),
            _ => None,
        }
    }

    /// Length in days (a month is a twelfth of 365.25 days).
    pub fn days(self) -> f64 {
        match self {
            TimeUnit::Day => 1.0,
            TimeUnit::Week => 7.0,
            TimeUnit::Month => 365.25 / 12.0,
            TimeUnit::Year => 365.25,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::Day => "days",
            TimeUnit::Week => "weeks",
            TimeUnit::Month => "months",
            TimeUnit::Year => "years",
        }
    }
}

/// A duration like `52w`, `365d`, `12m`, `1y`: (count, unit).
pub fn parse_duration(s: &str) -> Result<(f64, TimeUnit), String> {
    let s = s.trim();
    let split = s
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("\"{s}\" has no unit: write e.g. 52w, 365d, 12m or 1y"))?;
    let (n, u) = s.split_at(split);
    let n: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration like 52w"))?;
    let unit = TimeUnit::parse(u).ok_or_else(|| format!("\"{u}\" is not a unit (d, w, m, y)"))?;
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("\"{s}\" must be positive"));
    }
    Ok((n, unit))
}

/// One continuous-time row: repeat purchases, recency, age, optional mean
/// repeat value, weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SummaryRow {
    pub x: f64,
    pub t_x: f64,
    pub t_big: f64,
    pub monetary: Option<f64>,
    pub weight: f64,
}

/// What a summary file holds.
#[derive(Debug, Clone, PartialEq)]
pub enum SummaryFile {
    Continuous {
        rows: Vec<SummaryRow>,
        unit: TimeUnit,
    },
    /// (x, t_x, n, weight) patterns.
    Discrete { rows: Vec<[f64; 4]> },
    /// Customers still active at the start of each period.
    Survivors { counts: Vec<f64> },
}

/// Is this a summary file rather than an orders file? (Its header names
/// summary columns.)
pub fn looks_like_summary(path: &Path) -> bool {
    let text = if crate::layout::is_parquet(path).unwrap_or(false) {
        match crate::parquet_source::header_and_sample(path) {
            Ok((header, _)) => header.join(","),
            Err(_) => return false,
        }
    } else {
        let Ok(text) = read_head(path) else {
            return false;
        };
        text
    };
    let Some(header) = text
        .lines()
        .find(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
    else {
        return false;
    };
    let cols: Vec<String> = header.split(',').map(normalize).collect();
    let has = |n: &str| cols.iter().any(|c| c == n);
    (has("frequency") && has("recency")) || (has("x") && has("tx")) || has("survivors")
}

/// A summary file's text: a CSV file as it is; a Parquet file as CSV, its
/// `lifecycle.*` key-value metadata (`time_unit`, `as_of`) as the
/// `# time unit:` and `# as of:` lines a CSV summary file carries.
pub fn summary_text(path: &Path) -> Result<String, IngestError> {
    if crate::layout::is_parquet(path)? {
        crate::parquet_source::to_csv_text(path)
    } else {
        std::fs::read_to_string(path).map_err(|e| IngestError::io(path, e))
    }
}

fn read_head(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; 4096];
    let n = std::fs::File::open(path)?.read(&mut buf)?;
    buf.truncate(n);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Reads a summary file; `unit` is required for a continuous-time summary
/// without a `# time unit:` comment.
pub fn read_summary(path: &Path, unit: Option<TimeUnit>) -> Result<SummaryFile, IngestError> {
    let text = summary_text(path)?;
    let err = |line: usize, m: String| IngestError::Row {
        path: path.to_path_buf(),
        row: crate::RowError::new(crate::Location::Line(line as u64), None, m),
    };
    let mut stated: Option<TimeUnit> = None;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let mut header: Option<(usize, Vec<String>)> = None;
    for (i, line) in lines.by_ref() {
        if let Some(comment) = line.trim_start().strip_prefix('#') {
            if let Some(u) = comment
                .trim()
                .to_ascii_lowercase()
                .strip_prefix("time unit:")
            {
                stated =
                    Some(TimeUnit::parse(u).ok_or_else(|| {
                        err(i + 1, format!("unknown time unit \"{}\"", u.trim()))
                    })?);
            }
            continue;
        }
        header = Some((i, line.split(',').map(|c| c.trim().to_string()).collect()));
        break;
    }
    let (_, header) = header.ok_or_else(|| IngestError::format(path, "the file is empty"))?;
    let norm: Vec<String> = header.iter().map(|h| normalize(h)).collect();
    let col = |names: &[&str]| names.iter().find_map(|n| norm.iter().position(|c| c == n));
    // A customer id column (as `lifecycle summarize` writes) is not a number.
    let id = col(&["customerid", "customer", "id"]);
    let mut values: Vec<(usize, Vec<f64>)> = Vec::new();
    for (i, line) in lines {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != header.len() {
            return Err(err(
                i + 1,
                format!(
                    "has {} fields, the header has {}",
                    fields.len(),
                    header.len()
                ),
            ));
        }
        let mut row = Vec::with_capacity(fields.len());
        for (k, (f, name)) in fields.iter().zip(&header).enumerate() {
            if Some(k) == id {
                row.push(f64::NAN);
                continue;
            }
            let v: f64 = f.trim().parse().map_err(|_| {
                err(
                    i + 1,
                    format!("column '{name}': \"{}\" is not a number", f.trim()),
                )
            })?;
            row.push(v);
        }
        values.push((i + 1, row));
    }
    if values.is_empty() {
        return Err(IngestError::format(
            path,
            "the file has a header but no rows",
        ));
    }
    if let Some(s) = col(&["survivors", "active", "customers"]) {
        return Ok(SummaryFile::Survivors {
            counts: values.iter().map(|(_, r)| r[s]).collect(),
        });
    }
    let x = col(&["frequency", "x"])
        .ok_or_else(|| IngestError::format(path, "no frequency (x) column"))?;
    let t_x = col(&["recency", "tx"])
        .ok_or_else(|| IngestError::format(path, "no recency (t_x) column"))?;
    let weight = col(&["weights", "weight", "count", "n"]);
    let w = |r: &Vec<f64>| weight.map_or(1.0, |k| r[k]);
    if let Some(n) = col(&["periods", "opportunities"]) {
        return Ok(SummaryFile::Discrete {
            rows: values
                .iter()
                .map(|(_, r)| [r[x], r[t_x], r[n], w(r)])
                .collect(),
        });
    }
    let t_big = col(&["t"]).ok_or_else(|| IngestError::format(path, "no T column"))?;
    let unit = match (stated, unit) {
        (Some(s), Some(u)) if s != u => {
            return Err(IngestError::format(
                path,
                format!(
                    "the file says its time unit is {}, --time-unit says {}",
                    s.name(),
                    u.name()
                ),
            ));
        }
        (Some(s), _) => s,
        (None, Some(u)) => u,
        (None, None) => {
            return Err(IngestError::format(
                path,
                "the summary does not state its time unit: add a first line '# time unit: weeks' (or days, months, years) or pass --time-unit",
            ));
        }
    };
    let m = col(&["monetaryvalue", "monetary", "zbar", "m"]);
    Ok(SummaryFile::Continuous {
        rows: values
            .iter()
            .map(|(_, r)| SummaryRow {
                x: r[x],
                t_x: r[t_x],
                t_big: r[t_big],
                monetary: m.map(|k| r[k]),
                weight: w(r),
            })
            .collect(),
        unit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_units() {
        assert_eq!(parse_duration("52w"), Ok((52.0, TimeUnit::Week)));
        assert_eq!(parse_duration("365d"), Ok((365.0, TimeUnit::Day)));
        assert_eq!(parse_duration("12 months"), Ok((12.0, TimeUnit::Month)));
        assert!(parse_duration("52").is_err());
        assert!(parse_duration("-3w").is_err());
        assert!(parse_duration("3 fortnights").is_err());
    }

    #[test]
    fn summary_files_need_their_unit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(&p, "ID,frequency,recency,T\n1,2,30.43,38.86\n").unwrap();
        assert!(
            read_summary(&p, None)
                .unwrap_err()
                .to_string()
                .contains("time unit")
        );
        assert!(matches!(
            read_summary(&p, Some(TimeUnit::Week)),
            Ok(SummaryFile::Continuous { .. })
        ));
        std::fs::write(
            &p,
            "# time unit: weeks\nID,frequency,recency,T\n1,2,30.43,38.86\n",
        )
        .unwrap();
        assert!(matches!(
            read_summary(&p, None),
            Ok(SummaryFile::Continuous {
                unit: TimeUnit::Week,
                ..
            })
        ));
        assert!(read_summary(&p, Some(TimeUnit::Day)).is_err());
        std::fs::write(
            &p,
            "frequency,recency,periods,weights\n0,0,6,3464\n1,1,6,1091\n",
        )
        .unwrap();
        assert!(matches!(
            read_summary(&p, None),
            Ok(SummaryFile::Discrete { .. })
        ));
        std::fs::write(&p, "ID,frequency,recency,T\n1,2,oops,38.86\n").unwrap();
        let e = read_summary(&p, Some(TimeUnit::Week))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":2: column 'recency': \"oops\" is not a number"),
            "{e}"
        );
    }
}

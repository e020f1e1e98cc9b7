//! The marketing spend file: `channel,month,spend` (month as `2024-03` or
//! any date in it), one row per channel and month, for the acquisition cost
//! of customers the attributes give no cost for. Rows of the same channel
//! and month add up.

use std::collections::BTreeMap;
use std::path::Path;

use crate::layout::normalize;
use crate::{IngestError, parse_amount, parse_day};

/// Spend by (channel, month as months since 1970-01).
pub type Spend = BTreeMap<(String, i32), f64>;

/// Reads a spend CSV (comma, tab or semicolon separated, with a header).
pub fn read_spend(path: &Path) -> Result<Spend, IngestError> {
    let file = crate::small_csv::SmallCsv::open(path)?;
    let header = &file.header;
    let find = |names: &[&str], role: &str| {
        header
            .iter()
            .position(|h| names.contains(&normalize(h).as_str()))
            .ok_or_else(|| {
                IngestError::format(
                    path,
                    format!("no {role} column among: {}", header.join(", ")),
                )
            })
    };
    let channel = find(
        &["channel", "acquisitionchannel", "source", "utmsource"],
        "channel",
    )?;
    let month = find(&["month", "date", "period"], "month")?;
    let spend = find(&["spend", "cost", "amount", "budget"], "spend")?;
    let mut out = Spend::new();
    file.each(path, |record, err| {
        let c = record.get(channel).unwrap_or("").trim();
        if c.is_empty() {
            return Err(err(channel, "is empty".into()));
        }
        let m = record.get(month).unwrap_or("").trim();
        let day = if m.len() == 7 {
            parse_day(&format!("{m}-01"))
        } else {
            parse_day(m)
        }
        .map_err(|_| err(month, format!("\"{m}\" is not a month like 2024-03")))?;
        let (y, mo, _) = crate::civil_from_days(day);
        let v = record.get(spend).unwrap_or("").trim();
        let x = parse_amount(v).map_err(|_| err(spend, format!("\"{v}\" is not a number")))?;
        if x < 0.0 || !x.is_finite() {
            return Err(err(spend, format!("{v} is negative")));
        }
        *out.entry((c.to_string(), (y - 1970) * 12 + mo as i32 - 1))
            .or_insert(0.0) += x;
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn months_add_up_and_errors_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("spend.csv");
        std::fs::write(
            &p,
            "Channel,Month,Spend\ndisplay,2024-01,100\ndisplay,2024-01-20,50\nsearch,2024-02,7.5\n",
        )
        .unwrap();
        let s = read_spend(&p).unwrap();
        // 2024-01 is month 648 since 1970-01.
        assert_eq!(s[&("display".to_string(), 648)], 150.0);
        assert_eq!(s[&("search".to_string(), 649)], 7.5);
        std::fs::write(&p, "channel,month,spend\ndisplay,January,100\n").unwrap();
        let e = read_spend(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("spend.csv:2: column 'month': \"January\" is not a month like 2024-03"),
            "{e}"
        );
    }
}

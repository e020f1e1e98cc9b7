//! Dates and timestamps as order exports write them.
//!
//! Every value becomes a local calendar [`Day`] in the analysis time zone and
//! a local wall-clock second (used to tell orders apart when the input has no
//! order id). Values without a zone are wall-clock times in the analysis zone
//! (or in UTC when the column says so, like Stripe's `Created (UTC)`); values
//! with `Z` or an offset are converted into it.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use lifecycle_rfm::Day;

/// How the dates of one column are written, decided once per file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateStyle {
    /// ISO-8601 / RFC 3339 and their common relatives: `2024-03-05`,
    /// `2024-03-05T14:22:10Z`, `2024-03-05 14:22:10 -0500`, fractions allowed.
    Iso,
    /// `YYYYMMDD`, as in the CDNOW files.
    Compact,
    /// `MM/DD/YYYY [HH:MM[:SS]] [AM|PM]` (also with `-` or `.`).
    MonthFirst,
    /// `DD/MM/YYYY [HH:MM[:SS]]` (also with `-` or `.`).
    DayFirst,
    /// `YYYY/MM/DD [HH:MM[:SS]]`.
    YearFirstSlash,
    /// Seconds (10 digits or fewer) or milliseconds (13 digits) since 1970.
    Epoch,
    /// A `strftime` format given with `--date-format`.
    Custom(String),
}

impl DateStyle {
    /// The style of an explicit `--date-format`, using the fast paths for the
    /// common shapes.
    pub fn from_format(format: &str) -> DateStyle {
        let f = format.trim();
        let starts = |p: &str| f.starts_with(p);
        match f {
            "iso" | "ISO" | "%Y-%m-%d" => DateStyle::Iso,
            "%Y%m%d" => DateStyle::Compact,
            "unix" | "epoch" | "%s" => DateStyle::Epoch,
            _ if starts("%m/%d/%Y") || starts("%m-%d-%Y") || starts("%m.%d.%Y") => {
                DateStyle::MonthFirst
            }
            _ if starts("%d/%m/%Y") || starts("%d-%m-%Y") || starts("%d.%m.%Y") => {
                DateStyle::DayFirst
            }
            _ if starts("%Y/%m/%d") => DateStyle::YearFirstSlash,
            _ => DateStyle::Custom(f.to_string()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            DateStyle::Iso => "ISO-8601".into(),
            DateStyle::Compact => "YYYYMMDD".into(),
            DateStyle::MonthFirst => "month first (MM/DD/YYYY)".into(),
            DateStyle::DayFirst => "day first (DD/MM/YYYY)".into(),
            DateStyle::YearFirstSlash => "YYYY/MM/DD".into(),
            DateStyle::Epoch => "seconds since 1970".into(),
            DateStyle::Custom(f) => format!("'{f}'"),
        }
    }
}

/// A parsed value before time-zone conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub days: i32,
    pub seconds: i32,
    /// Offset from UTC in seconds when the value carried one.
    pub offset: Option<i32>,
}

/// Converts parsed values to local days in the analysis time zone.
#[derive(Debug, Clone)]
pub struct Clock {
    tz: TimeZone,
    is_utc: bool,
}

impl Clock {
    pub fn new(tz: TimeZone) -> Self {
        let is_utc = tz.iana_name() == Some("UTC") || tz == TimeZone::UTC;
        Clock { tz, is_utc }
    }

    pub fn utc() -> Self {
        Clock::new(TimeZone::UTC)
    }

    /// The local (day, wall-clock second since 1970) of a value; naive values
    /// are taken as local unless `naive_is_utc`.
    pub fn localize(&self, c: Civil, naive_is_utc: bool) -> (Day, i64) {
        let offset = match (c.offset, naive_is_utc) {
            (Some(o), _) => Some(o),
            (None, true) => Some(0),
            (None, false) => None,
        };
        let local_secs = i64::from(c.days) * 86_400 + i64::from(c.seconds);
        let Some(offset) = offset else {
            return (c.days, local_secs);
        };
        let utc = local_secs - i64::from(offset);
        let shift = if self.is_utc {
            0
        } else {
            Timestamp::from_second(utc)
                .map(|ts| self.tz.to_offset(ts).seconds())
                .unwrap_or(0)
        };
        let local = utc + i64::from(shift);
        (local.div_euclid(86_400) as Day, local)
    }

    /// The local day and second of an instant in seconds since 1970 UTC.
    pub fn localize_epoch(&self, secs: i64) -> (Day, i64) {
        let civil = Civil {
            days: secs.div_euclid(86_400) as i32,
            seconds: secs.rem_euclid(86_400) as i32,
            offset: Some(0),
        };
        self.localize(civil, true)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date, or `None` when the
/// date does not exist. (H. Hinnant, "chrono-Compatible Low-Level Date
/// Algorithms", `days_from_civil`.)
pub fn days_from_civil(y: i32, m: u32, d: u32) -> Option<i32> {
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) || !(1..=9999).contains(&y) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The civil date of a day count (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` of a day.
pub fn format_day(day: Day) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Why a value is not a date of the expected style.
pub type DateError = &'static str;

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        let mut v: u32 = 0;
        while self.i < self.s.len() && self.i - start < max && self.s[self.i].is_ascii_digit() {
            v = v * 10 + u32::from(self.s[self.i] - b'0');
            self.i += 1;
        }
        (self.i - start >= min).then_some(v)
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }
    fn done(&self) -> bool {
        self.i == self.s.len()
    }
}

/// `HH:MM[:SS[.fff]]` then an optional `AM`/`PM`; returns seconds of day.
fn time_of_day(c: &mut Cursor<'_>, allow_ampm: bool) -> Result<i32, DateError> {
    let h = c.digits(1, 2).ok_or("expected an hour")?;
    if !c.eat(b':') {
        return Err("expected ':' after the hour");
    }
    let mi = c.digits(2, 2).ok_or("expected minutes")?;
    let mut s = 0;
    if c.eat(b':') {
        s = c.digits(2, 2).ok_or("expected seconds")?;
        if c.eat(b'.') || c.eat(b',') {
            c.digits(1, 9).ok_or("expected fractional seconds")?;
        }
    }
    let mut h = h;
    if allow_ampm {
        let save = c.i;
        c.skip_spaces();
        let rest = &c.s[c.i..];
        let ampm = |p: &[u8]| rest.len() >= 2 && rest[..2].eq_ignore_ascii_case(p);
        if ampm(b"AM") || ampm(b"PM") {
            if !(1..=12).contains(&h) {
                return Err("hour out of range for AM/PM");
            }
            let pm = ampm(b"PM");
            h = match (h, pm) {
                (12, false) => 0,
                (12, true) => 12,
                (h, true) => h + 12,
                (h, false) => h,
            };
            c.i += 2;
        } else {
            c.i = save;
        }
    }
    // 24:00:00 is not accepted; 23:59:60 (a leap second) is.
    if h > 23 || mi > 59 || s > 60 {
        return Err("time out of range");
    }
    Ok((h * 3600 + mi * 60 + s) as i32)
}

/// `Z`, `UTC`, `GMT`, `±HH`, `±HH:MM` or `±HHMM`, after optional spaces.
fn zone(c: &mut Cursor<'_>) -> Result<Option<i32>, DateError> {
    c.skip_spaces();
    if c.done() {
        return Ok(None);
    }
    let rest = &c.s[c.i..];
    if rest == b"Z"
        || rest == b"z"
        || rest.eq_ignore_ascii_case(b"UTC")
        || rest.eq_ignore_ascii_case(b"GMT")
    {
        c.i = c.s.len();
        return Ok(Some(0));
    }
    let sign = match c.peek() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err("unexpected text after the time"),
    };
    c.i += 1;
    let h = c.digits(2, 2).ok_or("expected an offset like +05:00")?;
    let mut m = 0;
    if c.eat(b':') || c.peek().is_some_and(|b| b.is_ascii_digit()) {
        m = c.digits(2, 2).ok_or("expected offset minutes")?;
    }
    if h > 23 || m > 59 {
        return Err("offset out of range");
    }
    Ok(Some(sign * (h as i32 * 3600 + m as i32 * 60)))
}

fn finish_time(c: &mut Cursor<'_>, days: i32, allow_ampm: bool) -> Result<Civil, DateError> {
    let mut civil = Civil {
        days,
        seconds: 0,
        offset: None,
    };
    if c.done() {
        return Ok(civil);
    }
    if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
        return Err("unexpected text after the date");
    }
    c.skip_spaces();
    if c.done() {
        return Ok(civil);
    }
    civil.seconds = time_of_day(c, allow_ampm)?;
    civil.offset = zone(c)?;
    if !c.done() {
        return Err("unexpected text after the time");
    }
    Ok(civil)
}

fn ymd(y: u32, m: u32, d: u32) -> Result<i32, DateError> {
    days_from_civil(y as i32, m, d).ok_or("no such date")
}

/// Parses `s` (already trimmed) in `style`.
pub fn parse(s: &str, style: &DateStyle) -> Result<Civil, DateError> {
    let mut c = Cursor {
        s: s.as_bytes(),
        i: 0,
    };
    match style {
        DateStyle::Iso => {
            let y = c.digits(4, 4).ok_or("expected a 4-digit year")?;
            if !c.eat(b'-') {
                return Err("expected YYYY-MM-DD");
            }
            let m = c.digits(1, 2).ok_or("expected a month")?;
            if !c.eat(b'-') {
                return Err("expected YYYY-MM-DD");
            }
            let d = c.digits(1, 2).ok_or("expected a day")?;
            finish_time(&mut c, ymd(y, m, d)?, false)
        }
        DateStyle::Compact => {
            if s.len() != 8 {
                return Err("expected 8 digits YYYYMMDD");
            }
            let v = c.digits(8, 8).ok_or("expected 8 digits YYYYMMDD")?;
            Ok(Civil {
                days: ymd(v / 10_000, v / 100 % 100, v % 100)?,
                seconds: 0,
                offset: None,
            })
        }
        DateStyle::MonthFirst | DateStyle::DayFirst => {
            let a = c.digits(1, 2).ok_or("expected a day or month")?;
            let sep = c
                .peek()
                .filter(|b| matches!(b, b'/' | b'-' | b'.'))
                .ok_or("expected '/', '-' or '.'")?;
            c.i += 1;
            let b = c.digits(1, 2).ok_or("expected a day or month")?;
            if !c.eat(sep) {
                return Err("inconsistent date separators");
            }
            let y = c.digits(4, 4).ok_or("expected a 4-digit year")?;
            let (m, d) = if *style == DateStyle::MonthFirst {
                (a, b)
            } else {
                (b, a)
            };
            finish_time(&mut c, ymd(y, m, d)?, true)
        }
        DateStyle::YearFirstSlash => {
            let y = c.digits(4, 4).ok_or("expected a 4-digit year")?;
            if !c.eat(b'/') {
                return Err("expected YYYY/MM/DD");
            }
            let m = c.digits(1, 2).ok_or("expected a month")?;
            if !c.eat(b'/') {
                return Err("expected YYYY/MM/DD");
            }
            let d = c.digits(1, 2).ok_or("expected a day")?;
            finish_time(&mut c, ymd(y, m, d)?, true)
        }
        DateStyle::Epoch => {
            const BAD: DateError = "expected seconds since 1970";
            let (int_part, frac) = match s.split_once('.') {
                Some((i, f)) => (i, Some(f)),
                None => (s, None),
            };
            if frac.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
                return Err(BAD);
            }
            let digits = int_part.trim_start_matches('-');
            if digits.is_empty() || digits.len() > 13 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(BAD);
            }
            let v: i64 = int_part.parse().map_err(|_| BAD)?;
            // 12 digits or more are milliseconds (from 1973 on).
            let secs = if digits.len() >= 12 {
                v.div_euclid(1000)
            } else {
                v
            };
            epoch_civil(secs)
        }
        DateStyle::Custom(format) => {
            let tm =
                jiff::fmt::strtime::parse(format, s).map_err(|_| "does not match --date-format")?;
            if let Ok(ts) = tm.to_timestamp() {
                return epoch_civil(ts.as_second());
            }
            let (date, seconds) = match tm.to_datetime() {
                Ok(dt) => (
                    dt.date(),
                    dt.time().hour() as i32 * 3600
                        + dt.time().minute() as i32 * 60
                        + dt.time().second() as i32,
                ),
                Err(_) => (tm.to_date().map_err(|_| "does not match --date-format")?, 0),
            };
            Ok(Civil {
                days: ymd(date.year() as u32, date.month() as u32, date.day() as u32)?,
                seconds,
                offset: None,
            })
        }
    }
}

/// An instant given as seconds since 1970 (UTC).
pub fn epoch_civil(secs: i64) -> Result<Civil, DateError> {
    // Years 1 to 9999.
    if !(-62_135_596_800..=253_402_300_799).contains(&secs) {
        return Err("timestamp out of range");
    }
    Ok(Civil {
        days: secs.div_euclid(86_400) as i32,
        seconds: secs.rem_euclid(86_400) as i32,
        offset: Some(0),
    })
}

/// What a sample value says about the style of its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    Iso,
    Compact,
    Epoch,
    YearFirstSlash,
    /// `a/b/YYYY`: which of the first two numbers could be a month.
    Slashed {
        first_can_be_month: bool,
        second_can_be_month: bool,
    },
    NotADate,
}

/// Classifies one sample value.
pub fn evidence(s: &str) -> Evidence {
    let s = s.trim();
    if parse(s, &DateStyle::Iso).is_ok() {
        return Evidence::Iso;
    }
    if s.len() == 8 && parse(s, &DateStyle::Compact).is_ok() {
        return Evidence::Compact;
    }
    if parse(s, &DateStyle::YearFirstSlash).is_ok() {
        return Evidence::YearFirstSlash;
    }
    let b = s.as_bytes();
    if ((9..=10).contains(&b.len()) || b.len() == 13) && b.iter().all(u8::is_ascii_digit) {
        return Evidence::Epoch;
    }
    let mdy = parse(s, &DateStyle::MonthFirst).is_ok();
    let dmy = parse(s, &DateStyle::DayFirst).is_ok();
    if mdy || dmy {
        return Evidence::Slashed {
            first_can_be_month: mdy,
            second_can_be_month: dmy,
        };
    }
    Evidence::NotADate
}

/// The result of looking at a column's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inference {
    Style(DateStyle),
    /// Every slashed value so far fits both orders.
    Ambiguous,
    /// Values of different styles, or a value that is no date.
    Mixed(String),
}

/// Infers one style from sample values (empty values are skipped).
#[derive(Debug, Default)]
pub struct StyleInference {
    seen: Vec<Evidence>,
    first_bad: Option<String>,
    month_first_possible: bool,
    day_first_possible: bool,
    any_slashed: bool,
}

impl StyleInference {
    pub fn new() -> Self {
        StyleInference {
            month_first_possible: true,
            day_first_possible: true,
            ..Default::default()
        }
    }

    pub fn add(&mut self, value: &str) {
        let v = value.trim();
        if v.is_empty() {
            return;
        }
        let e = evidence(v);
        match e {
            Evidence::NotADate => {
                self.first_bad.get_or_insert_with(|| v.to_string());
            }
            Evidence::Slashed {
                first_can_be_month,
                second_can_be_month,
            } => {
                self.any_slashed = true;
                self.month_first_possible &= first_can_be_month;
                self.day_first_possible &= second_can_be_month;
            }
            _ => {
                if !self.seen.contains(&e) {
                    self.seen.push(e);
                }
            }
        }
    }

    /// True when every value seen was a date.
    pub fn all_dates(&self) -> bool {
        self.first_bad.is_none()
    }

    /// True once the slashed-date order is settled (or there are none).
    pub fn settled(&self) -> bool {
        !(self.any_slashed && self.month_first_possible && self.day_first_possible)
    }

    /// Values that are no date at all do not decide the style (they are
    /// reported at their line when the rows are read), unless nothing else
    /// is a date.
    pub fn result(&self) -> Inference {
        if self.seen.is_empty() && !self.any_slashed {
            return Inference::Mixed(match &self.first_bad {
                Some(bad) => format!("\"{bad}\" is not a date"),
                None => "no dates found".into(),
            });
        }
        let mut styles: Vec<DateStyle> = self
            .seen
            .iter()
            .map(|e| match e {
                Evidence::Iso => DateStyle::Iso,
                Evidence::Compact => DateStyle::Compact,
                Evidence::Epoch => DateStyle::Epoch,
                _ => DateStyle::YearFirstSlash,
            })
            .collect();
        if self.any_slashed {
            match (self.month_first_possible, self.day_first_possible) {
                (true, true) => {
                    return if styles.is_empty() {
                        Inference::Ambiguous
                    } else {
                        Inference::Mixed("the dates mix several formats".into())
                    };
                }
                (true, false) => styles.push(DateStyle::MonthFirst),
                (false, true) => styles.push(DateStyle::DayFirst),
                (false, false) => {
                    return Inference::Mixed(
                        "the dates mix day-first and month-first forms".into(),
                    );
                }
            }
        }
        match styles.as_slice() {
            [] => Inference::Mixed("no dates found".into()),
            [one] => Inference::Style(one.clone()),
            _ => Inference::Mixed("the dates mix several formats".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> i32 {
        days_from_civil(y, m, d).unwrap()
    }

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(1997, 1, 1), Some(9862));
        assert_eq!(days_from_civil(2000, 2, 29), Some(11016));
        assert_eq!(days_from_civil(1900, 2, 29), None);
        assert_eq!(days_from_civil(2023, 13, 1), None);
        for z in [-700_000, -1, 0, 1, 9862, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), Some(z));
        }
        assert_eq!(format_day(9862), "1997-01-01");
    }

    #[test]
    fn parse_table() {
        let ok = |s: &str, style: DateStyle, days: i32, secs: i32, off: Option<i32>| {
            let c = parse(s, &style).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!((c.days, c.seconds, c.offset), (days, secs, off), "{s}");
        };
        ok("2024-03-05", DateStyle::Iso, day(2024, 3, 5), 0, None);
        ok(
            "2024-03-05T14:22:10Z",
            DateStyle::Iso,
            day(2024, 3, 5),
            51730,
            Some(0),
        );
        ok(
            "2024-03-05T14:22:10.123+02:00",
            DateStyle::Iso,
            day(2024, 3, 5),
            51730,
            Some(7200),
        );
        ok(
            "2023-01-05 10:23:45 -0500",
            DateStyle::Iso,
            day(2023, 1, 5),
            37425,
            Some(-18000),
        );
        ok(
            "2024-03-05 14:22",
            DateStyle::Iso,
            day(2024, 3, 5),
            51720,
            None,
        );
        ok(
            "2014-03-08 00:00:00",
            DateStyle::Iso,
            day(2014, 3, 8),
            0,
            None,
        );
        ok("19970101", DateStyle::Compact, day(1997, 1, 1), 0, None);
        ok(
            "12/13/2010 8:26",
            DateStyle::MonthFirst,
            day(2010, 12, 13),
            8 * 3600 + 26 * 60,
            None,
        );
        ok(
            "3/1/2024 1:05 PM",
            DateStyle::MonthFirst,
            day(2024, 3, 1),
            13 * 3600 + 300,
            None,
        );
        ok(
            "13.12.2010",
            DateStyle::DayFirst,
            day(2010, 12, 13),
            0,
            None,
        );
        ok(
            "2024/03/05",
            DateStyle::YearFirstSlash,
            day(2024, 3, 5),
            0,
            None,
        );
        ok("1700000000", DateStyle::Epoch, 19675, 80000, Some(0));
        ok("1700000000000", DateStyle::Epoch, 19675, 80000, Some(0));
        ok(
            "05/03/2024",
            DateStyle::Custom("%d/%m/%Y".into()),
            day(2024, 3, 5),
            0,
            None,
        );
        ok(
            "March 5, 2024",
            DateStyle::Custom("%B %d, %Y".into()),
            day(2024, 3, 5),
            0,
            None,
        );
        for bad in [
            "2024-02-30",
            "2024-03-05X",
            "20240230",
            "2024-03-05 25:00",
            "1997010",
            "",
            "2024-03-05T10:00+99:00",
        ] {
            let style = if bad.len() == 8 || bad.len() == 7 {
                DateStyle::Compact
            } else {
                DateStyle::Iso
            };
            assert!(parse(bad, &style).is_err(), "{bad}");
        }
        assert!(parse("13/13/2010", &DateStyle::MonthFirst).is_err());
    }

    #[test]
    fn inference_table() {
        let infer = |vals: &[&str]| {
            let mut i = StyleInference::new();
            vals.iter().for_each(|v| i.add(v));
            i.result()
        };
        assert_eq!(
            infer(&["19970101", "19970102"]),
            Inference::Style(DateStyle::Compact)
        );
        assert_eq!(
            infer(&["2024-01-01", "2024-01-02 10:00:00"]),
            Inference::Style(DateStyle::Iso)
        );
        assert_eq!(
            infer(&["12/1/2010 8:26", "12/13/2010 9:00"]),
            Inference::Style(DateStyle::MonthFirst)
        );
        assert_eq!(
            infer(&["13/12/2010", "1/12/2010"]),
            Inference::Style(DateStyle::DayFirst)
        );
        assert_eq!(infer(&["1/2/2010", "3/4/2010"]), Inference::Ambiguous);
        assert!(matches!(
            infer(&["13/12/2010", "12/13/2010"]),
            Inference::Mixed(_)
        ));
        assert_eq!(
            infer(&["2024-01-01", "hello"]),
            Inference::Style(DateStyle::Iso)
        );
        assert!(matches!(infer(&["hello"]), Inference::Mixed(_)));
    }

    #[test]
    fn localize_converts_offsets_into_the_zone() {
        let utc = Clock::utc();
        let c = parse("2023-01-05 22:30:00 -0500", &DateStyle::Iso).unwrap();
        assert_eq!(utc.localize(c, false).0, day(2023, 1, 6));
        let ny = Clock::new(TimeZone::get("America/New_York").unwrap());
        assert_eq!(ny.localize(c, false).0, day(2023, 1, 5));
        let naive = parse("2023-01-05 22:30:00", &DateStyle::Iso).unwrap();
        assert_eq!(ny.localize(naive, false).0, day(2023, 1, 5));
        // A naive value known to be UTC moves into the zone.
        let late = parse("2023-01-06 02:00:00", &DateStyle::Iso).unwrap();
        assert_eq!(ny.localize(late, true).0, day(2023, 1, 5));
        let tokyo = Clock::new(TimeZone::get("Asia/Tokyo").unwrap());
        assert_eq!(tokyo.localize_epoch(1_700_000_000).0, 19676); // 07:13 on the 15th in Tokyo
    }
}

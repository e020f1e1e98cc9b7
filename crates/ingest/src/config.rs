//! Configuration files: segment rules (`--segments`), fixed score
//! thresholds (`--rfm-thresholds`) and currency rates (`--currency-rates`).

use std::fmt::Write as _;
use std::ops::RangeInclusive;
use std::path::Path;

use hashbrown::HashMap;
use lifecycle_rfm::{Better, Cuts, Kind, Phase, Rule, Segment, SegmentTable, Thresholds};
use serde::Deserialize;

use crate::IngestError;

fn config_err(path: &Path, message: impl Into<String>) -> IngestError {
    IngestError::Config {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read(path: &Path) -> Result<String, IngestError> {
    std::fs::read_to_string(path).map_err(|e| IngestError::io(path, e))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentsFile {
    segment: Vec<SegmentDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentDef {
    name: String,
    phase: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    goal: String,
    #[serde(default)]
    campaigns: Vec<String>,
    rules: Vec<RuleDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    #[serde(default = "default_who")]
    who: String,
    r: Option<ScoreRange>,
    f: Option<ScoreRange>,
    m: Option<ScoreRange>,
}

fn default_who() -> String {
    "buyer".into()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ScoreRange {
    One(u8),
    Text(String),
}

fn range(segment: &str, label: &str, r: Option<&ScoreRange>) -> Result<RangeInclusive<u8>, String> {
    let bad = |v: &str| {
        format!("segment '{segment}': {label} = \"{v}\" is not a score or range like \"2-4\"")
    };
    match r {
        None => Ok(1..=5),
        Some(ScoreRange::One(v)) => Ok(*v..=*v),
        Some(ScoreRange::Text(t)) => {
            let (a, b) = t.split_once('-').unwrap_or((t, t));
            let a: u8 = a.trim().parse().map_err(|_| bad(t))?;
            let b: u8 = b.trim().parse().map_err(|_| bad(t))?;
            Ok(a..=b)
        }
    }
}

fn kinds(segment: &str, who: &str) -> Result<Vec<Kind>, String> {
    Ok(match who.to_ascii_lowercase().replace('_', "-").as_str() {
        "visitor" => vec![Kind::Visitor],
        "visitor-with-email" => vec![Kind::VisitorWithEmail],
        "one-order" => vec![Kind::OneOrder],
        "repeat" => vec![Kind::Repeat],
        "buyer" => vec![Kind::OneOrder, Kind::Repeat],
        other => {
            return Err(format!(
                "segment '{segment}': who = \"{other}\" is not one of visitor, visitor-with-email, one-order, repeat, buyer"
            ));
        }
    })
}

/// Parses a segment rule table from TOML text and validates it.
pub fn parse_segments(text: &str) -> Result<SegmentTable, String> {
    let file: SegmentsFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut segments = Vec::new();
    for d in file.segment {
        let phase = Phase::parse(&d.phase).ok_or_else(|| {
            format!(
                "segment '{}': phase \"{}\" is not one of {}",
                d.name,
                d.phase,
                Phase::ALL.map(Phase::name).join(", ")
            )
        })?;
        let mut rules = Vec::new();
        for r in &d.rules {
            rules.push(Rule {
                kinds: kinds(&d.name, &r.who)?,
                r: range(&d.name, "r", r.r.as_ref())?,
                f: range(&d.name, "f", r.f.as_ref())?,
                m: range(&d.name, "m", r.m.as_ref())?,
            });
        }
        segments.push(Segment {
            name: d.name,
            phase,
            description: d.description,
            goal: d.goal,
            campaigns: d.campaigns,
            rules,
        });
    }
    SegmentTable::new(segments).map_err(|e| e.to_string())
}

/// Loads `--segments FILE`.
pub fn load_segments(path: &Path) -> Result<SegmentTable, IngestError> {
    parse_segments(&read(path)?).map_err(|m| config_err(path, m))
}

fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes a segment table in the `--segments` TOML form (the default table
/// is shipped this way as a starting point).
pub fn render_segments(table: &SegmentTable) -> String {
    let mut out = String::from(
        "# Lifecycle segment rules: every customer must match exactly one segment.\n\
         # who = visitor | visitor-with-email | one-order | repeat | buyer (default)\n\
         # r, f, m = a score 1-5 or a range \"2-4\" (default 1-5)\n",
    );
    for s in table.segments() {
        let _ = write!(
            out,
            "\n[[segment]]\nname = {}\nphase = {}\ndescription = {}\ngoal = {}\ncampaigns = [{}]\nrules = [\n",
            toml_str(&s.name),
            toml_str(s.phase.name()),
            toml_str(&s.description),
            toml_str(&s.goal),
            s.campaigns
                .iter()
                .map(|c| toml_str(c))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for r in &s.rules {
            let who = match r.kinds.as_slice() {
                [Kind::Visitor] => "visitor",
                [Kind::VisitorWithEmail] => "visitor-with-email",
                [Kind::OneOrder] => "one-order",
                [Kind::Repeat] => "repeat",
                _ => "buyer",
            };
            let fmt = |r: &RangeInclusive<u8>| format!("\"{}-{}\"", r.start(), r.end());
            if r.kinds.iter().any(|k| k.is_buyer()) {
                let _ = writeln!(
                    out,
                    "  {{ who = \"{who}\", r = {}, f = {}, m = {} }},",
                    fmt(&r.r),
                    fmt(&r.f),
                    fmt(&r.m)
                );
            } else {
                let _ = writeln!(out, "  {{ who = \"{who}\" }},");
            }
        }
        out.push_str("]\n");
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdsFile {
    recency_days: [f64; 4],
    orders: [f64; 4],
    spend: [f64; 4],
}

/// Parses `--rfm-thresholds` TOML: four ascending cut points per measure.
pub fn parse_thresholds(text: &str) -> Result<Thresholds, String> {
    let t: ThresholdsFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let cuts =
        |name: &str, v: [f64; 4], b: Better| Cuts::new(v, b).map_err(|e| format!("{name}: {e}"));
    Ok(Thresholds {
        recency_days: cuts("recency_days", t.recency_days, Better::Lower)?,
        orders: cuts("orders", t.orders, Better::Higher)?,
        spend: cuts("spend", t.spend, Better::Higher)?,
    })
}

pub fn load_thresholds(path: &Path) -> Result<Thresholds, IngestError> {
    parse_thresholds(&read(path)?).map_err(|m| config_err(path, m))
}

/// Loads `--currency-rates`: CSV lines `CODE,RATE` (a header is allowed),
/// where RATE converts one unit of CODE into the reporting currency.
pub fn load_currency_rates(path: &Path) -> Result<HashMap<String, f64>, IngestError> {
    let text = read(path)?;
    let mut rates = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (code, rate) = line
            .split_once(',')
            .ok_or_else(|| config_err(path, format!("line {}: expected CODE,RATE", i + 1)))?;
        let code = code.trim().to_ascii_uppercase();
        match rate.trim().parse::<f64>() {
            Ok(r) if r.is_finite() && r > 0.0 => {
                rates.insert(code, r);
            }
            _ if i == 0 => continue, // a header line
            _ => {
                return Err(config_err(
                    path,
                    format!(
                        "line {}: rate \"{}\" is not a positive number",
                        i + 1,
                        rate.trim()
                    ),
                ));
            }
        }
    }
    if rates.is_empty() {
        return Err(config_err(path, "no rates found"));
    }
    Ok(rates)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TripwiresFile {
    #[serde(default)]
    tripwire: Vec<TripwireEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TripwireEntry {
    name: String,
    start: StartEntry,
    action: EventEntry,
    within_days: u32,
    warn_at_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartEntry {
    event: Option<String>,
    #[serde(rename = "where", default)]
    properties: toml::Table,
    date_trait: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventEntry {
    event: String,
    #[serde(rename = "where", default)]
    properties: toml::Table,
}

fn event_match(
    name: &str,
    event: String,
    props: toml::Table,
) -> Result<lifecycle_tripwires::EventMatch, String> {
    if event.trim().is_empty() {
        return Err(format!("tripwire \"{name}\": an event name is empty"));
    }
    let mut properties = Vec::new();
    for (k, v) in props {
        let text = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(format!(
                    "tripwire \"{name}\": where.{k} = {other} must be a string, number or boolean"
                ));
            }
        };
        properties.push((k, text));
    }
    Ok(lifecycle_tripwires::EventMatch { event, properties })
}

/// Parses custom tripwires (TOML, `[[tripwire]]` tables):
///
/// ```toml
/// [[tripwire]]
/// name = "refill"
/// start = { event = "Order Completed", where = { category = "starter kit" } }  # or { date_trait = "renewal_date" }
/// action = { event = "Order Completed", where = { category = "refill" } }
/// within_days = 30
/// warn_at_days = 21
/// ```
pub fn parse_custom_tripwires(
    text: &str,
) -> Result<Vec<lifecycle_tripwires::CustomTripwire>, String> {
    use lifecycle_tripwires::{CustomTripwire, Start};
    let file: TripwiresFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut out: Vec<CustomTripwire> = Vec::new();
    for t in file.tripwire {
        let name = t.name.trim().to_string();
        if name.is_empty() {
            return Err("a tripwire has an empty name".into());
        }
        if out.iter().any(|o| o.name == name) {
            return Err(format!("tripwire \"{name}\" is defined twice"));
        }
        if t.within_days == 0 {
            return Err(format!(
                "tripwire \"{name}\": within_days must be at least 1"
            ));
        }
        if let Some(w) = t.warn_at_days
            && (w == 0 || w > t.within_days)
        {
            return Err(format!(
                "tripwire \"{name}\": warn_at_days = {w} must be between 1 and within_days ({})",
                t.within_days
            ));
        }
        let start = match (t.start.event, t.start.date_trait) {
            (Some(e), None) => Start::Event(event_match(&name, e, t.start.properties)?),
            (None, Some(d)) if t.start.properties.is_empty() && !d.trim().is_empty() => {
                Start::DateTrait(d.trim().to_string())
            }
            _ => {
                return Err(format!(
                    "tripwire \"{name}\": start needs exactly one of event = \"...\" or date_trait = \"...\""
                ));
            }
        };
        out.push(CustomTripwire {
            action: event_match(&name, t.action.event, t.action.properties)?,
            name,
            start,
            within_days: t.within_days,
            warn_at_days: t.warn_at_days,
        });
    }
    if out.is_empty() {
        return Err("no [[tripwire]] defined".into());
    }
    Ok(out)
}

/// Loads a custom tripwires file; errors name the file (and, for syntax
/// and type errors, the line and column).
pub fn load_custom_tripwires(
    path: &Path,
) -> Result<Vec<lifecycle_tripwires::CustomTripwire>, IngestError> {
    parse_custom_tripwires(&read(path)?).map_err(|m| config_err(path, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_tripwires_parse_and_say_what_is_wrong() {
        let ok = parse_custom_tripwires(
            r#"
[[tripwire]]
name = "refill"
start = { event = "Order Completed", where = { category = "starter kit" } }
action = { event = "Order Completed", where = { category = "refill", qty = 1 } }
within_days = 30
warn_at_days = 21

[[tripwire]]
name = "renewal"
start = { date_trait = "renewal_date" }
action = { event = "Subscription Renewed" }
within_days = 7
"#,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(
            ok[0].action.properties,
            vec![
                ("category".into(), "refill".into()),
                ("qty".into(), "1".into())
            ]
        );
        assert_eq!(
            ok[1].start,
            lifecycle_tripwires::Start::DateTrait("renewal_date".into())
        );
        let e = parse_custom_tripwires("[[tripwire]]\nname = \"x\"\nstart = { event = \"A\" }\naction = { event = \"B\" }\nwithin_days = 5\nwarn_at_days = 9\n").unwrap_err();
        assert!(e.contains("warn_at_days = 9"), "{e}");
        let e = parse_custom_tripwires("[[tripwire]]\nname = \"x\"\nstart = { }\naction = { event = \"B\" }\nwithin_days = 5\n").unwrap_err();
        assert!(e.contains("exactly one of"), "{e}");
        let e = parse_custom_tripwires("[[tripwire]]\nname = \"x\"\nstart = { event = \"A\" }\naction = { event = \"B\" }\nwithin = 5\n").unwrap_err();
        assert!(e.contains("line"), "{e}");
        assert!(
            parse_custom_tripwires("")
                .unwrap_err()
                .contains("no [[tripwire]]")
        );
    }

    #[test]
    fn default_table_round_trips_through_toml() {
        let t = SegmentTable::default_table();
        let text = render_segments(&t);
        assert_eq!(parse_segments(&text).unwrap(), t);
    }

    #[test]
    fn shipped_default_file_is_the_default_table() {
        let text = include_str!("../../../docs/segments.default.toml");
        assert_eq!(parse_segments(text).unwrap(), SegmentTable::default_table());
    }

    #[test]
    fn segment_errors_are_precise() {
        let err = parse_segments("[[segment]]\nname = \"A\"\nphase = \"Nope\"\nrules = []\n")
            .unwrap_err();
        assert!(err.contains("phase \"Nope\""), "{err}");
        let err = parse_segments(
            "[[segment]]\nname = \"A\"\nphase = \"Retention\"\nrules = [{ who = \"buyer\" }]\n",
        )
        .unwrap_err();
        assert!(
            err.contains("no segment matches customers with visitor"),
            "{err}"
        );
        let err = parse_segments("[[segment]]\nname = \"A\"\nphase = \"Retention\"\nrulez = []\n")
            .unwrap_err();
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn thresholds_parse_and_validate() {
        let t = parse_thresholds("recency_days = [30, 90, 180, 365]\norders = [2, 3, 5, 10]\nspend = [50, 100, 250, 1000]\n").unwrap();
        assert_eq!(t.orders.score(4.0), 3);
        assert!(parse_thresholds("recency_days = [90, 30, 180, 365]\norders = [2, 3, 5, 10]\nspend = [50, 100, 250, 1000]\n").is_err());
    }
}

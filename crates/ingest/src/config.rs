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

/// A `where = { key = value }` table as (key, value as text) pairs; the
/// values must be strings, numbers or booleans (`field` names it in errors).
fn where_pairs(props: toml::Table, field: &str) -> Result<Vec<(String, String)>, String> {
    let mut properties = Vec::new();
    for (k, v) in props {
        let text = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(format!(
                    "{field}.{k} = {other} must be a string, number or boolean"
                ));
            }
        };
        properties.push((k, text));
    }
    Ok(properties)
}

fn event_match(
    name: &str,
    event: String,
    props: toml::Table,
) -> Result<lifecycle_tripwires::EventMatch, String> {
    if event.trim().is_empty() {
        return Err(format!("tripwire \"{name}\": an event name is empty"));
    }
    let properties = where_pairs(props, &format!("tripwire \"{name}\": where"))?;
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

/// The line (1-based) where a moment's `field` (a path such as
/// `goal.within_days` or `step[3].split.arms`) is written, for messages.
fn moment_line(text: &str, field: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let key_line = |from: usize, key: &str| {
        lines
            .iter()
            .enumerate()
            .skip(from)
            .take_while(|(i, l)| *i == from || !l.trim_start().starts_with('['))
            .find(|(_, l)| {
                let t = l.trim_start();
                t.starts_with(key) && t[key.len()..].trim_start().starts_with('=')
            })
            .map(|(i, _)| i)
    };
    if let Some(rest) = field.strip_prefix("step[") {
        let (n, tail) = rest.split_once(']')?;
        let n: usize = n.parse().ok()?;
        let start = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.trim() == "[[step]]")
            .nth(n.checked_sub(1)?)
            .map(|(i, _)| i)?;
        let key = tail.trim_start_matches('.').split('.').next().unwrap_or("");
        return Some(key_line(start, key).unwrap_or(start) + 1);
    }
    let mut parts = field.split('.');
    let first = parts.next()?;
    match parts.next() {
        Some(key) => {
            let header = lines
                .iter()
                .position(|l| l.trim() == format!("[{first}]"))?;
            Some(key_line(header, key).unwrap_or(header) + 1)
        }
        None => {
            // A section: its first setting; otherwise a top-level key.
            match lines.iter().position(|l| l.trim() == format!("[{first}]")) {
                Some(h) => {
                    let setting = lines
                        .iter()
                        .enumerate()
                        .skip(h + 1)
                        .take_while(|(_, l)| !l.trim_start().starts_with('['))
                        .find(|(_, l)| {
                            let t = l.trim();
                            !t.is_empty() && !t.starts_with('#')
                        })
                        .map(|(i, _)| i);
                    Some(setting.unwrap_or(h) + 1)
                }
                None => key_line(0, first).map(|i| i + 1),
            }
        }
    }
}

fn filter_of(
    event: String,
    props: toml::Table,
    field: &str,
) -> Result<lifecycle_moments::EventFilter, String> {
    let properties = where_pairs(props, &format!("{field}.where"))?;
    Ok(lifecycle_moments::EventFilter { event, properties })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MomentFile {
    name: String,
    #[serde(default = "one")]
    version: u32,
    #[serde(default = "default_holdout")]
    holdout: f64,
    #[serde(default)]
    priority: i32,
    #[serde(default = "default_reentry")]
    reentry: String,
    goal: GoalEntry,
    trigger: toml::Table,
    #[serde(default)]
    audience: AudienceEntry,
    #[serde(default)]
    step: Vec<toml::Table>,
}

fn one() -> u32 {
    1
}
fn default_holdout() -> f64 {
    0.1
}
fn default_reentry() -> String {
    "once".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GoalEntry {
    event: String,
    #[serde(rename = "where", default)]
    properties: toml::Table,
    within_days: u32,
    #[serde(default = "yes")]
    exits: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AudienceEntry {
    #[serde(default)]
    segments: Vec<String>,
    #[serde(default)]
    phases: Vec<String>,
    min_clv: Option<f64>,
    min_p_alive: Option<f64>,
    #[serde(default)]
    consent: Vec<String>,
    #[serde(default)]
    traits: toml::Table,
    #[serde(default)]
    suppress: Vec<String>,
}

fn str_of(t: &toml::Table, k: &str, field: &str) -> Result<Option<String>, String> {
    match t.get(k) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("{field}.{k} = {other} must be a string")),
    }
}

fn table_of(t: &toml::Table, k: &str, field: &str) -> Result<toml::Table, String> {
    match t.get(k) {
        None => Ok(toml::Table::new()),
        Some(toml::Value::Table(m)) => Ok(m.clone()),
        Some(other) => Err(format!("{field}.{k} = {other} must be a table {{ ... }}")),
    }
}

fn only_keys(t: &toml::Table, allowed: &[&str], field: &str) -> Result<(), String> {
    for k in t.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!(
                "{field}: unknown key \"{k}\" (expected one of {})",
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

/// The one key of `kinds` that `t` has (`field` names it in errors).
fn exactly_one<'k>(
    t: &toml::Table,
    kinds: &[&'k str],
    field: &str,
) -> Result<Vec<&'k str>, String> {
    let present: Vec<&str> = kinds
        .iter()
        .copied()
        .filter(|k| t.contains_key(*k))
        .collect();
    if present.len() != 1 {
        return Err(format!(
            "{field}: needs exactly one of {} (found {})",
            kinds.join(", "),
            if present.is_empty() {
                "none".into()
            } else {
                present.join(", ")
            }
        ));
    }
    Ok(present)
}

fn trigger_of(t: &toml::Table) -> Result<lifecycle_moments::Trigger, String> {
    use lifecycle_moments::{Trigger, TripwireStatus};
    let kinds = [
        "event",
        "segment_entered",
        "segment_exited",
        "tripwire",
        "value_decline",
        "date_trait",
        "absence_of",
    ];
    let present = exactly_one(t, &kinds, "trigger")?;
    let f = "trigger";
    Ok(match present[0] {
        "event" => {
            only_keys(t, &["event", "where"], f)?;
            Trigger::Event(filter_of(
                str_of(t, "event", f)?.unwrap_or_default(),
                table_of(t, "where", f)?,
                f,
            )?)
        }
        "segment_entered" => {
            only_keys(t, &["segment_entered"], f)?;
            Trigger::SegmentEntered(str_of(t, "segment_entered", f)?.unwrap_or_default())
        }
        "segment_exited" => {
            only_keys(t, &["segment_exited"], f)?;
            Trigger::SegmentExited(str_of(t, "segment_exited", f)?.unwrap_or_default())
        }
        "tripwire" => {
            only_keys(t, &["tripwire", "status"], f)?;
            let status = match str_of(t, "status", f)?.as_deref() {
                None | Some("tripped") => TripwireStatus::Tripped,
                Some("warning") => TripwireStatus::Warning,
                Some(other) => {
                    return Err(format!(
                        "trigger.status = \"{other}\" must be \"tripped\" or \"warning\""
                    ));
                }
            };
            Trigger::Tripwire {
                name: str_of(t, "tripwire", f)?.unwrap_or_default(),
                status,
            }
        }
        "value_decline" => {
            only_keys(t, &["value_decline"], f)?;
            if t.get("value_decline") != Some(&toml::Value::Boolean(true)) {
                return Err("trigger.value_decline must be true".into());
            }
            Trigger::ValueDecline
        }
        "date_trait" => {
            only_keys(t, &["date_trait", "offset_days"], f)?;
            let offset = match t.get("offset_days") {
                None => 0,
                Some(toml::Value::Integer(i)) => i32::try_from(*i)
                    .map_err(|_| "trigger.offset_days is out of range".to_string())?,
                Some(other) => {
                    return Err(format!(
                        "trigger.offset_days = {other} must be a whole number of days"
                    ));
                }
            };
            Trigger::DateTrait {
                trait_name: str_of(t, "date_trait", f)?.unwrap_or_default(),
                offset_days: offset,
            }
        }
        _ => {
            only_keys(t, &["absence_of", "where", "days"], f)?;
            let days = match t.get("days") {
                Some(toml::Value::Integer(i)) if *i >= 0 => {
                    u32::try_from(*i).map_err(|_| "trigger.days is out of range".to_string())?
                }
                Some(other) => {
                    return Err(format!(
                        "trigger.days = {other} must be a whole number of days"
                    ));
                }
                None => return Err("trigger: absence_of needs days = N".into()),
            };
            Trigger::Absence {
                event: filter_of(
                    str_of(t, "absence_of", f)?.unwrap_or_default(),
                    table_of(t, "where", f)?,
                    f,
                )?,
                days,
            }
        }
    })
}

fn step_of(t: &toml::Table, i: usize) -> Result<lifecycle_moments::LabeledStep, String> {
    use lifecycle_moments::{Channel, Condition, LabeledStep, Op, Step};
    let f = format!("step[{i}]");
    let label = str_of(t, "label", &f)?;
    let kinds = ["send", "wait", "branch", "split", "update", "exit"];
    let present = exactly_one(t, &kinds, &f)?;
    only_keys(t, &["label", present[0]], &f)?;
    let step = match present[0] {
        "send" => {
            let s = table_of(t, "send", &f)?;
            let g = format!("{f}.send");
            only_keys(&s, &["channel", "template", "subject"], &g)?;
            let channel = str_of(&s, "channel", &g)?.unwrap_or_default();
            let channel = Channel::parse(&channel).ok_or_else(|| {
                format!(
                    "{g}.channel = \"{channel}\" is not one of {}",
                    Channel::ALL
                        .iter()
                        .map(|c| c.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            Step::Send {
                channel,
                template: str_of(&s, "template", &g)?.unwrap_or_default(),
                subject: str_of(&s, "subject", &g)?,
            }
        }
        "wait" => {
            let w = table_of(t, "wait", &f)?;
            let g = format!("{f}.wait");
            only_keys(&w, &["days", "hours", "until", "where"], &g)?;
            let num = |k: &str| match w.get(k) {
                None => Ok(0.0),
                Some(toml::Value::Integer(i)) => Ok(*i as f64),
                Some(toml::Value::Float(x)) => Ok(*x),
                Some(other) => Err(format!("{g}.{k} = {other} must be a number")),
            };
            let days = num("days")? + num("hours")? / 24.0;
            let until = match str_of(&w, "until", &g)? {
                Some(e) => Some(filter_of(e, table_of(&w, "where", &g)?, &g)?),
                None => None,
            };
            Step::Wait { days, until }
        }
        "branch" => {
            let b = table_of(t, "branch", &f)?;
            let g = format!("{f}.branch");
            only_keys(&b, &["if", "then", "else"], &g)?;
            let cond = str_of(&b, "if", &g)?
                .ok_or_else(|| format!("{g}: needs if = \"FIELD OP VALUE\""))?;
            let parts: Vec<&str> = cond.split_whitespace().collect();
            let (field, op, value) = match parts.as_slice() {
                [a, o, rest @ ..] if !rest.is_empty() => (a.to_string(), *o, rest.join(" ")),
                _ => {
                    return Err(format!(
                        "{g}.if = \"{cond}\" must read FIELD OP VALUE, e.g. \"clv >= 100\""
                    ));
                }
            };
            let op = Op::parse(op)
                .ok_or_else(|| format!("{g}.if: \"{op}\" is not one of = != < <= > >="))?;
            Step::Branch {
                condition: Condition {
                    field,
                    op,
                    value: value.trim_matches('"').to_string(),
                },
                then: str_of(&b, "then", &g)?
                    .ok_or_else(|| format!("{g}: needs then = \"LABEL\""))?,
                otherwise: str_of(&b, "else", &g)?,
            }
        }
        "split" => {
            let g = format!("{f}.split");
            let arms = match t.get("split") {
                Some(toml::Value::Array(a)) => a,
                _ => {
                    return Err(format!(
                        "{g} must be a list like [{{ weight = 0.5, to = \"a\" }}, ...]"
                    ));
                }
            };
            let mut out = Vec::new();
            for a in arms {
                let Some(m) = a.as_table() else {
                    return Err(format!("{g}: each arm is {{ weight = W, to = \"LABEL\" }}"));
                };
                let w = match m.get("weight") {
                    Some(toml::Value::Float(x)) => *x,
                    Some(toml::Value::Integer(i)) => *i as f64,
                    _ => return Err(format!("{g}: each arm needs weight = W")),
                };
                out.push((
                    w,
                    str_of(m, "to", &g)?
                        .ok_or_else(|| format!("{g}: each arm needs to = \"LABEL\""))?,
                ));
            }
            Step::Split { arms: out }
        }
        "update" => {
            let u = table_of(t, "update", &f)?;
            let g = format!("{f}.update");
            only_keys(&u, &["trait", "value"], &g)?;
            let value = match u.get("value") {
                Some(toml::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => return Err(format!("{g}: needs value = ...")),
            };
            Step::UpdateTrait {
                name: str_of(&u, "trait", &g)?.unwrap_or_default(),
                value,
            }
        }
        _ => {
            if t.get("exit") != Some(&toml::Value::Boolean(true)) {
                return Err(format!("{f}.exit must be true"));
            }
            Step::Exit
        }
    };
    Ok(LabeledStep { label, step })
}

/// One moment read from a folder: its definition, text and file.
#[derive(Debug, Clone)]
pub struct MomentFileEntry {
    pub moment: lifecycle_moments::Moment,
    pub source: String,
    pub path: std::path::PathBuf,
}

/// The moment files (`*.toml`) of a folder, sorted by name.
pub fn moment_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, IngestError> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| IngestError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Reads and validates every moment of a folder: the moments, or every
/// problem found (each prefixed by its file, then its line), including a
/// name used by two files.
pub fn read_moment_dir(
    dir: &Path,
    table: &SegmentTable,
) -> Result<Vec<MomentFileEntry>, Vec<String>> {
    let files = moment_files(dir).map_err(|e| vec![e.to_string()])?;
    let mut out: Vec<MomentFileEntry> = Vec::new();
    let mut problems = Vec::new();
    for path in files {
        let source = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        match parse_moment(&source, table) {
            Ok(moment) => {
                if let Some(other) = out.iter().find(|o| o.moment.name == moment.name) {
                    problems.push(format!(
                        "{}: the name \"{}\" is already used by {}",
                        path.display(),
                        moment.name,
                        other.path.display()
                    ));
                } else {
                    out.push(MomentFileEntry {
                        moment,
                        source,
                        path,
                    });
                }
            }
            Err(ps) => problems.extend(ps.into_iter().map(|p| format!("{}: {p}", path.display()))),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Parses one moment (TOML) and validates it against the segment table;
/// every message names the line and the field.
pub fn parse_moment(
    text: &str,
    table: &SegmentTable,
) -> Result<lifecycle_moments::Moment, Vec<String>> {
    use lifecycle_moments::{Audience, Channel, Goal, Moment, Names, Reentry};
    let at = |field: &str, message: String| match moment_line(text, field) {
        Some(l) => format!("line {l}: {message}"),
        None => message,
    };
    let file: MomentFile = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
    let reentry = match file.reentry.trim() {
        "once" => Reentry::Once,
        "every_time" => Reentry::EveryTime,
        other => match other
            .strip_prefix("every ")
            .and_then(|r| r.strip_suffix(" days"))
            .and_then(|n| n.trim().parse().ok())
        {
            Some(n) => Reentry::EveryDays(n),
            None => {
                return Err(vec![at(
                    "reentry",
                    format!(
                        "reentry = \"{other}\" must be \"once\", \"every_time\" or \"every N days\""
                    ),
                )]);
            }
        },
    };
    let trigger = trigger_of(&file.trigger).map_err(|m| vec![at("trigger", m)])?;
    let goal_event = filter_of(file.goal.event, file.goal.properties, "goal")
        .map_err(|m| vec![at("goal", m)])?;
    let mut consent = Vec::new();
    for c in &file.audience.consent {
        consent.push(Channel::parse(c).ok_or_else(|| {
            vec![at(
                "audience.consent",
                format!("audience.consent: \"{c}\" is not a channel"),
            )]
        })?);
    }
    let mut traits = Vec::new();
    for (k, v) in file.audience.traits {
        traits.push((
            k,
            match v {
                toml::Value::String(s) => s,
                other => other.to_string(),
            },
        ));
    }
    let mut steps = Vec::new();
    for (i, t) in file.step.iter().enumerate() {
        steps.push(step_of(t, i + 1).map_err(|m| vec![at(&format!("step[{}]", i + 1), m)])?);
    }
    let moment = Moment {
        name: file.name,
        version: file.version,
        goal: Goal {
            event: goal_event,
            within_days: file.goal.within_days,
            exits: file.goal.exits,
        },
        trigger,
        audience: Audience {
            segments: file.audience.segments,
            phases: file.audience.phases,
            min_clv: file.audience.min_clv,
            min_p_alive: file.audience.min_p_alive,
            consent,
            traits,
            suppression_lists: file.audience.suppress,
        },
        reentry,
        holdout: file.holdout,
        priority: file.priority,
        steps,
    };
    let segments: Vec<String> = table.segments().iter().map(|s| s.name.clone()).collect();
    let mut phases: Vec<String> = table
        .segments()
        .iter()
        .map(|s| s.phase.name().to_string())
        .collect();
    phases.dedup();
    let problems = moment.validate(&Names {
        segments: &segments,
        phases: &phases,
    });
    if problems.is_empty() {
        Ok(moment)
    } else {
        Err(problems
            .iter()
            .map(|p| at(&p.field, p.to_string()))
            .collect())
    }
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

//! Journeys in the store: the versions of every moment, enrolments with
//! their due times (the index the timer pass reads, never a scan), goal
//! attainment, and the outbox of sends under deterministic keys.
//!
//! Events recorded by a transaction (received, or emitted by a re-score:
//! `Segment Entered`, `Tripwire Tripped`, …) are run through the journeys
//! before that transaction commits: an acknowledged event has already
//! moved every journey it concerns, and a send is in the outbox in the
//! same commit as the step that made it.

use std::collections::HashMap;
use std::sync::Arc;

use lifecycle_moments::journey::{self, Action, Ended, Enrolment};
use lifecycle_moments::{Channel, Moment, Reentry, Trigger, TripwireStatus, assignment};
use serde_json::{Map, Value};

use crate::db::{Row, vals};
use crate::live::{Failure, ProfileRow, Tx};
use crate::{Store, StoreError};

const DAY_MS: i64 = 86_400_000;

/// The moments the store runs: every version a running enrolment may
/// need, and the live version of each active moment (where customers
/// enter).
#[derive(Debug, Clone, Default)]
pub struct Journeys {
    versions: HashMap<(String, u32), Arc<Moment>>,
    live: Vec<Arc<Moment>>,
    /// Share of all customers in the global control group (never messaged).
    pub global_control: f64,
    /// Audiences' consent conditions hold for everyone (a dry run on
    /// history, which has no contact details).
    pub assume_consent: bool,
}

impl Journeys {
    /// `live`: the active moments; `older`: earlier versions still walked
    /// by customers who entered them.
    pub fn new(live: Vec<Moment>, older: Vec<Moment>, global_control: f64) -> Journeys {
        let live: Vec<Arc<Moment>> = live.into_iter().map(Arc::new).collect();
        let mut versions = HashMap::new();
        for m in older.into_iter().map(Arc::new).chain(live.iter().cloned()) {
            versions.insert((m.name.clone(), m.version), m);
        }
        Journeys {
            versions,
            live,
            global_control,
            assume_consent: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    pub fn live(&self) -> &[Arc<Moment>] {
        &self.live
    }

    fn version(&self, name: &str, version: u32) -> Option<Arc<Moment>> {
        self.versions.get(&(name.to_string(), version)).cloned()
    }

    /// In the global control group: a fixed hash of the customer id.
    pub fn in_global_control(&self, customer: &str) -> bool {
        assignment::held_out("global", customer, self.global_control)
    }
}

/// An event recorded in the current transaction, waiting for the journeys.
#[derive(Debug, Clone)]
pub(crate) struct Fresh {
    pub customer: String,
    pub name: String,
    pub at_ms: i64,
    pub properties: Map<String, Value>,
}

impl Fresh {
    pub fn new(customer: &str, name: &str, at_ms: i64, payload: &str) -> Fresh {
        let properties = match serde_json::from_str::<Value>(payload) {
            Ok(Value::Object(mut m)) => match m.remove("properties") {
                Some(Value::Object(p)) => p,
                _ => Map::new(),
            },
            _ => Map::new(),
        };
        Fresh {
            customer: customer.to_string(),
            name: name.to_string(),
            at_ms,
            properties,
        }
    }
}

/// A JSON value as the text a filter compares with.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

/// The value an event brings to a goal: `revenue`, `total` or `value`.
fn event_value(p: &Map<String, Value>) -> Option<f64> {
    ["revenue", "total", "value"]
        .iter()
        .find_map(|k| p.get(*k).and_then(Value::as_f64))
}

/// A customer's profile and traits, as audiences and branches see them.
struct Facts {
    profile: Option<ProfileRow>,
    traits: Map<String, Value>,
}

impl Facts {
    fn get(&self, field: &str) -> Option<String> {
        if let Some(t) = field.strip_prefix("trait.") {
            return self.traits.get(t).and_then(text_of);
        }
        let p = self.profile.as_ref()?;
        match field {
            "segment" => Some(p.segment.clone()),
            "phase" => Some(p.phase.clone()),
            "clv" => p.clv.map(|v| v.to_string()),
            "p_alive" => p.p_alive.map(|v| v.to_string()),
            "orders" => Some(p.n_orders.to_string()),
            "spend" => Some(p.total_spend.to_string()),
            _ => None,
        }
    }

    fn consents(&self, channel: Channel) -> bool {
        consents(&self.traits, channel)
    }
}

/// Consent for a channel: an explicit `consent_<channel>` trait (set by
/// identify, or by `Subscribed` / `Unsubscribed` events) decides;
/// otherwise email needs an address and SMS a phone number, the other
/// channels are allowed.
pub fn consents(traits: &Map<String, Value>, channel: Channel) -> bool {
    match traits.get(&format!("consent_{}", channel.name())) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !matches!(s.as_str(), "false" | "no" | "unsubscribed"),
        _ => match channel {
            Channel::Email => traits.get("email").and_then(Value::as_str).is_some(),
            Channel::Sms => traits.get("phone").and_then(Value::as_str).is_some(),
            _ => true,
        },
    }
}

/// Whether the moment's audience admits the customer.
fn admits(m: &Moment, f: &Facts, assume_consent: bool) -> bool {
    let a = &m.audience;
    let p = f.profile.as_ref();
    let segment = p.map(|p| p.segment.as_str()).unwrap_or("");
    let phase = p.map(|p| p.phase.as_str()).unwrap_or("");
    (a.segments.is_empty() || a.segments.iter().any(|s| s == segment))
        && (a.phases.is_empty() || a.phases.iter().any(|s| s == phase))
        && a.min_clv
            .is_none_or(|min| p.and_then(|p| p.clv).is_some_and(|v| v >= min))
        && a.min_p_alive
            .is_none_or(|min| p.and_then(|p| p.p_alive).is_some_and(|v| v >= min))
        && (assume_consent || a.consent.iter().all(|c| f.consents(*c)))
        && a.traits
            .iter()
            .all(|(k, v)| f.traits.get(k).and_then(text_of).as_deref() == Some(v.as_str()))
}

/// Whether the event triggers the moment.
fn triggers(t: &Trigger, e: &journey::Event<'_>) -> bool {
    let prop = |k: &str| (e.property)(k);
    match t {
        Trigger::Event(f) => f.matches(e),
        Trigger::SegmentEntered(s) => {
            e.name == "Segment Entered" && prop("segment").as_deref() == Some(s.as_str())
        }
        Trigger::SegmentExited(s) => {
            e.name == "Segment Exited" && prop("segment").as_deref() == Some(s.as_str())
        }
        Trigger::Tripwire { name, status } => {
            let event = match status {
                TripwireStatus::Warning => "Tripwire Warning",
                TripwireStatus::Tripped => "Tripwire Tripped",
            };
            e.name == event && prop("tripwire").as_deref() == Some(name.as_str())
        }
        Trigger::ValueDecline => e.name == VALUE_DECLINE_EVENT,
        // Date traits and absence are found by the timer pass.
        Trigger::DateTrait { .. } | Trigger::Absence { .. } => false,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year of a day count.
fn year_of(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(m <= 2)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// The month and day of a date trait: `1990-05-17`, or a date-time whose
/// first ten characters are one.
fn month_day(v: &Value) -> Option<(u32, u32)> {
    let s = v.as_str()?.get(..10)?;
    let mut parts = s.split('-');
    let _y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then_some((m, d))
}

/// The first day on or after `today` that is a yearly recurrence of
/// (month, day) shifted by `offset` days (29 February is the 28th in other
/// years).
pub fn next_yearly(month: u32, day: u32, offset: i32, today: i64) -> i64 {
    let year = year_of(today);
    (year - 2..=year + 2)
        .map(|y| {
            let d = if month == 2 && day == 29 && !is_leap(y) {
                28
            } else {
                day
            };
            days_from_civil(y, month, d) + i64::from(offset)
        })
        .filter(|&c| c >= today)
        .min()
        .unwrap_or(today)
}

/// The event a re-score emits when a customer's value is flagged as declining.
pub const VALUE_DECLINE_EVENT: &str = "Value Decline Flagged";

const ENROLMENT_COLUMNS: &str =
    "id, moment, version, customer_id, entered_ms, step, wait_until_ms, held_out, ended, goal_ms";

struct StoredEnrolment {
    id: i64,
    e: Enrolment,
    goal_ms: Option<i64>,
}

fn enrolment_of(r: &Row) -> StoredEnrolment {
    StoredEnrolment {
        id: r.i64(0),
        e: Enrolment {
            moment: r.text(1),
            version: r.i64(2).clamp(0, i64::from(u32::MAX)) as u32,
            customer: r.text(3),
            entered_ms: r.i64(4),
            step: r.i64(5).max(0) as usize,
            wait_until_ms: r.opt_i64(6),
            held_out: r.bool(7),
            ended: r.opt_text(8).as_deref().and_then(Ended::parse),
        },
        goal_ms: r.opt_i64(9),
    }
}

impl Tx<'_> {
    fn facts(&mut self, customer: &str) -> Result<Facts, Failure> {
        let profile = self.profile(customer)?;
        let traits = self.traits_of(customer)?.map(|t| t.0).unwrap_or_default();
        Ok(Facts { profile, traits })
    }

    /// Whether the customer (by id or email address) is on one of the lists.
    fn suppressed(
        &mut self,
        lists: &[String],
        customer: &str,
        facts: &Facts,
    ) -> Result<bool, Failure> {
        let email = facts
            .traits
            .get("email")
            .and_then(Value::as_str)
            .map(|e| e.trim().to_lowercase());
        for list in lists {
            let hit = self.db.query_one(
                "SELECT 1 FROM suppressions WHERE list = ?1 AND (value = ?2 OR value = ?3)",
                vals![list, customer, email.as_deref().unwrap_or(customer)],
            )?;
            if hit.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Runs the events recorded so far through the journeys (and the
    /// events that running them records, a few rounds deep).
    pub(crate) fn run_journeys(&mut self, scorer: crate::live::Scorer<'_>) -> Result<(), Failure> {
        for _ in 0..4 {
            if !self.touched.is_empty() {
                self.rescore_touched_inner(scorer)?;
            }
            let fresh = std::mem::take(&mut self.fresh);
            if fresh.is_empty() {
                break;
            }
            if self.journeys.is_empty() {
                continue;
            }
            for f in &fresh {
                self.journey_event(f)?;
            }
        }
        self.fresh.clear();
        Ok(())
    }

    fn journey_event(&mut self, f: &Fresh) -> Result<(), Failure> {
        let journeys = Arc::clone(&self.journeys);
        let property = |k: &str| f.properties.get(k).and_then(text_of);
        let ev = journey::Event {
            name: &f.name,
            at_ms: f.at_ms,
            property: &property,
        };
        // The customer's enrolments: goals reached, waits ended by the event.
        let open = self.db.query(
            &format!(
                "SELECT {ENROLMENT_COLUMNS} FROM enrolments
                 WHERE customer_id = ?1 AND (ended IS NULL OR goal_ms IS NULL) AND entered_ms <= ?2"
            ),
            vals![&f.customer, f.at_ms],
        )?;
        let mut facts: Option<Facts> = None;
        for row in &open {
            let mut s = enrolment_of(row);
            let Some(m) = journeys.version(&s.e.moment, s.e.version) else {
                continue;
            };
            if s.goal_ms.is_none() && m.reaches_goal(s.e.entered_ms, &ev) {
                self.db.exec(
                    "UPDATE enrolments SET goal_ms = ?2, goal_value = ?3 WHERE id = ?1",
                    vals![s.id, f.at_ms, event_value(&f.properties)],
                )?;
            }
            if s.e.ended.is_some() {
                continue;
            }
            if facts.is_none() {
                facts = Some(self.facts(&f.customer)?);
            }
            let Some(fx) = facts.as_ref() else { continue };
            let lookup = |k: &str| fx.get(k);
            let before = (s.e.step, s.e.wait_until_ms);
            let actions = journey::advance(&m, &mut s.e, self.now_ms, Some(&ev), &lookup);
            if !actions.is_empty() || before != (s.e.step, s.e.wait_until_ms) {
                self.apply(&m, &mut s, actions)?;
            }
        }
        // Triggers: who enters now; absence timers re-armed by the event.
        for m in journeys.live() {
            if triggers(&m.trigger, &ev) {
                self.enrol(m, &f.customer)?;
            }
            if let Trigger::Absence { event, days } = &m.trigger
                && event.matches(&ev)
            {
                let due = f.at_ms + i64::from(*days) * DAY_MS;
                self.set_timer(&m.name, &f.customer, due, true)?;
            }
        }
        Ok(())
    }

    /// Arms a moment's timer for a customer: `later_only` keeps a later
    /// one (absence: the last event counts).
    fn set_timer(
        &mut self,
        moment: &str,
        customer: &str,
        due_ms: i64,
        later_only: bool,
    ) -> Result<(), Failure> {
        let sql = if later_only {
            "INSERT INTO moment_timers (moment, customer_id, due_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (moment, customer_id) DO UPDATE SET due_ms = excluded.due_ms
             WHERE excluded.due_ms > moment_timers.due_ms"
        } else {
            "INSERT INTO moment_timers (moment, customer_id, due_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (moment, customer_id) DO UPDATE SET due_ms = excluded.due_ms"
        };
        self.db.exec(sql, vals![moment, customer, due_ms])?;
        Ok(())
    }

    /// Date-trait moments: the next yearly occurrence of the customer's
    /// date (plus the offset) from their traits, on or after `today`.
    /// Only dates that differ from `previous` (when given) are re-armed.
    pub(crate) fn date_trait_timers(
        &mut self,
        customer: &str,
        traits: &Map<String, Value>,
        previous: Option<&Map<String, Value>>,
        from_day: i64,
    ) -> Result<(), Failure> {
        let journeys = Arc::clone(&self.journeys);
        for m in journeys.live() {
            if let Trigger::DateTrait {
                trait_name,
                offset_days,
            } = &m.trigger
                && previous.is_none_or(|p| p.get(trait_name) != traits.get(trait_name))
                && let Some((month, day)) = traits.get(trait_name).and_then(month_day)
            {
                let due = next_yearly(month, day, *offset_days, from_day) * DAY_MS;
                self.set_timer(&m.name, customer, due, false)?;
            }
        }
        Ok(())
    }

    /// Enters the customer into the moment when the audience and the
    /// re-entry rule allow it, and walks the journey as far as it goes.
    pub(crate) fn enrol(&mut self, m: &Arc<Moment>, customer: &str) -> Result<bool, Failure> {
        let last = self.db.query_one(
            "SELECT entered_ms, ended FROM enrolments WHERE moment = ?1 AND customer_id = ?2
             ORDER BY entered_ms DESC LIMIT 1",
            vals![&m.name, customer],
        )?;
        if let Some(r) = last {
            let (entered, ended) = (r.i64(0), r.opt_text(1));
            let allowed = ended.is_some()
                && match m.reentry {
                    Reentry::Once => false,
                    Reentry::EveryDays(d) => entered + i64::from(d) * DAY_MS <= self.now_ms,
                    Reentry::EveryTime => entered < self.now_ms,
                };
            if !allowed {
                return Ok(false);
            }
        }
        let facts = self.facts(customer)?;
        if !admits(m, &facts, self.journeys.assume_consent) {
            return Ok(false);
        }
        if self.suppressed(&m.audience.suppression_lists, customer, &facts)? {
            return Ok(false);
        }
        let global = self.journeys.in_global_control(customer);
        let e = Enrolment::new(m, customer, self.now_ms, global);
        let id = self
            .db
            .query_one(
                "INSERT INTO enrolments (moment, version, customer_id, entered_ms, step, held_out,
                   global_control, holdout, clv_at_entry)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?7, ?8) RETURNING id",
                vals![
                    &m.name,
                    i64::from(m.version),
                    customer,
                    e.entered_ms,
                    e.held_out,
                    global,
                    e.held_out && !global,
                    facts.profile.as_ref().and_then(|p| p.clv)
                ],
            )?
            .map(|r| r.i64(0))
            .unwrap_or_default();
        let mut s = StoredEnrolment {
            id,
            e,
            goal_ms: None,
        };
        let lookup = |k: &str| facts.get(k);
        let actions = journey::advance(m, &mut s.e, self.now_ms, None, &lookup);
        self.apply(m, &mut s, actions)?;
        self.enrolled += 1;
        Ok(true)
    }

    /// Carries out a walk's actions and saves the enrolment.
    fn apply(
        &mut self,
        m: &Moment,
        s: &mut StoredEnrolment,
        actions: Vec<Action>,
    ) -> Result<(), Failure> {
        let mut wake = None;
        for a in actions {
            match a {
                Action::Send {
                    key,
                    step,
                    channel,
                    template,
                    subject,
                    held_out,
                } => {
                    let status = if held_out { "held_out" } else { "queued" };
                    let n = self.db.exec(
                        "INSERT INTO outbox (key, enrolment_id, customer_id, moment, version, step,
                           channel, template, subject, priority, status, created_ms, due_ms, attempts)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, 0)
                         ON CONFLICT DO NOTHING",
                        vals![
                            &key,
                            s.id,
                            &s.e.customer,
                            &m.name,
                            i64::from(m.version),
                            step as i64,
                            channel.name(),
                            &template,
                            subject.as_ref(),
                            i64::from(m.priority),
                            status,
                            self.now_ms
                        ],
                    )?;
                    if n > 0 && !held_out {
                        self.queued += 1;
                    }
                }
                Action::UpdateTrait { name, value } => {
                    let mut t = Map::new();
                    t.insert(name, Value::String(value));
                    let customer = s.e.customer.clone();
                    self.apply_traits(&customer, &t)?;
                }
                Action::WakeAt(t) => wake = Some(t),
                Action::Ended(_) => wake = None,
            }
        }
        if s.e.ended.is_some() {
            wake = None;
        }
        self.db.exec(
            "UPDATE enrolments SET step = ?2, wait_until_ms = ?3, wake_ms = ?4, ended = ?5,
               ended_ms = ?6 WHERE id = ?1",
            vals![
                s.id,
                s.e.step as i64,
                s.e.wait_until_ms,
                wake,
                s.e.ended.map(Ended::name),
                s.e.ended.map(|_| self.now_ms)
            ],
        )?;
        self.steps_run += 1;
        Ok(())
    }

    /// Moves a merged customer's enrolments and messages to the survivor.
    pub(crate) fn merge_journeys(&mut self, source: &str, target: &str) -> Result<(), Failure> {
        self.db.exec(
            "UPDATE enrolments SET customer_id = ?2 WHERE customer_id = ?1 AND NOT EXISTS (
               SELECT 1 FROM enrolments t WHERE t.customer_id = ?2 AND t.moment = enrolments.moment
                 AND t.entered_ms = enrolments.entered_ms)",
            vals![source, target],
        )?;
        self.db.exec(
            "UPDATE outbox SET customer_id = ?2 WHERE customer_id = ?1",
            vals![source, target],
        )?;
        Ok(())
    }
}

/// What a timer pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WakeStats {
    /// Enrolments whose wait ended.
    pub woken: u64,
    pub entered: u64,
    /// Sends queued in the outbox (held-out ones not counted).
    pub queued: u64,
}

/// A send waiting in the outbox, leased to the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub key: String,
    pub enrolment_id: i64,
    pub customer_id: String,
    pub moment: String,
    pub version: u32,
    pub step: i64,
    pub channel: String,
    pub template: String,
    pub subject: Option<String>,
    pub priority: i64,
    pub created_ms: i64,
    pub due_ms: i64,
    pub attempts: i64,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Handed to the channel; `detail` is the provider's answer; `content`
    /// is kept when the message is shown later (on-site).
    Sent {
        detail: String,
        content: Option<String>,
    },
    /// Not sent, tried again at `at_ms` (the error is kept).
    Retry { at_ms: i64, error: String },
    /// Not sent, never retried (dead letter).
    Failed { error: String },
    /// Not sent on purpose: `cap`, `consent`, `suppressed`.
    Suppressed { reason: String },
    /// Not sent yet (quiet hours): due again at `until_ms`.
    Deferred { until_ms: i64, reason: String },
}

/// One message in a customer's view.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub key: String,
    pub moment: String,
    pub version: u32,
    pub step: i64,
    pub channel: String,
    pub template: String,
    pub status: String,
    pub created_ms: i64,
    pub due_ms: i64,
    pub sent_ms: Option<i64>,
    pub attempts: i64,
    pub detail: Option<String>,
}

/// One enrolment in a customer's view.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrolmentRow {
    pub id: i64,
    pub moment: String,
    pub version: u32,
    pub entered_ms: i64,
    pub step: i64,
    pub wake_ms: Option<i64>,
    pub held_out: bool,
    pub global_control: bool,
    pub ended: Option<String>,
    pub ended_ms: Option<i64>,
    pub goal_ms: Option<i64>,
    pub goal_value: Option<f64>,
}

/// A moment's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MomentCounts {
    pub enrolled: i64,
    /// In the moment's holdout.
    pub holdout: i64,
    pub global_control: i64,
    pub active: i64,
    /// Goals reached by treated customers / by held-out ones (both groups).
    pub goals_treated: i64,
    pub goals_held_out: i64,
    pub goal_value_treated: f64,
    pub goal_value_held_out: f64,
    /// Outbox rows by status.
    pub messages: Vec<(String, i64)>,
}

/// One step of a moment's journey as its treated customers walked it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepFunnel {
    pub step: i64,
    /// Treated enrolments that got this far (their step is this or later).
    pub reached: i64,
    /// Treated enrolments waiting at this step now.
    pub here_now: i64,
    /// Messages of this step by status.
    pub messages: Vec<(String, i64)>,
}

/// (customer, revenue, orders, predicted CLV) over a period.
pub type Activity = (String, f64, f64, Option<f64>);

/// One customer's row of a moment's readout.
#[derive(Debug, Clone, PartialEq)]
pub struct MomentRow {
    pub customer_id: String,
    /// In the moment's holdout or the global control group (no message).
    pub held_out: bool,
    pub global_control: bool,
    pub entered_ms: i64,
    /// The goal reached within its window.
    pub converted: bool,
    pub goal_value: f64,
    pub clv_at_entry: Option<f64>,
    pub clv_now: Option<f64>,
    /// Net order amounts within the window after entry.
    pub revenue: f64,
    pub orders: i64,
    /// Page and screen events within the window.
    pub visits: i64,
}

/// (moment, channel, status, day since 1970-01-01 UTC, messages).
pub type OutboxDay = (String, String, String, i64, i64);

/// (customer, moment, entered at ms, group, goal reached at ms).
pub type EnrolmentSummary = (String, String, i64, String, Option<i64>);

/// A stored version of a moment's definition.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMoment {
    pub name: String,
    pub version: u32,
    pub source: String,
    pub origin: String,
    pub created_ms: i64,
    pub active: bool,
}

/// What saving a definition did.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedMoment {
    pub version: u32,
    /// False when the text equals the live version's (nothing changed).
    pub changed: bool,
    /// The replaced live version's text, for a diff.
    pub previous: Option<String>,
}

fn message_of(r: &Row) -> MessageRow {
    MessageRow {
        key: r.text(0),
        moment: r.text(1),
        version: r.i64(2).clamp(0, i64::from(u32::MAX)) as u32,
        step: r.i64(3),
        channel: r.text(4),
        template: r.text(5),
        status: r.text(6),
        created_ms: r.i64(7),
        due_ms: r.i64(8),
        sent_ms: r.opt_i64(9),
        attempts: r.i64(10),
        detail: r.opt_text(11),
    }
}

const OUTBOX_COLUMNS: &str = "key, enrolment_id, customer_id, moment, version, step, channel, template, subject, priority, created_ms, due_ms, attempts";

fn outbox_of(r: &Row) -> OutboxItem {
    OutboxItem {
        key: r.text(0),
        enrolment_id: r.i64(1),
        customer_id: r.text(2),
        moment: r.text(3),
        version: r.i64(4).clamp(0, i64::from(u32::MAX)) as u32,
        step: r.i64(5),
        channel: r.text(6),
        template: r.text(7),
        subject: r.opt_text(8),
        priority: r.i64(9),
        created_ms: r.i64(10),
        due_ms: r.i64(11),
        attempts: r.i64(12),
    }
}

impl Store {
    /// The moments the store runs from now on (see [`Journeys`]).
    pub fn set_journeys(&mut self, journeys: Journeys) {
        self.journeys = Arc::new(journeys);
    }

    pub fn journeys(&self) -> &Journeys {
        &self.journeys
    }

    /// Saves a moment's definition text: a new version when it differs
    /// from the live one (which stops taking entrants; its customers walk
    /// on), the same version otherwise.
    pub fn save_moment(
        &mut self,
        name: &str,
        source: &str,
        origin: &str,
        now_ms: i64,
    ) -> Result<SavedMoment, StoreError> {
        self.transact(now_ms, |tx| {
            let live = tx.db.query_one(
                "SELECT version, source, active FROM moments WHERE name = ?1
                 ORDER BY version DESC LIMIT 1",
                vals![name],
            )?;
            let (last, previous) = match &live {
                Some(r) if r.text(1) == source && r.bool(2) => {
                    return Ok(SavedMoment {
                        version: r.i64(0) as u32,
                        changed: false,
                        previous: None,
                    });
                }
                Some(r) => (r.i64(0), r.bool(2).then(|| r.text(1))),
                None => (0, None),
            };
            tx.db
                .exec("UPDATE moments SET active = 0 WHERE name = ?1", vals![name])?;
            let version = last + 1;
            tx.db.exec(
                "INSERT INTO moments (name, version, source, origin, created_ms, active)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1)",
                vals![name, version, source, origin, now_ms],
            )?;
            Ok(SavedMoment {
                version: version.clamp(0, i64::from(u32::MAX)) as u32,
                changed: true,
                previous,
            })
        })
    }

    /// Records a customer's consent on a channel (an unsubscribe link, a
    /// bounce or complaint from the provider) as a `Subscribed` /
    /// `Unsubscribed` event and the consent trait it sets. `false` when
    /// the customer is unknown.
    pub fn record_consent(
        &mut self,
        customer: &str,
        channel: Channel,
        granted: bool,
        source: &str,
        scorer: crate::live::Scorer<'_>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.transact(now_ms, |tx| {
            let exists = tx
                .db
                .query_one(
                    "SELECT 1 FROM customers WHERE customer_id = ?1",
                    vals![customer],
                )?
                .is_some();
            if !exists {
                return Ok(false);
            }
            let name = if granted {
                "Subscribed"
            } else {
                "Unsubscribed"
            };
            let e = crate::live::NewEvent {
                message_id: format!("{}:{}:{now_ms}", name.to_lowercase(), channel.name()),
                kind: "track".into(),
                event: Some(name.into()),
                at_ms: now_ms,
                received_ms: now_ms,
                payload:
                    serde_json::json!({"properties": {"channel": channel.name(), "source": source}})
                        .to_string(),
                ..crate::live::NewEvent::default()
            };
            tx.insert_event(customer, &e)?;
            let mut t = Map::new();
            t.insert(format!("consent_{}", channel.name()), Value::Bool(granted));
            tx.apply_traits(customer, &t)?;
            tx.run_journeys(scorer)?;
            Ok(true)
        })
    }

    /// Arms a live moment's timers for the customers already known when it
    /// is launched: an absence from each customer's last such event (and,
    /// for `Order Completed`, their last imported order), a date trait's
    /// next occurrence. Customers already absent longer than the moment's
    /// days do not enter (a segment trigger reaches them). Returns the
    /// timers armed.
    pub fn arm_timers(&mut self, moment: &str, now_ms: i64) -> Result<u64, StoreError> {
        let Some(m) = self
            .journeys
            .live()
            .iter()
            .find(|m| m.name == moment)
            .cloned()
        else {
            return Ok(0);
        };
        self.transact(now_ms, |tx| {
            let mut armed = 0;
            match &m.trigger {
                Trigger::Absence { event, days } => {
                    let span = i64::from(*days) * DAY_MS;
                    if event.properties.is_empty()
                        && let Some(t) = tx.lsm
                    {
                        let mut last: HashMap<String, i64> = HashMap::new();
                        t.each(&mut |e| {
                            if e.event.as_deref() == Some(event.event.as_str()) {
                                let at = last.entry(e.customer_id).or_insert(e.at_ms);
                                *at = (*at).max(e.at_ms);
                            }
                            Ok(())
                        })?;
                        let mut last: Vec<(String, i64)> = last.into_iter().collect();
                        last.sort();
                        for (customer, at) in last {
                            if at + span > now_ms {
                                armed += tx.db.exec(
                                    "INSERT INTO moment_timers (moment, customer_id, due_ms)
                                     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                                    vals![&m.name, &customer, at + span],
                                )?;
                            }
                        }
                    } else if event.properties.is_empty() {
                        armed += tx.db.exec(
                            "INSERT INTO moment_timers (moment, customer_id, due_ms)
                             SELECT ?1, customer_id, MAX(at_ms) + ?2 FROM events WHERE event = ?3
                             GROUP BY customer_id HAVING MAX(at_ms) + ?2 > ?4
                             ON CONFLICT DO NOTHING",
                            vals![&m.name, span, &event.event, now_ms],
                        )?;
                    }
                    if event.event == "Order Completed" && event.properties.is_empty() {
                        armed += tx.db.exec(
                            "INSERT INTO moment_timers (moment, customer_id, due_ms)
                             SELECT ?1, customer_id, (last_order + 1) * ?3 + ?2 FROM profiles
                             WHERE last_order IS NOT NULL AND (last_order + 1) * ?3 + ?2 > ?4
                             ON CONFLICT (moment, customer_id) DO UPDATE SET due_ms = excluded.due_ms
                             WHERE excluded.due_ms > moment_timers.due_ms",
                            vals![&m.name, span, DAY_MS, now_ms],
                        )?;
                    }
                }
                Trigger::DateTrait { trait_name, .. } => {
                    let rows = tx.db.query("SELECT customer_id, traits FROM traits", &[])?;
                    let today = now_ms.div_euclid(DAY_MS);
                    for r in &rows {
                        if let Ok(Value::Object(t)) = serde_json::from_str::<Value>(&r.text(1))
                            && t.contains_key(trait_name)
                        {
                            tx.date_trait_timers(&r.text(0), &t, None, today)?;
                            armed += 1;
                        }
                    }
                }
                _ => {}
            }
            Ok(armed)
        })
    }

    /// Adds values (customer ids or email addresses, lower-cased) to a
    /// suppression list; returns how many were new.
    pub fn suppress(
        &mut self,
        list: &str,
        values: &[String],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        self.transact(now_ms, |tx| {
            let mut added = 0;
            for v in values {
                let v = v.trim();
                if v.is_empty() {
                    continue;
                }
                let v = if v.contains('@') { v.to_lowercase() } else { v.to_string() };
                added += tx.db.exec(
                    "INSERT INTO suppressions (list, value, at_ms) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    vals![list, &v, now_ms],
                )?;
            }
            Ok(added)
        })
    }

    /// Removes values from a suppression list; returns how many were there.
    pub fn unsuppress(&mut self, list: &str, values: &[String]) -> Result<u64, StoreError> {
        let mut removed = 0;
        for v in values {
            let v = v.trim();
            let v = if v.contains('@') {
                v.to_lowercase()
            } else {
                v.to_string()
            };
            removed += self.exec(
                "DELETE FROM suppressions WHERE list = ?1 AND value = ?2",
                vals![list, &v],
            )?;
        }
        Ok(removed)
    }

    /// Every suppression list with its size.
    pub fn suppression_lists(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(self
            .rows(
                "SELECT list, COUNT(*) FROM suppressions GROUP BY list ORDER BY list",
                &[],
            )?
            .iter()
            .map(|r| (r.text(0), r.i64(1)))
            .collect())
    }

    /// Stops a moment taking entrants (its customers walk on).
    pub fn deactivate_moment(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self.exec(
            "UPDATE moments SET active = 0 WHERE name = ?1 AND active = 1",
            vals![name],
        )? > 0)
    }

    /// Every stored version of every moment, by name and version.
    pub fn moments(&mut self) -> Result<Vec<StoredMoment>, StoreError> {
        Ok(self
            .rows(
                "SELECT name, version, source, origin, created_ms, active FROM moments
                 ORDER BY name, version",
                &[],
            )?
            .iter()
            .map(|r| StoredMoment {
                name: r.text(0),
                version: r.i64(1).clamp(0, i64::from(u32::MAX)) as u32,
                source: r.text(2),
                origin: r.text(3),
                created_ms: r.i64(4),
                active: r.bool(5),
            })
            .collect())
    }

    /// The timer pass: every enrolment whose wait has ended by `now_ms`
    /// (up to `limit`, earliest first, found through the due-time index)
    /// walks on, in one transaction. On PostgreSQL the rows are locked
    /// with `SKIP LOCKED`, so that instances share the work.
    pub fn wake_journeys(
        &mut self,
        now_ms: i64,
        limit: usize,
        scorer: crate::live::Scorer<'_>,
    ) -> Result<WakeStats, StoreError> {
        let pg = self.db.is_postgres();
        self.transact(now_ms, |tx| {
            tx.queued = 0;
            tx.enrolled = 0;
            let lock = if pg { " FOR UPDATE SKIP LOCKED" } else { "" };
            let rows = tx.db.query(
                &format!(
                    "SELECT {ENROLMENT_COLUMNS} FROM enrolments WHERE wake_ms IS NOT NULL AND wake_ms <= ?1
                     ORDER BY wake_ms LIMIT ?2{lock}"
                ),
                vals![now_ms, limit as i64],
            )?;
            let journeys = Arc::clone(&tx.journeys);
            let mut stats = WakeStats::default();
            for row in &rows {
                let mut s = enrolment_of(row);
                stats.woken += 1;
                let Some(m) = journeys.version(&s.e.moment, s.e.version) else {
                    // The definition is gone: end the walk rather than spin.
                    tx.db.exec(
                        "UPDATE enrolments SET wake_ms = NULL, ended = 'removed', ended_ms = ?2 WHERE id = ?1",
                        vals![s.id, now_ms],
                    )?;
                    continue;
                };
                let facts = tx.facts(&s.e.customer)?;
                let lookup = |k: &str| facts.get(k);
                let actions = journey::advance(&m, &mut s.e, now_ms, None, &lookup);
                tx.apply(&m, &mut s, actions)?;
            }
            // Moment timers: absences that lasted, dates that came.
            let timers = tx.db.query(
                &format!(
                    "SELECT moment, customer_id FROM moment_timers WHERE due_ms <= ?1
                     ORDER BY due_ms LIMIT ?2{lock}"
                ),
                vals![now_ms, limit as i64],
            )?;
            for r in &timers {
                let (name, customer) = (r.text(0), r.text(1));
                tx.db.exec(
                    "DELETE FROM moment_timers WHERE moment = ?1 AND customer_id = ?2",
                    vals![&name, &customer],
                )?;
                stats.woken += 1;
                let Some(m) = journeys.live().iter().find(|m| m.name == name).cloned() else {
                    continue;
                };
                tx.enrol(&m, &customer)?;
                if matches!(m.trigger, Trigger::DateTrait { .. }) {
                    // Next year's occurrence.
                    let traits = tx.traits_of(&customer)?.map(|t| t.0).unwrap_or_default();
                    tx.date_trait_timers(&customer, &traits, None, now_ms.div_euclid(DAY_MS) + 1)?;
                }
            }
            tx.run_journeys(scorer)?;
            stats.queued = tx.queued;
            stats.entered = tx.enrolled;
            Ok(stats)
        })
    }

    /// The earliest time an enrolment waits for, if any.
    pub fn next_wake(&mut self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .row(
                "SELECT MIN(wake_ms) FROM enrolments WHERE wake_ms IS NOT NULL",
                &[],
            )?
            .and_then(|r| r.opt_i64(0)))
    }

    /// Leases up to `limit` queued sends due by `now_ms` (highest priority
    /// first, then oldest) for `lease_ms`: another caller (another
    /// instance) does not get them until the lease runs out.
    pub fn claim_outbox(
        &mut self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let lock = if self.db.is_postgres() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE outbox SET lease_ms = ?2 WHERE key IN (
               SELECT key FROM outbox WHERE status = 'queued' AND due_ms <= ?1
                 AND (lease_ms IS NULL OR lease_ms <= ?1)
               ORDER BY priority DESC, due_ms, key LIMIT ?3{lock})
             RETURNING {OUTBOX_COLUMNS}"
        );
        let mut items: Vec<OutboxItem> = self.transact(now_ms, |tx| {
            Ok(tx
                .db
                .query(&sql, vals![now_ms, now_ms + lease_ms, limit as i64])?
                .iter()
                .map(outbox_of)
                .collect())
        })?;
        items.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.due_ms.cmp(&b.due_ms))
                .then(a.key.cmp(&b.key))
        });
        Ok(items)
    }

    /// Records how a leased send ended.
    pub fn finish_outbox(
        &mut self,
        key: &str,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let content = match outcome {
            Outcome::Sent { content, .. } => content.as_deref(),
            _ => None,
        };
        let (status, due, sent, detail, attempt): (&str, Option<i64>, Option<i64>, &str, i64) =
            match outcome {
                Outcome::Sent { detail, .. } => ("sent", None, Some(now_ms), detail, 1),
                Outcome::Retry { at_ms, error } => ("queued", Some(*at_ms), None, error, 1),
                Outcome::Failed { error } => ("failed", None, None, error, 1),
                Outcome::Suppressed { reason } => ("suppressed", None, None, reason, 0),
                Outcome::Deferred { until_ms, reason } => {
                    ("queued", Some(*until_ms), None, reason, 0)
                }
            };
        self.exec(
            "UPDATE outbox SET status = ?2, due_ms = COALESCE(?3, due_ms), sent_ms = ?4,
               detail = ?5, attempts = attempts + ?6, lease_ms = NULL, content = ?7 WHERE key = ?1",
            vals![key, status, due, sent, detail, attempt, content],
        )?;
        Ok(())
    }

    /// Messages sent to the customer on the channel since `since_ms`
    /// (frequency caps).
    pub fn sent_since(
        &mut self,
        customer: &str,
        channel: &str,
        since_ms: i64,
    ) -> Result<i64, StoreError> {
        Ok(self
            .row(
                "SELECT COUNT(*) FROM outbox WHERE customer_id = ?1 AND channel = ?2
                 AND status = 'sent' AND sent_ms >= ?3",
                vals![customer, channel, since_ms],
            )?
            .map(|r| r.i64(0))
            .unwrap_or(0))
    }

    /// A customer's profile and traits (for rendering a message).
    pub fn customer_context(
        &mut self,
        customer: &str,
    ) -> Result<(Option<ProfileRow>, Map<String, Value>), StoreError> {
        let now = 0;
        self.transact(now, |tx| {
            let f = tx.facts(customer)?;
            Ok((f.profile, f.traits))
        })
    }

    /// A customer's enrolments, newest first.
    pub fn enrolments(&mut self, customer: &str) -> Result<Vec<EnrolmentRow>, StoreError> {
        Ok(self
            .rows(
                "SELECT id, moment, version, entered_ms, step, wake_ms, held_out, global_control,
                   ended, ended_ms, goal_ms, goal_value
                 FROM enrolments WHERE customer_id = ?1 ORDER BY entered_ms DESC, id DESC",
                vals![customer],
            )?
            .iter()
            .map(|r| EnrolmentRow {
                id: r.i64(0),
                moment: r.text(1),
                version: r.i64(2).clamp(0, i64::from(u32::MAX)) as u32,
                entered_ms: r.i64(3),
                step: r.i64(4),
                wake_ms: r.opt_i64(5),
                held_out: r.bool(6),
                global_control: r.bool(7),
                ended: r.opt_text(8),
                ended_ms: r.opt_i64(9),
                goal_ms: r.opt_i64(10),
                goal_value: r.opt_f64(11),
            })
            .collect())
    }

    /// A customer's messages (queued, sent, failed, suppressed, held out), newest first.
    pub fn messages(&mut self, customer: &str) -> Result<Vec<MessageRow>, StoreError> {
        Ok(self
            .rows(
                "SELECT key, moment, version, step, channel, template, status, created_ms, due_ms,
                   sent_ms, attempts, detail
                 FROM outbox WHERE customer_id = ?1 ORDER BY created_ms DESC, key DESC",
                vals![customer],
            )?
            .iter()
            .map(message_of)
            .collect())
    }

    /// A customer's on-site messages sent since `since_ms` and not
    /// dismissed: (key, moment, content), newest first.
    pub fn onsite_messages(
        &mut self,
        customer: &str,
        since_ms: i64,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(self
            .rows(
                "SELECT key, moment, content FROM outbox WHERE customer_id = ?1 AND channel = 'onsite'
                 AND status = 'sent' AND sent_ms >= ?2 ORDER BY sent_ms DESC, key",
                vals![customer, since_ms],
            )?
            .iter()
            .map(|r| (r.text(0), r.text(1), r.opt_text(2).unwrap_or_default()))
            .collect())
    }

    /// Messages with a status (e.g. the dead letters: `failed`), newest
    /// first, with their customer.
    pub fn messages_by_status(
        &mut self,
        status: &str,
        limit: usize,
    ) -> Result<Vec<(String, MessageRow)>, StoreError> {
        Ok(self
            .rows(
                "SELECT key, moment, version, step, channel, template, status, created_ms, due_ms,
                   sent_ms, attempts, detail, customer_id
                 FROM outbox WHERE status = ?1 ORDER BY created_ms DESC, key LIMIT ?2",
                vals![status, limit as i64],
            )?
            .iter()
            .map(|r| (r.text(12), message_of(r)))
            .collect())
    }

    /// Outbox rows by moment, channel, status and day (the day sent, or
    /// due): (moment, channel, status, day since 1970-01-01 UTC, count).
    pub fn outbox_days(&mut self) -> Result<Vec<OutboxDay>, StoreError> {
        Ok(self
            .rows(
                "SELECT moment, channel, status, CAST(COALESCE(sent_ms, due_ms) / 86400000 AS BIGINT) AS d,
                   COUNT(*) FROM outbox GROUP BY moment, channel, status, d
                 ORDER BY d, moment, channel, status",
                &[],
            )?
            .iter()
            .map(|r| (r.text(0), r.text(1), r.text(2), r.i64(3), r.i64(4)))
            .collect())
    }

    /// A moment's readout rows: each customer's first enrolment, their
    /// group, goal, and what happened within `window_days` after entering
    /// (revenue and orders from the order history, visits as page and
    /// screen events), with their predicted CLV at entry and now.
    pub fn moment_rows(
        &mut self,
        moment: &str,
        window_days: i64,
    ) -> Result<Vec<MomentRow>, StoreError> {
        let rows = self.rows(
            "SELECT e.customer_id, e.held_out, e.global_control, e.entered_ms, e.goal_ms, e.goal_value,
               e.clv_at_entry, p.clv,
               (SELECT COALESCE(SUM(o.amount), 0.0) FROM orders o WHERE o.customer_id = e.customer_id
                  AND o.day >= e.entered_ms / ?2 AND o.day <= e.entered_ms / ?2 + ?3),
               (SELECT COUNT(*) FROM orders o WHERE o.customer_id = e.customer_id AND o.is_order = 1
                  AND o.day >= e.entered_ms / ?2 AND o.day <= e.entered_ms / ?2 + ?3),
               (SELECT COUNT(*) FROM events v WHERE v.customer_id = e.customer_id
                  AND v.kind IN ('page', 'screen') AND v.at_ms >= e.entered_ms
                  AND v.at_ms <= e.entered_ms + ?3 * ?2)
             FROM enrolments e LEFT JOIN profiles p ON p.customer_id = e.customer_id
             WHERE e.moment = ?1 ORDER BY e.customer_id, e.entered_ms",
            vals![moment, DAY_MS, window_days],
        )?;
        let mut out: Vec<MomentRow> = Vec::with_capacity(rows.len());
        for r in &rows {
            let customer = r.text(0);
            if out.last().is_some_and(|l| l.customer_id == customer) {
                continue; // a re-entry: the first enrolment is the unit
            }
            out.push(MomentRow {
                customer_id: customer,
                held_out: r.bool(1),
                global_control: r.bool(2),
                entered_ms: r.i64(3),
                converted: r.opt_i64(4).is_some(),
                goal_value: r.opt_f64(5).unwrap_or(0.0),
                clv_at_entry: r.opt_f64(6),
                clv_now: r.opt_f64(7),
                revenue: r.f64(8),
                orders: r.i64(9),
                visits: r.i64(10),
            });
        }
        if let Some(t) = self.tree()? {
            // Visits from the events' tree: a customer's range each.
            let span = window_days * DAY_MS;
            for row in &mut out {
                let events = t
                    .customer_events(&row.customer_id)
                    .map_err(|e| self.err(e))?;
                row.visits = events
                    .iter()
                    .filter(|e| {
                        matches!(e.kind.as_str(), "page" | "screen")
                            && e.at_ms >= row.entered_ms
                            && e.at_ms <= row.entered_ms + span
                    })
                    .count() as i64;
            }
        }
        Ok(out)
    }

    /// Every customer's revenue and orders from day `since_day` on, with
    /// their predicted CLV: (customer, revenue, orders, clv).
    pub fn customer_activity(&mut self, since_day: i64) -> Result<Vec<Activity>, StoreError> {
        Ok(self
            .rows(
                "SELECT c.customer_id,
                   (SELECT COALESCE(SUM(o.amount), 0.0) FROM orders o WHERE o.customer_id = c.customer_id AND o.day >= ?1),
                   (SELECT COUNT(*) FROM orders o WHERE o.customer_id = c.customer_id AND o.day >= ?1 AND o.is_order = 1),
                   p.clv
                 FROM customers c LEFT JOIN profiles p ON p.customer_id = c.customer_id
                 ORDER BY c.customer_id",
                vals![since_day],
            )?
            .iter()
            .map(|r| (r.text(0), r.f64(1), r.i64(2) as f64, r.opt_f64(3)))
            .collect())
    }

    /// Every enrolment: (customer, moment, entered, group, goal reached).
    pub fn all_enrolments(&mut self) -> Result<Vec<EnrolmentSummary>, StoreError> {
        Ok(self
            .rows(
                "SELECT customer_id, moment, entered_ms, global_control, holdout, goal_ms
                 FROM enrolments ORDER BY entered_ms, customer_id, moment",
                &[],
            )?
            .iter()
            .map(|r| {
                let group = if r.bool(3) {
                    "global control"
                } else if r.bool(4) {
                    "holdout"
                } else {
                    "treatment"
                };
                (
                    r.text(0),
                    r.text(1),
                    r.i64(2),
                    group.to_string(),
                    r.opt_i64(5),
                )
            })
            .collect())
    }

    /// The product ids of a customer's `Order Completed` events (the
    /// Segment e-commerce spec's `products[].product_id`), latest first.
    pub fn bought_products(&mut self, customer: &str) -> Result<Vec<String>, StoreError> {
        let rows = if let Some(t) = self.tree()? {
            let mut bought = t.customer_events(customer).map_err(|e| self.err(e))?;
            bought.retain(|e| e.event.as_deref() == Some("Order Completed"));
            bought.sort_by_key(|e| std::cmp::Reverse(e.at_ms));
            bought.truncate(200);
            bought
                .into_iter()
                .map(|e| Row(vec![crate::db::Val::Text(e.payload)]))
                .collect()
        } else {
            self.rows(
                "SELECT payload FROM events WHERE customer_id = ?1 AND event = 'Order Completed'
                 ORDER BY at_ms DESC LIMIT 200",
                vals![customer],
            )?
        };
        let mut out: Vec<String> = Vec::new();
        for r in &rows {
            let Ok(v) = serde_json::from_str::<Value>(&r.text(0)) else {
                continue;
            };
            for p in v["properties"]["products"].as_array().into_iter().flatten() {
                let id = p
                    .get("product_id")
                    .or_else(|| p.get("sku"))
                    .and_then(text_of);
                if let Some(id) = id
                    && !out.contains(&id)
                {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    /// Marks a customer's on-site message as dismissed.
    pub fn dismiss(&mut self, customer: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self.exec(
            "UPDATE outbox SET status = 'dismissed' WHERE customer_id = ?1 AND key = ?2
             AND channel = 'onsite' AND status = 'sent'",
            vals![customer, key],
        )? > 0)
    }

    /// The traits of every customer in a moment's ad audience now: their
    /// audience step was delivered and their enrolment has not ended.
    pub fn audience_members(
        &mut self,
        moment: &str,
    ) -> Result<Vec<Map<String, Value>>, StoreError> {
        Ok(self
            .rows(
                "SELECT DISTINCT t.customer_id, t.traits FROM outbox o
                 JOIN enrolments e ON e.id = o.enrolment_id
                 JOIN traits t ON t.customer_id = o.customer_id
                 WHERE o.moment = ?1 AND o.channel = 'audience' AND o.status = 'sent'
                   AND e.ended IS NULL
                 ORDER BY t.customer_id",
                vals![moment],
            )?
            .iter()
            .filter_map(|r| match serde_json::from_str(&r.text(1)) {
                Ok(Value::Object(m)) => Some(m),
                _ => None,
            })
            .collect())
    }

    /// The traits of every customer now in `segment` who has not refused
    /// ad audiences (`consent_audience` false), by customer id.
    pub fn segment_traits(&mut self, segment: &str) -> Result<Vec<Map<String, Value>>, StoreError> {
        Ok(self
            .rows(
                "SELECT t.traits FROM profiles p JOIN traits t ON t.customer_id = p.customer_id
                 WHERE p.segment = ?1 ORDER BY p.customer_id",
                vals![segment],
            )?
            .iter()
            .filter_map(|r| match serde_json::from_str(&r.text(0)) {
                Ok(Value::Object(m)) if m.get("consent_audience") != Some(&Value::Bool(false)) => {
                    Some(m)
                }
                _ => None,
            })
            .collect())
    }

    /// A moment's enrolment, goal and message counts (all versions).
    /// The journey's funnel: for each step index up to `steps`, how many
    /// treated customers reached it, how many wait there, and its messages.
    pub fn moment_funnel(
        &mut self,
        name: &str,
        steps: usize,
    ) -> Result<Vec<StepFunnel>, StoreError> {
        let mut funnel: Vec<StepFunnel> = (0..steps as i64)
            .map(|step| StepFunnel {
                step,
                ..StepFunnel::default()
            })
            .collect();
        for r in self.rows(
            "SELECT step, COUNT(*), CAST(COALESCE(SUM(CASE WHEN ended IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM enrolments WHERE moment = ?1 AND held_out = 0 GROUP BY step",
            vals![name],
        )? {
            let (at, n, waiting) = (r.i64(0), r.i64(1), r.i64(2));
            for f in funnel.iter_mut().filter(|f| f.step <= at) {
                f.reached += n;
            }
            if let Some(f) = funnel.iter_mut().find(|f| f.step == at) {
                f.here_now += waiting;
            }
        }
        for r in self.rows(
            "SELECT step, status, COUNT(*) FROM outbox WHERE moment = ?1 GROUP BY step, status ORDER BY step, status",
            vals![name],
        )? {
            if let Some(f) = funnel.iter_mut().find(|f| f.step == r.i64(0)) {
                f.messages.push((r.text(1), r.i64(2)));
            }
        }
        Ok(funnel)
    }

    pub fn moment_counts(&mut self, name: &str) -> Result<MomentCounts, StoreError> {
        let mut c = MomentCounts::default();
        if let Some(r) = self.row(
            "SELECT COUNT(*),
               CAST(COALESCE(SUM(holdout), 0) AS BIGINT),
               CAST(COALESCE(SUM(global_control), 0) AS BIGINT),
               CAST(COALESCE(SUM(CASE WHEN ended IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT),
               CAST(COALESCE(SUM(CASE WHEN goal_ms IS NOT NULL AND held_out = 0 THEN 1 ELSE 0 END), 0) AS BIGINT),
               CAST(COALESCE(SUM(CASE WHEN goal_ms IS NOT NULL AND held_out = 1 THEN 1 ELSE 0 END), 0) AS BIGINT),
               COALESCE(SUM(CASE WHEN held_out = 0 THEN goal_value ELSE 0.0 END), 0.0),
               COALESCE(SUM(CASE WHEN held_out = 1 THEN goal_value ELSE 0.0 END), 0.0)
             FROM enrolments WHERE moment = ?1",
            vals![name],
        )? {
            c.enrolled = r.i64(0);
            c.holdout = r.i64(1);
            c.global_control = r.i64(2);
            c.active = r.i64(3);
            c.goals_treated = r.i64(4);
            c.goals_held_out = r.i64(5);
            c.goal_value_treated = r.f64(6);
            c.goal_value_held_out = r.f64(7);
        }
        c.messages = self
            .rows(
                "SELECT status, COUNT(*) FROM outbox WHERE moment = ?1 GROUP BY status ORDER BY status",
                vals![name],
            )?
            .iter()
            .map(|r| (r.text(0), r.i64(1)))
            .collect();
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::live::{CustomerFacts, NewEvent};
    use crate::{StoreUrl, testing};
    use lifecycle_moments::{Audience, EventFilter, Goal, LabeledStep, Step};

    /// The segment is the `segment` trait (Visitors without one).
    fn scorer(f: &CustomerFacts<'_>) -> ProfileRow {
        let segment = f
            .traits
            .and_then(|t| t.get("segment"))
            .and_then(Value::as_str)
            .unwrap_or("Visitors")
            .to_string();
        ProfileRow {
            n_orders: f
                .summary
                .map_or(f.entries.len() as i64, |s| i64::from(s.n_orders)),
            segment,
            phase: "P".into(),
            ..ProfileRow::default()
        }
    }

    fn win_back(reentry: Reentry) -> Moment {
        let step = |step| LabeledStep { label: None, step };
        Moment {
            name: "Win back".into(),
            version: 1,
            goal: Goal {
                event: EventFilter {
                    event: "Order Completed".into(),
                    properties: vec![],
                },
                within_days: 30,
                exits: true,
            },
            trigger: Trigger::SegmentEntered("At Risk".into()),
            audience: Audience {
                consent: vec![Channel::Email],
                ..Audience::default()
            },
            reentry,
            holdout: 0.1,
            priority: 0,
            steps: vec![
                step(Step::Send {
                    channel: Channel::Email,
                    template: "winback.html".into(),
                    subject: Some("We miss you".into()),
                }),
                step(Step::Wait {
                    days: 7.0,
                    until: None,
                }),
                step(Step::Send {
                    channel: Channel::Email,
                    template: "reminder.html".into(),
                    subject: None,
                }),
            ],
        }
    }

    fn identify(user: &str, id: &str, traits: Value) -> NewEvent {
        NewEvent {
            user_id: Some(user.into()),
            message_id: id.into(),
            kind: "identify".into(),
            payload: "{}".into(),
            traits: traits.as_object().cloned(),
            ..NewEvent::default()
        }
    }

    fn order(user: &str, id: &str, at_ms: i64) -> NewEvent {
        NewEvent {
            user_id: Some(user.into()),
            message_id: id.into(),
            kind: "track".into(),
            event: Some("Order Completed".into()),
            at_ms,
            payload: r#"{"properties":{"revenue":25.5}}"#.into(),
            ..NewEvent::default()
        }
    }

    const T0: i64 = 1_700_000_000_000;

    fn both(name: &str, body: impl Fn(StoreUrl)) {
        let dir = tempfile::tempdir().unwrap();
        body(StoreUrl::Sqlite(dir.path().join(format!("{name}.db"))));
        let pg = testing::postgres_database()
            .unwrap_or_else(|e| panic!("no PostgreSQL for the tests: {e}"));
        body(StoreUrl::Postgres(pg));
    }

    /// Customers entering At Risk enrol (holdout and global control by
    /// their hash), sends are queued for the treated only, a goal ends the
    /// walk and is counted for both groups, the timer pass finds the
    /// waits, and `once` keeps a customer from entering twice.
    #[test]
    fn enrol_send_wait_goal_and_reentry() {
        both("j", |url| {
            let mut store = Store::open(&url).unwrap();
            store.set_journeys(Journeys::new(vec![win_back(Reentry::Once)], vec![], 0.05));
            let s: crate::live::Scorer<'_> = &scorer;
            let n = 300;
            let users: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();
            // One without an email (no consent) and everyone else.
            let batch: Vec<NewEvent> = users
                .iter()
                .enumerate()
                .map(|(i, u)| {
                    let traits = if i == 0 {
                        serde_json::json!({"segment": "At Risk"})
                    } else {
                        serde_json::json!({"segment": "At Risk", "email": format!("{u}@x.org")})
                    };
                    identify(u, &format!("i-{u}"), traits)
                })
                .collect();
            store.ingest(&[batch], s, T0).unwrap();
            let global: Vec<bool> = users
                .iter()
                .map(|u| assignment::held_out("global", u, 0.05))
                .collect();
            let holdout: Vec<bool> = users
                .iter()
                .map(|u| assignment::held_out("Win back:1", u, 0.1))
                .collect();
            let entered = n - 1;
            let held = (1..n).filter(|&i| global[i] || holdout[i]).count() as i64;
            let c = store.moment_counts("Win back").unwrap();
            assert_eq!(c.enrolled, entered as i64);
            assert_eq!(
                c.global_control,
                (1..n).filter(|&i| global[i]).count() as i64
            );
            assert_eq!(
                c.holdout,
                (1..n).filter(|&i| holdout[i] && !global[i]).count() as i64
            );
            assert!(held > 10 && held < 80, "{held}");
            let count =
                |c: &MomentCounts, s: &str| c.messages.iter().find(|m| m.0 == s).map_or(0, |m| m.1);
            assert_eq!(count(&c, "queued"), entered as i64 - held);
            assert_eq!(count(&c, "held_out"), held);
            assert_eq!(store.enrolments("u0").unwrap().len(), 0);

            // Orders of the first 50 a day later: goals (both groups), walks end.
            let orders: Vec<NewEvent> = users[..50]
                .iter()
                .map(|u| order(u, &format!("o-{u}"), T0 + DAY_MS))
                .collect();
            store.ingest(&[orders], s, T0 + DAY_MS).unwrap();
            let c = store.moment_counts("Win back").unwrap();
            let goals_treated = (1..50).filter(|&i| !(global[i] || holdout[i])).count() as i64;
            assert_eq!(c.goals_treated, goals_treated);
            assert_eq!(c.goals_held_out, 49 - goals_treated);
            assert!((c.goal_value_treated - 25.5 * goals_treated as f64).abs() < 1e-9);
            assert_eq!(c.active, entered as i64 - 49);
            let e = store.enrolments("u1").unwrap();
            assert_eq!(e[0].ended.as_deref(), Some("goal"));

            // Nothing is due before the wait ends; then the rest walk on.
            let none = store.wake_journeys(T0 + 6 * DAY_MS, 1000, s).unwrap();
            assert_eq!(none.woken, 0);
            assert_eq!(store.next_wake().unwrap(), Some(T0 + 7 * DAY_MS));
            let woke = store.wake_journeys(T0 + 7 * DAY_MS, 1000, s).unwrap();
            assert_eq!(woke.woken, entered as u64 - 49);
            let treated_left = (50..n).filter(|&i| !(global[i] || holdout[i])).count() as u64;
            assert_eq!(woke.queued, treated_left);
            let c = store.moment_counts("Win back").unwrap();
            assert_eq!(c.active, 0);
            assert_eq!(store.next_wake().unwrap(), None);

            // Leaving and re-entering At Risk: `once` keeps them out.
            let flip = |seg: &str, tag: &str| -> Vec<NewEvent> {
                users[1..10]
                    .iter()
                    .map(|u| {
                        identify(
                            u,
                            &format!("{tag}-{u}"),
                            serde_json::json!({"segment": seg}),
                        )
                    })
                    .collect()
            };
            store
                .ingest(&[flip("Loyal", "a")], s, T0 + 8 * DAY_MS)
                .unwrap();
            store
                .ingest(&[flip("At Risk", "b")], s, T0 + 9 * DAY_MS)
                .unwrap();
            assert_eq!(
                store.moment_counts("Win back").unwrap().enrolled,
                entered as i64
            );

            // The outbox: leases keep a claimed send from a second claimer.
            let a = store.claim_outbox(T0 + 10 * DAY_MS, 60_000, 10).unwrap();
            let b = store.claim_outbox(T0 + 10 * DAY_MS, 60_000, 1000).unwrap();
            assert_eq!(a.len(), 10);
            assert!(b.iter().all(|x| a.iter().all(|y| y.key != x.key)));
            let queued_total = (entered as i64 - held) + treated_left as i64;
            assert_eq!((a.len() + b.len()) as i64, queued_total);
            let first = &a[0];
            store
                .finish_outbox(
                    &first.key,
                    &Outcome::Sent {
                        detail: "250 ok".into(),
                        content: None,
                    },
                    T0 + 10 * DAY_MS,
                )
                .unwrap();
            assert_eq!(
                store.sent_since(&first.customer_id, "email", T0).unwrap(),
                1
            );
            // An expired lease is claimable again; a finished send is not.
            let again = store
                .claim_outbox(T0 + 10 * DAY_MS + 60_000, 60_000, 10_000)
                .unwrap();
            assert_eq!(again.len() as i64, queued_total - 1);
            let m = store.messages(&first.customer_id).unwrap();
            assert!(m.iter().any(|x| x.status == "sent" && x.key == first.key));
        });
    }

    #[test]
    fn yearly_dates() {
        // 2024-01-20 is day 19742; 2024-02-29 day 19782.
        assert_eq!(days_from_civil(2024, 1, 20), 19_742);
        assert_eq!(year_of(19_742), 2024);
        assert_eq!(year_of(days_from_civil(2023, 12, 31)), 2023);
        assert_eq!(next_yearly(1, 20, 0, 19_700), 19_742);
        assert_eq!(next_yearly(1, 20, 0, 19_742), 19_742);
        assert_eq!(next_yearly(1, 20, -7, 19_740), days_from_civil(2025, 1, 13));
        assert_eq!(
            next_yearly(2, 29, 0, days_from_civil(2025, 1, 1)),
            days_from_civil(2025, 2, 28)
        );
        assert_eq!(next_yearly(2, 29, 0, 19_750), 19_782);
    }

    fn single_send(name: &str, trigger: Trigger) -> Moment {
        Moment {
            name: name.into(),
            trigger,
            reentry: Reentry::EveryTime,
            holdout: 0.0,
            audience: Audience::default(),
            ..win_back(Reentry::EveryTime)
        }
    }

    /// An absence enters the customer when the days pass without the
    /// event (a new event re-arms it); a date trait on its yearly date.
    #[test]
    fn absence_and_date_trait_timers() {
        both("t", |url| {
            let mut store = Store::open(&url).unwrap();
            let lapsed = single_send(
                "Lapsed",
                Trigger::Absence {
                    event: EventFilter {
                        event: "Order Completed".into(),
                        properties: vec![],
                    },
                    days: 45,
                },
            );
            let birthday = single_send(
                "Birthday",
                Trigger::DateTrait {
                    trait_name: "birthday".into(),
                    offset_days: 0,
                },
            );
            store.set_journeys(Journeys::new(vec![lapsed, birthday], vec![], 0.0));
            let s: crate::live::Scorer<'_> = &scorer;
            store
                .ingest(
                    &[vec![
                        identify(
                            "u",
                            "i1",
                            serde_json::json!({"email": "u@x.org", "birthday": "1990-06-20"}),
                        ),
                        order("u", "o1", T0),
                    ]],
                    s,
                    T0,
                )
                .unwrap();
            let count = |store: &mut Store, m: &str| store.moment_counts(m).unwrap().enrolled;
            store.wake_journeys(T0 + 44 * DAY_MS, 100, s).unwrap();
            assert_eq!(count(&mut store, "Lapsed"), 0);
            store.wake_journeys(T0 + 45 * DAY_MS, 100, s).unwrap();
            assert_eq!(count(&mut store, "Lapsed"), 1);
            // A new order re-arms the absence.
            store
                .ingest(
                    &[vec![order("u", "o2", T0 + 50 * DAY_MS)]],
                    s,
                    T0 + 50 * DAY_MS,
                )
                .unwrap();
            store.wake_journeys(T0 + 94 * DAY_MS, 100, s).unwrap();
            assert_eq!(count(&mut store, "Lapsed"), 1);
            store.wake_journeys(T0 + 95 * DAY_MS, 100, s).unwrap();
            assert_eq!(count(&mut store, "Lapsed"), 2);
            // T0 is 2023-11-14: the birthday comes on 2024-06-20.
            let bday = days_from_civil(2024, 6, 20) * DAY_MS;
            assert_eq!(count(&mut store, "Birthday"), 0);
            store.wake_journeys(bday - 1, 100, s).unwrap();
            assert_eq!(count(&mut store, "Birthday"), 0);
            store.wake_journeys(bday, 100, s).unwrap();
            assert_eq!(count(&mut store, "Birthday"), 1);
            // And again a year later, not before.
            store.wake_journeys(bday + 300 * DAY_MS, 100, s).unwrap();
            assert_eq!(count(&mut store, "Birthday"), 1);
            store
                .wake_journeys(days_from_civil(2025, 6, 20) * DAY_MS, 100, s)
                .unwrap();
            assert_eq!(count(&mut store, "Birthday"), 2);
        });
    }

    /// A customer on a suppression list the audience names (by id or by
    /// email address, any case) does not enter.
    #[test]
    fn suppression_lists_keep_customers_out() {
        both("s", |url| {
            let mut store = Store::open(&url).unwrap();
            let mut m = win_back(Reentry::Once);
            m.audience.suppression_lists = vec!["dnc".into()];
            store.set_journeys(Journeys::new(vec![m], vec![], 0.0));
            let s: crate::live::Scorer<'_> = &scorer;
            assert_eq!(
                store
                    .suppress("dnc", &["U1@X.org".into(), "u2".into(), " ".into()], T0)
                    .unwrap(),
                2
            );
            let batch: Vec<NewEvent> = ["u1", "u2", "u3"]
                .iter()
                .map(|u| {
                    identify(
                        u,
                        &format!("i-{u}"),
                        serde_json::json!({"segment": "At Risk", "email": format!("{u}@x.org")}),
                    )
                })
                .collect();
            store.ingest(&[batch], s, T0).unwrap();
            assert_eq!(store.enrolments("u1").unwrap().len(), 0, "by email");
            assert_eq!(store.enrolments("u2").unwrap().len(), 0, "by id");
            assert_eq!(store.enrolments("u3").unwrap().len(), 1);
            assert_eq!(
                store.suppression_lists().unwrap(),
                vec![("dnc".to_string(), 2)]
            );
            assert_eq!(store.unsuppress("dnc", &["u1@x.org".into()]).unwrap(), 1);
        });
    }

    /// A customer keeps walking the version they entered with after a new
    /// version goes live; new entrants walk the new one.
    #[test]
    fn running_customers_keep_their_version() {
        both("k", |url| {
            let mut store = Store::open(&url).unwrap();
            let v1 = win_back(Reentry::Once);
            store.set_journeys(Journeys::new(vec![v1.clone()], vec![], 0.0));
            let s: crate::live::Scorer<'_> = &scorer;
            let at_risk = |u: &str| {
                identify(
                    u,
                    &format!("i-{u}"),
                    serde_json::json!({"segment": "At Risk", "email": format!("{u}@x.org")}),
                )
            };
            store.ingest(&[vec![at_risk("old")]], s, T0).unwrap();
            let mut v2 = v1.clone();
            v2.version = 2;
            if let Step::Send { template, .. } = &mut v2.steps[2].step {
                *template = "reminder-v2.html".into();
            }
            store.set_journeys(Journeys::new(vec![v2], vec![v1], 0.0));
            store
                .ingest(&[vec![at_risk("new")]], s, T0 + DAY_MS)
                .unwrap();
            store.wake_journeys(T0 + 30 * DAY_MS, 100, s).unwrap();
            let last = |u: &str, store: &mut Store| {
                let m = store.messages(u).unwrap();
                (m[0].version, m[0].template.clone(), m.len())
            };
            assert_eq!(last("old", &mut store), (1, "reminder.html".into(), 2));
            assert_eq!(last("new", &mut store), (2, "reminder-v2.html".into(), 2));
        });
    }

    /// A new definition text is a new version; the same text is not.
    #[test]
    fn moment_versions() {
        both("v", |url| {
            let mut store = Store::open(&url).unwrap();
            let a = store.save_moment("m", "name = \"m\"", "f.toml", 1).unwrap();
            assert_eq!((a.version, a.changed), (1, true));
            let b = store.save_moment("m", "name = \"m\"", "f.toml", 2).unwrap();
            assert_eq!((b.version, b.changed), (1, false));
            let c = store
                .save_moment("m", "name = \"m\" # v2", "api", 3)
                .unwrap();
            assert_eq!((c.version, c.changed), (2, true));
            assert_eq!(c.previous.as_deref(), Some("name = \"m\""));
            let all = store.moments().unwrap();
            assert_eq!(all.len(), 2);
            assert!(!all[0].active && all[1].active);
        });
    }
}

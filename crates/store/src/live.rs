//! The live part of the store: events with identity resolution, the
//! orders they carry, profiles re-scored in the same transaction, segment
//! changes recorded as events, model runs, merges and the audit log.
//!
//! Scoring itself is not the store's business: callers pass a scorer that
//! turns a customer's facts into a [`ProfileRow`]; the store calls it inside
//! the transaction that changed those facts, so a profile is never behind
//! the events that were acknowledged.

use std::collections::{BTreeSet, HashMap};

use lifecycle_rfm::{CustomerSummary, Day, OrderEntry};
use serde_json::{Map, Value};

use std::sync::Arc;

use crate::db::{Db, DbError, Row, Val, vals};
use crate::journeys::{Fresh, Journeys, VALUE_DECLINE_EVENT};
use crate::lsm::{self, EventLsm, LsmError, Ops};
use crate::{Store, StoreError};

/// Marks a refund's key apart from its order's (as rows of a file do).
const REFUND_KEY_SALT: u64 = 0x5bd1_e995_9e37_79b9;

/// An order (or refund) carried by an event (`Order Completed`, `Order
/// Refunded`): keyed by the customer and order, so that a re-sent order
/// under a new messageId updates it rather than adding a second one.
#[derive(Debug, Clone, PartialEq)]
pub struct EventOrder {
    /// The order id's key (`lifecycle_ingest::order_key`, as the file import).
    pub order_key: u64,
    pub day: lifecycle_rfm::Day,
    /// The order's total; for a refund, the amount refunded (positive).
    pub amount: f64,
    pub refund: bool,
}

/// One incoming message, with the ids as the client sent them: the store
/// resolves them to a customer (see [`Store::ingest`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewEvent {
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// `alias`: the id that becomes the user's.
    pub previous_id: Option<String>,
    pub message_id: String,
    /// identify, track, page, screen, alias, group.
    pub kind: String,
    pub event: Option<String>,
    pub at_ms: i64,
    pub received_ms: i64,
    /// JSON text.
    pub payload: String,
    /// `identify`: the traits to merge into the customer's (a JSON object).
    pub traits: Option<Map<String, Value>>,
    pub order: Option<EventOrder>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub customer_id: String,
    pub message_id: String,
    pub kind: String,
    pub event: Option<String>,
    pub at_ms: i64,
    pub received_ms: i64,
    pub payload: String,
}

/// What storing a request's events did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventStats {
    pub inserted: u64,
    /// Already stored under the same customer and messageId: ignored.
    pub duplicates: u64,
    /// Orders inserted, and orders whose amount a re-sent event changed.
    pub orders_new: u64,
    pub orders_updated: u64,
    /// Anonymous visitors merged into known customers.
    pub merged: u64,
    /// Merges refused (the id already belongs to another known customer).
    pub refused: u64,
    /// `Segment Entered` / `Segment Exited` events emitted.
    pub segment_events: u64,
    /// `Tripwire Warning` / `Tripwire Tripped` events emitted.
    pub tripwire_events: u64,
}

/// What a re-score emitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rescored {
    pub segment_events: u64,
    pub tripwire_events: u64,
}

/// Customers with one open tripwire in one status, and their CLV.
#[derive(Debug, Clone, PartialEq)]
pub struct TripwireTotal {
    pub name: String,
    /// `warning` or `tripped`.
    pub status: String,
    pub customers: u64,
    /// The sum of their CLV: the value at stake.
    pub clv: f64,
}

/// A customer id and their merged identify traits.
pub type CustomerTraits = (String, serde_json::Map<String, serde_json::Value>);

/// A customer's standing, as the scorer computed it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProfileRow {
    pub customer_id: String,
    pub run_id: Option<i64>,
    pub n_orders: i64,
    pub total_spend: f64,
    pub first_order: Option<i32>,
    pub last_order: Option<i32>,
    pub r: Option<i64>,
    pub f: Option<i64>,
    pub m: Option<i64>,
    pub segment: String,
    pub phase: String,
    pub p_alive: Option<f64>,
    pub expected_purchases: Option<f64>,
    pub clv: Option<f64>,
    pub clv_at_run: Option<f64>,
    pub declining: bool,
    pub next_order_day: Option<i32>,
    pub due_day: Option<i32>,
    pub updated_ms: i64,
    /// Open tripwires (at warning or tripped); each is published once as a
    /// `Tripwire Warning` / `Tripwire Tripped` event.
    pub tripwires: Vec<TripwireRow>,
}

/// An open tripwire of a customer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TripwireRow {
    /// `order_1_to_2`, …, `personal_rhythm`.
    pub name: String,
    /// `warning` or `tripped`.
    pub status: String,
    /// Days since 1970-01-01.
    pub since: i32,
    /// The day the episode started (the last order).
    pub started: i32,
    pub days_overdue: f64,
    pub probability: Option<f64>,
}

fn tripwires_json(rows: &[TripwireRow]) -> String {
    Value::Array(
        rows.iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name, "status": t.status, "since": t.since, "started": t.started,
                    "days_overdue": t.days_overdue, "probability": t.probability,
                })
            })
            .collect(),
    )
    .to_string()
}

fn tripwires_of(text: Option<String>) -> Vec<TripwireRow> {
    let Some(Ok(Value::Array(items))) = text.as_deref().map(serde_json::from_str::<Value>) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|t| {
            Some(TripwireRow {
                name: t["name"].as_str()?.to_string(),
                status: t["status"].as_str()?.to_string(),
                since: i32::try_from(t["since"].as_i64()?).ok()?,
                started: i32::try_from(t["started"].as_i64()?).ok()?,
                days_overdue: t["days_overdue"].as_f64().unwrap_or(0.0),
                probability: t["probability"].as_f64(),
            })
        })
        .collect()
}

/// A customer's orders summarised over every stored entry, kept in
/// `profiles.order_summary` so that a new order is added to it instead of
/// re-reading the customer's whole history (see
/// [`CustomerSummary::push_entry`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeptSummary {
    summary: CustomerSummary,
    /// The latest day of any entry (orders and refunds).
    max_day: Option<Day>,
}

impl KeptSummary {
    /// Of a customer's entries (sorted by day), all of them.
    pub(crate) fn of(entries: &[OrderEntry]) -> KeptSummary {
        KeptSummary {
            summary: CustomerSummary::from_entries("", entries, Day::MAX),
            max_day: entries.iter().map(|e| e.day).max(),
        }
    }

    /// The same counts and days, and sums within 1e-9 (a kept summary adds
    /// in arrival order).
    #[cfg(test)]
    pub(crate) fn close_to(&self, other: &KeptSummary) -> bool {
        let (a, b) = (&self.summary, &other.summary);
        let near = |x: f64, y: f64| (x - y).abs() < 1e-9;
        (
            a.n_orders,
            a.n_purchase_days,
            a.first_order,
            a.last_order,
            self.max_day,
        ) == (
            b.n_orders,
            b.n_purchase_days,
            b.first_order,
            b.last_order,
            other.max_day,
        ) && near(a.total_spend, b.total_spend)
            && near(a.first_day_value, b.first_day_value)
            && near(a.repeat_days_value, b.repeat_days_value)
    }

    fn push(&mut self, e: &OrderEntry) {
        self.summary.push_entry(e);
        self.max_day = Some(self.max_day.map_or(e.day, |m| m.max(e.day)));
    }

    /// `1 orders days first last max spend first_value repeat_value`, `-`
    /// for none; floats as Rust writes them (they read back exactly).
    fn encode(&self) -> String {
        let day = |d: Option<Day>| d.map_or_else(|| "-".to_string(), |d| d.to_string());
        let s = &self.summary;
        format!(
            "1 {} {} {} {} {} {} {} {}",
            s.n_orders,
            s.n_purchase_days,
            day(s.first_order),
            day(s.last_order),
            day(self.max_day),
            s.total_spend,
            s.first_day_value,
            s.repeat_days_value
        )
    }

    /// `None` for anything but what [`KeptSummary::encode`] writes.
    pub(crate) fn parse(text: &str) -> Option<KeptSummary> {
        let f: Vec<&str> = text.split(' ').collect();
        let [
            version,
            orders,
            days,
            first,
            last,
            max,
            spend,
            first_value,
            repeat_value,
        ] = f.as_slice()
        else {
            return None;
        };
        let day = |t: &str| -> Option<Option<Day>> {
            if t == "-" {
                Some(None)
            } else {
                t.parse().ok().map(Some)
            }
        };
        if *version != "1" {
            return None;
        }
        let mut summary = CustomerSummary::from_entries("", &[], Day::MAX);
        summary.n_orders = orders.parse().ok()?;
        summary.n_purchase_days = days.parse().ok()?;
        summary.first_order = day(first)?;
        summary.last_order = day(last)?;
        summary.total_spend = spend.parse().ok()?;
        summary.first_day_value = first_value.parse().ok()?;
        summary.repeat_days_value = repeat_value.parse().ok()?;
        Some(KeptSummary {
            summary,
            max_day: day(max)?,
        })
    }
}

/// What the scorer sees of a customer.
#[derive(Debug)]
pub struct CustomerFacts<'a> {
    pub customer_id: &'a str,
    /// Consolidated orders and refunds, sorted by day and key; empty when
    /// `summary` is given.
    pub entries: &'a [OrderEntry],
    /// The customer's orders summarised, every entry dated no later than
    /// now: given instead of `entries` when the store added this change's
    /// new orders to the summary it keeps (see [`CustomerSummary::push_entry`])
    /// rather than re-reading the history.
    pub summary: Option<&'a CustomerSummary>,
    pub has_email: bool,
    /// The profile before this change, if any.
    pub previous: Option<&'a ProfileRow>,
    /// The customer's traits (identify), if any.
    pub traits: Option<&'a Map<String, Value>>,
    /// The customer's events whose names the store watches
    /// ([`Store::watch_events`]), oldest first.
    pub events: &'a [WatchedEvent],
    /// When the customer was first seen: their earliest event other than
    /// an order (and other than Lifecycle's own events), ms since 1970;
    /// only when asked for ([`Store::want_first_seen`]).
    pub first_seen_ms: Option<i64>,
}

/// The events that say a visitor was around before buying: not orders,
/// and not Lifecycle's own events (segment changes, tripwires, whose
/// messageIds carry these prefixes).
const OWN_EVENTS: &str = "message_id NOT LIKE 'segment-%' AND message_id NOT LIKE 'tripwire-%'
     AND (event IS NULL OR event NOT IN ('Order Completed', 'Order Refunded'))";

/// A stored event the scorer asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchedEvent {
    pub event: String,
    pub at_ms: i64,
    /// JSON text: properties, traits, context.
    pub payload: String,
}

/// Turns a customer's facts into their profile (called inside the
/// transaction that changed them).
pub type Scorer<'a> = &'a dyn Fn(&CustomerFacts<'_>) -> ProfileRow;

/// A merge of one customer into another (or one refused).
#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    pub customer_id: String,
    pub merged_id: String,
    pub at_ms: i64,
    pub how: String,
}

/// Everything the customer view shows from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRecord {
    pub customer_id: String,
    pub profile: Option<ProfileRow>,
    /// The ids that lead to this customer (`user:…`, `anon:…`, `email:…`).
    pub ids: Vec<String>,
    pub merges: Vec<Merge>,
    pub traits: Map<String, Value>,
    pub events: Vec<StoredEvent>,
    /// The latest consolidated orders and refunds (as many as the events
    /// asked for), newest first.
    pub orders: Vec<StoredOrder>,
}

/// One consolidated order (or refund) of a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOrder {
    /// Days since 1970-01-01 (analysis time zone).
    pub day: i32,
    pub amount: f64,
    /// `false`: a refund only.
    pub is_order: bool,
}

/// Which profiles to list.
#[derive(Debug, Clone, Default)]
pub struct ProfileFilter {
    pub segment: Option<String>,
    pub phase: Option<String>,
    pub min_clv: Option<f64>,
    /// Only customers whose id sorts after this one (the cursor).
    pub after: Option<String>,
    pub limit: usize,
    /// The order of the list (by a value: customers without one left out).
    pub order: ProfileOrder,
    /// With a value order: the cursor's value (with `after`, its id).
    pub after_value: Option<f64>,
}

/// How a list of profiles is ordered; ties by customer id (in the same
/// direction). Each has an
/// index within a segment, so a page of a large segment reads only itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProfileOrder {
    #[default]
    CustomerId,
    ClvHighest,
    ClvLowest,
    SpendHighest,
    LastOrderNewest,
    LastOrderOldest,
}

impl ProfileOrder {
    pub const ALL: [ProfileOrder; 6] = [
        ProfileOrder::CustomerId,
        ProfileOrder::ClvHighest,
        ProfileOrder::ClvLowest,
        ProfileOrder::SpendHighest,
        ProfileOrder::LastOrderNewest,
        ProfileOrder::LastOrderOldest,
    ];

    /// The name in a query string.
    pub fn key(self) -> &'static str {
        match self {
            ProfileOrder::CustomerId => "customer",
            ProfileOrder::ClvHighest => "-clv",
            ProfileOrder::ClvLowest => "clv",
            ProfileOrder::SpendHighest => "-spend",
            ProfileOrder::LastOrderNewest => "-last_order",
            ProfileOrder::LastOrderOldest => "last_order",
        }
    }

    pub fn parse(key: &str) -> Option<ProfileOrder> {
        ProfileOrder::ALL.into_iter().find(|o| o.key() == key)
    }

    /// The column and whether it descends (`None`: by id).
    fn column(self) -> Option<(&'static str, bool)> {
        match self {
            ProfileOrder::CustomerId => None,
            ProfileOrder::ClvHighest => Some(("clv", true)),
            ProfileOrder::ClvLowest => Some(("clv", false)),
            ProfileOrder::SpendHighest => Some(("total_spend", true)),
            ProfileOrder::LastOrderNewest => Some(("last_order", true)),
            ProfileOrder::LastOrderOldest => Some(("last_order", false)),
        }
    }

    /// A profile's value in this order (the next page's cursor).
    pub fn value_of(self, p: &ProfileRow) -> Option<f64> {
        match self {
            ProfileOrder::CustomerId => None,
            ProfileOrder::ClvHighest | ProfileOrder::ClvLowest => p.clv,
            ProfileOrder::SpendHighest => Some(p.total_spend),
            ProfileOrder::LastOrderNewest | ProfileOrder::LastOrderOldest => {
                p.last_order.map(f64::from)
            }
        }
    }
}

/// Live totals of one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentTotal {
    pub segment: String,
    pub phase: String,
    pub customers: u64,
    pub revenue: f64,
    pub clv: f64,
}

/// A stored model run.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    pub id: i64,
    pub at_ms: i64,
    pub as_of: i32,
    pub customers: i64,
    /// JSON.
    pub params: String,
    /// JSON: what the store looked like once the run had re-scored
    /// everyone (`None` until then).
    pub figures: Option<String>,
}

/// Customers who moved from one segment to another on a day (`from` is
/// empty for customers new to the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMove {
    pub day: i64,
    pub from: String,
    pub to: String,
    pub customers: u64,
}

/// An error inside a transaction (mapped to [`StoreError`] with the store's name).
#[derive(Debug)]
pub(crate) enum Failure {
    Db(DbError),
    Refused(String),
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Failure {
        Failure::Db(e)
    }
}

impl From<LsmError> for Failure {
    fn from(e: LsmError) -> Failure {
        Failure::Db(DbError::Lsm(e))
    }
}

/// How often a writer syncs the events' tree to disk (until then the log of
/// batches in SQLite covers a machine stop).
const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Applies every logged batch the tree has not had, in order, and syncs it.
pub(crate) fn catch_up(db: &mut Db, t: &EventLsm, p: &mut lsm::Progress) -> Result<(), Failure> {
    loop {
        let batches = db.logged_ops(p.applied, 64)?;
        if batches.is_empty() {
            break;
        }
        for (seq, bytes) in batches {
            let ops = lsm::decode_ops(&bytes).ok_or(LsmError::Damaged {
                path: format!("event_ops {seq}"),
                what: "a logged batch",
            })?;
            t.apply(p, seq, &ops)?;
        }
    }
    t.sync(p)?;
    p.behind = false;
    Ok(())
}

impl<'a> From<&'a NewEvent> for lsm::StoredEventRef<'a> {
    fn from(e: &'a NewEvent) -> lsm::StoredEventRef<'a> {
        lsm::StoredEventRef {
            message_id: &e.message_id,
            kind: &e.kind,
            event: e.event.as_deref(),
            at_ms: e.at_ms,
            received_ms: e.received_ms,
            payload: &e.payload,
        }
    }
}

/// Whether an event says the visitor was around (see [`OWN_EVENTS`]).
pub(crate) fn is_own_event(e: &StoredEvent) -> bool {
    !e.message_id.starts_with("segment-")
        && !e.message_id.starts_with("tripwire-")
        && !matches!(
            e.event.as_deref(),
            Some("Order Completed" | "Order Refunded")
        )
}

const PROFILE_COLUMNS: &str = "customer_id, run_id, n_orders, total_spend, first_order, last_order, r, f, m, \
     segment, phase, p_alive, expected_purchases, clv, clv_at_run, declining, next_order_day, due_day, updated_ms, tripwires";

/// The columns a re-score writes: the profile's, then the store's kept
/// order summary.
fn stored_columns() -> impl Iterator<Item = &'static str> {
    PROFILE_COLUMNS
        .split(',')
        .map(str::trim)
        .chain(["order_summary"])
}

/// Inserts a profile (every column of [`stored_columns`]), or replaces
/// the one stored.
static PROFILE_UPSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let columns: Vec<&str> = stored_columns().collect();
    let params: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let sets: Vec<String> = columns[1..]
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO profiles ({}) VALUES ({}) ON CONFLICT (customer_id) DO UPDATE SET {}",
        columns.join(", "),
        params.join(", "),
        sets.join(", ")
    )
});

/// A profile's values in [`PROFILE_COLUMNS`] order.
fn profile_vals(row: &ProfileRow) -> Vec<Val> {
    vals![
        &row.customer_id,
        row.run_id,
        row.n_orders,
        row.total_spend,
        row.first_order,
        row.last_order,
        row.r,
        row.f,
        row.m,
        &row.segment,
        &row.phase,
        row.p_alive,
        row.expected_purchases,
        row.clv,
        row.clv_at_run,
        row.declining,
        row.next_order_day,
        row.due_day,
        row.updated_ms,
        tripwires_json(&row.tripwires)
    ]
    .to_vec()
}

fn profile_of(r: &Row) -> ProfileRow {
    ProfileRow {
        customer_id: r.text(0),
        run_id: r.opt_i64(1),
        n_orders: r.i64(2),
        total_spend: r.f64(3),
        first_order: r.opt_i32(4),
        last_order: r.opt_i32(5),
        r: r.opt_i64(6),
        f: r.opt_i64(7),
        m: r.opt_i64(8),
        segment: r.text(9),
        phase: r.text(10),
        p_alive: r.opt_f64(11),
        expected_purchases: r.opt_f64(12),
        clv: r.opt_f64(13),
        clv_at_run: r.opt_f64(14),
        declining: r.bool(15),
        next_order_day: r.opt_i32(16),
        due_day: r.opt_i32(17),
        updated_ms: r.i64(18),
        tripwires: tripwires_of(r.opt_text(19)),
    }
}

fn event_of(r: &Row) -> StoredEvent {
    StoredEvent {
        customer_id: r.text(0),
        message_id: r.text(1),
        kind: r.text(2),
        event: r.opt_text(3),
        at_ms: r.i64(4),
        received_ms: r.i64(5),
        payload: r.text(6),
    }
}

/// `Subscribed` / `Unsubscribed` events (property `channel`, email when
/// absent) as the consent trait they set: `consent_email = false`.
fn consent_traits(e: &NewEvent) -> Option<Map<String, Value>> {
    let granted = match e.event.as_deref()? {
        "Subscribed" => true,
        "Unsubscribed" => false,
        _ => return None,
    };
    let channel = serde_json::from_str::<Value>(&e.payload)
        .ok()
        .and_then(|v| {
            v.get("properties")?
                .get("channel")?
                .as_str()
                .map(str::to_lowercase)
        })
        .unwrap_or_else(|| "email".into());
    let mut m = Map::new();
    m.insert(format!("consent_{channel}"), Value::Bool(granted));
    Some(m)
}

/// Stored traits and whether an email address is among them.
type Traits = (Map<String, Value>, bool);

/// The work of one transaction.
pub(crate) struct Tx<'t> {
    pub(crate) db: &'t mut Db,
    watched: &'t [String],
    first_seen_wanted: bool,
    pub(crate) now_ms: i64,
    /// `Tripwire Warning` / `Tripped` events newly recorded.
    tripwires_fired: u64,
    /// Customers whose facts changed: re-scored before the commit.
    pub(crate) touched: BTreeSet<String>,
    pub(crate) journeys: Arc<Journeys>,
    /// Events recorded by this transaction, for the journeys.
    pub(crate) fresh: Vec<Fresh>,
    /// Enrolments made, sends queued, walks saved.
    pub(crate) enrolled: u64,
    pub(crate) queued: u64,
    pub(crate) steps_run: u64,
    /// Segment events emitted (all rounds).
    pub(crate) segment_events: u64,
    /// Orders this transaction added after every stored order of their
    /// customer (and not after now): the re-score adds them to the kept
    /// summary.
    appended: HashMap<String, Vec<OrderEntry>>,
    /// Customers whose orders changed otherwise (an amount corrected, a
    /// late or future order, a merge): re-scored from the whole history.
    orders_rewritten: BTreeSet<String>,
    /// The events' tree (SQLite), and this transaction's changes to it.
    pub(crate) lsm: Option<&'t EventLsm>,
    pub(crate) ops: Ops,
}

impl Tx<'_> {
    fn lookup(&mut self, id: &str) -> Result<Option<String>, Failure> {
        Ok(self
            .db
            .query_one(
                "SELECT customer_id FROM identities WHERE id = ?1",
                vals![id],
            )?
            .map(|r| r.text(0)))
    }

    /// Links `id` to `customer` unless it is linked already (by another
    /// instance meanwhile, say); returns the customer it belongs to.
    fn link(&mut self, id: &str, customer: &str) -> Result<String, Failure> {
        self.db.exec(
            "INSERT INTO identities (id, customer_id) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
            vals![id, customer],
        )?;
        Ok(self.lookup(id)?.unwrap_or_else(|| customer.to_string()))
    }

    /// A customer known by a userId (not only an anonymous visitor).
    fn is_known(&mut self, customer: &str) -> Result<bool, Failure> {
        Ok(self
            .db
            .query_one(
                "SELECT 1 FROM identities WHERE customer_id = ?1 AND id LIKE 'user:%' LIMIT 1",
                vals![customer],
            )?
            .is_some())
    }

    fn customer_exists(&mut self, customer: &str) -> Result<bool, Failure> {
        Ok(self
            .db
            .query_one(
                "SELECT 1 FROM customers WHERE customer_id = ?1",
                vals![customer],
            )?
            .is_some())
    }

    fn ensure_customer(&mut self, customer: &str) -> Result<(), Failure> {
        if self.customer_exists(customer)? {
            return Ok(());
        }
        let n = self.db.exec(
            "INSERT INTO customers (customer_id, position)
             SELECT ?1, COALESCE(MAX(position), -1) + 1 FROM customers WHERE true
             ON CONFLICT (customer_id) DO NOTHING",
            vals![customer],
        )?;
        if n > 0 {
            self.touched.insert(customer.to_string());
        }
        Ok(())
    }

    /// The customer a userId belongs to (creating the link on first sight).
    fn user(&mut self, user_id: &str) -> Result<String, Failure> {
        let key = format!("user:{user_id}");
        if let Some(c) = self.lookup(&key)? {
            return Ok(c);
        }
        self.link(&key, user_id)
    }

    /// Attaches anonymous id `anon` to `target`: links it on first sight,
    /// merges the anonymous visitor it stood for, and refuses when it
    /// already belongs to another known customer (a shared device must not
    /// fuse two people).
    fn attach_anonymous(
        &mut self,
        anon: &str,
        target: &str,
        how: &str,
        stats: &mut EventStats,
    ) -> Result<(), Failure> {
        let key = format!("anon:{anon}");
        let owner = match self.lookup(&key)? {
            Some(c) => c,
            None => self.link(&key, target)?,
        };
        match owner {
            c if c == target => Ok(()),
            c if !self.is_known(&c)? => {
                self.merge(&c, target, how)?;
                stats.merged += 1;
                Ok(())
            }
            c => {
                self.record_merge(
                    target,
                    &c,
                    &format!("refused ({how}): {key} belongs to another known customer"),
                )?;
                stats.refused += 1;
                Ok(())
            }
        }
    }

    fn record_merge(&mut self, customer: &str, merged: &str, how: &str) -> Result<(), Failure> {
        let now = self.now_ms;
        self.db.exec(
            "INSERT INTO merges (customer_id, merged_id, at_ms, how) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
            vals![customer, merged, now, how],
        )?;
        Ok(())
    }

    /// Moves everything of `source` to `target` and records the merge.
    fn merge(&mut self, source: &str, target: &str, how: &str) -> Result<(), Failure> {
        if source == target {
            return Ok(());
        }
        self.ensure_customer(target)?;
        if !self.lock_customer(source)? || !self.lock_customer(target)? {
            return Ok(());
        }
        // An order both have (the same order id, on any day) is kept once:
        // the remaining customer's copy.
        let moves = [
            "INSERT INTO events (customer_id, message_id, kind, event, at_ms, received_ms, payload)
             SELECT ?2, message_id, kind, event, at_ms, received_ms, payload FROM events WHERE customer_id = ?1
             ON CONFLICT DO NOTHING",
            "INSERT INTO orders (customer_id, day, order_key, amount, rows, is_order)
             SELECT ?2, o.day, o.order_key, o.amount, o.rows, o.is_order FROM orders o
             WHERE o.customer_id = ?1 AND NOT EXISTS (
               SELECT 1 FROM orders t WHERE t.customer_id = ?2 AND t.order_key = o.order_key
                 AND t.is_order = o.is_order)
             ON CONFLICT DO NOTHING",
            "UPDATE identities SET customer_id = ?2 WHERE customer_id = ?1",
        ];
        if let Some(t) = self.lsm {
            for e in self.lsm_events(t, source)? {
                if !self.lsm_has(t, &lsm::id_key(target, &e.message_id))? {
                    lsm::put_event(&mut self.ops, target, &(&e).into());
                }
                lsm::delete_event(&mut self.ops, source, e.at_ms, &e.message_id);
            }
        }
        for q in moves {
            self.db.exec(q, vals![source, target])?;
        }
        self.orders_rewritten.insert(target.to_string());
        for q in [
            "DELETE FROM events WHERE customer_id = ?1",
            "DELETE FROM orders WHERE customer_id = ?1",
            "DELETE FROM profiles WHERE customer_id = ?1",
            "DELETE FROM customers WHERE customer_id = ?1",
        ] {
            self.db.exec(q, vals![source])?;
        }
        // Traits: the remaining customer's values win.
        if let Some((from, email)) = self.traits_of(source)? {
            let (mut into, has) = self.traits_of(target)?.unwrap_or_default();
            for (k, v) in from {
                into.entry(k).or_insert(v);
            }
            self.save_traits(target, &into, has || email)?;
            self.db
                .exec("DELETE FROM traits WHERE customer_id = ?1", vals![source])?;
        }
        self.merge_journeys(source, target)?;
        self.record_merge(target, source, how)?;
        self.touched.remove(source);
        self.touched.insert(target.to_string());
        Ok(())
    }

    /// A customer's traits and whether they left an email address.
    pub(crate) fn traits_of(&mut self, customer: &str) -> Result<Option<Traits>, Failure> {
        let row = self.db.query_one(
            "SELECT traits, has_email FROM traits WHERE customer_id = ?1",
            vals![customer],
        )?;
        Ok(row.map(|r| {
            let map = match serde_json::from_str(&r.text(0)) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            (map, r.bool(1))
        }))
    }

    fn save_traits(
        &mut self,
        customer: &str,
        traits: &Map<String, Value>,
        has_email: bool,
    ) -> Result<(), Failure> {
        let text = Value::Object(traits.clone()).to_string();
        self.db.exec(
            "INSERT INTO traits (customer_id, traits, has_email) VALUES (?1, ?2, ?3)
             ON CONFLICT (customer_id) DO UPDATE SET traits = excluded.traits, has_email = excluded.has_email",
            vals![customer, text, has_email],
        )?;
        Ok(())
    }

    /// Resolves a message's ids to its customer, linking and merging as
    /// identify and alias call for.
    fn resolve(&mut self, e: &NewEvent, stats: &mut EventStats) -> Result<String, Failure> {
        let target = match (&e.user_id, &e.anonymous_id) {
            (Some(u), anon) => {
                let target = self.user(u)?;
                if let Some(a) = anon {
                    self.attach_anonymous(a, &target, &e.kind, stats)?;
                }
                target
            }
            (None, Some(a)) => {
                let key = format!("anon:{a}");
                match self.lookup(&key)? {
                    Some(c) => c,
                    None => self.link(&key, &key)?,
                }
            }
            (None, None) => {
                return Err(Failure::Refused(
                    "a message needs a userId or an anonymousId".into(),
                ));
            }
        };
        self.ensure_customer(&target)?;
        if e.kind == "alias"
            && let Some(p) = &e.previous_id
        {
            match self.lookup(&format!("user:{p}"))? {
                Some(c) if c != target => {
                    self.record_merge(
                        &target,
                        &c,
                        "refused (alias): previousId is another known customer; use an admin merge",
                    )?;
                    stats.refused += 1;
                }
                Some(_) => {}
                None => self.attach_anonymous(p, &target, "alias", stats)?,
            }
        }
        Ok(target)
    }

    /// On PostgreSQL, locks the customer's row until the commit: every
    /// writer of a customer's events, orders, traits and profile takes it
    /// first, so two instances never interleave their reads and writes of
    /// one customer. `false` when the row is gone (merged away meanwhile).
    fn lock_customer(&mut self, customer: &str) -> Result<bool, Failure> {
        if !self.db.is_postgres() {
            return Ok(true);
        }
        Ok(self
            .db
            .query_one(
                "SELECT 1 FROM customers WHERE customer_id = ?1 FOR UPDATE",
                vals![customer],
            )?
            .is_some())
    }

    /// [`Tx::resolve`], then the customer's row lock; resolves again if a
    /// concurrent merge removed the customer in between.
    fn resolve_locked(&mut self, e: &NewEvent, stats: &mut EventStats) -> Result<String, Failure> {
        for _ in 0..5 {
            let customer = self.resolve(e, stats)?;
            if self.lock_customer(&customer)? {
                return Ok(customer);
            }
        }
        Err(Failure::Refused(format!(
            "message {}: its customer kept being merged away; retry",
            e.message_id
        )))
    }

    pub(crate) fn insert_event(&mut self, customer: &str, e: &NewEvent) -> Result<bool, Failure> {
        if let Some(t) = self.lsm {
            if self.lsm_has(t, &lsm::id_key(customer, &e.message_id))? {
                return Ok(false);
            }
            lsm::put_event(&mut self.ops, customer, &e.into());
            if !self.journeys.is_empty()
                && let Some(name) = &e.event
            {
                self.fresh
                    .push(Fresh::new(customer, name, e.at_ms, &e.payload));
            }
            return Ok(true);
        }
        let n = self.db.exec(
            "INSERT INTO events (customer_id, message_id, kind, event, at_ms, received_ms, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            vals![
                customer,
                &e.message_id,
                &e.kind,
                e.event.as_ref(),
                e.at_ms,
                e.received_ms,
                &e.payload
            ],
        )?;
        if n > 0
            && !self.journeys.is_empty()
            && let Some(name) = &e.event
        {
            self.fresh
                .push(Fresh::new(customer, name, e.at_ms, &e.payload));
        }
        Ok(n > 0)
    }

    /// Whether the tree, as this transaction sees it, holds the key.
    fn lsm_has(&self, t: &EventLsm, k: &[u8]) -> Result<bool, Failure> {
        Ok(match self.ops.get(k) {
            Some(v) => v.is_some(),
            None => t.get(k)?.is_some(),
        })
    }

    /// A customer's events in the tree as this transaction sees them, by
    /// time, then message id.
    pub(crate) fn lsm_events(
        &self,
        t: &EventLsm,
        customer: &str,
    ) -> Result<Vec<StoredEvent>, Failure> {
        let prefix = lsm::customer_prefix(lsm::EVENTS, customer);
        let mut found: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
            t.scan(&prefix)?.into_iter().collect();
        for (k, v) in self.ops.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            match v {
                Some(v) => found.insert(k.clone(), v.clone()),
                None => found.remove(k),
            };
        }
        let mut out = Vec::with_capacity(found.len());
        for (k, v) in &found {
            out.push(t.decode(k, v)?);
        }
        Ok(out)
    }

    /// Deletes a customer's events from the tree (this transaction).
    pub(crate) fn lsm_delete(&mut self, t: &EventLsm, customer: &str) -> Result<u64, Failure> {
        let events = self.lsm_events(t, customer)?;
        for e in &events {
            lsm::delete_event(&mut self.ops, customer, e.at_ms, &e.message_id);
        }
        Ok(events.len() as u64)
    }

    fn apply_order(
        &mut self,
        customer: &str,
        o: &EventOrder,
        at_ms: i64,
        stats: &mut EventStats,
    ) -> Result<(), Failure> {
        let (key, amount) = if o.refund {
            (o.order_key ^ REFUND_KEY_SALT, -o.amount.abs())
        } else {
            (o.order_key, o.amount)
        };
        let found = self
            .db
            .query_one(
                "SELECT day, amount FROM orders WHERE customer_id = ?1 AND order_key = ?2 AND is_order = ?3
                 ORDER BY day LIMIT 1",
                vals![customer, key as i64, !o.refund],
            )?
            .map(|r| (r.i32(0), r.f64(1)));
        match found {
            Some((_, old)) if old == amount => return Ok(()),
            Some((day, _)) => {
                self.db.exec(
                    "UPDATE orders SET amount = ?4 WHERE customer_id = ?1 AND day = ?2 AND order_key = ?3",
                    vals![customer, day, key as i64, amount],
                )?;
                stats.orders_updated += 1;
                self.orders_rewritten.insert(customer.to_string());
            }
            None => {
                let n = self.db.exec(
                    "INSERT INTO orders (customer_id, day, order_key, amount, rows, is_order)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5) ON CONFLICT DO NOTHING",
                    vals![customer, o.day, key as i64, amount, !o.refund],
                )?;
                stats.orders_new += 1;
                if n > 0 && at_ms <= self.now_ms {
                    // Whether it comes after every stored order is for
                    // the re-score to judge (it knows the summary's days).
                    self.appended
                        .entry(customer.to_string())
                        .or_default()
                        .push(OrderEntry {
                            day: o.day,
                            key,
                            amount,
                            rows: 1,
                            is_order: !o.refund,
                        });
                } else {
                    self.orders_rewritten.insert(customer.to_string());
                }
            }
        }
        self.touched.insert(customer.to_string());
        Ok(())
    }

    pub(crate) fn apply_traits(
        &mut self,
        customer: &str,
        traits: &Map<String, Value>,
    ) -> Result<(), Failure> {
        let (mut current, had_email) = self.traits_of(customer)?.unwrap_or_default();
        let before = current.clone();
        for (k, v) in traits {
            current.insert(k.clone(), v.clone());
        }
        let email = current
            .get("email")
            .and_then(Value::as_str)
            .map(|e| e.trim().to_lowercase())
            .filter(|e| e.contains('@'));
        if let Some(email) = &email {
            // The first customer to claim an address keeps it for look-ups.
            self.db.exec(
                "INSERT INTO identities (id, customer_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                vals![format!("email:{email}"), customer],
            )?;
        }
        let has_email = had_email || email.is_some();
        if current != before && !self.journeys.is_empty() {
            let today = self.now_ms.div_euclid(86_400_000);
            self.date_trait_timers(customer, &current, Some(&before), today)?;
        }
        if current != before || has_email != had_email {
            self.save_traits(customer, &current, has_email)?;
            // Traits feed the profile (email: the visitor segments; dates:
            // date-started tripwires).
            self.touched.insert(customer.to_string());
        }
        Ok(())
    }

    fn entries(&mut self, customer: &str) -> Result<Vec<OrderEntry>, Failure> {
        // Streamed into the entries (no row copies): every re-score reads
        // the customer's whole order history.
        let mut out = Vec::new();
        self.db.query_each(
            "SELECT day, order_key, amount, rows, is_order FROM orders
             WHERE customer_id = ?1 ORDER BY day, order_key",
            vals![customer],
            &mut |r| {
                out.push(OrderEntry {
                    day: r.i32(0),
                    key: r.i64(1) as u64,
                    amount: r.f64(2),
                    rows: r.i64(3).max(0) as u64,
                    is_order: r.bool(4),
                })
            },
        )?;
        Ok(out)
    }

    fn watched_events(&mut self, customer: &str) -> Result<Vec<WatchedEvent>, Failure> {
        if self.watched.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(t) = self.lsm {
            let events: Vec<StoredEvent> = self
                .lsm_events(t, customer)?
                .into_iter()
                .filter(|e| e.event.as_ref().is_some_and(|n| self.watched.contains(n)))
                .collect();
            return Ok(events
                .into_iter()
                .map(|e| WatchedEvent {
                    event: e.event.unwrap_or_default(),
                    at_ms: e.at_ms,
                    payload: e.payload,
                })
                .collect());
        }
        let names: Vec<String> = (0..self.watched.len())
            .map(|i| format!("?{}", i + 2))
            .collect();
        let sql = format!(
            "SELECT event, at_ms, payload FROM events WHERE customer_id = ?1 AND event IN ({})
             ORDER BY at_ms, message_id",
            names.join(", ")
        );
        let mut params = vec![Val::from(customer)];
        params.extend(self.watched.iter().map(Val::from));
        Ok(self
            .db
            .query(&sql, &params)?
            .iter()
            .map(|r| WatchedEvent {
                event: r.text(0),
                at_ms: r.i64(1),
                payload: r.text(2),
            })
            .collect())
    }

    /// The profile and the order summary kept with it (`None` when not
    /// kept: a profile from before migration 13, or orders imported since).
    fn profile_and_summary(
        &mut self,
        customer: &str,
    ) -> Result<(Option<ProfileRow>, Option<String>), Failure> {
        let n = PROFILE_COLUMNS.split(',').count();
        Ok(self
            .db
            .query_one(
                &format!(
                    "SELECT {PROFILE_COLUMNS}, order_summary FROM profiles WHERE customer_id = ?1"
                ),
                vals![customer],
            )?
            .map_or((None, None), |r| (Some(profile_of(&r)), r.opt_text(n))))
    }

    pub(crate) fn profile(&mut self, customer: &str) -> Result<Option<ProfileRow>, Failure> {
        Ok(self.profile_and_summary(customer)?.0)
    }

    /// Re-scores `customer`, saves the profile and records a segment
    /// change as `Segment Exited` / `Segment Entered` events (their
    /// messageIds name the segment and the day, so a change is recorded
    /// once however often it is re-computed). On PostgreSQL the
    /// customer's row is locked first, so that two instances re-scoring
    /// the same customer see each other's orders (the second waits, then
    /// reads everything committed).
    fn rescore(&mut self, customer: &str, scorer: Scorer<'_>) -> Result<u64, Failure> {
        if !self.customer_exists(customer)? || !self.lock_customer(customer)? {
            return Ok(0);
        }
        let traits = self.traits_of(customer)?;
        let has_email = traits.as_ref().is_some_and(|(_, e)| *e);
        let (previous, kept_before) = self.profile_and_summary(customer)?;
        // New orders after every stored one are added to the kept summary;
        // otherwise the whole history is read and summarised again.
        let appended = self.appended.remove(customer);
        let rewritten = self.orders_rewritten.remove(customer);
        let incremental = match (
            appended,
            kept_before.as_deref().and_then(KeptSummary::parse),
        ) {
            (Some(mut new), Some(mut kept)) if !rewritten => {
                new.sort_by_key(|e| e.day);
                let in_order = new
                    .first()
                    .is_some_and(|e| kept.max_day.is_none_or(|m| e.day >= m));
                in_order.then(|| {
                    for e in &new {
                        kept.push(e);
                    }
                    kept
                })
            }
            _ => None,
        };
        let from_summary = incremental.is_some();
        let (entries, kept) = match incremental {
            Some(kept) => (Vec::new(), kept),
            None => {
                let entries = self.entries(customer)?;
                let kept = KeptSummary::of(&entries);
                (entries, kept)
            }
        };
        let events = self.watched_events(customer)?;
        let first_seen_ms = if self.first_seen_wanted
            && let Some(t) = self.lsm
        {
            self.lsm_events(t, customer)?
                .iter()
                .filter(|e| is_own_event(e))
                .map(|e| e.at_ms)
                .min()
        } else if self.first_seen_wanted {
            self.db
                .query_one(
                    &format!(
                        "SELECT MIN(at_ms) FROM events WHERE customer_id = ?1 AND {OWN_EVENTS}"
                    ),
                    vals![customer],
                )?
                .and_then(|r| r.opt_i64(0))
        } else {
            None
        };
        let mut row = scorer(&CustomerFacts {
            customer_id: customer,
            entries: &entries,
            summary: from_summary.then_some(&kept.summary),
            has_email,
            previous: previous.as_ref(),
            traits: traits.as_ref().map(|(m, _)| m),
            events: &events,
            first_seen_ms,
        });
        row.customer_id = customer.to_string();
        row.updated_ms = self.now_ms;
        let mut values = profile_vals(&row);
        values.push(Val::from(kept.encode()));
        match previous.as_ref().map(|p| {
            let mut v = profile_vals(p);
            v.push(kept_before.map_or(Val::Null, Val::from));
            v
        }) {
            // Only the columns that changed: an index none of whose
            // columns changed is left alone (the dashboard's indexes on
            // segment, CLV, spend and last order would otherwise each be
            // rewritten for every re-score).
            Some(before) => {
                let mut sets = Vec::new();
                let mut params = vec![values[0].clone()];
                for ((name, new), old) in stored_columns().zip(&values).zip(&before).skip(1) {
                    if new != old {
                        params.push(new.clone());
                        sets.push(format!("{name} = ?{}", params.len()));
                    }
                }
                if !sets.is_empty() {
                    self.db.exec(
                        &format!(
                            "UPDATE profiles SET {} WHERE customer_id = ?1",
                            sets.join(", ")
                        ),
                        &params,
                    )?;
                }
            }
            None => {
                self.db.exec(&PROFILE_UPSERT, &values)?;
            }
        }
        // Each open tripwire is published once per episode: its messageId
        // names the tripwire, the status and the day the episode started.
        for t in &row.tripwires {
            let name = if t.status == "warning" {
                "Tripwire Warning"
            } else {
                "Tripwire Tripped"
            };
            let e = NewEvent {
                message_id: format!("tripwire-{}:{}:{}", t.status, t.name, t.started),
                kind: "track".into(),
                event: Some(name.into()),
                at_ms: self.now_ms,
                received_ms: self.now_ms,
                payload: serde_json::json!({"properties": {
                    "tripwire": t.name, "status": t.status, "since_day": t.since,
                    "days_overdue": t.days_overdue, "probability": t.probability,
                    "clv": row.clv,
                }})
                .to_string(),
                ..NewEvent::default()
            };
            if self.insert_event(customer, &e)? {
                self.tripwires_fired += 1;
            }
        }
        // A value newly flagged as declining is published once a day at most.
        if row.declining && previous.as_ref().is_some_and(|p| !p.declining) {
            let day = self.now_ms.div_euclid(86_400_000);
            let e = NewEvent {
                message_id: format!("value-decline:{day}"),
                kind: "track".into(),
                event: Some(VALUE_DECLINE_EVENT.into()),
                at_ms: self.now_ms,
                received_ms: self.now_ms,
                payload: serde_json::json!({"properties": {
                    "clv": row.clv, "clv_at_run": row.clv_at_run,
                }})
                .to_string(),
                ..NewEvent::default()
            };
            self.insert_event(customer, &e)?;
        }
        let old = previous.as_ref().map(|p| p.segment.as_str());
        if old == Some(row.segment.as_str()) {
            return Ok(0);
        }
        let day = self.now_ms.div_euclid(86_400_000);
        self.db.exec(
            "INSERT INTO segment_moves (day, from_segment, to_segment, customers) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT (day, from_segment, to_segment) DO UPDATE SET customers = segment_moves.customers + 1",
            vals![day, old.unwrap_or(""), &row.segment],
        )?;
        let mut emitted = 0;
        let mut emit =
            |tx: &mut Self, name: &str, segment: &str, phase: &str, other: Option<&str>| {
                let id = format!("{}:{segment}:{day}", name.to_lowercase().replace(' ', "-"));
                let payload = serde_json::json!({
                    "properties": {
                        "segment": segment, "phase": phase,
                        if name == "Segment Entered" { "from" } else { "to" }: other,
                    }
                })
                .to_string();
                let e = NewEvent {
                    message_id: id,
                    kind: "track".into(),
                    event: Some(name.into()),
                    at_ms: tx.now_ms,
                    received_ms: tx.now_ms,
                    payload,
                    ..NewEvent::default()
                };
                tx.insert_event(customer, &e).map(|new| {
                    emitted += u64::from(new);
                })
            };
        if let Some(p) = &previous {
            emit(
                self,
                "Segment Exited",
                &p.segment,
                &p.phase,
                Some(&row.segment),
            )?;
        }
        emit(self, "Segment Entered", &row.segment, &row.phase, old)?;
        Ok(emitted)
    }

    /// Re-scores every touched customer, then runs the events recorded so
    /// far through the journeys; returns the segment events emitted.
    fn rescore_touched(&mut self, scorer: Scorer<'_>) -> Result<u64, Failure> {
        let emitted = self.rescore_touched_inner(scorer)?;
        let before = self.segment_events;
        self.run_journeys(scorer)?;
        Ok(emitted + self.segment_events - before)
    }

    pub(crate) fn rescore_touched_inner(&mut self, scorer: Scorer<'_>) -> Result<u64, Failure> {
        let touched = std::mem::take(&mut self.touched);
        let mut emitted = 0;
        for c in &touched {
            emitted += self.rescore(c, scorer)?;
        }
        self.segment_events += emitted;
        Ok(emitted)
    }
}

impl Store {
    /// Runs `work` in one transaction, committed (durably) when it
    /// succeeds; rolled back on error. A PostgreSQL deadlock or
    /// serialization failure (two instances locking the same customers)
    /// rolls back and runs `work` again, up to five times.
    pub(crate) fn transact<T>(
        &mut self,
        now_ms: i64,
        mut work: impl FnMut(&mut Tx<'_>) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        let label = self.label.clone();
        let to_err = |f: Failure| match f {
            Failure::Db(source) => StoreError::Db {
                store: label.clone(),
                source,
            },
            Failure::Refused(message) => StoreError::Refused(message),
        };
        let mut attempt = 0;
        // Writers of this process that may change events go one at a time
        // from here until their changes are in the tree (see `lsm.rs`).
        let tree = self.tree()?;
        let mut progress = tree.as_ref().map(|t| t.writing());
        loop {
            attempt += 1;
            let result = (|| -> Result<T, Failure> {
                if let (Some(t), Some(p)) = (tree.as_deref(), progress.as_deref_mut())
                    && p.behind
                {
                    catch_up(&mut self.db, t, p)?;
                }
                self.db.begin()?;
                let mut tx = Tx {
                    db: &mut self.db,
                    watched: &self.watched,
                    first_seen_wanted: self.first_seen_wanted,
                    now_ms,
                    tripwires_fired: 0,
                    touched: BTreeSet::new(),
                    journeys: Arc::clone(&self.journeys),
                    fresh: Vec::new(),
                    enrolled: 0,
                    queued: 0,
                    steps_run: 0,
                    segment_events: 0,
                    appended: HashMap::new(),
                    orders_rewritten: BTreeSet::new(),
                    lsm: tree.as_deref(),
                    ops: Ops::new(),
                };
                let started = std::time::Instant::now();
                let out = work(&mut tx)?;
                let ops = std::mem::take(&mut tx.ops);
                let logged = match (tree.as_deref(), progress.as_deref_mut()) {
                    (Some(_), Some(p)) if !ops.is_empty() => {
                        if p.synced > p.trimmed {
                            self.db
                                .exec("DELETE FROM event_ops WHERE seq <= ?1", vals![p.synced])?;
                        }
                        Some(self.db.log_ops(&lsm::encode_ops(&ops))?)
                    }
                    _ => None,
                };
                let worked = started.elapsed();
                self.db.commit()?;
                if let (Some(t), Some(p), Some(seq)) =
                    (tree.as_deref(), progress.as_deref_mut(), logged)
                {
                    p.trimmed = p.synced;
                    if let Err(e) = t.apply(p, seq, &ops) {
                        // Committed and logged: the tree catches up from
                        // the log before the next transaction (or at the
                        // next start).
                        p.behind = true;
                        return Err(e.into());
                    }
                    if p.synced_at.is_none_or(|at| at.elapsed() >= SYNC_EVERY) {
                        t.sync(p)?;
                    }
                }
                self.write_time.work += worked;
                self.write_time.commit += started.elapsed().saturating_sub(worked);
                self.write_time.transactions += 1;
                Ok(out)
            })();
            match result {
                Ok(v) => return Ok(v),
                Err(Failure::Db(e)) if e.is_retryable() && attempt < 5 => {
                    self.db.rollback();
                }
                Err(f) => {
                    self.db.rollback();
                    return Err(to_err(f));
                }
            }
        }
    }

    /// Stores the events of several requests in one durable transaction
    /// (group commit) and returns each request's counts. For every event:
    /// its ids are resolved to a customer (a userId is a known customer;
    /// an anonymousId alone an anonymous visitor, merged into the known
    /// customer by the first identify or alias that names both, unless it
    /// already belongs to another known customer); a messageId already
    /// stored for the customer is a duplicate and changes nothing; traits
    /// of identify are merged; an order is inserted or updated by its key.
    /// Every customer whose facts changed is re-scored by `scorer` before
    /// the commit.
    pub fn ingest(
        &mut self,
        requests: &[Vec<NewEvent>],
        scorer: Scorer<'_>,
        now_ms: i64,
    ) -> Result<Vec<EventStats>, StoreError> {
        self.transact(now_ms, |tx| {
            let mut all = Vec::with_capacity(requests.len());
            tx.tripwires_fired = 0;
            for events in requests {
                let mut stats = EventStats::default();
                for e in events {
                    let customer = tx.resolve_locked(e, &mut stats)?;
                    if !tx.insert_event(&customer, e)? {
                        // A retry of a stored message changes nothing (a
                        // later correction of its order or traits stays).
                        stats.duplicates += 1;
                        continue;
                    }
                    stats.inserted += 1;
                    if e.event.as_ref().is_some_and(|n| tx.watched.contains(n)) {
                        tx.touched.insert(customer.clone());
                    }
                    if let Some(t) = &e.traits {
                        tx.apply_traits(&customer, t)?;
                    }
                    if let Some(t) = consent_traits(e) {
                        tx.apply_traits(&customer, &t)?;
                    }
                    if let Some(o) = &e.order {
                        tx.apply_order(&customer, o, e.at_ms, &mut stats)?;
                    }
                }
                all.push(stats);
            }
            let emitted = tx.rescore_touched(scorer)?;
            if let Some(last) = all.last_mut() {
                last.segment_events += emitted;
                last.tripwire_events += tx.tripwires_fired;
            }
            Ok(all)
        })
    }

    /// Re-scores the given customers in one transaction; returns the
    /// segment and tripwire events emitted.
    pub fn rescore(
        &mut self,
        customers: &[String],
        scorer: Scorer<'_>,
        now_ms: i64,
    ) -> Result<Rescored, StoreError> {
        self.transact(now_ms, |tx| {
            let mut out = Rescored::default();
            tx.tripwires_fired = 0;
            for c in customers {
                out.segment_events += tx.rescore(c, scorer)?;
            }
            let before = tx.segment_events;
            tx.run_journeys(scorer)?;
            out.segment_events += tx.segment_events - before;
            out.tripwire_events = tx.tripwires_fired;
            Ok(out)
        })
    }

    /// Every customer id, in the order they first appeared.
    pub fn customer_ids(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .rows(
                "SELECT customer_id FROM customers ORDER BY position, customer_id",
                &[],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect())
    }

    /// Customers whose recency crosses a score boundary on or before `day`.
    pub fn due(&mut self, day: i32, limit: usize) -> Result<Vec<String>, StoreError> {
        Ok(self
            .rows(
                "SELECT customer_id FROM profiles WHERE due_day IS NOT NULL AND due_day <= ?1
                 ORDER BY due_day, customer_id LIMIT ?2",
                vals![day, limit as i64],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect())
    }

    /// Merges customer `source` into `target` by an administrator's
    /// decision (the only way two known customers are merged), records it
    /// in the audit log and re-scores `target`.
    pub fn merge_customers(
        &mut self,
        target: &str,
        source: &str,
        scorer: Scorer<'_>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if target == source {
            return Err(StoreError::Refused(
                "a customer cannot be merged into themselves".into(),
            ));
        }
        for c in [target, source] {
            if self.profile_or_customer(c)?.is_none() {
                return Err(StoreError::NotFound(c.to_string()));
            }
        }
        let detail = serde_json::json!({"into": target, "merged": source}).to_string();
        self.transact(now_ms, |tx| {
            tx.merge(source, target, "admin")?;
            tx.db.exec(
                "INSERT INTO audit_log (at_ms, action, detail) VALUES (?1, 'merge', ?2)",
                vals![now_ms, &detail],
            )?;
            tx.rescore_touched(scorer)
        })
    }

    fn profile_or_customer(&mut self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .row(
                "SELECT customer_id FROM customers WHERE customer_id = ?1",
                vals![id],
            )?
            .map(|r| r.text(0)))
    }

    /// The customer `id` names: a customer id, a userId or anonymousId
    /// merged into a customer, or an email address.
    pub fn find_customer(&mut self, id: &str) -> Result<Option<String>, StoreError> {
        let email = id.trim().to_lowercase();
        for key in [
            id.to_string(),
            format!("user:{id}"),
            format!("anon:{id}"),
            format!("email:{email}"),
        ] {
            if let Some(r) = self.row(
                "SELECT customer_id FROM identities WHERE id = ?1",
                vals![key],
            )? {
                return Ok(Some(r.text(0)));
            }
        }
        self.profile_or_customer(id)
    }

    /// The customer view's stored part: profile, ids, merges, traits and
    /// the latest `events` events.
    pub fn customer(
        &mut self,
        id: &str,
        events: usize,
    ) -> Result<Option<CustomerRecord>, StoreError> {
        let Some(customer_id) = self.find_customer(id)? else {
            return Ok(None);
        };
        let profile = self
            .row(
                &format!("SELECT {PROFILE_COLUMNS} FROM profiles WHERE customer_id = ?1"),
                vals![&customer_id],
            )?
            .map(|r| profile_of(&r));
        let ids = self
            .rows(
                "SELECT id FROM identities WHERE customer_id = ?1 ORDER BY id",
                vals![&customer_id],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect();
        let merges = self
            .rows(
                "SELECT customer_id, merged_id, at_ms, how FROM merges
                 WHERE customer_id = ?1 OR merged_id = ?1 ORDER BY at_ms",
                vals![&customer_id],
            )?
            .iter()
            .map(|r| Merge {
                customer_id: r.text(0),
                merged_id: r.text(1),
                at_ms: r.i64(2),
                how: r.text(3),
            })
            .collect();
        let traits = self
            .row(
                "SELECT traits FROM traits WHERE customer_id = ?1",
                vals![&customer_id],
            )?
            .map(|r| r.text(0));
        let traits = match traits.as_deref().map(serde_json::from_str) {
            Some(Ok(Value::Object(m))) => m,
            _ => Map::new(),
        };
        let orders = self
            .rows(
                "SELECT day, amount, is_order FROM orders WHERE customer_id = ?1
                 ORDER BY day DESC, order_key LIMIT ?2",
                vals![&customer_id, events as i64],
            )?
            .iter()
            .map(|r| StoredOrder {
                day: r.i32(0),
                amount: r.f64(1),
                is_order: r.bool(2),
            })
            .collect();
        let events = self.recent_events(&customer_id, events)?;
        Ok(Some(CustomerRecord {
            customer_id,
            profile,
            ids,
            merges,
            traits,
            events,
            orders,
        }))
    }

    /// A customer's latest events, newest first.
    pub fn recent_events(
        &mut self,
        customer_id: &str,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if let Some(t) = self.tree()? {
            // The end of the customer's range: their latest events.
            let mut out = t
                .latest_events(customer_id, limit)
                .map_err(|e| self.err(e))?;
            out.sort_by(|a, b| {
                b.at_ms
                    .cmp(&a.at_ms)
                    .then_with(|| a.message_id.cmp(&b.message_id))
            });
            out.truncate(limit);
            return Ok(out);
        }
        Ok(self
            .rows(
                "SELECT customer_id, message_id, kind, event, at_ms, received_ms, payload FROM events
                 WHERE customer_id = ?1 ORDER BY at_ms DESC, message_id LIMIT ?2",
                vals![customer_id, limit as i64],
            )?
            .iter()
            .map(event_of)
            .collect())
    }

    /// Open tripwires by (name, status): customers and the sum of their CLV.
    pub fn tripwire_totals(&mut self) -> Result<Vec<TripwireTotal>, StoreError> {
        let mut out: Vec<TripwireTotal> = Vec::new();
        for r in self.rows(
            "SELECT tripwires, clv FROM profiles WHERE tripwires IS NOT NULL AND tripwires <> '[]'",
            vals![],
        )? {
            let clv = r.opt_f64(1).unwrap_or(0.0);
            for t in tripwires_of(r.opt_text(0)) {
                match out
                    .iter_mut()
                    .find(|x| x.name == t.name && x.status == t.status)
                {
                    Some(x) => {
                        x.customers += 1;
                        x.clv += clv;
                    }
                    None => out.push(TripwireTotal {
                        name: t.name,
                        status: t.status,
                        customers: 1,
                        clv,
                    }),
                }
            }
        }
        out.sort_by(|a, b| (&a.name, &a.status).cmp(&(&b.name, &b.status)));
        Ok(out)
    }

    /// Every customer's merged identify traits (a JSON object each).
    pub fn all_traits(&mut self) -> Result<Vec<CustomerTraits>, StoreError> {
        Ok(self
            .rows(
                "SELECT customer_id, traits FROM traits ORDER BY customer_id",
                vals![],
            )?
            .iter()
            .filter_map(|r| {
                let v: serde_json::Value = serde_json::from_str(&r.text(1)).ok()?;
                Some((r.text(0), v.as_object()?.clone()))
            })
            .collect())
    }

    /// The track events named one of `names` still stored, oldest first:
    /// (customer id, ms since 1970, the payload as stored, with `event` set
    /// to the name).
    pub fn events_named(
        &mut self,
        names: &[&str],
    ) -> Result<Vec<(String, i64, serde_json::Value)>, StoreError> {
        let mut out = Vec::new();
        if let Some(t) = self.tree()? {
            t.each(&mut |e| {
                if e.kind == "track"
                    && let Some(name) = e.event.as_deref().filter(|n| names.contains(n))
                    && let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&e.payload)
                {
                    if let Some(o) = v.as_object_mut() {
                        o.entry("event")
                            .or_insert_with(|| serde_json::Value::from(name));
                    }
                    out.push((e.customer_id, e.at_ms, v));
                }
                Ok(())
            })
            .map_err(|e| self.err(e))?;
        }
        for name in names {
            for r in self.rows(
                "SELECT customer_id, at_ms, payload FROM events WHERE event = ?1 AND kind = 'track'",
                vals![*name],
            )? {
                if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&r.text(2)) {
                    if let Some(o) = v.as_object_mut() {
                        o.entry("event")
                            .or_insert_with(|| serde_json::Value::from(*name));
                    }
                    out.push((r.text(0), r.i64(1), v));
                }
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Profiles matching `filter`, by customer id, at most `filter.limit`.
    pub fn profiles(&mut self, filter: &ProfileFilter) -> Result<Vec<ProfileRow>, StoreError> {
        // Only the conditions given, so that a segment's customers are read
        // through its index (segment, customer_id) in id order instead of
        // the whole table.
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<crate::db::Val> = Vec::new();
        let mut add = |sql: &str, v: crate::db::Val| {
            params.push(v);
            conditions.push(sql.replace('?', &format!("?{}", params.len())));
        };
        if let Some(s) = &filter.segment {
            add("segment = ?", crate::db::Val::from(s));
        }
        if let Some(p) = &filter.phase {
            add("phase = ?", crate::db::Val::from(p));
        }
        if let Some(c) = filter.min_clv {
            add("clv >= ?", crate::db::Val::from(c));
        }
        let by_value = filter.order.column();
        match (by_value, &filter.after, filter.after_value) {
            (None, Some(a), _) => add("customer_id > ?", crate::db::Val::from(a)),
            (Some((col, desc)), Some(a), Some(v)) => {
                // Keyset: past the cursor's (value, id).
                let cmp = if desc { "<" } else { ">" };
                // Days are integers: bound as such (PostgreSQL compares
                // like with like).
                params.push(if col == "last_order" {
                    crate::db::Val::from(v as i64)
                } else {
                    crate::db::Val::from(v)
                });
                let vi = params.len();
                params.push(crate::db::Val::from(a));
                let ai = params.len();
                conditions.push(format!(
                    "({col} {cmp} ?{vi} OR ({col} = ?{vi} AND customer_id {cmp} ?{ai}))"
                ));
            }
            _ => {}
        }
        if let Some((col, _)) = by_value {
            conditions.push(format!("{col} IS NOT NULL"));
        }
        // A CLV floor within a segment: SQLite walks either the segment in id
        // order (quick when many pass the floor) or the ones above the floor
        // by CLV, then sorts them (quick when few do). It cannot tell which
        // without statistics, so the index is chosen by counting first.
        // (PostgreSQL's planner has its statistics.)
        let mut hint = "";
        if let (Some(segment), Some(floor), false, None) = (
            &filter.segment,
            filter.min_clv,
            self.db.is_postgres(),
            by_value,
        ) {
            let above = self
                .row(
                    "SELECT COUNT(*) FROM profiles INDEXED BY profiles_by_segment_clv
                     WHERE segment = ?1 AND clv >= ?2",
                    vals![segment, floor],
                )?
                .map_or(0, |r| r.i64(0));
            hint = if above <= 5_000 {
                "INDEXED BY profiles_by_segment_clv"
            } else {
                "INDEXED BY profiles_by_segment"
            };
        }
        params.push(crate::db::Val::from(
            filter.limit.min(i64::MAX as usize) as i64
        ));
        let order = match by_value {
            None => "customer_id".to_string(),
            // Ties in the same direction, so the (segment, value, id)
            // index is walked one way, without a sort.
            Some((col, true)) => format!("{col} DESC, customer_id DESC"),
            Some((col, false)) => format!("{col}, customer_id"),
        };
        let sql = format!(
            "SELECT {PROFILE_COLUMNS} FROM profiles {hint} {} ORDER BY {order} LIMIT ?{}",
            if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            },
            params.len()
        );
        Ok(self.rows(&sql, &params)?.iter().map(profile_of).collect())
    }

    /// Customers, revenue and CLV by segment, live.
    pub fn segment_totals(&mut self) -> Result<Vec<SegmentTotal>, StoreError> {
        Ok(self
            .rows(
                "SELECT segment, MIN(phase), COUNT(*), COALESCE(SUM(total_spend), 0), COALESCE(SUM(clv), 0)
                 FROM profiles GROUP BY segment",
                &[],
            )?
            .iter()
            .map(|r| SegmentTotal {
                segment: r.text(0),
                phase: r.text(1),
                customers: r.i64(2).max(0) as u64,
                revenue: r.f64(3),
                clv: r.f64(4),
            })
            .collect())
    }

    /// Every customer's predicted CLV (customers without one left out), in
    /// no particular order.
    pub fn clv_values(&mut self) -> Result<Vec<f64>, StoreError> {
        Ok(self
            .rows("SELECT clv FROM profiles WHERE clv IS NOT NULL", &[])?
            .iter()
            .map(|r| r.f64(0))
            .collect())
    }

    /// Records a model run; returns its id.
    pub fn save_run(
        &mut self,
        at_ms: i64,
        as_of: i32,
        customers: i64,
        params_json: &str,
    ) -> Result<i64, StoreError> {
        Ok(self
            .row(
                "INSERT INTO model_runs (at_ms, as_of, customers, params) VALUES (?1, ?2, ?3, ?4) RETURNING id",
                vals![at_ms, as_of, customers, params_json],
            )?
            .map_or(0, |r| r.i64(0)))
    }

    /// The model runs, newest first.
    pub fn runs(&mut self, limit: usize) -> Result<Vec<StoredRun>, StoreError> {
        Ok(self
            .rows(
                "SELECT id, at_ms, as_of, customers, params, figures FROM model_runs ORDER BY id DESC LIMIT ?1",
                vals![limit as i64],
            )?
            .iter()
            .map(|r| StoredRun {
                id: r.i64(0),
                at_ms: r.i64(1),
                as_of: r.i32(2),
                customers: r.i64(3),
                params: r.text(4),
                figures: r.opt_text(5),
            })
            .collect())
    }

    /// Records what the store looked like once run `id` had re-scored
    /// everyone (JSON).
    pub fn set_run_figures(&mut self, id: i64, figures_json: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE model_runs SET figures = ?1 WHERE id = ?2",
            vals![figures_json, id],
        )?;
        Ok(())
    }

    /// Segment moves from `since_day` (UTC days since 1970) on, by day.
    pub fn segment_moves(&mut self, since_day: i64) -> Result<Vec<SegmentMove>, StoreError> {
        Ok(self
            .rows(
                "SELECT day, from_segment, to_segment, customers FROM segment_moves
                 WHERE day >= ?1 ORDER BY day, from_segment, to_segment",
                vals![since_day],
            )?
            .iter()
            .map(|r| SegmentMove {
                day: r.i64(0),
                from: r.text(1),
                to: r.text(2),
                customers: r.i64(3).max(0) as u64,
            })
            .collect())
    }

    /// Appends to the audit log (key creation, merges, refits, erasures).
    pub fn audit(&mut self, at_ms: i64, action: &str, detail: &str) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO audit_log (at_ms, action, detail) VALUES (?1, ?2, ?3)",
            vals![at_ms, action, detail],
        )?;
        Ok(())
    }

    /// The audit log, newest first: (at_ms, action, detail).
    pub fn audit_log(&mut self, limit: usize) -> Result<Vec<(i64, String, String)>, StoreError> {
        Ok(self
            .rows(
                "SELECT at_ms, action, detail FROM audit_log ORDER BY id DESC LIMIT ?1",
                vals![limit as i64],
            )?
            .iter()
            .map(|r| (r.i64(0), r.text(1), r.text(2)))
            .collect())
    }

    /// Deletes raw events received before `cutoff_ms` (orders, profiles
    /// and every aggregate stay); returns how many.
    pub fn expire_events(&mut self, cutoff_ms: i64) -> Result<u64, StoreError> {
        if let Some(t) = self.tree()? {
            // Read before the transaction: an event received later is not
            // older than the cutoff.
            let keys = t
                .keys_where(&mut |e| e.received_ms < cutoff_ms)
                .map_err(|e| self.err(e))?;
            return self.transact(cutoff_ms, |tx| {
                for k in &keys {
                    tx.ops.insert(k.clone(), None);
                }
                // Two keys per event: its own and its message id's.
                Ok(keys.len() as u64 / 2)
            });
        }
        self.exec(
            "DELETE FROM events WHERE received_ms < ?1",
            vals![cutoff_ms],
        )
    }

    /// Every stored event, by customer (for tests and tools; memory grows
    /// with the store).
    pub fn all_events(&mut self) -> Result<Vec<StoredEvent>, StoreError> {
        // First: opening the tree moves any events still in the table.
        let tree = self.tree()?;
        let mut out: Vec<StoredEvent> = self
            .rows(
                "SELECT customer_id, message_id, kind, event, at_ms, received_ms, payload FROM events
                 ORDER BY customer_id, at_ms, message_id",
                &[],
            )?
            .iter()
            .map(event_of)
            .collect();
        if let Some(t) = tree {
            t.each(&mut |e| {
                out.push(e);
                Ok(())
            })
            .map_err(|e| self.err(e))?;
        }
        Ok(out)
    }

    /// Moves the events a SQLite store kept in its `events` table into the
    /// tree (a store from before the tree), 10,000 at a time, each move
    /// one transaction: an interrupted move goes on at the next open.
    pub(crate) fn move_events_to_tree(&mut self) -> Result<u64, StoreError> {
        let mut moved = 0;
        while self.row("SELECT 1 FROM events LIMIT 1", &[])?.is_some() {
            // No time is read: nothing runs journeys here.
            let n = self.transact(0, |tx| {
                let rows = tx.db.query(
                    "SELECT customer_id, message_id, kind, event, at_ms, received_ms, payload FROM events
                     ORDER BY customer_id, message_id LIMIT 10000",
                    &[],
                )?;
                for r in &rows {
                    let e = event_of(r);
                    lsm::put_event(&mut tx.ops, &e.customer_id, &(&e).into());
                    tx.db.exec(
                        "DELETE FROM events WHERE customer_id = ?1 AND message_id = ?2",
                        vals![&e.customer_id, &e.message_id],
                    )?;
                }
                Ok(rows.len() as u64)
            })?;
            moved += n;
        }
        Ok(moved)
    }

    /// Events stored.
    pub fn event_count(&mut self) -> Result<u64, StoreError> {
        if let Some(t) = self.tree()? {
            return t.count().map_err(|e| self.err(e));
        }
        Ok(self
            .row("SELECT COUNT(*) FROM events", &[])?
            .map_or(0, |r| r.i64(0).max(0) as u64))
    }

    /// When each customer was first seen (their earliest event other than
    /// an order or Lifecycle's own), ms.
    pub fn first_seen(&mut self) -> Result<HashMap<String, i64>, StoreError> {
        if let Some(t) = self.tree()? {
            let mut out: HashMap<String, i64> = HashMap::new();
            t.each(&mut |e| {
                if is_own_event(&e) {
                    let at = out.entry(e.customer_id).or_insert(e.at_ms);
                    *at = (*at).min(e.at_ms);
                }
                Ok(())
            })
            .map_err(|e| self.err(e))?;
            return Ok(out);
        }
        Ok(self
            .rows(
                &format!(
                    "SELECT customer_id, MIN(at_ms) FROM events WHERE {OWN_EVENTS} GROUP BY customer_id"
                ),
                &[],
            )?
            .iter()
            .map(|r| (r.text(0), r.i64(1)))
            .collect())
    }

    /// Every profile's segment: customer → segment.
    pub fn segments_by_customer(&mut self) -> Result<HashMap<String, String>, StoreError> {
        Ok(self
            .rows("SELECT customer_id, segment FROM profiles", &[])?
            .iter()
            .map(|r| (r.text(0), r.text(1)))
            .collect())
    }
}

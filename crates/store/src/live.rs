//! The live part of the store: events with identity resolution, the
//! orders they carry, profiles re-scored in the same transaction, segment
//! changes recorded as events, model runs, merges and the audit log.
//!
//! Scoring itself is not the store's business: callers pass a scorer that
//! turns a customer's facts into a [`ProfileRow`]; the store calls it inside
//! the transaction that changed those facts, so a profile is never behind
//! the events that were acknowledged.

use std::collections::{BTreeSet, HashMap};

use lifecycle_rfm::OrderEntry;
use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::{Map, Value};

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
}

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
}

/// What the scorer sees of a customer.
#[derive(Debug)]
pub struct CustomerFacts<'a> {
    pub customer_id: &'a str,
    /// Consolidated orders and refunds, sorted by day and key.
    pub entries: &'a [OrderEntry],
    pub has_email: bool,
    /// The profile before this change, if any.
    pub previous: Option<&'a ProfileRow>,
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
}

fn sql(e: rusqlite::Error) -> Failure {
    Failure::Sql(e)
}

/// An error inside a transaction (mapped to [`StoreError`] with the path).
#[derive(Debug)]
enum Failure {
    Sql(rusqlite::Error),
    Refused(String),
}

const PROFILE_COLUMNS: &str = "customer_id, run_id, n_orders, total_spend, first_order, last_order, r, f, m, \
     segment, phase, p_alive, expected_purchases, clv, clv_at_run, declining, next_order_day, due_day, updated_ms";

fn profile_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProfileRow> {
    Ok(ProfileRow {
        customer_id: r.get(0)?,
        run_id: r.get(1)?,
        n_orders: r.get(2)?,
        total_spend: r.get(3)?,
        first_order: r.get(4)?,
        last_order: r.get(5)?,
        r: r.get(6)?,
        f: r.get(7)?,
        m: r.get(8)?,
        segment: r.get(9)?,
        phase: r.get(10)?,
        p_alive: r.get(11)?,
        expected_purchases: r.get(12)?,
        clv: r.get(13)?,
        clv_at_run: r.get(14)?,
        declining: r.get(15)?,
        next_order_day: r.get(16)?,
        due_day: r.get(17)?,
        updated_ms: r.get(18)?,
    })
}

fn event_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        customer_id: r.get(0)?,
        message_id: r.get(1)?,
        kind: r.get(2)?,
        event: r.get(3)?,
        at_ms: r.get(4)?,
        received_ms: r.get(5)?,
        payload: r.get(6)?,
    })
}

/// Stored traits and whether an email address is among them.
type Traits = (Map<String, Value>, bool);

/// The work of one transaction.
struct Tx<'t> {
    tx: Transaction<'t>,
    now_ms: i64,
    /// Customers whose facts changed: re-scored before the commit.
    touched: BTreeSet<String>,
}

impl Tx<'_> {
    fn lookup(&self, id: &str) -> Result<Option<String>, Failure> {
        self.tx
            .prepare_cached("SELECT customer_id FROM identities WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![id], |r| r.get(0)).optional())
            .map_err(sql)
    }

    fn link(&self, id: &str, customer: &str) -> Result<(), Failure> {
        self.tx
            .prepare_cached(
                "INSERT INTO identities (id, customer_id) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id",
            )
            .and_then(|mut s| s.execute(params![id, customer]))
            .map_err(sql)?;
        Ok(())
    }

    /// A customer known by a userId (not only an anonymous visitor).
    fn is_known(&self, customer: &str) -> Result<bool, Failure> {
        self.tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM identities WHERE customer_id = ?1 AND id LIKE 'user:%')",
            )
            .and_then(|mut s| s.query_row(params![customer], |r| r.get(0)))
            .map_err(sql)
    }

    fn ensure_customer(&mut self, customer: &str) -> Result<(), Failure> {
        let exists: bool = self
            .tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM customers WHERE customer_id = ?1)")
            .and_then(|mut s| s.query_row(params![customer], |r| r.get(0)))
            .map_err(sql)?;
        if exists {
            return Ok(());
        }
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO customers (customer_id, position)
                 SELECT ?1, COALESCE(MAX(position), -1) + 1 FROM customers WHERE true
                 ON CONFLICT (customer_id) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![customer]))
            .map_err(sql)?;
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
        self.link(&key, user_id)?;
        Ok(user_id.to_string())
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
        match self.lookup(&key)? {
            None => self.link(&key, target),
            Some(c) if c == target => Ok(()),
            Some(c) if !self.is_known(&c)? => {
                self.merge(&c, target, how)?;
                stats.merged += 1;
                Ok(())
            }
            Some(c) => {
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

    fn record_merge(&self, customer: &str, merged: &str, how: &str) -> Result<(), Failure> {
        self.tx
            .prepare_cached(
                "INSERT INTO merges (customer_id, merged_id, at_ms, how) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![customer, merged, self.now_ms, how]))
            .map_err(sql)?;
        Ok(())
    }

    /// Moves everything of `source` to `target` and records the merge.
    fn merge(&mut self, source: &str, target: &str, how: &str) -> Result<(), Failure> {
        if source == target {
            return Ok(());
        }
        self.ensure_customer(target)?;
        let batch = [
            "UPDATE OR IGNORE events SET customer_id = ?2 WHERE customer_id = ?1",
            "DELETE FROM events WHERE customer_id = ?1",
            "UPDATE OR IGNORE orders SET customer_id = ?2 WHERE customer_id = ?1",
            "DELETE FROM orders WHERE customer_id = ?1",
            "UPDATE identities SET customer_id = ?2 WHERE customer_id = ?1",
            "DELETE FROM profiles WHERE customer_id = ?1",
            "DELETE FROM customers WHERE customer_id = ?1",
        ];
        for q in batch {
            self.tx
                .prepare_cached(q)
                .and_then(|mut s| {
                    if q.contains("?2") {
                        s.execute(params![source, target])
                    } else {
                        s.execute(params![source])
                    }
                })
                .map_err(sql)?;
        }
        // Traits: the remaining customer's values win.
        if let Some((from, email)) = self.traits_of(source)? {
            let (mut into, has) = self.traits_of(target)?.unwrap_or_default();
            for (k, v) in from {
                into.entry(k).or_insert(v);
            }
            self.save_traits(target, &into, has || email)?;
            self.tx
                .execute("DELETE FROM traits WHERE customer_id = ?1", params![source])
                .map_err(sql)?;
        }
        self.record_merge(target, source, how)?;
        self.touched.remove(source);
        self.touched.insert(target.to_string());
        Ok(())
    }

    /// A customer's traits and whether they left an email address.
    fn traits_of(&self, customer: &str) -> Result<Option<Traits>, Failure> {
        let row: Option<(String, bool)> = self
            .tx
            .prepare_cached("SELECT traits, has_email FROM traits WHERE customer_id = ?1")
            .and_then(|mut s| {
                s.query_row(params![customer], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(sql)?;
        Ok(row.map(|(text, email)| {
            let map = match serde_json::from_str(&text) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            (map, email)
        }))
    }

    fn save_traits(
        &self,
        customer: &str,
        traits: &Map<String, Value>,
        has_email: bool,
    ) -> Result<(), Failure> {
        let text = Value::Object(traits.clone()).to_string();
        self.tx
            .prepare_cached(
                "INSERT INTO traits (customer_id, traits, has_email) VALUES (?1, ?2, ?3)
                 ON CONFLICT (customer_id) DO UPDATE SET traits = excluded.traits, has_email = excluded.has_email",
            )
            .and_then(|mut s| s.execute(params![customer, text, has_email]))
            .map_err(sql)?;
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
                    None => {
                        self.link(&key, &key)?;
                        key
                    }
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

    fn insert_event(&self, customer: &str, e: &NewEvent) -> Result<bool, Failure> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO events (customer_id, message_id, kind, event, at_ms, received_ms, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    customer,
                    e.message_id,
                    e.kind,
                    e.event,
                    e.at_ms,
                    e.received_ms,
                    e.payload
                ])
            })
            .map_err(sql)?;
        Ok(n > 0)
    }

    fn apply_order(
        &mut self,
        customer: &str,
        o: &EventOrder,
        stats: &mut EventStats,
    ) -> Result<(), Failure> {
        let (key, amount) = if o.refund {
            (o.order_key ^ REFUND_KEY_SALT, -o.amount.abs())
        } else {
            (o.order_key, o.amount)
        };
        let found: Option<(i32, f64)> = self
            .tx
            .prepare_cached(
                "SELECT day, amount FROM orders WHERE customer_id = ?1 AND order_key = ?2 AND is_order = ?3
                 ORDER BY day LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row(params![customer, key as i64, !o.refund], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(sql)?;
        match found {
            Some((_, old)) if old == amount => return Ok(()),
            Some((day, _)) => {
                self.tx
                    .prepare_cached(
                        "UPDATE orders SET amount = ?4 WHERE customer_id = ?1 AND day = ?2 AND order_key = ?3",
                    )
                    .and_then(|mut s| s.execute(params![customer, day, key as i64, amount]))
                    .map_err(sql)?;
                stats.orders_updated += 1;
            }
            None => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO orders (customer_id, day, order_key, amount, rows, is_order)
                         VALUES (?1, ?2, ?3, ?4, 1, ?5)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![customer, o.day, key as i64, amount, !o.refund])
                    })
                    .map_err(sql)?;
                stats.orders_new += 1;
            }
        }
        self.touched.insert(customer.to_string());
        Ok(())
    }

    fn apply_traits(&mut self, customer: &str, traits: &Map<String, Value>) -> Result<(), Failure> {
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
            self.tx
                .prepare_cached(
                    "INSERT INTO identities (id, customer_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut s| s.execute(params![format!("email:{email}"), customer]))
                .map_err(sql)?;
        }
        let has_email = had_email || email.is_some();
        if current != before || has_email != had_email {
            self.save_traits(customer, &current, has_email)?;
        }
        if has_email != had_email {
            self.touched.insert(customer.to_string());
        }
        Ok(())
    }

    fn entries(&self, customer: &str) -> Result<Vec<OrderEntry>, Failure> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT day, order_key, amount, rows, is_order FROM orders
                 WHERE customer_id = ?1 ORDER BY day, order_key",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map(params![customer], |r| {
                Ok(OrderEntry {
                    day: r.get(0)?,
                    key: r.get::<_, i64>(1)? as u64,
                    amount: r.get(2)?,
                    rows: r.get::<_, i64>(3)?.max(0) as u64,
                    is_order: r.get(4)?,
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)
    }

    fn profile(&self, customer: &str) -> Result<Option<ProfileRow>, Failure> {
        self.tx
            .prepare_cached(&format!(
                "SELECT {PROFILE_COLUMNS} FROM profiles WHERE customer_id = ?1"
            ))
            .and_then(|mut s| s.query_row(params![customer], profile_of).optional())
            .map_err(sql)
    }

    /// Re-scores `customer`, saves the profile and records a segment
    /// change as `Segment Exited` / `Segment Entered` events (their
    /// messageIds name the segment and the day, so a change is recorded
    /// once however often it is re-computed).
    fn rescore(&mut self, customer: &str, scorer: Scorer<'_>) -> Result<u64, Failure> {
        let exists: bool = self
            .tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM customers WHERE customer_id = ?1)")
            .and_then(|mut s| s.query_row(params![customer], |r| r.get(0)))
            .map_err(sql)?;
        if !exists {
            return Ok(0);
        }
        let entries = self.entries(customer)?;
        let has_email = self.traits_of(customer)?.is_some_and(|(_, e)| e);
        let previous = self.profile(customer)?;
        let mut row = scorer(&CustomerFacts {
            customer_id: customer,
            entries: &entries,
            has_email,
            previous: previous.as_ref(),
        });
        row.customer_id = customer.to_string();
        row.updated_ms = self.now_ms;
        self.tx
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO profiles ({PROFILE_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    row.customer_id,
                    row.run_id,
                    row.n_orders,
                    row.total_spend,
                    row.first_order,
                    row.last_order,
                    row.r,
                    row.f,
                    row.m,
                    row.segment,
                    row.phase,
                    row.p_alive,
                    row.expected_purchases,
                    row.clv,
                    row.clv_at_run,
                    row.declining,
                    row.next_order_day,
                    row.due_day,
                    row.updated_ms
                ])
            })
            .map_err(sql)?;
        let old = previous.as_ref().map(|p| p.segment.as_str());
        if old == Some(row.segment.as_str()) {
            return Ok(0);
        }
        let day = self.now_ms.div_euclid(86_400_000);
        let mut emitted = 0;
        let mut emit = |name: &str, segment: &str, phase: &str, other: Option<&str>| {
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
                at_ms: self.now_ms,
                received_ms: self.now_ms,
                payload,
                ..NewEvent::default()
            };
            self.insert_event(customer, &e).map(|new| {
                emitted += u64::from(new);
            })
        };
        if let Some(p) = &previous {
            emit("Segment Exited", &p.segment, &p.phase, Some(&row.segment))?;
        }
        emit("Segment Entered", &row.segment, &row.phase, old)?;
        Ok(emitted)
    }

    fn rescore_touched(&mut self, scorer: Scorer<'_>) -> Result<u64, Failure> {
        let touched = std::mem::take(&mut self.touched);
        let mut emitted = 0;
        for c in &touched {
            emitted += self.rescore(c, scorer)?;
        }
        Ok(emitted)
    }
}

impl Store {
    /// Runs `work` in one transaction, committed (durably) when it succeeds.
    fn transact<T>(
        &mut self,
        now_ms: i64,
        work: impl FnOnce(&mut Tx<'_>) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        let to_err = |f: Failure| match f {
            Failure::Sql(source) => StoreError::Sqlite {
                path: path.clone(),
                source,
            },
            Failure::Refused(message) => StoreError::Refused(message),
        };
        let tx = self
            .conn
            .transaction()
            .map_err(|e| to_err(Failure::Sql(e)))?;
        let mut tx = Tx {
            tx,
            now_ms,
            touched: BTreeSet::new(),
        };
        let out = work(&mut tx).map_err(to_err)?;
        tx.tx.commit().map_err(|e| to_err(Failure::Sql(e)))?;
        Ok(out)
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
            for events in requests {
                let mut stats = EventStats::default();
                for e in events {
                    let customer = tx.resolve(e, &mut stats)?;
                    if tx.insert_event(&customer, e)? {
                        stats.inserted += 1;
                    } else {
                        stats.duplicates += 1;
                    }
                    if let Some(t) = &e.traits {
                        tx.apply_traits(&customer, t)?;
                    }
                    if let Some(o) = &e.order {
                        tx.apply_order(&customer, o, &mut stats)?;
                    }
                }
                all.push(stats);
            }
            let emitted = tx.rescore_touched(scorer)?;
            if let Some(last) = all.last_mut() {
                last.segment_events += emitted;
            }
            Ok(all)
        })
    }

    /// Re-scores the given customers (and, with `all`, every customer) in
    /// one transaction; returns the segment events emitted.
    pub fn rescore(
        &mut self,
        customers: &[String],
        scorer: Scorer<'_>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        self.transact(now_ms, |tx| {
            let mut emitted = 0;
            for c in customers {
                emitted += tx.rescore(c, scorer)?;
            }
            Ok(emitted)
        })
    }

    /// Every customer id, in the order they first appeared.
    pub fn customer_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT customer_id FROM customers ORDER BY position, customer_id")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<String>, _>>()
            .map_err(|e| self.err(e))
    }

    /// Customers whose recency crosses a score boundary on or before `day`.
    pub fn due(&self, day: i32, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT customer_id FROM profiles WHERE due_day IS NOT NULL AND due_day <= ?1
                 ORDER BY due_day, customer_id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![day, limit as i64], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<String>, _>>()
            .map_err(|e| self.err(e))
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
        self.transact(now_ms, |tx| {
            tx.merge(source, target, "admin")?;
            tx.tx
                .execute(
                    "INSERT INTO audit_log (at_ms, action, detail) VALUES (?1, 'merge', ?2)",
                    params![
                        now_ms,
                        serde_json::json!({"into": target, "merged": source}).to_string()
                    ],
                )
                .map_err(sql)?;
            tx.rescore_touched(scorer)
        })
    }

    fn profile_or_customer(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT customer_id FROM customers WHERE customer_id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The customer `id` names: a customer id, a userId or anonymousId
    /// merged into a customer, or an email address.
    pub fn find_customer(&self, id: &str) -> Result<Option<String>, StoreError> {
        let email = id.trim().to_lowercase();
        for key in [
            id.to_string(),
            format!("user:{id}"),
            format!("anon:{id}"),
            format!("email:{email}"),
        ] {
            let found: Option<String> = self
                .conn
                .query_row(
                    "SELECT customer_id FROM identities WHERE id = ?1",
                    params![key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            if found.is_some() {
                return Ok(found);
            }
        }
        self.profile_or_customer(id)
    }

    /// The customer view's stored part: profile, ids, merges, traits and
    /// the latest `events` events.
    pub fn customer(&self, id: &str, events: usize) -> Result<Option<CustomerRecord>, StoreError> {
        let Some(customer_id) = self.find_customer(id)? else {
            return Ok(None);
        };
        let e = |e| self.err(e);
        let profile = self
            .conn
            .query_row(
                &format!("SELECT {PROFILE_COLUMNS} FROM profiles WHERE customer_id = ?1"),
                params![customer_id],
                profile_of,
            )
            .optional()
            .map_err(e)?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM identities WHERE customer_id = ?1 ORDER BY id")
            .map_err(e)?;
        let ids = stmt
            .query_map(params![customer_id], |r| r.get(0))
            .map_err(e)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(e)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT customer_id, merged_id, at_ms, how FROM merges
                 WHERE customer_id = ?1 OR merged_id = ?1 ORDER BY at_ms",
            )
            .map_err(e)?;
        let merges = stmt
            .query_map(params![customer_id], |r| {
                Ok(Merge {
                    customer_id: r.get(0)?,
                    merged_id: r.get(1)?,
                    at_ms: r.get(2)?,
                    how: r.get(3)?,
                })
            })
            .map_err(e)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(e)?;
        let traits: Option<String> = self
            .conn
            .query_row(
                "SELECT traits FROM traits WHERE customer_id = ?1",
                params![customer_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(e)?;
        let traits = match traits.as_deref().map(serde_json::from_str) {
            Some(Ok(Value::Object(m))) => m,
            _ => Map::new(),
        };
        let events = self.recent_events(&customer_id, events)?;
        Ok(Some(CustomerRecord {
            customer_id,
            profile,
            ids,
            merges,
            traits,
            events,
        }))
    }

    /// A customer's latest events, newest first.
    pub fn recent_events(
        &self,
        customer_id: &str,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT customer_id, message_id, kind, event, at_ms, received_ms, payload FROM events
                 WHERE customer_id = ?1 ORDER BY at_ms DESC, message_id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![customer_id, limit as i64], event_of)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Profiles matching `filter`, by customer id, at most `filter.limit`.
    pub fn profiles(&self, filter: &ProfileFilter) -> Result<Vec<ProfileRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {PROFILE_COLUMNS} FROM profiles
                 WHERE (?1 IS NULL OR segment = ?1) AND (?2 IS NULL OR phase = ?2)
                   AND (?3 IS NULL OR clv >= ?3) AND (?4 IS NULL OR customer_id > ?4)
                 ORDER BY customer_id LIMIT ?5"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![
                    filter.segment,
                    filter.phase,
                    filter.min_clv,
                    filter.after,
                    filter.limit as i64
                ],
                profile_of,
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Customers, revenue and CLV by segment, live.
    pub fn segment_totals(&self) -> Result<Vec<SegmentTotal>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT segment, MIN(phase), COUNT(*), COALESCE(SUM(total_spend), 0), COALESCE(SUM(clv), 0)
                 FROM profiles GROUP BY segment",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SegmentTotal {
                    segment: r.get(0)?,
                    phase: r.get(1)?,
                    customers: r.get::<_, i64>(2)?.max(0) as u64,
                    revenue: r.get(3)?,
                    clv: r.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Records a model run; returns its id.
    pub fn save_run(
        &mut self,
        at_ms: i64,
        as_of: i32,
        customers: i64,
        params_json: &str,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO model_runs (at_ms, as_of, customers, params) VALUES (?1, ?2, ?3, ?4)",
                params![at_ms, as_of, customers, params_json],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The model runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<StoredRun>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, at_ms, as_of, customers, params FROM model_runs ORDER BY id DESC LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![limit as i64], |r| {
                Ok(StoredRun {
                    id: r.get(0)?,
                    at_ms: r.get(1)?,
                    as_of: r.get(2)?,
                    customers: r.get(3)?,
                    params: r.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Appends to the audit log (key creation, merges, refits, erasures).
    pub fn audit(&mut self, at_ms: i64, action: &str, detail: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO audit_log (at_ms, action, detail) VALUES (?1, ?2, ?3)",
                params![at_ms, action, detail],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The audit log, newest first: (at_ms, action, detail).
    pub fn audit_log(&self, limit: usize) -> Result<Vec<(i64, String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT at_ms, action, detail FROM audit_log ORDER BY id DESC LIMIT ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Deletes raw events received before `cutoff_ms` (orders, profiles
    /// and every aggregate stay); returns how many.
    pub fn expire_events(&mut self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM events WHERE received_ms < ?1",
                params![cutoff_ms],
            )
            .map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    /// Events stored, for the metrics and tests.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(n.max(0) as u64)
    }

    /// Every profile's segment, for re-score checks: customer → segment.
    pub fn segments_by_customer(&self) -> Result<HashMap<String, String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT customer_id, segment FROM profiles")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<HashMap<_, _>, _>>()
            .map_err(|e| self.err(e))
    }
}

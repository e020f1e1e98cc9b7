//! Data rights: erasing a person (their personal data removed everywhere,
//! the anonymised aggregates kept) and exporting everything held on them.
//!
//! Erasure deletes the person's events (and the traits and properties they
//! carry), traits, identities (user ids, anonymous ids, email addresses),
//! merge history, timers and suppressions keyed by their id, and clears the
//! subject, content and detail of their messages. Their orders, profile
//! (scores, segment, value), journey enrolments and message statuses stay
//! under a random pseudonym (`erased:` and 32 hex digits) that nothing
//! links back to them, so revenue, segment counts, model fits and lift
//! readouts do not change. Email addresses on a suppression list stay
//! there (an opt-out must outlive the person's other data), and backups
//! made before the erasure still hold them: they age out with the backups.

use crate::db::{Val, vals};
use crate::{Store, StoreError, random_hex};

/// What an erasure did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erasure {
    pub events: u64,
    pub identities: u64,
    pub orders_kept_anonymously: u64,
    pub enrolments_kept_anonymously: u64,
    pub messages_cleared: u64,
}

/// Columns holding JSON text, exported as JSON.
const JSON_COLUMNS: [&str; 4] = ["payload", "traits", "tripwires", "params"];

/// `s` as a LIKE pattern matching itself anywhere (with `ESCAPE '\'`).
fn like_anywhere(s: &str) -> String {
    let mut p = String::from("%");
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Store {
    /// Erases customer `id` (a customer id: resolve emails and aliases with
    /// [`Store::find_customer`] first). `now_ms` dates the audit entry,
    /// which names no one.
    pub fn erase_customer(&mut self, id: &str, now_ms: i64) -> Result<Erasure, StoreError> {
        if self
            .row("SELECT 1 FROM customers WHERE customer_id = ?1", vals![id])?
            .is_none()
        {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let pseudonym = format!("erased:{}", random_hex(16)?);
        let quoted_id = serde_json::Value::from(id).to_string();
        let quoted_pseudonym = serde_json::Value::from(pseudonym.as_str()).to_string();
        self.transact(now_ms, |tx| {
            let mut e = Erasure::default();
            let p = vals![id, &pseudonym];
            e.orders_kept_anonymously = tx.db.exec(
                "UPDATE orders SET customer_id = ?2 WHERE customer_id = ?1",
                p,
            )?;
            tx.db.exec(
                "UPDATE customers SET customer_id = ?2 WHERE customer_id = ?1",
                p,
            )?;
            tx.db.exec(
                "UPDATE profiles SET customer_id = ?2 WHERE customer_id = ?1",
                p,
            )?;
            e.enrolments_kept_anonymously = tx.db.exec(
                "UPDATE enrolments SET customer_id = ?2 WHERE customer_id = ?1",
                p,
            )?;
            // The outbox key names the customer: a new one from the
            // pseudonym, the enrolment and the step.
            e.messages_cleared = tx.db.exec(
                "UPDATE outbox SET key = CAST(?2 AS TEXT) || ':' || CAST(enrolment_id AS TEXT) || ':' || CAST(step AS TEXT) || ':' || CAST(created_ms AS TEXT),
                   customer_id = ?2, subject = NULL, content = NULL, detail = NULL
                 WHERE customer_id = ?1",
                p,
            )?;
            e.events = tx
                .db
                .exec("DELETE FROM events WHERE customer_id = ?1", vals![id])?;
            if let Some(t) = tx.lsm {
                e.events += tx.lsm_delete(t, id)?;
            }
            e.identities = tx
                .db
                .exec("DELETE FROM identities WHERE customer_id = ?1", vals![id])?;
            for q in [
                "DELETE FROM traits WHERE customer_id = ?1",
                "DELETE FROM merges WHERE customer_id = ?1 OR merged_id = ?1",
                "DELETE FROM moment_timers WHERE customer_id = ?1",
                "DELETE FROM suppressions WHERE value = ?1",
            ] {
                tx.db.exec(q, vals![id])?;
            }
            // Earlier audit entries (merges) name the customer in JSON.
            tx.db.exec(
                "UPDATE audit_log SET detail = replace(detail, ?1, ?2) WHERE detail LIKE ?3 ESCAPE '\\'",
                vals![&quoted_id, &quoted_pseudonym, like_anywhere(&quoted_id)],
            )?;
            let detail = serde_json::json!({
                "events": e.events,
                "identities": e.identities,
                "orders_kept_anonymously": e.orders_kept_anonymously,
                "enrolments_kept_anonymously": e.enrolments_kept_anonymously,
                "messages_cleared": e.messages_cleared,
            })
            .to_string();
            tx.db.exec(
                "INSERT INTO audit_log (at_ms, action, detail) VALUES (?1, 'erase', ?2)",
                vals![now_ms, &detail],
            )?;
            Ok(e)
        })
    }

    /// Everything held on customer `id`, by table: every row naming them
    /// (events with their payloads, orders, traits, identities, merges,
    /// profile, enrolments, messages with their content, timers), the
    /// suppressions of their id or email addresses.
    pub fn export_customer(&mut self, id: &str) -> Result<serde_json::Value, StoreError> {
        let label = self.label.clone();
        let err = |source| StoreError::Db {
            store: label.clone(),
            source,
        };
        if self
            .row("SELECT 1 FROM customers WHERE customer_id = ?1", vals![id])?
            .is_none()
        {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let mut out = serde_json::Map::new();
        out.insert("customer_id".into(), id.into());
        let mut emails: Vec<String> = Vec::new();
        for table in crate::backup::tables(&mut self.db).map_err(err)? {
            let cols = crate::backup::columns(&mut self.db, &table).map_err(err)?;
            let names = &cols.names;
            let wheres: Vec<&str> = match table.as_str() {
                "merges" => vec!["customer_id = ?1", "merged_id = ?1"],
                "suppressions" => continue,
                _ if names.iter().any(|c| c == "customer_id") => vec!["customer_id = ?1"],
                _ => continue,
            };
            let list: Vec<String> = names.iter().map(|c| format!("\"{c}\"")).collect();
            let sql = format!(
                "SELECT {} FROM \"{table}\" WHERE {}",
                list.join(", "),
                wheres.join(" OR ")
            );
            let rows = self.rows(&sql, vals![id])?;
            let objects: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    let mut o = serde_json::Map::new();
                    for (name, v) in names.iter().zip(r.values()) {
                        let value = match v {
                            Val::Text(t) if JSON_COLUMNS.contains(&name.as_str()) => {
                                serde_json::from_str(t)
                                    .unwrap_or_else(|_| serde_json::Value::from(t.as_str()))
                            }
                            Val::Text(t) => serde_json::Value::from(t.as_str()),
                            Val::Int(i) => serde_json::Value::from(*i),
                            Val::Real(f) => serde_json::Value::from(*f),
                            Val::Null => serde_json::Value::Null,
                        };
                        if table == "identities"
                            && name == "id"
                            && let Some(e) = value.as_str().and_then(|s| s.strip_prefix("email:"))
                        {
                            emails.push(e.to_string());
                        }
                        o.insert(name.clone(), value);
                    }
                    serde_json::Value::Object(o)
                })
                .collect();
            out.insert(table, serde_json::Value::Array(objects));
        }
        if let Some(t) = self.tree()? {
            let mut events = Vec::new();
            for e in t.customer_events(id).map_err(|e| self.err(e))? {
                let payload = serde_json::from_str(&e.payload)
                    .unwrap_or_else(|_| serde_json::Value::from(e.payload.as_str()));
                events.push(serde_json::json!({
                    "customer_id": e.customer_id,
                    "message_id": e.message_id,
                    "kind": e.kind,
                    "event": e.event,
                    "at_ms": e.at_ms,
                    "received_ms": e.received_ms,
                    "payload": payload,
                }));
            }
            out.insert("events".into(), serde_json::Value::Array(events));
        }
        let mut suppressions = Vec::new();
        for value in std::iter::once(id.to_string()).chain(emails) {
            for r in self.rows(
                "SELECT list, value, at_ms FROM suppressions WHERE value = ?1",
                vals![&value],
            )? {
                suppressions.push(serde_json::json!({
                    "list": r.text(0), "value": r.text(1), "at_ms": r.i64(2)
                }));
            }
        }
        out.insert(
            "suppressions".into(),
            serde_json::Value::Array(suppressions),
        );
        Ok(serde_json::Value::Object(out))
    }
}

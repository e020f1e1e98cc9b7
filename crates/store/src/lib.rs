//! The store: what Lifecycle keeps about customers between runs, keyed by
//! customer id from the first migration (so that a distributed database
//! can later shard every table by customer without a schema change).
//!
//! It owns the storage interface, its URL (`sqlite://PATH`; `postgres://`
//! is recognised and refused until that backend exists), the versioned
//! migrations applied on open, and the durable, idempotent import of the
//! consolidated orders that [`lifecycle_rfm::SummaryBuilder`] produces:
//! importing the same file twice adds nothing, and loading the store back
//! rebuilds the same summaries. It is an edge crate (IO, SQLite); it must
//! never be depended on by the pure crates, and it knows nothing of HTTP,
//! file formats or the CLI.

use std::path::{Path, PathBuf};

use lifecycle_rfm::{OrderEntry, SummaryBuilder};
use rusqlite::{Connection, OptionalExtension, params};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("--db {url}: {message}")]
    Url { url: String, message: String },
    #[error("{}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot read the operating system's randomness for a key: {0}")]
    Random(String),
    #[error(
        "{}: the database is at schema version {found}, newer than this program knows ({known}); use a newer lifecycle",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

/// Where the store lives, as given by `--db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl StoreUrl {
    /// `sqlite://PATH` (a relative or absolute path; `sqlite:///abs`
    /// works too), `postgres://...`, or a bare path ending in `.db`.
    pub fn parse(url: &str) -> Result<StoreUrl, StoreError> {
        let bad = |message: &str| StoreError::Url {
            url: url.to_string(),
            message: message.to_string(),
        };
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(bad("no file path after sqlite://"));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(url.to_string()));
        }
        if url.ends_with(".db") && !url.contains("://") {
            return Ok(StoreUrl::Sqlite(PathBuf::from(url)));
        }
        Err(bad(
            "expected sqlite://PATH (the embedded default) or postgres://USER@HOST:PORT/DB",
        ))
    }
}

/// The migrations, in order; version i+1 is `MIGRATIONS[i]`. Applied in a
/// transaction each and recorded in `schema_migrations`; never edited once
/// released (a change is a new migration).
const MIGRATIONS: &[&str] = &[
    // 1: customers and their consolidated orders.
    "CREATE TABLE customers (
        customer_id TEXT PRIMARY KEY,
        -- first appearance (input order of the first import that saw them)
        position INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE orders (
        customer_id TEXT NOT NULL,
        day INTEGER NOT NULL,        -- days since 1970-01-01, analysis time zone
        order_key INTEGER NOT NULL,  -- the order id's hash (or timestamp), as u64 bits
        amount REAL NOT NULL,        -- net amount of the order's rows that day
        rows INTEGER NOT NULL,       -- input rows combined
        is_order INTEGER NOT NULL,   -- 0: a refund only
        PRIMARY KEY (customer_id, day, order_key)
    ) WITHOUT ROWID;
    CREATE TABLE imports (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
        customers_new INTEGER NOT NULL,
        orders_new INTEGER NOT NULL,
        orders_updated INTEGER NOT NULL,
        orders_unchanged INTEGER NOT NULL
    );",
    // 2: behavioural events (Segment messages), de-duplicated by messageId.
    "CREATE TABLE events (
        customer_id TEXT NOT NULL,   -- userId, or 'anon:' + anonymousId until identified
        message_id TEXT NOT NULL,
        kind TEXT NOT NULL,          -- identify, track, page, screen, alias, group
        event TEXT,                  -- track: the event name; page/screen: the name
        at_ms INTEGER NOT NULL,      -- skew-corrected timestamp, ms since 1970 UTC
        received_ms INTEGER NOT NULL,
        payload TEXT NOT NULL,       -- the message's traits, properties and context, as JSON
        PRIMARY KEY (customer_id, message_id)
    ) WITHOUT ROWID;
    CREATE INDEX events_by_time ON events (customer_id, at_ms);",
    // 3: API keys, stored as SHA-256 hashes (the key itself is shown once).
    "CREATE TABLE api_keys (
        key_hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL,          -- public, write, secret
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
    ) WITHOUT ROWID;",
];

/// The kinds of API key (who may call what: see the README's access table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Safe in a web page: on-site messages only.
    Public,
    /// Event ingestion (`/v1/*`).
    Write,
    /// The API and admin.
    Secret,
}

impl KeyKind {
    pub fn parse(s: &str) -> Option<KeyKind> {
        Some(match s {
            "public" => KeyKind::Public,
            "write" => KeyKind::Write,
            "secret" => KeyKind::Secret,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Public => "public",
            KeyKind::Write => "write",
            KeyKind::Secret => "secret",
        }
    }
}

fn key_hash(key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// One event to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub customer_id: String,
    pub message_id: String,
    pub kind: String,
    pub event: Option<String>,
    pub at_ms: i64,
    pub received_ms: i64,
    /// JSON text.
    pub payload: String,
}

/// An order (or refund) carried by an event (`Order Completed`, `Order
/// Refunded`): keyed by customer and order, so that a re-sent order under
/// a new messageId updates it rather than adding a second one.
#[derive(Debug, Clone, PartialEq)]
pub struct EventOrder {
    pub customer_id: String,
    /// The order id's key (`lifecycle_ingest::order_key`, as the file import).
    pub order_key: u64,
    pub day: lifecycle_rfm::Day,
    /// The order's total; for a refund, the amount refunded (positive).
    pub amount: f64,
    pub refund: bool,
}

/// Marks a refund's key apart from its order's (as rows of a file do).
const REFUND_KEY_SALT: u64 = 0x5bd1_e995_9e37_79b9;

/// What storing a batch of events did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventStats {
    pub inserted: u64,
    /// Already stored under the same customer and messageId: ignored.
    pub duplicates: u64,
    /// Orders inserted, and orders whose amount a re-sent event changed.
    pub orders_new: u64,
    pub orders_updated: u64,
}

/// What an import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportStats {
    pub customers_new: u64,
    pub orders_new: u64,
    pub orders_updated: u64,
    pub orders_unchanged: u64,
}

/// Totals of the store's contents.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreCounts {
    pub customers: u64,
    pub orders: u64,
    pub refunds: u64,
    pub amount: f64,
}

/// An open store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `url` and applies any
    /// pending migrations.
    pub fn open(url: &StoreUrl) -> Result<Store, StoreError> {
        match url {
            StoreUrl::Sqlite(path) => Store::open_sqlite(path),
            StoreUrl::Postgres(u) => Err(StoreError::Url {
                url: u.clone(),
                message: "the PostgreSQL backend is not built yet; use sqlite://PATH".into(),
            }),
        }
    }

    fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        // WAL: readers do not block the writer; FULL: a commit is on disk
        // before it returns (an acknowledged write survives a crash).
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The schema version the store is at.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INTEGER PRIMARY KEY,
                    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
                )",
            )
            .map_err(|e| self.err(e))?;
        let current = self.schema_version()?;
        let known = MIGRATIONS.len() as i64;
        if current > known {
            return Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found: current,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let path = self.path.clone();
            let err = |source| StoreError::Sqlite {
                path: path.clone(),
                source,
            };
            let tx = self.conn.transaction().map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES (?1)",
                params![i as i64 + 1],
            )
            .map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(())
    }

    /// Imports every customer's consolidated orders up to `as_of` from
    /// `builder`, in one transaction: new orders are inserted, changed ones
    /// (same customer, day and order) updated, identical ones left alone,
    /// so that importing the same input again changes nothing. `source`
    /// (e.g. the file name) is recorded with the counts.
    pub fn import(
        &mut self,
        builder: &SummaryBuilder,
        as_of: lifecycle_rfm::Day,
        source: &str,
    ) -> Result<ImportStats, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let mut stats = ImportStats::default();
        {
            let next_position: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(position), -1) + 1 FROM customers",
                    [],
                    |r| r.get(0),
                )
                .map_err(err)?;
            let mut new_customer = tx
                .prepare("INSERT OR IGNORE INTO customers (customer_id, position) VALUES (?1, ?2)")
                .map_err(err)?;
            let mut insert = tx
                .prepare(
                    "INSERT OR IGNORE INTO orders (customer_id, day, order_key, amount, rows, is_order)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(err)?;
            let mut update = tx
                .prepare(
                    "UPDATE orders SET amount = ?4, rows = ?5, is_order = ?6
                     WHERE customer_id = ?1 AND day = ?2 AND order_key = ?3
                       AND (amount != ?4 OR rows != ?5 OR is_order != ?6)",
                )
                .map_err(err)?;
            let mut failure = None;
            let mut position = next_position;
            builder.for_each_customer_orders(as_of, |id, entries| {
                if failure.is_some() {
                    return;
                }
                let result = (|| -> Result<(), rusqlite::Error> {
                    if new_customer.execute(params![id, position])? > 0 {
                        stats.customers_new += 1;
                        position += 1;
                    }
                    for e in entries {
                        let values =
                            params![id, e.day, e.key as i64, e.amount, e.rows as i64, e.is_order];
                        if insert.execute(values)? > 0 {
                            stats.orders_new += 1;
                        } else if update.execute(values)? > 0 {
                            stats.orders_updated += 1;
                        } else {
                            stats.orders_unchanged += 1;
                        }
                    }
                    Ok(())
                })();
                if let Err(e) = result {
                    failure = Some(e);
                }
            });
            if let Some(e) = failure {
                return Err(err(e));
            }
            tx.execute(
                "INSERT INTO imports (source, customers_new, orders_new, orders_updated, orders_unchanged)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    source,
                    stats.customers_new as i64,
                    stats.orders_new as i64,
                    stats.orders_updated as i64,
                    stats.orders_unchanged as i64
                ],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(stats)
    }

    /// Stores `events` in one transaction; the commit is durable before
    /// this returns (acknowledge a request only after it). A messageId
    /// already stored for the customer is a duplicate and changes nothing.
    pub fn insert_events(&mut self, events: &[NewEvent]) -> Result<EventStats, StoreError> {
        self.ingest(events, &[])
    }

    /// Stores events and the orders they carry in one durable transaction.
    /// `orders[i]` belongs to the event it was read from; orders of
    /// duplicate events are applied all the same (idempotent: the same
    /// amount changes nothing).
    pub fn ingest(
        &mut self,
        events: &[NewEvent],
        orders: &[EventOrder],
    ) -> Result<EventStats, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let mut stats = EventStats::default();
        {
            let mut insert = tx
                .prepare(
                    "INSERT OR IGNORE INTO events (customer_id, message_id, kind, event, at_ms, received_ms, payload)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(err)?;
            for e in events {
                let n = insert
                    .execute(params![
                        e.customer_id,
                        e.message_id,
                        e.kind,
                        e.event,
                        e.at_ms,
                        e.received_ms,
                        e.payload
                    ])
                    .map_err(err)?;
                if n > 0 {
                    stats.inserted += 1;
                } else {
                    stats.duplicates += 1;
                }
            }
            let mut new_customer = tx
                .prepare(
                    "INSERT OR IGNORE INTO customers (customer_id, position)
                     SELECT ?1, COALESCE(MAX(position), -1) + 1 FROM customers",
                )
                .map_err(err)?;
            let mut existing = tx
                .prepare(
                    "SELECT day, amount FROM orders WHERE customer_id = ?1 AND order_key = ?2 AND is_order = ?3
                     ORDER BY day LIMIT 1",
                )
                .map_err(err)?;
            let mut update = tx
                .prepare(
                    "UPDATE orders SET amount = ?4 WHERE customer_id = ?1 AND day = ?2 AND order_key = ?3",
                )
                .map_err(err)?;
            let mut insert_order = tx
                .prepare(
                    "INSERT INTO orders (customer_id, day, order_key, amount, rows, is_order)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5)",
                )
                .map_err(err)?;
            for o in orders {
                new_customer.execute(params![o.customer_id]).map_err(err)?;
                let (key, amount) = if o.refund {
                    (o.order_key ^ REFUND_KEY_SALT, -o.amount.abs())
                } else {
                    (o.order_key, o.amount)
                };
                let found: Option<(i32, f64)> = existing
                    .query_row(params![o.customer_id, key as i64, !o.refund], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()
                    .map_err(err)?;
                match found {
                    Some((_, old)) if old == amount => {}
                    Some((day, _)) => {
                        update
                            .execute(params![o.customer_id, day, key as i64, amount])
                            .map_err(err)?;
                        stats.orders_updated += 1;
                    }
                    None => {
                        insert_order
                            .execute(params![o.customer_id, o.day, key as i64, amount, !o.refund])
                            .map_err(err)?;
                        stats.orders_new += 1;
                    }
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(stats)
    }

    /// A customer's latest events, newest first.
    pub fn recent_events(
        &self,
        customer_id: &str,
        limit: usize,
    ) -> Result<Vec<NewEvent>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT customer_id, message_id, kind, event, at_ms, received_ms, payload FROM events
                 WHERE customer_id = ?1 ORDER BY at_ms DESC, message_id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![customer_id, limit as i64], |r| {
                Ok(NewEvent {
                    customer_id: r.get(0)?,
                    message_id: r.get(1)?,
                    kind: r.get(2)?,
                    event: r.get(3)?,
                    at_ms: r.get(4)?,
                    received_ms: r.get(5)?,
                    payload: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Creates a key of `kind` from 24 bytes of the OS's randomness and
    /// returns it; only its hash is stored, so it cannot be shown again.
    pub fn create_key(&mut self, kind: KeyKind) -> Result<String, StoreError> {
        use std::io::Read;
        let mut bytes = [0u8; 24];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(|e| StoreError::Random(e.to_string()))?;
        let prefix = match kind {
            KeyKind::Public => "pk",
            KeyKind::Write => "wk",
            KeyKind::Secret => "sk",
        };
        let key = format!(
            "{prefix}_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        self.conn
            .execute(
                "INSERT INTO api_keys (key_hash, kind) VALUES (?1, ?2)",
                params![key_hash(&key), kind.name()],
            )
            .map_err(|e| self.err(e))?;
        Ok(key)
    }

    /// The kind of `key`, or `None` for an unknown key.
    pub fn key_kind(&self, key: &str) -> Result<Option<KeyKind>, StoreError> {
        let kind: Option<String> = self
            .conn
            .query_row(
                "SELECT kind FROM api_keys WHERE key_hash = ?1",
                params![key_hash(key)],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(kind.as_deref().and_then(KeyKind::parse))
    }

    /// Every stored customer's orders, as a builder to finish or analyze
    /// (customers in the order they first appeared).
    pub fn load(&self) -> Result<SummaryBuilder, StoreError> {
        let mut builder = SummaryBuilder::new();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT o.customer_id, c.position, o.day, o.order_key, o.amount, o.rows, o.is_order
                 FROM orders o JOIN customers c ON c.customer_id = o.customer_id
                 ORDER BY c.position, o.day, o.order_key",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let read = || -> Result<(String, i64, OrderEntry), rusqlite::Error> {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    OrderEntry {
                        day: r.get(2)?,
                        key: r.get::<_, i64>(3)? as u64,
                        amount: r.get(4)?,
                        rows: r.get::<_, i64>(5)?.max(0) as u64,
                        is_order: r.get(6)?,
                    },
                ))
            };
            let (id, position, entry) = read().map_err(|e| self.err(e))?;
            builder.add_entry(&id, position.max(0) as u64, entry);
        }
        Ok(builder)
    }

    /// How many customers and orders the store holds.
    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        let customers: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM customers", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let (orders, refunds, amount): (i64, i64, Option<f64>) = self
            .conn
            .query_row(
                "SELECT COALESCE(SUM(is_order), 0), COALESCE(SUM(1 - is_order), 0), SUM(amount) FROM orders",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(|e| self.err(e))?;
        Ok(StoreCounts {
            customers: customers.max(0) as u64,
            orders: orders.max(0) as u64,
            refunds: refunds.max(0) as u64,
            amount: amount.unwrap_or(0.0),
        })
    }

    /// The last import's source and when it ran, if any.
    pub fn last_import(&self) -> Result<Option<(String, String)>, StoreError> {
        self.conn
            .query_row(
                "SELECT source, at FROM imports ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            StoreUrl::parse("sqlite://lifecycle.db").unwrap(),
            StoreUrl::Sqlite("lifecycle.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///var/lib/x.db").unwrap(),
            StoreUrl::Sqlite("/var/lib/x.db".into())
        );
        assert_eq!(
            StoreUrl::parse("data.db").unwrap(),
            StoreUrl::Sqlite("data.db".into())
        );
        assert!(matches!(
            StoreUrl::parse("postgres://u@h:5432/d").unwrap(),
            StoreUrl::Postgres(_)
        ));
        let e = StoreUrl::parse("mysql://x").unwrap_err().to_string();
        assert!(e.contains("expected sqlite://PATH"), "{e}");
        assert!(StoreUrl::parse("sqlite://").is_err());
        let e = Store::open(&StoreUrl::parse("postgres://u@h/d").unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not built yet"), "{e}");
    }

    #[test]
    fn migrations_apply_once_and_refuse_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let url = StoreUrl::Sqlite(dir.path().join("s.db"));
        let store = Store::open(&url).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        drop(store);
        let store = Store::open(&url).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        store
            .conn
            .execute("INSERT INTO schema_migrations (version) VALUES (99)", [])
            .unwrap();
        drop(store);
        let e = Store::open(&url).err().unwrap().to_string();
        assert!(e.contains("schema version 99"), "{e}");
    }

    /// Import then load gives the same summaries; order keys with the top
    /// bit set survive SQLite's signed integers; a second import changes
    /// nothing; a changed amount is an update.
    #[test]
    fn import_load_roundtrip() {
        use lifecycle_rfm::OrderRow;
        let mut b = SummaryBuilder::new();
        let rows = [
            ("ann", 10, u64::MAX - 5, 20.0, false),
            ("ann", 10, u64::MAX - 5, 5.0, false),
            ("ann", 30, 7, 12.5, true),
            ("ann", 30, 7, 12.5, true),
            ("bob", 12, 3, 40.0, false),
            ("bob", 15, 3, -10.0, false),
            ("cy", 20, 9, -5.0, false),
            ("dee", 50, 1, 9.0, false),
        ];
        for (i, (c, day, key, amount, total)) in rows.iter().enumerate() {
            b.add_order(
                c,
                i as u64,
                OrderRow {
                    day: *day,
                    order_key: *key,
                    amount: *amount,
                    is_order_total: *total,
                },
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let url = StoreUrl::Sqlite(dir.path().join("s.db"));
        let mut store = Store::open(&url).unwrap();
        let first = store.import(&b, 40, "rows").unwrap();
        assert_eq!(first.customers_new, 3); // dee's order is after the date
        assert_eq!(first.orders_new, 5);
        let again = store.import(&b, 40, "rows").unwrap();
        assert_eq!(
            again,
            ImportStats {
                orders_unchanged: 5,
                ..ImportStats::default()
            }
        );
        let loaded = store.load().unwrap();
        let (want, _) = b.finish(40);
        let (got, _) = loaded.finish(40);
        assert_eq!(want, got);
        assert_eq!(store.counts().unwrap().refunds, 2);

        let mut changed = SummaryBuilder::new();
        changed.add_order(
            "bob",
            0,
            OrderRow {
                day: 12,
                order_key: 3,
                amount: 45.0,
                is_order_total: false,
            },
        );
        let stats = store.import(&changed, 40, "fix").unwrap();
        assert_eq!(stats.orders_updated, 1);
        assert_eq!(store.last_import().unwrap().unwrap().0, "fix");
    }

    #[test]
    fn events_are_deduplicated_by_message_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&StoreUrl::Sqlite(dir.path().join("e.db"))).unwrap();
        let event = |customer: &str, id: &str, at: i64| NewEvent {
            customer_id: customer.into(),
            message_id: id.into(),
            kind: "track".into(),
            event: Some("Order Completed".into()),
            at_ms: at,
            received_ms: at + 5,
            payload: "{}".into(),
        };
        let batch = [
            event("u1", "m1", 10),
            event("u1", "m2", 20),
            event("u1", "m1", 10),
        ];
        assert_eq!(
            store.insert_events(&batch).unwrap(),
            EventStats {
                inserted: 2,
                duplicates: 1,
                ..EventStats::default()
            }
        );
        // A retried request: all duplicates.
        assert_eq!(
            store.insert_events(&batch[..2]).unwrap(),
            EventStats {
                inserted: 0,
                duplicates: 2,
                ..EventStats::default()
            }
        );
        let recent = store.recent_events("u1", 50).unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].message_id, "m2");

        // Orders carried by events: an order re-sent (new messageId, later
        // day, corrected total) updates the one order; a refund stands apart.
        let order = |day, amount, refund| EventOrder {
            customer_id: "u1".into(),
            order_key: 42,
            day,
            amount,
            refund,
        };
        let stats = store.ingest(&[], &[order(100, 30.0, false)]).unwrap();
        assert_eq!((stats.orders_new, stats.orders_updated), (1, 0));
        let stats = store.ingest(&[], &[order(101, 35.0, false)]).unwrap();
        assert_eq!((stats.orders_new, stats.orders_updated), (0, 1));
        let stats = store.ingest(&[], &[order(101, 35.0, false)]).unwrap();
        assert_eq!((stats.orders_new, stats.orders_updated), (0, 0));
        store.ingest(&[], &[order(110, 10.0, true)]).unwrap();
        let (summaries, _) = store.load().unwrap().finish(120);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].n_orders, 1);
        assert_eq!(summaries[0].first_order, Some(100));
        assert!((summaries[0].total_spend - 25.0).abs() < 1e-9);
    }

    #[test]
    fn keys_are_stored_hashed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&StoreUrl::Sqlite(dir.path().join("k.db"))).unwrap();
        let key = store.create_key(KeyKind::Write).unwrap();
        assert!(key.starts_with("wk_") && key.len() == 51, "{key}");
        assert_eq!(store.key_kind(&key).unwrap(), Some(KeyKind::Write));
        assert_eq!(store.key_kind("wk_nope").unwrap(), None);
        let stored: String = store
            .conn
            .query_row("SELECT key_hash FROM api_keys", [], |r| r.get(0))
            .unwrap();
        assert!(!stored.contains(&key[3..]));
        assert_ne!(store.create_key(KeyKind::Write).unwrap(), key);
    }
}

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

mod live;

pub use live::{
    CustomerFacts, CustomerRecord, EventOrder, EventStats, Merge, NewEvent, ProfileFilter,
    ProfileRow, Scorer, SegmentTotal, StoredEvent, StoredRun,
};

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
    #[error("{0}")]
    Refused(String),
    #[error("no customer {0}")]
    NotFound(String),
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
    // 4: the live engine: profiles (scores, segment, value, due day), model
    // runs, identities and merges, traits, the audit log.
    "CREATE TABLE profiles (
        customer_id TEXT PRIMARY KEY,
        run_id INTEGER,              -- the model run the scores come from
        n_orders INTEGER NOT NULL,
        total_spend REAL NOT NULL,
        first_order INTEGER,
        last_order INTEGER,
        r INTEGER, f INTEGER, m INTEGER,
        segment TEXT NOT NULL,
        phase TEXT NOT NULL,
        p_alive REAL,
        expected_purchases REAL,
        clv REAL,
        clv_at_run REAL,             -- CLV when the run re-scored everyone
        declining INTEGER NOT NULL,
        next_order_day INTEGER,
        due_day INTEGER,             -- when recency next drops a score
        updated_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX profiles_due ON profiles (due_day) WHERE due_day IS NOT NULL;
    CREATE INDEX profiles_by_segment ON profiles (segment, customer_id);
    CREATE TABLE model_runs (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        as_of INTEGER NOT NULL,
        customers INTEGER NOT NULL,
        params TEXT NOT NULL         -- JSON: scales, model parameters, notes
    );
    CREATE TABLE identities (
        id TEXT PRIMARY KEY,         -- 'user:' userId, 'anon:' anonymousId, 'email:' address
        customer_id TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX identities_by_customer ON identities (customer_id);
    CREATE TABLE merges (
        customer_id TEXT NOT NULL,   -- who remains
        merged_id TEXT NOT NULL,     -- who was merged into them (or refused)
        at_ms INTEGER NOT NULL,
        how TEXT NOT NULL,           -- identify, alias, admin, refused: ...
        PRIMARY KEY (customer_id, merged_id, at_ms)
    ) WITHOUT ROWID;
    CREATE TABLE traits (
        customer_id TEXT PRIMARY KEY,
        traits TEXT NOT NULL,        -- JSON object, identify traits merged
        has_email INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );",
    // 5: the next customer position without a scan.
    "CREATE INDEX customers_by_position ON customers (position);",
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
        // A 64 MB page cache; checkpoints every ~40 MB of WAL rather than
        // every 4 MB (a checkpoint runs inside some commit and costs it).
        conn.pragma_update(None, "cache_size", -65_536)
            .map_err(err)?;
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)
            .map_err(err)?;
        conn.pragma_update(None, "temp_store", "MEMORY")
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

    /// A scorer for the tests: buyers and visitors, due ten days after the
    /// last order.
    fn toy_scorer(f: &CustomerFacts<'_>) -> ProfileRow {
        let orders = f.entries.iter().filter(|e| e.is_order).count() as i64;
        let last = f.entries.iter().filter(|e| e.is_order).map(|e| e.day).max();
        ProfileRow {
            n_orders: orders,
            total_spend: f.entries.iter().map(|e| e.amount).sum(),
            last_order: last,
            segment: match (orders, f.has_email) {
                (0, false) => "Visitors".into(),
                (0, true) => "Subscribers".into(),
                _ => "Buyers".into(),
            },
            phase: "P".into(),
            due_day: last.map(|d| d + 10),
            ..ProfileRow::default()
        }
    }

    fn track(user: Option<&str>, anon: Option<&str>, id: &str) -> NewEvent {
        NewEvent {
            user_id: user.map(Into::into),
            anonymous_id: anon.map(Into::into),
            message_id: id.into(),
            kind: "track".into(),
            event: Some("Product Viewed".into()),
            payload: "{}".into(),
            ..NewEvent::default()
        }
    }

    #[test]
    fn events_orders_identity_and_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&StoreUrl::Sqlite(dir.path().join("e.db"))).unwrap();
        let scorer: Scorer<'_> = &toy_scorer;
        // Duplicates by messageId, in one request and across requests.
        let batch = vec![
            track(Some("u1"), None, "m1"),
            track(Some("u1"), None, "m2"),
            track(Some("u1"), None, "m1"),
        ];
        let stats = store
            .ingest(std::slice::from_ref(&batch), scorer, 1_000)
            .unwrap();
        assert_eq!((stats[0].inserted, stats[0].duplicates), (2, 1));
        assert_eq!(stats[0].segment_events, 1); // u1 entered Visitors
        let stats = store.ingest(&[batch[..2].to_vec()], scorer, 2_000).unwrap();
        assert_eq!((stats[0].inserted, stats[0].duplicates), (0, 2));

        // Orders: a re-send under a new messageId updates the one order; a
        // refund stands apart. u1 moves Visitors -> Buyers once.
        let order = |id: &str, day, amount, refund| NewEvent {
            event: Some(
                if refund {
                    "Order Refunded"
                } else {
                    "Order Completed"
                }
                .into(),
            ),
            order: Some(EventOrder {
                order_key: 42,
                day,
                amount,
                refund,
            }),
            ..track(Some("u1"), None, id)
        };
        let s = store
            .ingest(&[vec![order("o1", 100, 30.0, false)]], scorer, 3_000)
            .unwrap();
        assert_eq!(
            (s[0].orders_new, s[0].orders_updated, s[0].segment_events),
            (1, 0, 2)
        );
        let s = store
            .ingest(&[vec![order("o2", 101, 35.0, false)]], scorer, 4_000)
            .unwrap();
        assert_eq!((s[0].orders_new, s[0].orders_updated), (0, 1));
        store
            .ingest(&[vec![order("o3", 110, 10.0, true)]], scorer, 5_000)
            .unwrap();
        let (summaries, _) = store.load().unwrap().finish(120);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].n_orders, 1);
        assert!((summaries[0].total_spend - 25.0).abs() < 1e-9);
        let view = store.customer("u1", 50).unwrap().unwrap();
        let p = view.profile.unwrap();
        assert_eq!(
            (p.segment.as_str(), p.n_orders, p.due_day),
            ("Buyers", 1, Some(110))
        );
        let entered: Vec<_> = view
            .events
            .iter()
            .filter(|e| e.event.as_deref() == Some("Segment Entered"))
            .collect();
        assert_eq!(entered.len(), 2);
        assert_eq!(store.due(109, 10).unwrap(), Vec::<String>::new());
        assert_eq!(store.due(110, 10).unwrap(), vec!["u1".to_string()]);

        // An anonymous visitor browses, then identifies: merged, history kept.
        store
            .ingest(
                &[vec![
                    track(None, Some("a1"), "m3"),
                    track(None, Some("a1"), "m4"),
                ]],
                scorer,
                6_000,
            )
            .unwrap();
        assert_eq!(
            store.find_customer("a1").unwrap().as_deref(),
            Some("anon:a1")
        );
        let identify = NewEvent {
            kind: "identify".into(),
            event: None,
            traits: Some(
                serde_json::json!({"email": "Ann@Example.com", "name": "Ann"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            ..track(Some("u2"), Some("a1"), "m5")
        };
        let s = store.ingest(&[vec![identify]], scorer, 7_000).unwrap();
        assert_eq!(s[0].merged, 1);
        let view = store.customer("ann@example.com", 50).unwrap().unwrap();
        assert_eq!(view.customer_id, "u2");
        assert_eq!(view.profile.as_ref().unwrap().segment, "Subscribers");
        assert!(view.events.iter().any(|e| e.message_id == "m3"));
        assert!(
            view.ids.contains(&"anon:a1".to_string()) && view.ids.contains(&"user:u2".to_string())
        );
        assert_eq!(view.traits["name"], "Ann");
        assert_eq!(store.find_customer("a1").unwrap().as_deref(), Some("u2"));
        assert_eq!(
            store.find_customer("anon:a1").unwrap().as_deref(),
            Some("u2")
        );
        // Later anonymous events of that device land on u2.
        store
            .ingest(&[vec![track(None, Some("a1"), "m6")]], scorer, 8_000)
            .unwrap();
        assert!(
            store
                .recent_events("u2", 50)
                .unwrap()
                .iter()
                .any(|e| e.message_id == "m6")
        );

        // A shared device: u1 identifies on a1 too. Two known customers are
        // never merged implicitly; the event is u1's, a1 stays u2's.
        let s = store
            .ingest(
                &[vec![NewEvent {
                    kind: "identify".into(),
                    ..track(Some("u1"), Some("a1"), "m7")
                }]],
                scorer,
                9_000,
            )
            .unwrap();
        assert_eq!((s[0].merged, s[0].refused), (0, 1));
        assert_eq!(store.find_customer("a1").unwrap().as_deref(), Some("u2"));
        assert!(
            store
                .recent_events("u1", 50)
                .unwrap()
                .iter()
                .any(|e| e.message_id == "m7")
        );
        // Alias of a known user into another: refused as well.
        let alias = NewEvent {
            kind: "alias".into(),
            previous_id: Some("u1".into()),
            ..track(Some("u2"), None, "m8")
        };
        let s = store.ingest(&[vec![alias]], scorer, 10_000).unwrap();
        assert_eq!(s[0].refused, 1);
        // Alias of an anonymous id: merged.
        store
            .ingest(&[vec![track(None, Some("a2"), "m9")]], scorer, 11_000)
            .unwrap();
        let alias = NewEvent {
            kind: "alias".into(),
            previous_id: Some("a2".into()),
            ..track(Some("u1"), None, "m10")
        };
        assert_eq!(
            store.ingest(&[vec![alias]], scorer, 12_000).unwrap()[0].merged,
            1
        );
        assert_eq!(store.find_customer("a2").unwrap().as_deref(), Some("u1"));

        // The admin merge does what implicit merges must not.
        store.merge_customers("u1", "u2", scorer, 13_000).unwrap();
        let view = store.customer("ann@example.com", 50).unwrap().unwrap();
        assert_eq!(view.customer_id, "u1");
        assert!(
            view.merges
                .iter()
                .any(|m| m.how == "admin" && m.merged_id == "u2")
        );
        assert_eq!(view.traits["name"], "Ann");
        assert!(
            store
                .customer("u2", 5)
                .unwrap()
                .is_some_and(|c| c.customer_id == "u1")
        );
        assert_eq!(store.audit_log(5).unwrap()[0].1, "merge");
        assert!(store.merge_customers("u1", "u1", scorer, 14_000).is_err());
        assert!(matches!(
            store.merge_customers("u1", "nobody", scorer, 14_000),
            Err(StoreError::NotFound(_))
        ));
        let totals = store.segment_totals().unwrap();
        assert_eq!(totals.iter().map(|t| t.customers).sum::<u64>(), 1);
        let listed = store
            .profiles(&ProfileFilter {
                segment: Some("Buyers".into()),
                limit: 10,
                ..ProfileFilter::default()
            })
            .unwrap();
        assert_eq!(listed.len(), 1);
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

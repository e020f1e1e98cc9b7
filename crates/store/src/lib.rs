//! The store: what Lifecycle keeps about customers between runs, keyed by
//! customer id from the first migration (so that a distributed database
//! can later shard every table by customer without a schema change).
//!
//! It owns the storage interface and its two backends: SQLite (embedded,
//! the default: `sqlite://PATH`) and PostgreSQL (`postgres://USER@HOST:PORT/DB`,
//! for several `serve` instances on one database), behind one set of
//! statements ([`db`]); the versioned migrations applied on open (one list
//! per backend, the same versions); the durable, idempotent import of the
//! consolidated orders that [`lifecycle_rfm::SummaryBuilder`] produces
//! (importing the same file twice adds nothing, and loading the store back
//! rebuilds the same summaries); the live engine's tables ([`live`]); and a
//! SQLite store's behavioural events in an LSM tree beside the file
//! (`lsm`; the default for a new store, see [`EventsIn`]), kept in step
//! with the database through a log of changes written in the same
//! transactions.
//! It is an edge crate (IO); it must never be depended on by the pure
//! crates, and it knows nothing of scoring rules, HTTP, file formats or the
//! CLI.

mod backup;
mod db;
mod journeys;
mod live;
mod lsm;
mod privacy;

pub use db::DbError;
pub use journeys::{
    Activity, EnrolmentRow, EnrolmentSummary, Journeys, MessageRow, MomentCounts, MomentRow,
    OutboxDay, OutboxItem, Outcome, SavedMoment, StepFunnel, StoredMoment, VALUE_DECLINE_EVENT,
    WakeStats, consents,
};
pub use live::{
    CustomerFacts, CustomerRecord, EventOrder, EventStats, Merge, NewEvent, ProfileFilter,
    ProfileOrder, ProfileRow, Rescored, Scorer, SegmentMove, SegmentTotal, StoredEvent,
    StoredOrder, StoredRun, TripwireRow, TripwireTotal, WatchedEvent,
};
pub use lsm::LsmError;

use std::path::PathBuf;

pub use backup::BackupStats;
use db::{Db, Row, Val, vals};
use lifecycle_rfm::{OrderEntry, SummaryBuilder};
pub use privacy::Erasure;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("--db {url}: {message}")]
    Url { url: String, message: String },
    #[error("{store}: {source}")]
    Db {
        /// The file, or the URL without its password.
        store: String,
        #[source]
        source: DbError,
    },
    #[error("{0}")]
    Refused(String),
    #[error("no customer {0}")]
    NotFound(String),
    #[error("cannot read the operating system's randomness for a key: {0}")]
    Random(String),
    #[error(
        "{store}: the database is at schema version {found}, newer than this program knows ({known}); use a newer lifecycle"
    )]
    NewerSchema {
        store: String,
        found: i64,
        known: i64,
    },
}

impl StoreError {
    /// The store's disk is full (see [`DbError::is_disk_full`]).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Db { source, .. } if source.is_disk_full())
    }
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
            url: redact(url),
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

    /// How errors name the store: the file, or the URL without a password.
    pub fn label(&self) -> String {
        match self {
            StoreUrl::Sqlite(p) => p.display().to_string(),
            StoreUrl::Postgres(u) => redact(u),
        }
    }
}

/// A URL with any password replaced by `***` and its query (which may
/// carry `password=`) left out.
fn redact(url: &str) -> String {
    let url = url.split('?').next().unwrap_or(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or("");
            format!("{scheme}://{name}:***@{host}")
        }
        _ => url.to_string(),
    }
}

/// Runs one read query on a PostgreSQL database that need not be a
/// Lifecycle store (nothing is migrated or written): a warehouse's orders
/// for `lifecycle summarize --engine postgres`. Each row's columns as JSON
/// values (integers, doubles, text, null).
pub fn query_postgres(url: &str, sql: &str) -> Result<Vec<Vec<serde_json::Value>>, StoreError> {
    let err = |source| StoreError::Db {
        store: StoreUrl::Postgres(url.to_string()).label(),
        source,
    };
    let mut db = Db::open_postgres(url).map_err(err)?;
    let rows = db.query(sql, &[]).map_err(err)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            r.0.into_iter()
                .map(|v| match v {
                    Val::Int(i) => serde_json::Value::from(i),
                    Val::Real(f) => serde_json::Value::from(f),
                    Val::Text(t) => serde_json::Value::from(t),
                    Val::Null => serde_json::Value::Null,
                })
                .collect()
        })
        .collect())
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
    // 6: open tripwires on the profile (JSON).
    "ALTER TABLE profiles ADD COLUMN tripwires TEXT;",
    // 7: journeys: moment versions, enrolments (the due-time index), the outbox.
    "CREATE TABLE moments (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        source TEXT NOT NULL,        -- the TOML definition
        origin TEXT NOT NULL,        -- the file or API call it came from
        created_ms INTEGER NOT NULL,
        active INTEGER NOT NULL,     -- takes entrants (one version per name at most)
        PRIMARY KEY (name, version)
    ) WITHOUT ROWID;
    CREATE TABLE enrolments (
        id INTEGER PRIMARY KEY,
        moment TEXT NOT NULL,
        version INTEGER NOT NULL,
        customer_id TEXT NOT NULL,
        entered_ms INTEGER NOT NULL,
        step INTEGER NOT NULL,
        wait_until_ms INTEGER,
        wake_ms INTEGER,             -- when the timer pass walks it on
        held_out INTEGER NOT NULL,   -- receives nothing (holdout or global control)
        global_control INTEGER NOT NULL,
        holdout INTEGER NOT NULL,    -- in this moment's holdout
        ended TEXT,                  -- goal, completed, exit, loop, removed
        ended_ms INTEGER,
        goal_ms INTEGER,             -- the goal reached within its window
        goal_value REAL,
        clv_at_entry REAL,           -- predicted CLV when entering (the readout's covariate)
        UNIQUE (moment, customer_id, entered_ms)
    );
    CREATE INDEX enrolments_due ON enrolments (wake_ms) WHERE wake_ms IS NOT NULL;
    CREATE INDEX enrolments_by_customer ON enrolments (customer_id, moment);
    CREATE TABLE outbox (
        key TEXT PRIMARY KEY,        -- moment:version:customer:entry:step
        enrolment_id INTEGER NOT NULL,
        customer_id TEXT NOT NULL,
        moment TEXT NOT NULL,
        version INTEGER NOT NULL,
        step INTEGER NOT NULL,
        channel TEXT NOT NULL,
        template TEXT NOT NULL,
        subject TEXT,
        priority INTEGER NOT NULL,
        status TEXT NOT NULL,        -- queued, sent, failed, suppressed, held_out
        created_ms INTEGER NOT NULL,
        due_ms INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        lease_ms INTEGER,
        sent_ms INTEGER,
        detail TEXT,
        content TEXT
    ) WITHOUT ROWID;
    CREATE INDEX outbox_due ON outbox (priority DESC, due_ms, key) WHERE status = 'queued';
    CREATE INDEX outbox_by_customer ON outbox (customer_id, channel, sent_ms);
    CREATE INDEX outbox_by_moment ON outbox (moment, status);
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE moment_timers (
        moment TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        due_ms INTEGER NOT NULL,
        PRIMARY KEY (moment, customer_id)
    );
    CREATE INDEX moment_timers_due ON moment_timers (due_ms);
    CREATE TABLE suppressions (
        list TEXT NOT NULL,
        value TEXT NOT NULL,         -- a customer id or a lower-case email address
        at_ms INTEGER NOT NULL,
        PRIMARY KEY (list, value)
    );",
    // 8: a segment's customers by CLV (the dashboard's and the API's CLV floor).
    "CREATE INDEX profiles_by_segment_clv ON profiles (segment, clv);",
    // 9: segment moves per day (the dashboard's flows and trends) and each
    // model run's figures (taken once it has re-scored everyone).
    "CREATE TABLE segment_moves (
        day INTEGER NOT NULL,        -- UTC days since 1970-01-01
        from_segment TEXT NOT NULL,  -- '' for a new customer
        to_segment TEXT NOT NULL,
        customers INTEGER NOT NULL,
        PRIMARY KEY (day, from_segment, to_segment)
    ) WITHOUT ROWID;
    ALTER TABLE model_runs ADD COLUMN figures TEXT;",
    // 10: a segment's customers by spend and by last order (the
    // dashboard's sortable lists).
    "CREATE INDEX profiles_by_segment_spend ON profiles (segment, total_spend);
    CREATE INDEX profiles_by_segment_last ON profiles (segment, last_order);",
    // 11: a moment's enrolments without a scan (its counts, funnel and
    // readout). On PostgreSQL also: enrolments and the outbox keyed by
    // customer first, so that every large table can be distributed by
    // customer id (see PG_MIGRATIONS).
    "CREATE INDEX enrolments_by_moment ON enrolments (moment);",
    // 12: no second index on events. Events are already stored by
    // customer, and a customer's events in time order are read by
    // sorting their range; the (customer_id, at_ms) index cost every
    // stored event a page of its own in each commit (the soak's writer
    // spent half its time writing pages: 16,700 events/s over 90 s with
    // it, 20,000 asked and kept without it).
    "DROP INDEX events_by_time;",
    // 13: each customer's orders summarised beside their profile, so that
    // a new order is added to it rather than the history re-read (NULL:
    // not kept yet, or orders imported since; the next re-score reads the
    // history and keeps it).
    "ALTER TABLE profiles ADD COLUMN order_summary TEXT;",
    // 14: the log of changes to the behavioural events kept in the LSM tree
    // beside the file (see `lsm.rs`): a transaction's changes, written in
    // that transaction and replayed into the tree until it is synced past
    // them.
    "CREATE TABLE event_ops (
        seq INTEGER PRIMARY KEY,
        ops BLOB NOT NULL
    );",
];

/// The same migrations for PostgreSQL: integers are BIGINT, reals DOUBLE
/// PRECISION, flags 0/1 BIGINT, so that both backends bind and read the
/// same values.
const PG_NOW: &str = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";
const PG_MIGRATIONS: &[&str] = &[
    "CREATE TABLE customers (
        customer_id TEXT PRIMARY KEY,
        position BIGINT NOT NULL
    );
    CREATE TABLE orders (
        customer_id TEXT NOT NULL,
        day BIGINT NOT NULL,
        order_key BIGINT NOT NULL,
        amount DOUBLE PRECISION NOT NULL,
        rows BIGINT NOT NULL,
        is_order BIGINT NOT NULL,
        PRIMARY KEY (customer_id, day, order_key)
    );
    CREATE TABLE imports (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        source TEXT NOT NULL,
        at TEXT NOT NULL DEFAULT {NOW},
        customers_new BIGINT NOT NULL,
        orders_new BIGINT NOT NULL,
        orders_updated BIGINT NOT NULL,
        orders_unchanged BIGINT NOT NULL
    );",
    "CREATE TABLE events (
        customer_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        event TEXT,
        at_ms BIGINT NOT NULL,
        received_ms BIGINT NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (customer_id, message_id)
    );
    CREATE INDEX events_by_time ON events (customer_id, at_ms);",
    "CREATE TABLE api_keys (
        key_hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        created_at TEXT NOT NULL DEFAULT {NOW}
    );",
    "CREATE TABLE profiles (
        customer_id TEXT PRIMARY KEY,
        run_id BIGINT,
        n_orders BIGINT NOT NULL,
        total_spend DOUBLE PRECISION NOT NULL,
        first_order BIGINT,
        last_order BIGINT,
        r BIGINT, f BIGINT, m BIGINT,
        segment TEXT NOT NULL,
        phase TEXT NOT NULL,
        p_alive DOUBLE PRECISION,
        expected_purchases DOUBLE PRECISION,
        clv DOUBLE PRECISION,
        clv_at_run DOUBLE PRECISION,
        declining BIGINT NOT NULL,
        next_order_day BIGINT,
        due_day BIGINT,
        updated_ms BIGINT NOT NULL
    );
    CREATE INDEX profiles_due ON profiles (due_day) WHERE due_day IS NOT NULL;
    CREATE INDEX profiles_by_segment ON profiles (segment, customer_id);
    CREATE TABLE model_runs (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        as_of BIGINT NOT NULL,
        customers BIGINT NOT NULL,
        params TEXT NOT NULL
    );
    CREATE TABLE identities (
        id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL
    );
    CREATE INDEX identities_by_customer ON identities (customer_id);
    CREATE TABLE merges (
        customer_id TEXT NOT NULL,
        merged_id TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        how TEXT NOT NULL,
        PRIMARY KEY (customer_id, merged_id, at_ms)
    );
    CREATE TABLE traits (
        customer_id TEXT PRIMARY KEY,
        traits TEXT NOT NULL,
        has_email BIGINT NOT NULL
    );
    CREATE TABLE audit_log (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );",
    "CREATE INDEX customers_by_position ON customers (position);",
    "ALTER TABLE profiles ADD COLUMN tripwires TEXT;",
    "CREATE TABLE moments (
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        source TEXT NOT NULL,
        origin TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        active BIGINT NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE enrolments (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        moment TEXT NOT NULL,
        version BIGINT NOT NULL,
        customer_id TEXT NOT NULL,
        entered_ms BIGINT NOT NULL,
        step BIGINT NOT NULL,
        wait_until_ms BIGINT,
        wake_ms BIGINT,
        held_out BIGINT NOT NULL,
        global_control BIGINT NOT NULL,
        holdout BIGINT NOT NULL,
        ended TEXT,
        ended_ms BIGINT,
        goal_ms BIGINT,
        goal_value DOUBLE PRECISION,
        clv_at_entry DOUBLE PRECISION,
        UNIQUE (moment, customer_id, entered_ms)
    );
    CREATE INDEX enrolments_due ON enrolments (wake_ms) WHERE wake_ms IS NOT NULL;
    CREATE INDEX enrolments_by_customer ON enrolments (customer_id, moment);
    CREATE TABLE outbox (
        key TEXT PRIMARY KEY,
        enrolment_id BIGINT NOT NULL,
        customer_id TEXT NOT NULL,
        moment TEXT NOT NULL,
        version BIGINT NOT NULL,
        step BIGINT NOT NULL,
        channel TEXT NOT NULL,
        template TEXT NOT NULL,
        subject TEXT,
        priority BIGINT NOT NULL,
        status TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        due_ms BIGINT NOT NULL,
        attempts BIGINT NOT NULL,
        lease_ms BIGINT,
        sent_ms BIGINT,
        detail TEXT,
        content TEXT
    );
    CREATE INDEX outbox_due ON outbox (priority DESC, due_ms, key) WHERE status = 'queued';
    CREATE INDEX outbox_by_customer ON outbox (customer_id, channel, sent_ms);
    CREATE INDEX outbox_by_moment ON outbox (moment, status);
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE moment_timers (
        moment TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        due_ms BIGINT NOT NULL,
        PRIMARY KEY (moment, customer_id)
    );
    CREATE INDEX moment_timers_due ON moment_timers (due_ms);
    CREATE TABLE suppressions (
        list TEXT NOT NULL,
        value TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        PRIMARY KEY (list, value)
    );",
    // 8
    "CREATE INDEX profiles_by_segment_clv ON profiles (segment, clv);",
    // 9
    "CREATE TABLE segment_moves (
        day BIGINT NOT NULL,
        from_segment TEXT NOT NULL,
        to_segment TEXT NOT NULL,
        customers BIGINT NOT NULL,
        PRIMARY KEY (day, from_segment, to_segment)
    );
    ALTER TABLE model_runs ADD COLUMN figures TEXT;",
    // 10: a segment's customers by spend and by last order (the
    // dashboard's sortable lists).
    "CREATE INDEX profiles_by_segment_spend ON profiles (segment, total_spend);
    CREATE INDEX profiles_by_segment_last ON profiles (segment, last_order);",
    // 11: a moment's enrolments by index; enrolments and the outbox keyed
    // by customer first. A distributed PostgreSQL (Citus) requires every
    // primary key and unique constraint of a table distributed by a column
    // to include it: with these, every large table is keyed by customer id
    // (identities by the alias, its lookup key). Lookups by enrolment id
    // and outbox key keep an index of their own.
    "CREATE INDEX enrolments_by_moment ON enrolments (moment);
    ALTER TABLE enrolments DROP CONSTRAINT enrolments_pkey;
    ALTER TABLE enrolments ADD PRIMARY KEY (customer_id, id);
    CREATE INDEX enrolments_by_id ON enrolments (id);
    ALTER TABLE outbox DROP CONSTRAINT outbox_pkey;
    ALTER TABLE outbox ADD PRIMARY KEY (customer_id, key);
    CREATE INDEX outbox_by_key ON outbox (key);",
    // 12: as on SQLite; the primary key (customer_id, message_id) finds a
    // customer's events.
    "DROP INDEX events_by_time;",
    // 13: as on SQLite.
    "ALTER TABLE profiles ADD COLUMN order_summary TEXT;",
    // 14: as on SQLite (PostgreSQL keeps its events in `events`; the table
    // stays empty).
    "CREATE TABLE event_ops (
        seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        ops BYTEA NOT NULL
    );",
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

/// `bytes` bytes of the operating system's randomness, in lower-case hex
/// (keys, secrets, pseudonyms).
pub(crate) fn random_hex(bytes: usize) -> Result<String, StoreError> {
    use std::io::Read;
    let mut b = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The SHA-256 of an API key, as stored (lower-case hex): keys are only
/// ever looked up and compared by this digest, so comparing them leaks no
/// timing about the key itself.
pub fn key_hash(key: &str) -> String {
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
    db: Db,
    label: String,
    /// Event names the scorer needs (custom tripwires): such an event
    /// re-scores its customer, and the scorer sees them.
    watched: Vec<String>,
    /// The scorer needs when customers were first seen (a sign-up norm).
    first_seen_wanted: bool,
    /// The moments events are run through.
    journeys: std::sync::Arc<Journeys>,
    /// Time spent in this connection's write transactions.
    write_time: WriteTime,
    /// A SQLite store's behavioural events (see `lsm.rs`), opened when
    /// first needed (from `tree_at`): a process that never reads or writes
    /// events (creating a key) can open a store whose tree `serve` holds.
    lsm: Option<std::sync::Arc<lsm::EventLsm>>,
    tree_at: Option<std::path::PathBuf>,
}

/// Time a connection spent in its committed write transactions, split into
/// running their statements and committing (the log written and synced,
/// and any checkpoint that commit ran): how busy a writer is, and on what.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteTime {
    pub work: std::time::Duration,
    pub commit: std::time::Duration,
    pub transactions: u64,
}

/// Where a SQLite store keeps its behavioural events (see `lsm.rs`). A
/// store with a tree always keeps using it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsIn {
    /// A new store gets a tree; an existing one keeps its events where
    /// they are.
    Default,
    /// A tree, given the events an existing store kept in its table.
    Tree,
    /// The `events` table for a new store (one process or many can then
    /// read and write events at once; ingestion is slower).
    Table,
}

impl EventsIn {
    /// From `LIFECYCLE_EVENTS_TREE`: `1` is [`EventsIn::Tree`], `0`
    /// [`EventsIn::Table`], anything else or nothing the default.
    pub fn from_env() -> EventsIn {
        match std::env::var("LIFECYCLE_EVENTS_TREE").as_deref() {
            Ok("1") => EventsIn::Tree,
            Ok("0") => EventsIn::Table,
            _ => EventsIn::Default,
        }
    }

    /// Whether the SQLite store at `path` keeps its events in the tree;
    /// `new`: the file holds no table yet.
    fn in_tree(self, path: &std::path::Path, new: bool) -> bool {
        lsm::EventLsm::exists(path)
            || match self {
                EventsIn::Default => new,
                EventsIn::Tree => true,
                EventsIn::Table => false,
            }
    }
}

/// Serialises migrations of several instances starting at once.
const MIGRATION_LOCK: i64 = 0x4c69_6665_6379;

impl Store {
    /// Opens (creating if needed) the store at `url` and applies any
    /// pending migrations; a SQLite store's events go where
    /// [`EventsIn::from_env`] says.
    pub fn open(url: &StoreUrl) -> Result<Store, StoreError> {
        Store::open_with(url, EventsIn::from_env())
    }

    /// [`Store::open`], with a SQLite store's events where `events` says.
    pub fn open_with(url: &StoreUrl, events: EventsIn) -> Result<Store, StoreError> {
        let label = url.label();
        let mut tree_at = None;
        let err = |source| StoreError::Db {
            store: label.clone(),
            source,
        };
        let db = match url {
            StoreUrl::Sqlite(path) => {
                let mut db = Db::open_sqlite(path).map_err(err)?;
                // WAL: readers do not block the writer; FULL: a commit is on
                // disk before it returns (an acknowledged write survives a
                // crash). A 64 MB page cache; checkpoints every ~40 MB of
                // WAL rather than every 4 MB (a checkpoint runs inside some
                // commit and costs it).
                db.batch(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;
                     PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 10000; PRAGMA temp_store = MEMORY;",
                )
                .map_err(err)?;
                let new = db
                    .query_one("SELECT 1 FROM sqlite_master WHERE type = 'table'", &[])
                    .map_err(err)?
                    .is_none();
                // Marked before the migrations: another process opening the
                // store once it has tables sees the tree.
                if events.in_tree(path, new) {
                    lsm::EventLsm::mark(path).map_err(|e| err(e.into()))?;
                    tree_at = Some(path.clone());
                }
                db
            }
            StoreUrl::Postgres(u) => Db::open_postgres(u).map_err(err)?,
        };
        let mut store = Store {
            db,
            label,
            watched: Vec::new(),
            first_seen_wanted: false,
            journeys: std::sync::Arc::new(Journeys::default()),
            write_time: WriteTime::default(),
            lsm: None,
            tree_at,
        };
        store.migrate()?;
        if store.tree_at.is_some() {
            // Without the events the file holds orders and profiles: a
            // 16 MB cache (the operating system's keeps the rest).
            store.limit_page_cache(16 << 10)?;
        }
        Ok(store)
    }

    /// Time spent in this connection's write transactions so far.
    pub fn write_time(&self) -> WriteTime {
        self.write_time
    }

    /// Bounds this connection's own page cache to `kib` KiB (SQLite; the
    /// 64 MB default is for the writer). A read connection mostly meets
    /// pages the writer or the operating system already holds, and every
    /// connection's cache counts in the server's memory: a pool of readers
    /// with the writer's cache each would grow for as long as they meet
    /// new pages.
    pub fn limit_page_cache(&mut self, kib: u32) -> Result<(), StoreError> {
        if self.db.is_postgres() {
            return Ok(());
        }
        self.db
            .batch(&format!("PRAGMA cache_size = -{kib};"))
            .map_err(|e| self.err(e))
    }

    /// The events' tree, opened (and brought up to date with the log, and
    /// given the events a store kept in its table) at the first use; `None`
    /// when the events are in the `events` table.
    pub(crate) fn tree(&mut self) -> Result<Option<std::sync::Arc<lsm::EventLsm>>, StoreError> {
        if let Some(t) = &self.lsm {
            return Ok(Some(t.clone()));
        }
        let Some(path) = self.tree_at.clone() else {
            return Ok(None);
        };
        let t = lsm::EventLsm::open(&path).map_err(|e| self.err(e))?;
        {
            let mut p = t.writing();
            if p.behind {
                live::catch_up(&mut self.db, &t, &mut p).map_err(|f| self.failure(f))?;
            }
        }
        self.lsm = Some(t.clone());
        self.move_events_to_tree()?;
        Ok(Some(t))
    }

    fn failure(&self, f: live::Failure) -> StoreError {
        match f {
            live::Failure::Db(e) => self.err(e),
            live::Failure::Refused(m) => StoreError::Refused(m),
        }
    }

    fn err(&self, source: impl Into<DbError>) -> StoreError {
        StoreError::Db {
            store: self.label.clone(),
            source: source.into(),
        }
    }

    /// Runs a query, mapping errors.
    fn rows(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, StoreError> {
        self.db.query(sql, params).map_err(|e| StoreError::Db {
            store: self.label.clone(),
            source: e,
        })
    }

    fn row(&mut self, sql: &str, params: &[Val]) -> Result<Option<Row>, StoreError> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }

    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, StoreError> {
        self.db.exec(sql, params).map_err(|e| StoreError::Db {
            store: self.label.clone(),
            source: e,
        })
    }

    /// Names the events the scorer needs (see [`CustomerFacts::events`]).
    pub fn watch_events(&mut self, names: Vec<String>) {
        self.watched = names;
    }

    /// Whether the scorer needs [`CustomerFacts::first_seen_ms`] (a query
    /// per re-score, so only when a sign-up norm exists).
    pub fn want_first_seen(&mut self, wanted: bool) {
        self.first_seen_wanted = wanted;
    }

    /// The backend's name.
    pub fn backend(&self) -> &'static str {
        if self.db.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// The schema version the store is at.
    pub fn schema_version(&mut self) -> Result<i64, StoreError> {
        Ok(self
            .row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )?
            .map_or(0, |r| r.i64(0)))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let pg = self.db.is_postgres();
        if pg {
            self.exec("SELECT pg_advisory_lock(?1)", vals![MIGRATION_LOCK])?;
        }
        let result = self.migrate_locked(pg);
        if pg {
            self.exec("SELECT pg_advisory_unlock(?1)", vals![MIGRATION_LOCK])?;
        }
        result
    }

    fn migrate_locked(&mut self, pg: bool) -> Result<(), StoreError> {
        let create = if pg {
            format!(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version BIGINT PRIMARY KEY,
                    applied_at TEXT NOT NULL DEFAULT {PG_NOW}
                )"
            )
        } else {
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
            )"
            .to_string()
        };
        self.db.batch(&create).map_err(|e| self.err(e))?;
        let current = self.schema_version()?;
        let migrations = if pg { PG_MIGRATIONS } else { MIGRATIONS };
        let known = migrations.len() as i64;
        if current > known {
            return Err(StoreError::NewerSchema {
                store: self.label.clone(),
                found: current,
                known,
            });
        }
        for (i, sql) in migrations.iter().enumerate().skip(current.max(0) as usize) {
            let sql = sql.replace("{NOW}", PG_NOW);
            let applied = (|| -> Result<(), DbError> {
                self.db.begin()?;
                self.db.batch(&sql)?;
                self.db.exec(
                    "INSERT INTO schema_migrations (version) VALUES (?1)",
                    vals![i as i64 + 1],
                )?;
                self.db.commit()
            })();
            if let Err(e) = applied {
                self.db.rollback();
                return Err(self.err(e));
            }
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
        let db = &mut self.db;
        let run = (|| -> Result<ImportStats, DbError> {
            db.begin()?;
            let mut stats = ImportStats::default();
            let mut position = db
                .query_one("SELECT COALESCE(MAX(position), -1) + 1 FROM customers", &[])?
                .map_or(0, |r| r.i64(0));
            let mut failure = None;
            builder.for_each_customer_orders(as_of, |id, entries| {
                if failure.is_some() {
                    return;
                }
                let result = (|| -> Result<(), DbError> {
                    if db.exec(
                        "INSERT INTO customers (customer_id, position) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                        vals![id, position],
                    )? > 0
                    {
                        stats.customers_new += 1;
                        position += 1;
                    }
                    let changed_before = stats.orders_new + stats.orders_updated;
                    for e in entries {
                        let values = vals![id, e.day, e.key as i64, e.amount, e.rows as i64, e.is_order];
                        if db.exec(
                            "INSERT INTO orders (customer_id, day, order_key, amount, rows, is_order)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                            values,
                        )? > 0
                        {
                            stats.orders_new += 1;
                        } else if db.exec(
                            "UPDATE orders SET amount = ?4, rows = ?5, is_order = ?6
                             WHERE customer_id = ?1 AND day = ?2 AND order_key = ?3
                               AND (amount != ?4 OR rows != ?5 OR is_order != ?6)",
                            values,
                        )? > 0
                        {
                            stats.orders_updated += 1;
                        } else {
                            stats.orders_unchanged += 1;
                        }
                    }
                    if stats.orders_new + stats.orders_updated > changed_before {
                        // The live engine's kept summary no longer covers
                        // every order: the next re-score reads them all.
                        db.exec(
                            "UPDATE profiles SET order_summary = NULL WHERE customer_id = ?1",
                            vals![id],
                        )?;
                    }
                    Ok(())
                })();
                if let Err(e) = result {
                    failure = Some(e);
                }
            });
            if let Some(e) = failure {
                return Err(e);
            }
            db.exec(
                "INSERT INTO imports (source, customers_new, orders_new, orders_updated, orders_unchanged)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                vals![
                    source,
                    stats.customers_new as i64,
                    stats.orders_new as i64,
                    stats.orders_updated as i64,
                    stats.orders_unchanged as i64
                ],
            )?;
            db.commit()?;
            Ok(stats)
        })();
        run.map_err(|e| {
            self.db.rollback();
            self.err(e)
        })
    }

    /// Creates a key of `kind` from 24 bytes of the OS's randomness and
    /// returns it; only its hash is stored, so it cannot be shown again.
    pub fn create_key(&mut self, kind: KeyKind) -> Result<String, StoreError> {
        let prefix = match kind {
            KeyKind::Public => "pk",
            KeyKind::Write => "wk",
            KeyKind::Secret => "sk",
        };
        let key = format!("{prefix}_{}", random_hex(24)?);
        self.exec(
            "INSERT INTO api_keys (key_hash, kind) VALUES (?1, ?2)",
            vals![key_hash(&key), kind.name()],
        )?;
        Ok(key)
    }

    /// A random secret kept in the store under `name` (made on first use,
    /// the same for every instance): e.g. the key that signs unsubscribe
    /// links.
    pub fn secret(&mut self, name: &str) -> Result<String, StoreError> {
        if let Some(r) = self.row("SELECT value FROM secrets WHERE name = ?1", vals![name])? {
            return Ok(r.text(0));
        }
        let value = random_hex(32)?;
        self.exec(
            "INSERT INTO secrets (name, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            vals![name, &value],
        )?;
        // Another instance may have made it first: theirs wins.
        Ok(self
            .row("SELECT value FROM secrets WHERE name = ?1", vals![name])?
            .map_or(value, |r| r.text(0)))
    }

    /// The kind of `key`, or `None` for an unknown key.
    pub fn key_kind(&mut self, key: &str) -> Result<Option<KeyKind>, StoreError> {
        Ok(self
            .row(
                "SELECT kind FROM api_keys WHERE key_hash = ?1",
                vals![key_hash(key)],
            )?
            .and_then(|r| KeyKind::parse(&r.text(0))))
    }

    /// Every stored customer's orders, as a builder to finish or analyze
    /// (customers in the order they first appeared).
    pub fn load(&mut self) -> Result<SummaryBuilder, StoreError> {
        let mut builder = SummaryBuilder::new();
        let label = self.label.clone();
        self.db
            .query_each(
                "SELECT o.customer_id, c.position, o.day, o.order_key, o.amount, o.rows, o.is_order
                 FROM orders o JOIN customers c ON c.customer_id = o.customer_id
                 ORDER BY c.position, o.customer_id, o.day, o.order_key",
                &[],
                &mut |r: &Row| {
                    builder.add_entry(
                        &r.text(0),
                        r.i64(1).max(0) as u64,
                        OrderEntry {
                            day: r.i32(2),
                            key: r.i64(3) as u64,
                            amount: r.f64(4),
                            rows: r.i64(5).max(0) as u64,
                            is_order: r.bool(6),
                        },
                    );
                },
            )
            .map_err(|source| StoreError::Db {
                store: label,
                source,
            })?;
        Ok(builder)
    }

    /// How many customers and orders the store holds.
    pub fn counts(&mut self) -> Result<StoreCounts, StoreError> {
        let customers = self
            .row("SELECT COUNT(*) FROM customers", &[])?
            .map_or(0, |r| r.i64(0));
        let r = self.row(
            "SELECT CAST(COALESCE(SUM(is_order), 0) AS BIGINT), CAST(COALESCE(SUM(1 - is_order), 0) AS BIGINT), SUM(amount) FROM orders",
            &[],
        )?;
        let (orders, refunds, amount) =
            r.map_or((0, 0, None), |r| (r.i64(0), r.i64(1), r.opt_f64(2)));
        Ok(StoreCounts {
            customers: customers.max(0) as u64,
            orders: orders.max(0) as u64,
            refunds: refunds.max(0) as u64,
            amount: amount.unwrap_or(0.0),
        })
    }

    /// The last import's source and when it ran, if any.
    pub fn last_import(&mut self) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .row(
                "SELECT source, at FROM imports ORDER BY id DESC LIMIT 1",
                &[],
            )?
            .map(|r| (r.text(0), r.text(1))))
    }
}

/// Test support: a fresh PostgreSQL database for each test.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU32, Ordering};

    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);

    /// The URL of a new, empty database: on the server named by
    /// `LIFECYCLE_TEST_POSTGRES` (a URL whose user may create databases),
    /// or on a throw-away server that `scripts/pg-throwaway.sh` starts once
    /// per test process (installing PostgreSQL if needed) and stops when
    /// the process ends.
    pub fn postgres_database() -> Result<String, String> {
        let base = SERVER
            .get_or_init(|| {
                if let Ok(url) = std::env::var("LIFECYCLE_TEST_POSTGRES") {
                    return Ok(url);
                }
                let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../scripts/pg-throwaway.sh");
                let out = std::process::Command::new("bash")
                    .arg(&script)
                    .arg(std::process::id().to_string())
                    .output()
                    .map_err(|e| format!("{}: {e}", script.display()))?;
                if !out.status.success() {
                    return Err(format!(
                        "{} failed: {}",
                        script.display(),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
            })
            .clone()?;
        let name = format!(
            "lc_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut client = postgres::Client::connect(&base, postgres::NoTls)
            .map_err(|e| format!("{base}: {e}"))?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|e| format!("{base}: {e}"))?;
        let (server, _) = base
            .rsplit_once('/')
            .ok_or_else(|| format!("{base}: no database in the URL"))?;
        Ok(format!("{server}/{name}"))
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
        assert_eq!(
            StoreUrl::parse("postgres://lc:s3cret@db:5432/x")
                .unwrap()
                .label(),
            "postgres://lc:***@db:5432/x"
        );
    }

    /// Runs `body` on SQLite with the events in their table, on SQLite with
    /// them in the tree beside the file (see `lsm.rs`), and on PostgreSQL.
    fn both(name: &str, body: impl Fn(StoreUrl)) {
        let dir = tempfile::tempdir().unwrap();
        let table = StoreUrl::Sqlite(dir.path().join(format!("{name}.db")));
        drop(Store::open_with(&table, EventsIn::Table).unwrap());
        body(table);
        let treed = StoreUrl::Sqlite(dir.path().join(format!("{name}-tree.db")));
        drop(Store::open_with(&treed, EventsIn::Default).unwrap());
        body(treed);
        let pg = testing::postgres_database()
            .unwrap_or_else(|e| panic!("no PostgreSQL for the tests: {e}"));
        body(StoreUrl::Postgres(pg));
    }

    #[test]
    fn migrations_apply_once_and_refuse_a_newer_schema() {
        assert_eq!(MIGRATIONS.len(), PG_MIGRATIONS.len());
        both("s", |url| {
            let mut store = Store::open(&url).unwrap();
            assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
            drop(store);
            let mut store = Store::open(&url).unwrap();
            assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
            store
                .exec("INSERT INTO schema_migrations (version) VALUES (99)", &[])
                .unwrap();
            drop(store);
            let e = Store::open(&url).err().unwrap().to_string();
            assert!(e.contains("schema version 99"), "{e}");
        });
    }

    /// On PostgreSQL, every primary key and unique index of the tables that
    /// grow with customers includes the column they would be distributed by
    /// (Citus' rule for distributed tables): customer id, or the alias for
    /// identities. Every other table is small (a reference table).
    #[test]
    fn large_tables_are_keyed_by_customer_on_postgres() {
        let pg = testing::postgres_database()
            .unwrap_or_else(|e| panic!("no PostgreSQL for the tests: {e}"));
        drop(Store::open(&StoreUrl::Postgres(pg.clone())).unwrap());
        let rows = query_postgres(
            &pg,
            "SELECT t.relname::text, i.relname::text,
                    array_to_string(array_agg(a.attname::text ORDER BY a.attname), ',')
             FROM pg_index x
             JOIN pg_class t ON t.oid = x.indrelid
             JOIN pg_class i ON i.oid = x.indexrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(x.indkey)
             WHERE x.indisunique
             GROUP BY t.relname, i.relname",
        )
        .unwrap();
        let by_customer = [
            "customers",
            "orders",
            "events",
            "profiles",
            "traits",
            "merges",
            "moment_timers",
            "enrolments",
            "outbox",
        ];
        let mut seen = std::collections::BTreeSet::new();
        for r in &rows {
            let text = |k: usize| r[k].as_str().unwrap_or("").to_string();
            let (table, index, columns) = (text(0), text(1), text(2));
            let columns: Vec<&str> = columns.split(',').collect();
            let key = if table == "identities" {
                "id"
            } else if by_customer.contains(&table.as_str()) {
                "customer_id"
            } else {
                continue;
            };
            assert!(
                columns.contains(&key),
                "{table}: unique index {index} ({columns:?}) does not include {key}"
            );
            seen.insert(table);
        }
        for t in by_customer.iter().chain(&["identities"]) {
            assert!(seen.contains(*t), "{t} has no primary key");
        }
    }

    /// Import then load gives the same summaries; order keys with the top
    /// bit set survive SQLite's signed integers; a second import changes
    /// nothing; a changed amount is an update.
    #[test]
    fn import_load_roundtrip() {
        both("i", import_load_roundtrip_on);
    }

    /// A read connection's page cache is bounded; the writer's stays 64 MB
    /// (16 MB when the events are in the tree: the file then holds orders
    /// and profiles).
    #[test]
    fn a_reader_cache_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let size = |s: &mut Store| s.row("PRAGMA cache_size", &[]).unwrap().unwrap().i64(0);
        for (name, events, writer_kib) in [
            ("table.db", EventsIn::Table, 65_536),
            ("tree.db", EventsIn::Default, 16_384),
        ] {
            let url = StoreUrl::Sqlite(dir.path().join(name));
            let mut writer = Store::open_with(&url, events).unwrap();
            let mut reader = Store::open(&url).unwrap();
            reader.limit_page_cache(8_192).unwrap();
            assert_eq!(size(&mut reader), -8_192);
            assert_eq!(size(&mut writer), -writer_kib, "{name}");
        }
    }

    /// A new order after every stored one is added to the kept summary
    /// (the scorer gets the summary, not the history); a late order, a
    /// correction, a future-dated order or an import make the next re-score
    /// read the whole history. Either way the kept summary is the history's.
    #[test]
    fn kept_order_summary_follows_the_orders() {
        both("k", kept_order_summary_follows_the_orders_on);
    }

    fn kept_order_summary_follows_the_orders_on(url: StoreUrl) {
        use crate::live::KeptSummary;
        let mut store = Store::open(&url).unwrap();
        let paths = std::cell::RefCell::new(Vec::new());
        let recording = |f: &CustomerFacts<'_>| {
            paths.borrow_mut().push(f.summary.is_some());
            toy_scorer(f)
        };
        let scorer: Scorer<'_> = &recording;
        let order = |id: &str, key, day, amount, refund, at_ms| NewEvent {
            at_ms,
            ..order_event("k1", id, key, day, amount, refund)
        };
        let now = 10_000;
        let steps = [
            // (message, key, day, amount, refund, at_ms, summary given)
            ("o1", 1, 100, 30.0, false, 1_000, false), // a new profile
            ("o2", 2, 101, 35.25, false, 2_000, true),
            ("o3", 3, 101, 7.5, true, 2_500, true), // a refund
            ("o4", 4, 101, 0.1, false, 3_000, true), // same day
            ("o5", 5, 99, 12.0, false, 3_000, false), // late
            ("o6", 2, 101, 36.0, false, 4_000, false), // o2 corrected
            ("o7", 7, 120, 0.2, false, 5_000, true),
            ("o8", 8, 130, 9.0, false, now + 1, false), // from the future
            ("o9", 9, 131, 0.3, false, 6_000, true),
        ];
        let kept = |store: &mut Store| {
            let text = store
                .row(
                    "SELECT order_summary FROM profiles WHERE customer_id = 'k1'",
                    &[],
                )
                .unwrap()
                .and_then(|r| r.opt_text(0));
            let entries: Vec<OrderEntry> = store
                .rows(
                    "SELECT day, order_key, amount, rows, is_order FROM orders
                     WHERE customer_id = 'k1' ORDER BY day, order_key",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| OrderEntry {
                    day: r.i32(0),
                    key: r.i64(1) as u64,
                    amount: r.f64(2),
                    rows: r.i64(3) as u64,
                    is_order: r.bool(4),
                })
                .collect();
            (
                text.as_deref().and_then(KeptSummary::parse),
                KeptSummary::of(&entries),
            )
        };
        for (i, (id, key, day, amount, refund, at_ms, summary_given)) in steps.iter().enumerate() {
            paths.borrow_mut().clear();
            store
                .ingest(
                    &[vec![order(id, *key, *day, *amount, *refund, *at_ms)]],
                    scorer,
                    now,
                )
                .unwrap();
            assert_eq!(
                paths.borrow().first(),
                Some(summary_given),
                "{url:?} step {i} ({id})"
            );
            let (got, want) = kept(&mut store);
            let got = got.unwrap_or_else(|| panic!("step {i}: no summary kept"));
            assert!(
                got.close_to(&want),
                "{url:?} step {i} ({id}): {got:?} vs {want:?}"
            );
        }
        let profile = store.customer("k1", 0).unwrap().unwrap().profile.unwrap();
        assert_eq!(profile.n_orders, 7);
        assert!(
            (profile.total_spend - (30.0 + 36.0 - 7.5 + 0.1 + 12.0 + 0.2 + 9.0 + 0.3)).abs() < 1e-9
        );

        // An import that changes k1's orders drops the kept summary; the
        // next order reads the history again.
        let mut b = SummaryBuilder::new();
        b.add_order(
            "k1",
            0,
            lifecycle_rfm::OrderRow {
                day: 131,
                order_key: 77,
                amount: 5.0,
                is_order_total: false,
            },
        );
        store.import(&b, 200, "more").unwrap();
        assert_eq!(kept(&mut store).0, None);
        paths.borrow_mut().clear();
        store
            .ingest(
                &[vec![order("o10", 10, 140, 1.0, false, 7_000)]],
                scorer,
                now,
            )
            .unwrap();
        assert_eq!(paths.borrow().first(), Some(&false));
        let (got, want) = kept(&mut store);
        assert!(got.unwrap().close_to(&want));
        assert_eq!(
            store
                .customer("k1", 0)
                .unwrap()
                .unwrap()
                .profile
                .unwrap()
                .n_orders,
            9
        );
    }

    fn import_load_roundtrip_on(url: StoreUrl) {
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
        let (orders, spend, last) = match f.summary {
            Some(s) => (i64::from(s.n_orders), s.total_spend, s.last_order),
            None => (
                f.entries.iter().filter(|e| e.is_order).count() as i64,
                f.entries.iter().map(|e| e.amount).sum(),
                f.entries.iter().filter(|e| e.is_order).map(|e| e.day).max(),
            ),
        };
        ProfileRow {
            n_orders: orders,
            total_spend: spend,
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

    /// `Order Completed` (or `Order Refunded`) of `user` for order `key`.
    fn order_event(
        user: &str,
        id: &str,
        key: u64,
        day: lifecycle_rfm::Day,
        amount: f64,
        refund: bool,
    ) -> NewEvent {
        let name = if refund {
            "Order Refunded"
        } else {
            "Order Completed"
        };
        NewEvent {
            event: Some(name.into()),
            order: Some(EventOrder {
                order_key: key,
                day,
                amount,
                refund,
            }),
            ..track(Some(user), None, id)
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

    /// A batch committed to SQLite whose changes never reached the tree (the
    /// process stopped in between) is applied when the store is next
    /// opened; applied batches leave the log once the tree is synced.
    #[test]
    fn the_tree_replays_committed_batches_it_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        drop(lsm::EventLsm::open(&path).unwrap());
        let url = StoreUrl::Sqlite(path.clone());
        let scorer: Scorer<'_> = &toy_scorer;
        let mut store = Store::open(&url).unwrap();
        store
            .ingest(&[vec![track(Some("u"), None, "m1")]], scorer, 1_000)
            .unwrap();
        // As a transaction that committed and stopped before its apply.
        let mut ops = lsm::Ops::new();
        lsm::put_event(
            &mut ops,
            "u",
            &lsm::StoredEventRef {
                message_id: "m2",
                kind: "track",
                event: Some("Product Viewed"),
                at_ms: 2_000,
                received_ms: 2_000,
                payload: "{}",
            },
        );
        store.db.log_ops(&lsm::encode_ops(&ops)).unwrap();
        drop(store);
        let mut store = Store::open(&url).unwrap();
        let ids: Vec<String> = store
            .recent_events("u", 10)
            .unwrap()
            .into_iter()
            .map(|e| e.message_id)
            .filter(|m| !m.starts_with("segment-"))
            .collect();
        assert_eq!(ids, ["m2", "m1"]);
        // A re-send of the replayed message is a duplicate.
        let stats = store
            .ingest(&[vec![track(Some("u"), None, "m2")]], scorer, 3_000)
            .unwrap();
        assert_eq!((stats[0].inserted, stats[0].duplicates), (0, 1));
        // The log keeps at most the batches since the last sync.
        std::thread::sleep(std::time::Duration::from_millis(1_100));
        for n in 3..6 {
            store
                .ingest(
                    &[vec![track(Some("u"), None, &format!("m{n}"))]],
                    scorer,
                    4_000,
                )
                .unwrap();
        }
        let logged = store
            .row("SELECT COUNT(*) FROM event_ops", &[])
            .unwrap()
            .unwrap()
            .i64(0);
        assert!(logged <= 3, "{logged} batches still logged");
        assert!(
            store.row("SELECT 1 FROM events", &[]).unwrap().is_none(),
            "nothing in the events table"
        );
    }

    /// A new store keeps its events in the tree unless asked for the
    /// table.
    #[test]
    fn a_new_store_has_a_tree_unless_asked_for_the_table() {
        let dir = tempfile::tempdir().unwrap();
        for (name, events, tree) in [
            ("d.db", EventsIn::Default, true),
            ("t.db", EventsIn::Tree, true),
            ("s.db", EventsIn::Table, false),
        ] {
            let path = dir.path().join(name);
            let mut store = Store::open_with(&StoreUrl::Sqlite(path.clone()), events).unwrap();
            assert_eq!(store.tree().unwrap().is_some(), tree, "{name}");
            assert_eq!(lsm::EventLsm::exists(&path), tree, "{name}");
            drop(store);
            // Reopened either way, it keeps them where they are.
            for again in [EventsIn::Default, EventsIn::Table] {
                let mut store = Store::open_with(&StoreUrl::Sqlite(path.clone()), again).unwrap();
                assert_eq!(store.tree().unwrap().is_some(), tree, "{name} {again:?}");
            }
        }
    }

    /// A store that kept its events in the table moves them into the tree
    /// when it gets one, and answers the same.
    #[test]
    fn events_move_from_the_table_into_a_new_tree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let url = StoreUrl::Sqlite(path.clone());
        let scorer: Scorer<'_> = &toy_scorer;
        let mut store = Store::open_with(&url, EventsIn::Table).unwrap();
        let batch: Vec<NewEvent> = (0..25_000)
            .map(|i| NewEvent {
                at_ms: i64::from(i % 97) * 1_000,
                ..track(Some(&format!("c{}", i % 50)), None, &format!("m{i}"))
            })
            .collect();
        store.ingest(&[batch], scorer, 1_000).unwrap();
        let before: Vec<StoredEvent> = store.all_events().unwrap();
        let view = store.recent_events("c7", 50).unwrap();
        assert!(before.len() > 25_000, "segment events too");
        assert!(store.row("SELECT 1 FROM events", &[]).unwrap().is_some());
        drop(store);
        // Opened as usual, it keeps them in the table; asked, it moves them.
        let mut store = Store::open_with(&url, EventsIn::Default).unwrap();
        assert_eq!(store.all_events().unwrap().len(), before.len());
        drop(store);
        assert!(!lsm::EventLsm::exists(&path));
        let mut store = Store::open_with(&url, EventsIn::Tree).unwrap();
        let mut after = store.all_events().unwrap();
        assert!(store.row("SELECT 1 FROM events", &[]).unwrap().is_none());
        let key = |e: &StoredEvent| (e.customer_id.clone(), e.message_id.clone());
        let mut before = before;
        before.sort_by_key(key);
        after.sort_by_key(key);
        assert_eq!(after, before);
        assert_eq!(store.event_count().unwrap(), before.len() as u64);
        assert_eq!(store.recent_events("c7", 50).unwrap(), view);
    }

    /// A connection counts the time of the write transactions it
    /// committed, split into statements and the commit; a rolled-back one
    /// does not count.
    #[test]
    fn write_time_counts_committed_transactions() {
        both("w", |url| {
            let mut store = Store::open(&url).unwrap();
            let scorer: Scorer<'_> = &toy_scorer;
            assert_eq!(store.write_time(), WriteTime::default());
            store
                .ingest(&[vec![track(Some("u"), None, "m1")]], scorer, 1_000)
                .unwrap();
            let once = store.write_time();
            assert_eq!(once.transactions, 1);
            assert!(once.work > std::time::Duration::ZERO);
            assert!(once.commit > std::time::Duration::ZERO);
            assert!(
                store
                    .ingest(&[vec![track(None, None, "m2")]], scorer, 2_000)
                    .is_err()
            );
            assert_eq!(store.write_time(), once);
        });
    }

    /// Every order of a segment's list, page by page through its keyset
    /// cursor: each customer with a value exactly once, in order, ties by
    /// id; segment moves are counted by day.
    #[test]
    fn sorted_pages_and_segment_moves() {
        both("o", sorted_pages_and_segment_moves_on);
    }

    fn sorted_pages_and_segment_moves_on(url: StoreUrl) {
        let mut store = Store::open(&url).unwrap();
        let scorer: Scorer<'_> = &toy_scorer;
        let mut batch = Vec::new();
        for i in 0..37u32 {
            let c = format!("c{i:02}");
            batch.push(NewEvent {
                event: Some("Order Completed".into()),
                order: Some(EventOrder {
                    order_key: u64::from(i),
                    // Many ties: 5 days, 4 amounts.
                    day: 100 + (i % 5) as i32,
                    amount: f64::from(10 * (i % 4)),
                    refund: false,
                }),
                ..track(Some(&c), None, &format!("o{i}"))
            });
        }
        batch.push(track(Some("visitor"), None, "v"));
        store.ingest(&[batch], scorer, 86_400_000 * 3).unwrap();
        for order in ProfileOrder::ALL {
            let mut seen: Vec<ProfileRow> = Vec::new();
            let mut filter = ProfileFilter {
                segment: Some("Buyers".into()),
                limit: 4,
                order,
                ..ProfileFilter::default()
            };
            for _ in 0..100 {
                let page = store.profiles(&filter).unwrap();
                let Some(last) = page.last() else { break };
                filter.after = Some(last.customer_id.clone());
                filter.after_value = order.value_of(last);
                seen.extend(page);
            }
            let value = |p: &ProfileRow| order.value_of(p);
            let mut expected: Vec<ProfileRow> = store
                .profiles(&ProfileFilter {
                    segment: Some("Buyers".into()),
                    limit: 100,
                    ..ProfileFilter::default()
                })
                .unwrap()
                .into_iter()
                .filter(|p| order == ProfileOrder::CustomerId || value(p).is_some())
                .collect();
            let desc = matches!(
                order,
                ProfileOrder::ClvHighest
                    | ProfileOrder::SpendHighest
                    | ProfileOrder::LastOrderNewest
            );
            expected.sort_by(|a, b| {
                let by = value(a)
                    .partial_cmp(&value(b))
                    .unwrap()
                    .then_with(|| a.customer_id.cmp(&b.customer_id));
                if desc { by.reverse() } else { by }
            });
            let ids =
                |v: &[ProfileRow]| v.iter().map(|p| p.customer_id.clone()).collect::<Vec<_>>();
            assert_eq!(ids(&seen), ids(&expected), "{order:?}");
            assert_eq!(ProfileOrder::parse(order.key()), Some(order));
        }
        // The toy scorer values nobody: the CLV orders list no one.
        assert!(
            store
                .profiles(&ProfileFilter {
                    order: ProfileOrder::ClvHighest,
                    limit: 10,
                    ..ProfileFilter::default()
                })
                .unwrap()
                .is_empty()
        );
        // 37 new buyers and a visitor arrived on day 3.
        let moves = store.segment_moves(0).unwrap();
        let arrivals: u64 = moves
            .iter()
            .filter(|m| m.from.is_empty())
            .map(|m| m.customers)
            .sum();
        assert_eq!(arrivals, 38);
        assert!(moves.iter().all(|m| m.day == 3));
        assert!(store.segment_moves(4).unwrap().is_empty());
    }

    #[test]
    fn events_orders_identity_and_segments() {
        both("e", events_orders_identity_and_segments_on);
    }

    fn events_orders_identity_and_segments_on(url: StoreUrl) {
        let mut store = Store::open(&url).unwrap();
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
        let order = |id: &str, day, amount, refund| order_event("u1", id, 42, day, amount, refund);
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
        // A late retry of the first message is a duplicate: the correction stays.
        let s = store
            .ingest(&[vec![order("o1", 100, 30.0, false)]], scorer, 4_500)
            .unwrap();
        assert_eq!((s[0].duplicates, s[0].orders_updated), (1, 0));
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

    /// Retention deletes raw events only: orders, profiles and the
    /// customer's standing outlive it.
    #[test]
    fn expired_events_leave_orders_and_profiles() {
        both("r", |url| {
            let mut store = Store::open(&url).unwrap();
            let scorer: Scorer<'_> = &toy_scorer;
            let order = NewEvent {
                event: Some("Order Completed".into()),
                received_ms: 1_000,
                order: Some(EventOrder {
                    order_key: 1,
                    day: 100,
                    amount: 20.0,
                    refund: false,
                }),
                ..track(Some("u"), None, "old")
            };
            let recent = NewEvent {
                received_ms: 9_000,
                ..track(Some("u"), None, "new")
            };
            store.ingest(&[vec![order, recent]], scorer, 9_000).unwrap();
            // The segment event was written at 9_000 too.
            assert_eq!(store.expire_events(5_000).unwrap(), 1);
            let view = store.customer("u", 50).unwrap().unwrap();
            assert!(view.events.iter().all(|e| e.message_id != "old"));
            assert!(view.events.iter().any(|e| e.message_id == "new"));
            assert_eq!(view.profile.unwrap().n_orders, 1);
            assert_eq!(store.counts().unwrap().orders, 1);
        });
    }

    #[test]
    fn keys_are_stored_hashed_and_checked() {
        both("k", keys_on);
    }

    fn keys_on(url: StoreUrl) {
        let mut store = Store::open(&url).unwrap();
        let key = store.create_key(KeyKind::Write).unwrap();
        assert!(key.starts_with("wk_") && key.len() == 51, "{key}");
        assert_eq!(store.key_kind(&key).unwrap(), Some(KeyKind::Write));
        assert_eq!(store.key_kind("wk_nope").unwrap(), None);
        let stored = store
            .row("SELECT key_hash FROM api_keys", &[])
            .unwrap()
            .unwrap()
            .text(0);
        assert!(!stored.contains(&key[3..]));
        assert_ne!(store.create_key(KeyKind::Write).unwrap(), key);
    }
}

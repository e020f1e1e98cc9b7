//! Kill -9 of `serve` during a migration, on SQLite and PostgreSQL: a store
//! one schema version behind, with a million journey enrolments so that
//! migration 11 (an index on SQLite; re-keying enrolments and the outbox on
//! PostgreSQL) takes a while, is killed while migrating; the migration is
//! all or nothing (the version and the index agree), and the next start
//! completes it with every row kept.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::process::{Command, Stdio};
use std::time::Duration;

const ROWS: i64 = 1_000_000;

fn exec(db: &str, sql: &str) {
    match db.strip_prefix("sqlite://") {
        Some(path) => rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(sql)
            .unwrap(),
        None => postgres::Client::connect(db, postgres::NoTls)
            .unwrap()
            .batch_execute(sql)
            .unwrap(),
    }
}

fn index_exists(db: &str) -> bool {
    let sql = if db.starts_with("sqlite://") {
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'enrolments_by_moment'"
    } else {
        "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'enrolments_by_moment'"
    };
    sql_count(db, sql) == 1
}

fn version(db: &str) -> i64 {
    sql_count(
        db,
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
    )
}

fn kill_during_migration(db: &str) {
    // A current store, then set back to version 10 with a million enrolments.
    drop(start(db, &["--refit-every", "off"]));
    let pg = !db.starts_with("sqlite://");
    if pg {
        exec(
            db,
            "DROP INDEX enrolments_by_moment; DROP INDEX enrolments_by_id; DROP INDEX outbox_by_key;
             ALTER TABLE enrolments DROP CONSTRAINT enrolments_pkey; ALTER TABLE enrolments ADD PRIMARY KEY (id);
             ALTER TABLE outbox DROP CONSTRAINT outbox_pkey; ALTER TABLE outbox ADD PRIMARY KEY (key);
             DELETE FROM schema_migrations WHERE version >= 11;
             CREATE INDEX events_by_time ON events (customer_id, at_ms);
             ALTER TABLE profiles DROP COLUMN order_summary;
             DROP TABLE event_ops;
             INSERT INTO enrolments (moment, version, customer_id, entered_ms, step, held_out, global_control, holdout)
               SELECT 'm', 1, 'c' || i, i, 0, 0, 0, 0 FROM generate_series(1, 1000000) i;",
        );
    } else {
        exec(
            db,
            "DROP INDEX enrolments_by_moment; DELETE FROM schema_migrations WHERE version >= 11;
             CREATE INDEX events_by_time ON events (customer_id, at_ms);
             ALTER TABLE profiles DROP COLUMN order_summary;
             DROP TABLE event_ops;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
             INSERT INTO enrolments (moment, version, customer_id, entered_ms, step, held_out, global_control, holdout)
               SELECT 'm', 1, 'c' || i, i, 0, 0, 0, 0 FROM n;",
        );
    }
    assert_eq!(version(db), 10);
    assert!(!index_exists(db));
    let mut cut = 0;
    for delay in [150u64, 400, 800] {
        if version(db) >= 11 {
            break;
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_lifecycle"))
            .args([
                "serve",
                "--db",
                db,
                "--listen",
                "127.0.0.1:0",
                "--refit-every",
                "off",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // All or nothing: the version and the index agree.
        let (v, i) = (version(db), index_exists(db));
        assert!(
            (v == 10 && !i) || (v >= 11 && i),
            "{db}: version {v}, index {i}"
        );
        cut += usize::from(v == 10);
        assert_eq!(sql_count(db, "SELECT COUNT(*) FROM enrolments"), ROWS);
    }
    assert!(cut >= 1, "{db}: no kill landed inside the migration");
    // The next start completes it.
    let server = start(db, &["--refit-every", "off"]);
    assert_eq!(request(&server.addr, "GET", "/healthz", &[], b"").0, 200);
    drop(server);
    assert_eq!(version(db), 14);
    assert!(index_exists(db));
    assert_eq!(sql_count(db, "SELECT COUNT(*) FROM enrolments"), ROWS);
    eprintln!("{db}: {cut} kill(s) inside migration 11, then completed");
}

#[test]
fn kill_9_during_a_migration_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    kill_during_migration(&format!("sqlite://{}", dir.path().join("m.db").display()));
}

#[test]
fn kill_9_during_a_migration_on_postgres() {
    kill_during_migration(&lifecycle_store::testing::postgres_database().unwrap());
}

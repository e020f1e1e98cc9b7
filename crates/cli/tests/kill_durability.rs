//! Kill -9 of `serve` during a sustained batch load: every acknowledged
//! event is in the store after the crash, none twice, and the orders they
//! carry are counted once even when the client re-sends after the restart.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Batch `b` of 50 messages: track events of 25 customers, every fifth an
/// order with its own id.
fn batch(b: usize) -> String {
    let messages: Vec<String> = (0..50)
        .map(|i| {
            let n = b * 50 + i;
            if i % 5 == 0 {
                format!(
                    r#"{{"type":"track","userId":"u{}","messageId":"m{n}","event":"Order Completed","timestamp":"2024-03-01T10:00:00Z","properties":{{"order_id":"o{n}","total":10}}}}"#,
                    n % 25
                )
            } else {
                format!(
                    r#"{{"type":"track","userId":"u{}","messageId":"m{n}","event":"Product Viewed","timestamp":"2024-03-01T10:00:00Z"}}"#,
                    n % 25
                )
            }
        })
        .collect();
    format!(r#"{{"batch":[{}]}}"#, messages.join(","))
}

/// The message ids of the load's stored events (read through the store,
/// wherever it keeps them: its events table or its tree), with the server
/// stopped.
fn load_ids(db: &str) -> Vec<String> {
    all_stored_events(db)
        .into_iter()
        .map(|e| e.message_id)
        .filter(|m| m.starts_with('m'))
        .collect()
}

/// (events from the load, distinct messageIds among them, orders).
fn counts(db: &str) -> (i64, i64, i64) {
    let (events, distinct) = stored_events(db, "m");
    (
        events,
        distinct,
        sql_count(db, "SELECT COUNT(*) FROM orders"),
    )
}

/// Whether batch `b`'s first and last messages are both stored.
fn stored(ids: &[String], b: usize) -> bool {
    let (first, last) = (format!("m{}", b * 50), format!("m{}", b * 50 + 49));
    ids.contains(&first) && ids.contains(&last)
}

/// A SQLite store with its events in the `events` table
/// (`LIFECYCLE_EVENTS_TREE=0` when it was made).
#[test]
fn kill_9_under_load_on_sqlite_with_the_events_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("k.db").display());
    key_in_a_table_store(&db, "secret");
    kill_9_under_load(&db);
    assert!(!dir.path().join("k.db.events").exists());
    assert!(sql_count(&db, "SELECT COUNT(*) FROM events") > 0);
}

/// A SQLite store with its events in its LSM tree (the default): an
/// acknowledged batch was logged in SQLite in its commit, and the tree
/// replays what it lacked at the next start.
#[test]
fn kill_9_under_load_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("k.db").display());
    kill_9_under_load(&db);
    assert!(dir.path().join("k.db.events").is_dir());
    assert_eq!(sql_count(&db, "SELECT COUNT(*) FROM events"), 0);
}

/// While `serve` holds a store's events tree, another process can still
/// use what does not touch events (creating a key), and is told why it
/// cannot do what does (a backup, an export).
#[test]
fn the_events_tree_belongs_to_the_serving_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("h.db").display());
    let key = create_key(&db, "write");
    let server = start(&db, &["--refit-every", "off"]);
    let (status, body) = request(
        &server.addr,
        "POST",
        "/v1/batch",
        &[basic(&key)],
        batch(0).as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let o = lifecycle(&["keys", "create", "--kind", "secret", "--db", &db]);
    assert!(o.status.success(), "beside serve: {}", stderr(&o));
    let out = dir.path().join("b.jsonl.gz");
    for args in [
        vec!["backup", "--db", &db, "--out", out.to_str().unwrap()],
        vec!["customers", "export", "u1", "--db", &db],
    ] {
        let o = lifecycle(&args);
        assert!(!o.status.success(), "{args:?}");
        let e = stderr(&o);
        assert!(e.contains("held by another process"), "{args:?}: {e}");
        assert!(e.contains("h.db.events"), "{args:?}: {e}");
    }
    // A backup goes through the server, and restores the events.
    let secret = create_key(&db, "secret");
    let server_url = format!("http://{}", server.addr);
    let o = lifecycle(&[
        "backup",
        "--server",
        &server_url,
        "--key",
        &secret,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let copy = format!("sqlite://{}", dir.path().join("copy.db").display());
    let o = lifecycle(&["restore", out.to_str().unwrap(), "--db", &copy]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(load_ids(&copy).len(), 50);
    // With a public key, or none, it is refused.
    let o = lifecycle(&[
        "backup",
        "--server",
        &server_url,
        "--key",
        "pk_wrong",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));
    let o = lifecycle(&["backup", "--server", &server_url, "--out", "x.gz"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    drop(server);
    // Stopped, the store is everyone's again.
    let o = lifecycle(&["customers", "export", "u1", "--db", &db]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"m1\""), "{}", stdout(&o));
}

#[test]
fn kill_9_under_load_on_postgres() {
    kill_9_under_load(&lifecycle_store::testing::postgres_database().unwrap());
}

fn kill_9_under_load(db: &str) {
    let o = lifecycle(&["keys", "create", "--kind", "write", "--db", db]);
    let key = stdout(&o).trim().to_string();
    let mut server = start(db, &["--refit-every", "off"]);
    let addr = server.addr.clone();

    // Two clients send batches as fast as they are answered.
    let acked = Arc::new(Mutex::new(Vec::<usize>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|c| {
            let (addr, key, acked, stop) = (addr.clone(), key.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut b = c;
                while !stop.load(Ordering::Relaxed) {
                    let body = batch(b);
                    let ok =
                        try_request(&addr, "POST", "/v1/batch", &[basic(&key)], body.as_bytes());
                    match ok {
                        Ok((200, _)) => acked.lock().unwrap().push(b),
                        _ => break, // the server is gone
                    }
                    b += 2;
                }
            })
        })
        .collect();
    // Let the load run (at least a dozen batches acknowledged, however
    // busy the machine), then kill -9 mid-stream.
    let started = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    while acked.lock().unwrap().len() <= 12 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "only {} batches acknowledged",
        acked.len()
    );
    eprintln!(
        "{db}: {} batches of 50 acknowledged before the kill",
        acked.len()
    );

    // Every acknowledged event is stored, once.
    let (events, distinct, orders) = counts(db);
    assert_eq!(events, distinct);
    assert!(
        events >= 50 * acked.len() as i64,
        "{events} events stored, {} acknowledged",
        50 * acked.len()
    );
    let ids = load_ids(db);
    for b in &acked {
        assert!(
            stored(&ids, *b),
            "batch {b} was acknowledged but is not stored"
        );
    }

    // The client retries everything it sent (acknowledged or not) after
    // the restart: nothing is counted twice.
    let max = acked.iter().copied().max().unwrap() + 2;
    let server = start(db, &["--refit-every", "off"]);
    for b in 0..=max {
        let (status, body) = request(
            &server.addr,
            "POST",
            "/v1/batch",
            &[basic(&key)],
            batch(b).as_bytes(),
        );
        assert_eq!(status, 200, "{body}");
    }
    drop(server);
    let (events, distinct, after) = counts(db);
    assert_eq!(events, distinct);
    assert_eq!(events, 50 * (max as i64 + 1));
    assert_eq!(after, 10 * (max as i64 + 1));
    assert!(after >= orders);
}

/// SIGTERM under load: the server stops accepting, finishes the requests in
/// flight, commits what it acknowledged and exits 0.
#[test]
fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let o = lifecycle(&["keys", "create", "--kind", "write", "--db", &db]);
    let key = stdout(&o).trim().to_string();
    let mut server = start(&db, &["--refit-every", "off"]);
    let addr = server.addr.clone();
    let acked = Arc::new(Mutex::new(Vec::<usize>::new()));
    let client = {
        let (addr, key, acked) = (addr.clone(), key.clone(), acked.clone());
        std::thread::spawn(move || {
            for b in 0.. {
                match try_request(
                    &addr,
                    "POST",
                    "/v1/batch",
                    &[basic(&key)],
                    batch(b).as_bytes(),
                ) {
                    Ok((200, _)) => acked.lock().unwrap().push(b),
                    _ => break,
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = server.child.wait().unwrap();
    client.join().unwrap();
    assert!(status.success(), "serve exited with {status}");
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());
    let ids = load_ids(&db);
    for b in &acked {
        assert!(
            stored(&ids, *b),
            "batch {b} was acknowledged but is not stored"
        );
    }
}

/// The database drops every connection under the server (as a PostgreSQL
/// restart does): the server reconnects; a request that meets the broken
/// connection gets a 503 (which Segment's libraries retry), never a 400.
#[test]
fn postgres_connections_dropped_under_the_server() {
    let db = lifecycle_store::testing::postgres_database().unwrap();
    let o = lifecycle(&["keys", "create", "--kind", "write", "--db", &db]);
    let key = stdout(&o).trim().to_string();
    let server = start(&db, &["--refit-every", "off"]);
    let send = |b: usize| {
        request(
            &server.addr,
            "POST",
            "/v1/batch",
            &[basic(&key)],
            batch(b).as_bytes(),
        )
    };
    assert_eq!(send(0).0, 200);
    let mut admin = postgres::Client::connect(&db, postgres::NoTls).unwrap();
    let killed: i64 = admin
        .query_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(killed >= 1);
    let mut statuses = Vec::new();
    for attempt in 0..3 {
        let (status, body) = send(1);
        statuses.push(status);
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "attempt {attempt}: {body}");
    }
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
    assert_eq!(
        sql_count(
            &db,
            "SELECT COUNT(*) FROM events WHERE message_id LIKE 'm%'"
        ),
        100
    );
}

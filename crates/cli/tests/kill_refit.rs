//! Kill -9 of `serve` during a model refit, three times at different
//! moments, on SQLite and PostgreSQL: after each restart the store opens,
//! the orders are all there, every customer has exactly one profile, the
//! runs recorded are whole, and a refit completes and re-scores everyone.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::time::Duration;

fn segment_total(addr: &str, secret: &str) -> i64 {
    let (status, body) = request(addr, "GET", "/api/v1/segments", &[basic(secret)], b"");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["customers"].as_i64().unwrap())
        .sum()
}

fn kill_during_refit(db: &str, customers: &str) {
    let dir = tempfile::tempdir().unwrap();
    let orders = dir.path().join("orders.csv");
    let o = lifecycle(&[
        "generate",
        "--customers",
        customers,
        "--seed",
        "3",
        "--out",
        orders.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lifecycle(&["import", orders.to_str().unwrap(), "--db", db]);
    assert!(o.status.success(), "{}", stderr(&o));
    let secret = create_key(db, "secret");
    let n_orders = sql_count(db, "SELECT COUNT(*) FROM orders");
    let n_customers = sql_count(db, "SELECT COUNT(*) FROM customers");
    let mut interrupted = 0;
    for delay_ms in [40u64, 150, 400] {
        let mut server = start(db, &["--refit-every", "off"]);
        let addr = server.addr.clone();
        let key = secret.clone();
        // The refit, answered or cut off by the kill.
        let refit = std::thread::spawn(move || {
            try_request(&addr, "POST", "/api/v1/models/refit", &[basic(&key)], b"").map(|r| r.0)
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        if refit.join().unwrap().is_err() {
            interrupted += 1;
        }
        // After the crash: everything still there, nothing half-written.
        assert_eq!(sql_count(db, "SELECT COUNT(*) FROM orders"), n_orders);
        assert_eq!(sql_count(db, "SELECT COUNT(*) FROM customers"), n_customers);
        let profiles = sql_count(db, "SELECT COUNT(*) FROM profiles");
        assert!(
            profiles == 0 || profiles == n_customers,
            "{profiles} profiles"
        );
        assert_eq!(
            sql_count(
                db,
                "SELECT COUNT(*) FROM profiles p LEFT JOIN model_runs r ON r.id = p.run_id WHERE p.run_id IS NOT NULL AND r.id IS NULL"
            ),
            0,
            "profiles point at a run that was not recorded"
        );
        // Restart: a refit completes and scores everyone.
        let server = start(db, &["--refit-every", "off"]);
        let (status, body) = request(
            &server.addr,
            "POST",
            "/api/v1/models/refit",
            &[basic(&secret)],
            b"",
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(segment_total(&server.addr, &secret), n_customers);
        drop(server);
    }
    eprintln!("{db}: {interrupted} of 3 refits cut off by the kill");
}

#[test]
fn kill_9_during_refit_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    kill_during_refit(
        &format!("sqlite://{}", dir.path().join("r.db").display()),
        "20000",
    );
}

#[test]
fn kill_9_during_refit_on_postgres() {
    kill_during_refit(
        &lifecycle_store::testing::postgres_database().unwrap(),
        "3000",
    );
}

//! Two `serve` instances on one PostgreSQL database, events for the same
//! customers arriving at both at once: every order is stored once and
//! every profile counts all of the customer's orders (the re-score of a
//! customer locks their row, so the later of two transactions sees the
//! other's orders).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use serde_json::Value;

const ROUNDS: usize = 80;

/// Round `r` at instance `i`: one order of customer `shared-r` (1 at
/// instance 0, 2 at instance 1) among page views of other visitors, so
/// that the two instances' transactions overlap for that customer.
fn order_batch(i: usize, r: usize) -> String {
    let mut messages: Vec<String> = (0..40)
        .map(|k| {
            format!(
                r#"{{"type":"page","anonymousId":"v{i}-{r}-{k}","messageId":"p{i}-{r}-{k}","name":"Home"}}"#
            )
        })
        .collect();
    messages.insert(
        20,
        format!(
            r#"{{"type":"track","userId":"shared-{r}","messageId":"o{i}-{r}","event":"Order Completed","timestamp":"2024-03-01T10:00:00Z","properties":{{"order_id":"o{i}-{r}","total":{}}}}}"#,
            1 + i
        ),
    );
    format!(r#"{{"batch":[{}]}}"#, messages.join(","))
}

#[test]
fn two_instances_keep_every_profile_correct() {
    let db = lifecycle_store::testing::postgres_database().unwrap();
    let o = lifecycle(&["keys", "create", "--kind", "write", "--db", &db]);
    assert!(o.status.success(), "{}", stderr(&o));
    let write = stdout(&o).trim().to_string();
    let o = lifecycle(&["keys", "create", "--kind", "secret", "--db", &db]);
    let secret = stdout(&o).trim().to_string();
    let servers = [
        start(&db, &["--refit-every", "off"]),
        start(&db, &["--refit-every", "off"]),
    ];
    // The customers exist already (so nothing else serialises the two
    // instances' transactions than the profile's row lock).
    let known: Vec<String> = (0..ROUNDS)
        .map(|r| {
            format!(r#"{{"type":"identify","userId":"shared-{r}","messageId":"id-{r}","traits":{{"plan":"x"}}}}"#)
        })
        .collect();
    let (status, text) = request(
        &servers[0].addr,
        "POST",
        "/v1/batch",
        &[basic(&write)],
        format!(r#"{{"batch":[{}]}}"#, known.join(",")).as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    // Each instance gets its own client; in every round both send an
    // order of the same customer at the same moment.
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        for (i, server) in servers.iter().enumerate() {
            let (addr, write, barrier) = (server.addr.clone(), write.clone(), &barrier);
            scope.spawn(move || {
                for r in 0..ROUNDS {
                    let body = order_batch(i, r);
                    barrier.wait();
                    let (status, text) = request(
                        &addr,
                        "POST",
                        "/v1/batch",
                        &[basic(&write)],
                        body.as_bytes(),
                    );
                    assert_eq!(status, 200, "{text}");
                }
            });
        }
    });
    assert_eq!(
        sql_count(&db, "SELECT COUNT(*) FROM orders"),
        (2 * ROUNDS) as i64
    );
    let mut wrong = Vec::new();
    for r in 0..ROUNDS {
        let (status, body) = request(
            &servers[r % 2].addr,
            "GET",
            &format!("/api/v1/customers/shared-{r}"),
            &[("Authorization", format!("Bearer {secret}"))],
            b"",
        );
        assert_eq!(status, 200, "{body}");
        let view: Value = serde_json::from_str(&body).unwrap();
        // Both instances' orders: 2 orders, 1 + 2.
        if view["orders"]["count"] != 2 || view["orders"]["total_spend"] != 3.0 {
            wrong.push(format!("shared-{r}: {}", view["orders"]));
        }
    }
    assert!(wrong.is_empty(), "profiles missing an order: {wrong:?}");

    // A model run made by one instance is adopted by the other (at its
    // next due-time pass, within a few seconds).
    let auth = [("Authorization", format!("Bearer {secret}"))];
    let (status, body) = request(&servers[0].addr, "POST", "/api/v1/models/refit", &auth, b"");
    assert_eq!(status, 200, "{body}");
    let run: Value = serde_json::from_str(&body).unwrap();
    let started = std::time::Instant::now();
    loop {
        let (_, body) = request(&servers[1].addr, "GET", "/api/v1/segments", &auth, b"");
        let segments: Value = serde_json::from_str(&body).unwrap();
        if segments["model_run"] == run["id"] {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 10,
            "instance 2 still on run {} after 10 s, instance 1 made {}",
            segments["model_run"],
            run["id"]
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

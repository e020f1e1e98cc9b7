//! `lifecycle serve` end to end through the real binary and plain HTTP/1.1:
//! health, write-key authentication (Basic, key as user name), single
//! messages and gzip batches of Segment's tracking API, messageId
//! de-duplication, the spec's size limits as 400s that say which, and the
//! events durably in the store when the answer arrives.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::io::Write;

#[test]
fn segment_ingestion_through_the_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let db = format!("sqlite://{}", path.display());
    let o = lifecycle(&["keys", "create", "--kind", "write", "--db", &db]);
    assert!(o.status.success(), "{}", stderr(&o));
    let key = stdout(&o).trim().to_string();
    let server = start(&db, &[]);
    let addr = server.addr.as_str();

    assert_eq!(
        request(addr, "GET", "/healthz", &[], b""),
        (200, "ok".to_string())
    );

    let track = br#"{"userId":"u1","event":"Order Completed","messageId":"m-1",
        "timestamp":"2024-05-01T10:00:00Z","properties":{"order_id":"o-1","total":27.5}}"#;
    // No key, a wrong key: 401 without detail.
    let (status, body) = request(addr, "POST", "/v1/track", &[], track);
    assert_eq!((status, body.contains("unauthorized")), (401, true));
    let (status, _) = request(addr, "POST", "/v1/track", &[basic("wk_wrong")], track);
    assert_eq!(status, 401);

    let auth = basic(&key);
    let (status, body) = request(
        addr,
        "POST",
        "/v1/track",
        std::slice::from_ref(&auth),
        track,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""stored":1"#), "{body}");
    assert!(body.contains(r#""orders_new":1"#), "{body}");
    // The same message again (a client retry): a duplicate, stored once.
    let (_, body) = request(
        addr,
        "POST",
        "/v1/track",
        std::slice::from_ref(&auth),
        track,
    );
    assert!(body.contains(r#""duplicates":1"#), "{body}");

    // A gzip batch.
    let batch = br#"{"batch":[
        {"type":"identify","userId":"u1","messageId":"m-2","traits":{"email":"ann@example.com"}},
        {"type":"page","anonymousId":"a-9","messageId":"m-3","name":"Home"}
    ],"sentAt":"2024-05-01T10:00:05Z"}"#;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(batch).unwrap();
    let gz = gz.finish().unwrap();
    let (status, body) = request(
        addr,
        "POST",
        "/v1/batch",
        &[auth.clone(), ("Content-Encoding", "gzip".into())],
        &gz,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""stored":2"#), "{body}");

    // Limits and bad messages: 400 saying what is wrong.
    let big = format!(
        r#"{{"userId":"u1","event":"x","properties":{{"p":"{}"}}}}"#,
        "a".repeat(40_000)
    );
    let (status, body) = request(
        addr,
        "POST",
        "/v1/track",
        std::slice::from_ref(&auth),
        big.as_bytes(),
    );
    assert_eq!(status, 400);
    assert!(body.contains("32 KB"), "{body}");
    let (status, body) = request(
        addr,
        "POST",
        "/v1/track",
        std::slice::from_ref(&auth),
        br#"{"event":"x"}"#,
    );
    assert_eq!(status, 400);
    assert!(body.contains("userId or an anonymousId"), "{body}");
    let (status, _) = request(
        addr,
        "POST",
        "/v1/purchase",
        std::slice::from_ref(&auth),
        b"{}",
    );
    assert_eq!(status, 404);

    // The same order re-sent under a new messageId with a corrected total
    // updates the order; it never adds a second one.
    let resent = br#"{"userId":"u1","event":"Order Completed","messageId":"m-9",
        "timestamp":"2024-05-01T10:05:00Z","properties":{"order_id":"o-1","total":30}}"#;
    let (_, body) = request(
        addr,
        "POST",
        "/v1/track",
        std::slice::from_ref(&auth),
        resent,
    );
    assert!(body.contains(r#""orders_updated":1"#), "{body}");

    // Everything answered 200 is in the store.
    drop(server);
    let events = all_stored_events(&db);
    let named = |e: &&lifecycle_store::StoredEvent, name: &str| e.event.as_deref() == Some(name);
    let n = events
        .iter()
        .filter(|e| {
            !e.event
                .as_deref()
                .is_some_and(|n| n.starts_with("Segment "))
        })
        .count();
    assert_eq!(n, 4);
    // Each new customer entered a segment once (u1, the visitor a-9).
    let entered = events
        .iter()
        .filter(|e| named(e, "Segment Entered"))
        .count();
    assert_eq!(entered, 2);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let orders: Vec<(i64, f64)> = conn
        .prepare("SELECT day, amount FROM orders WHERE customer_id = 'u1'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // 2024-05-01 is day 19844.
    assert_eq!(orders, [(19844, 30.0)]);
    let anon: Vec<&str> = events
        .iter()
        .filter(|e| e.message_id == "m-3")
        .map(|e| e.customer_id.as_str())
        .collect();
    assert_eq!(anon, ["anon:a-9"]);
}

/// `lifecycle.toml`: the store from `LIFECYCLE_DB`, the purchase day in the
/// configured time zone, orders in another currency converted, a currency
/// without a rate refused with a 400 naming it; a broken file names itself.
#[test]
fn settings_file_environment_time_zone_and_currency() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    let config = dir.path().join("lifecycle.toml");
    std::fs::write(
        &config,
        "[server]\nrefit_every = \"off\"\n\n[engine]\ntimezone = \"America/New_York\"\n\n[currency]\nbase = \"usd\"\nrates = { EUR = 1.1 }\n",
    )
    .unwrap();
    let o = lifecycle(&["keys", "create", "--kind", "write", "--db", &db]);
    let write = stdout(&o).trim().to_string();
    let o = lifecycle(&["keys", "create", "--kind", "secret", "--db", &db]);
    let secret = stdout(&o).trim().to_string();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lifecycle"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("LIFECYCLE_DB", &db)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let server = Server {
        child,
        addr: line
            .trim()
            .trim_start_matches("listening on http://")
            .to_string(),
    };
    let addr = server.addr.as_str();
    // 03:00 UTC on 1 March is 29 February in New York.
    let order = br#"{"userId":"eu","event":"Order Completed","timestamp":"2024-03-01T03:00:00Z",
        "properties":{"order_id":"e1","total":100,"currency":"eur"}}"#;
    let (status, body) = request(addr, "POST", "/v1/track", &[basic(&write)], order);
    assert_eq!(status, 200, "{body}");
    let gbp = br#"{"userId":"uk","event":"Order Completed","properties":{"order_id":"g1","total":5,"currency":"GBP"}}"#;
    let (status, body) = request(addr, "POST", "/v1/track", &[basic(&write)], gbp);
    assert_eq!(status, 400);
    assert!(body.contains("no rate for currency 'GBP'"), "{body}");
    let (status, body) = request(
        addr,
        "GET",
        "/api/v1/customers/eu",
        &[("Authorization", format!("Bearer {secret}"))],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["orders"]["last_order"], "2024-02-29", "{view}");
    assert!((view["orders"]["total_spend"].as_f64().unwrap() - 110.0).abs() < 1e-9);
    drop(server);

    // A broken settings file: exit 2, the file and what is wrong.
    std::fs::write(&config, "[engine]\nhorizon = 3\n").unwrap();
    let o = lifecycle(&["serve", "--config", config.to_str().unwrap(), "--db", &db]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("lifecycle.toml") && e.contains("horizon"), "{e}");
}

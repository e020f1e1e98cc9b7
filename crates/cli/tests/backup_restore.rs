//! `lifecycle backup` and `restore`: a store with imported orders, a live
//! customer's events and an API key, backed up from SQLite, restored into a
//! fresh PostgreSQL store and backed up again, holds the same rows in every
//! table; the restored store serves the same customer view with the same
//! key; a cut file or a store with data is refused and changes nothing.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::collections::BTreeMap;
use std::io::Read;

/// Each table's rows (JSON text), sorted, from a gzip backup.
fn contents(path: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines().skip(1) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(t) = v["table"].as_str() {
            current = t.to_string();
            out.entry(current.clone()).or_default();
        } else if v.is_array() {
            out.get_mut(&current).unwrap().push(line.to_string());
        }
    }
    for rows in out.values_mut() {
        rows.sort();
    }
    out
}

#[test]
fn backup_restore_across_backends() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let sqlite = format!("sqlite://{}", p("a.db"));
    let o = lifecycle(&[
        "generate",
        "--customers",
        "300",
        "--seed",
        "4",
        "--out",
        &p("o.csv"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lifecycle(&["import", &p("o.csv"), "--db", &sqlite]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A live customer: events through the API with a write key.
    let write = create_key(&sqlite, "write");
    let secret = create_key(&sqlite, "secret");
    let server = start(&sqlite, &[]);
    let body = r#"{"batch":[
        {"type":"identify","userId":"live-1","messageId":"m1","timestamp":"2025-06-01T10:00:00Z","traits":{"email":"ann@example.com","name":"Ann O'Brien"}},
        {"type":"track","userId":"live-1","messageId":"m2","event":"Order Completed","timestamp":"2025-06-02T10:00:00Z","properties":{"order_id":"x1","revenue":42.5}}
    ]}"#;
    let (status, _) = request(
        &server.addr,
        "POST",
        "/v1/batch",
        &[basic(&write)],
        body.as_bytes(),
    );
    assert_eq!(status, 200);
    let (status, before) = request(
        &server.addr,
        "GET",
        "/api/v1/customers/live-1",
        &[basic(&secret)],
        b"",
    );
    assert_eq!(status, 200, "{before}");
    drop(server);
    let backup = p("backup.jsonl.gz");
    let o = lifecycle(&["backup", "--db", &sqlite, "--out", &backup]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("backed up"), "{}", stderr(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let pg = lifecycle_store::testing::postgres_database().unwrap();
    let o = lifecycle(&["restore", &backup, "--db", &pg]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = p("again.jsonl.gz");
    let o = lifecycle(&["backup", "--db", &pg, "--out", &again]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (
        contents(std::path::Path::new(&backup)),
        contents(std::path::Path::new(&again)),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (table, rows) in &a {
        let other = &b[table];
        assert_eq!(rows.len(), other.len(), "{table}: row count");
        if let Some((x, y)) = rows.iter().zip(other).find(|(x, y)| x != y) {
            let cut = |s: &str| s.chars().take(400).collect::<String>();
            panic!("{table}: a row differs:\n{}\n{}", cut(x), cut(y));
        }
    }
    assert_eq!(
        a["orders"].len() as i64,
        sql_count(&sqlite, "SELECT COUNT(*) FROM orders")
    );
    assert!(a["events"].len() >= 2 && a["api_keys"].len() == 2);
    // The restored store answers with the same key and the same view.
    let server = start(&pg, &[]);
    let (status, after) = request(
        &server.addr,
        "GET",
        "/api/v1/customers/live-1",
        &[basic(&secret)],
        b"",
    );
    assert_eq!(status, 200, "{after}");
    let strip = |s: &str| {
        let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
        v.as_object_mut().unwrap().remove("updated_ms");
        v
    };
    assert_eq!(strip(&after)["orders"], strip(&before)["orders"]);
    assert_eq!(strip(&after)["traits"], strip(&before)["traits"]);
    drop(server);
    // Refusals: a store with data; a cut file (nothing restored).
    let o = lifecycle(&["restore", &backup, "--db", &pg]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("needs an empty store"),
        "{}",
        stderr(&o)
    );
    let bytes = std::fs::read(&backup).unwrap();
    std::fs::write(p("cut.jsonl.gz"), &bytes[..bytes.len() / 2]).unwrap();
    let fresh = format!("sqlite://{}", p("fresh.db"));
    let o = lifecycle(&["restore", &p("cut.jsonl.gz"), "--db", &fresh]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cut.jsonl.gz"), "{}", stderr(&o));
    assert_eq!(sql_count(&fresh, "SELECT COUNT(*) FROM orders"), 0);
    // No store, no backup (and no file).
    let o = lifecycle(&[
        "backup",
        "--db",
        &format!("sqlite://{}", p("none.db")),
        "--out",
        &p("x.gz"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!dir.path().join("x.gz").exists());
}

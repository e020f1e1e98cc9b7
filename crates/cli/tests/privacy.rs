//! Data rights through the real binary, on SQLite and PostgreSQL: a
//! customer known by a user id, an anonymous id and an email address, with
//! traits, events, an order and an on-site message, is exported whole
//! (`GET /api/v1/customers/{id}/export`), then erased
//! (`DELETE /api/v1/customers/{id}`): afterwards nothing the store holds
//! (a backup of every table) contains their ids, address, names or
//! message, their orders still count in the revenue, and they are unknown
//! to the API. The CLI (`lifecycle customers export|erase`) does the same on
//! the store directly; the backup while the server runs is taken through it
//! (`lifecycle backup --server`).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::io::Read;

use serde_json::{Value, json};

const SECRETS: [&str; 5] = [
    "live-1",
    "anon-77",
    "zoe.obrien@example.com",
    "Zoëlle",
    "O'Brien-Zyx",
];

fn revenue(addr: &str, key: &str) -> f64 {
    let (status, body) = request(addr, "GET", "/api/v1/segments", &[basic(key)], b"");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["revenue"].as_f64().unwrap_or(0.0))
        .sum()
}

/// A backup's text: of the store `db` directly, or through the server at
/// `served` = (address, secret key) while it holds the store.
fn backup_text(
    db: &str,
    served: Option<(&str, &str)>,
    dir: &std::path::Path,
    name: &str,
) -> String {
    let out = dir.join(name);
    let o = match served {
        Some((addr, key)) => {
            let server = format!("http://{addr}");
            lifecycle(&[
                "backup",
                "--server",
                &server,
                "--key",
                key,
                "--out",
                out.to_str().unwrap(),
            ])
        }
        None => lifecycle(&["backup", "--db", db, "--out", out.to_str().unwrap()]),
    };
    assert!(o.status.success(), "{}", stderr(&o));
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&out).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn erase_and_export_on(db: &str, dir: &std::path::Path) {
    let (secret, write) = (create_key(db, "secret"), create_key(db, "write"));
    let orders = dir.join("orders.csv");
    let o = lifecycle(&[
        "generate",
        "--customers",
        "300",
        "--seed",
        "6",
        "--start",
        "2022-06-01",
        "--days",
        "700",
        "--out",
        orders.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lifecycle(&["import", orders.to_str().unwrap(), "--db", db]);
    assert!(o.status.success(), "{}", stderr(&o));
    let moments = dir.join("moments");
    std::fs::create_dir_all(&moments).unwrap();
    std::fs::write(
        moments.join("welcome.toml"),
        "name = \"Welcome\"\nholdout = 0\n\n[goal]\nevent = \"Order Completed\"\nwithin_days = 30\n\n[trigger]\nevent = \"Signed Up\"\n\n[[step]]\nsend = { channel = \"onsite\", template = \"banner.html\" }\n",
    )
    .unwrap();
    std::fs::write(
        moments.join("banner.html"),
        "<b>Welcome, {{ traits.first_name }}!</b>",
    )
    .unwrap();
    let server = start(
        db,
        &[
            "--simulated-clock",
            "2024-06-01T00:00:00Z",
            "--refit-every",
            "off",
            "--moments",
            moments.to_str().unwrap(),
        ],
    );
    let addr = server.addr.as_str();
    let refit = || {
        let (status, body) = request(addr, "POST", "/api/v1/models/refit", &[basic(&secret)], b"");
        assert_eq!(status, 200, "{body}");
    };
    refit();
    let batch = json!({"batch": [
        {"type": "page", "anonymousId": "anon-77", "messageId": "p1", "name": "Home",
         "timestamp": "2024-05-30T08:00:00Z"},
        {"type": "identify", "userId": "live-1", "anonymousId": "anon-77", "messageId": "i1",
         "timestamp": "2024-05-31T08:00:00Z",
         "traits": {"email": "Zoe.OBrien@example.com", "first_name": "Zoëlle", "last_name": "O'Brien-Zyx"}},
        {"type": "track", "event": "Signed Up", "userId": "live-1", "messageId": "s1",
         "timestamp": "2024-05-31T09:00:00Z"},
        {"type": "track", "event": "Order Completed", "userId": "live-1", "messageId": "o1",
         "timestamp": "2024-05-31T10:00:00Z", "properties": {"order_id": "zo-1", "revenue": 123.45}},
    ]});
    send_batch(addr, &write, &batch);
    let before = revenue(addr, &secret);
    // The export, by email address: every table that names them.
    let (status, body) = request(
        addr,
        "GET",
        "/api/v1/customers/zoe.obrien@example.com/export",
        &[basic(&secret)],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let export: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(export["customer_id"], "live-1");
    assert!(export["events"].as_array().unwrap().len() >= 4, "{body}");
    assert_eq!(export["orders"].as_array().unwrap().len(), 1);
    assert_eq!(export["traits"][0]["traits"]["first_name"], "Zoëlle");
    let ids: Vec<&str> = export["identities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"anon:anon-77") && ids.contains(&"email:zoe.obrien@example.com"),
        "{ids:?}"
    );
    assert_eq!(export["enrolments"].as_array().unwrap().len(), 1, "{body}");
    assert!(!export["outbox"].as_array().unwrap().is_empty(), "{body}");
    assert!(!export["profiles"].as_array().unwrap().is_empty(), "{body}");
    // Before: the store holds each of them (so the check after can fail).
    let text = backup_text(db, Some((addr, &secret)), dir, "before.jsonl.gz");
    for s in SECRETS {
        assert!(text.contains(s), "{s} was never stored");
    }
    // Only a secret key erases.
    let (status, _) = request(
        addr,
        "DELETE",
        "/api/v1/customers/live-1",
        &[basic(&write)],
        b"",
    );
    assert!(status == 401 || status == 403, "{status}");
    let (status, body) = request(
        addr,
        "DELETE",
        "/api/v1/customers/anon-77",
        &[basic(&secret)],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let erased: Value = serde_json::from_str(&body).unwrap();
    assert!(erased["events_deleted"].as_u64().unwrap() >= 4, "{body}");
    assert_eq!(erased["orders_kept_anonymously"], 1);
    for id in ["live-1", "anon-77", "zoe.obrien@example.com"] {
        let (status, _) = request(
            addr,
            "GET",
            &format!("/api/v1/customers/{id}"),
            &[basic(&secret)],
            b"",
        );
        assert_eq!(status, 404, "{id}");
        let (status, _) = request(
            addr,
            "GET",
            &format!("/api/v1/customers/{id}/export"),
            &[basic(&secret)],
            b"",
        );
        assert_eq!(status, 404, "{id}");
    }
    // The aggregates stay: the order counts in the revenue, now and after a refit.
    assert!((revenue(addr, &secret) - before).abs() < 1e-6);
    refit();
    assert!((revenue(addr, &secret) - before).abs() < 1e-6);
    let (status, body) = request(addr, "GET", "/api/v1/audit", &[basic(&secret)], b"");
    assert_eq!(status, 200);
    assert!(body.contains("erase"), "{body}");
    drop(server);
    // Nothing the store holds names them (a backup made afterwards).
    let text = backup_text(db, None, dir, "after.jsonl.gz");
    for s in SECRETS {
        assert!(!text.contains(s), "{s} is still in the store");
    }
    assert!(text.contains("erased:"));
    // The CLI on the store directly.
    let o = lifecycle(&["customers", "export", "C00000005", "--db", db]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!v["orders"].as_array().unwrap().is_empty());
    let o = lifecycle(&["customers", "erase", "C00000005", "--db", db]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lifecycle(&["customers", "export", "C00000005", "--db", db]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no customer C00000005"),
        "{}",
        stderr(&o)
    );
    assert!(!backup_text(db, None, dir, "after2.jsonl.gz").contains("\"C00000005\""));
}

#[test]
fn erase_and_export_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    erase_and_export_on(&db, dir.path());
}

#[test]
fn erase_and_export_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = lifecycle_store::testing::postgres_database().unwrap();
    erase_and_export_on(&db, dir.path());
}

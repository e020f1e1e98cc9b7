//! Send-time policy through the real binary on a simulated clock:
//! frequency caps across moments with priorities (the higher priority
//! moment's email goes, the other is suppressed and recorded), quiet hours
//! in the customer's time zone (deferred to their end, never dropped), and
//! re-entry ("every 30 days").
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::moments::*;
use common::smtp::SmtpSink;
use common::*;

use std::time::Duration;

use serde_json::{Value, json};

fn coupon(name: &str, priority: i32, template: &str) -> String {
    format!(
        r#"name = "{name}"
holdout = 0
priority = {priority}
reentry = "every 30 days"

[goal]
event = "Order Completed"
within_days = 7

[trigger]
event = "Coupon Requested"

[[step]]
send = {{ channel = "email", template = "{template}", subject = "{name}" }}
"#
    )
}

fn track(addr: &str, write: &str, batch: Vec<Value>) {
    let body = json!({ "batch": batch }).to_string();
    let (status, text) = request(addr, "POST", "/v1/batch", &[basic(write)], body.as_bytes());
    assert_eq!(status, 200, "{text}");
}

fn statuses(addr: &str, secret: &str, customer: &str) -> Vec<(String, String, String)> {
    let v = get(addr, &format!("/api/v1/customers/{customer}"), secret);
    let mut out: Vec<(String, String, String)> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["moment"].as_str().unwrap().to_string(),
                m["status"].as_str().unwrap().to_string(),
                m["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn caps_priorities_quiet_hours_and_reentry() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    let moments = dir.path().join("moments");
    std::fs::create_dir_all(&moments).unwrap();
    std::fs::write(moments.join("a.toml"), coupon("Coupon A", 10, "a.html")).unwrap();
    std::fs::write(moments.join("b.toml"), coupon("Coupon B", 1, "b.html")).unwrap();
    std::fs::write(
        moments.join("a.html"),
        "<p>A for {{ traits.first_name }}</p>",
    )
    .unwrap();
    std::fs::write(moments.join("b.html"), "<p>B</p>").unwrap();
    let config = dir.path().join("lifecycle.toml");
    std::fs::write(
        &config,
        format!(
            "[moments]\ndir = \"moments\"\nglobal_control = 0\nquiet_hours = \"21:00-08:00\"\n\n[moments.caps]\nemail = \"1 per 7 days\"\n\n[channels.email]\nsmtp = \"{}\"\nfrom = \"shop@example.com\"\n",
            sink.url()
        ),
    )
    .unwrap();
    let key = |kind: &str| {
        let o = lifecycle(&["keys", "create", "--kind", kind, "--db", &db]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_string()
    };
    let (secret, write) = (key("secret"), key("write"));
    let server = start_at(&db, &config, "2024-01-01T12:00:00Z");
    let addr = server.addr.as_str();
    // c1 in London (12:00 local: fine), c2 in New York (07:00: quiet).
    let request_coupon = |c: &str, id: &str| json!({"type": "track", "userId": c, "event": "Coupon Requested", "messageId": id});
    track(
        addr,
        &write,
        vec![
            json!({"type": "identify", "userId": "c1", "messageId": "i1",
                   "traits": {"email": "c1@example.org", "first_name": "Cy", "timezone": "Europe/London"}}),
            json!({"type": "identify", "userId": "c2", "messageId": "i2",
                   "traits": {"email": "c2@example.org", "timezone": "America/New_York"}}),
            request_coupon("c1", "r1"),
            request_coupon("c2", "r2"),
        ],
    );

    // c1: the higher priority moment's email goes; the other is capped.
    assert!(sink.wait_for(1, Duration::from_secs(30)));
    assert_eq!(sink.settle(Duration::from_millis(1000)), 1);
    let mails = sink.mails();
    assert_eq!(mails[0].to, vec!["c1@example.org".to_string()]);
    assert!(mails[0].data.contains("A for Cy"), "{}", mails[0].data);
    let s = statuses(addr, &secret, "c1");
    assert_eq!(s[0].0, "Coupon A");
    assert_eq!(s[0].1, "sent");
    assert_eq!(s[1].0, "Coupon B");
    assert_eq!(s[1].1, "suppressed");
    assert!(s[1].2.starts_with("cap: 1 email per 7 days"), "{s:?}");

    // c2: both deferred by quiet hours until 08:00 New York (13:00Z).
    let s = statuses(addr, &secret, "c2");
    assert!(
        s.iter().all(|m| m.1 == "queued" && m.2 == "quiet hours"),
        "{s:?}"
    );
    post(
        addr,
        "/api/v1/admin/clock",
        &secret,
        r#"{"advance_seconds": 3540}"#,
    );
    assert_eq!(
        sink.settle(Duration::from_millis(1000)),
        1,
        "sent in quiet hours"
    );
    post(
        addr,
        "/api/v1/admin/clock",
        &secret,
        r#"{"advance_seconds": 60}"#,
    );
    assert!(sink.wait_for(2, Duration::from_secs(30)));
    assert_eq!(sink.settle(Duration::from_millis(1000)), 2);
    assert_eq!(sink.mails()[1].to, vec!["c2@example.org".to_string()]);
    let s = statuses(addr, &secret, "c2");
    assert_eq!(
        (s[0].1.as_str(), s[1].1.as_str()),
        ("sent", "suppressed"),
        "{s:?}"
    );

    // Re-entry every 30 days: not after 10 days, again after 31.
    advance_days(addr, &secret, 10.0);
    track(addr, &write, vec![request_coupon("c1", "r3")]);
    assert_eq!(
        counts(addr, &secret, "Coupon A")["enrolled"],
        2,
        "c1 and c2"
    );
    advance_days(addr, &secret, 21.0);
    track(addr, &write, vec![request_coupon("c1", "r4")]);
    let c = counts(addr, &secret, "Coupon A");
    assert_eq!(c["enrolled"], 3, "{c}");
    // The cap's week has passed: the new entry's email goes.
    assert!(sink.wait_for(3, Duration::from_secs(30)));
    assert_eq!(sink.settle(Duration::from_millis(1000)), 3);
    assert_eq!(sink.mails()[2].to, vec!["c1@example.org".to_string()]);
}

/// Moments through the API (create, change with a diff, errors by line)
/// and the watched folder (an edited file becomes a new version; customers
/// already in keep theirs).
#[test]
fn moments_api_and_folder_watch() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("a.db").display());
    let moments = dir.path().join("moments");
    std::fs::create_dir_all(&moments).unwrap();
    std::fs::write(moments.join("a.toml"), coupon("Coupon A", 10, "a.html")).unwrap();
    std::fs::write(moments.join("a.html"), "<p>A</p>").unwrap();
    let config = dir.path().join("lifecycle.toml");
    std::fs::write(
        &config,
        format!(
            "[moments]\ndir = \"moments\"\nwatch_seconds = 1\n\n[channels.email]\nsmtp = \"{}\"\nfrom = \"shop@example.com\"\n",
            sink.url()
        ),
    )
    .unwrap();
    let o = lifecycle(&["keys", "create", "--kind", "secret", "--db", &db]);
    let secret = stdout(&o).trim().to_string();
    let server = start(
        &db,
        &[
            "--config",
            config.to_str().unwrap(),
            "--simulated-clock",
            "2024-01-01",
        ],
    );
    let addr = server.addr.as_str();

    // The API: a new moment, then a change (a new version with its diff).
    let created = post(
        addr,
        "/api/v1/moments",
        &secret,
        &coupon("Coupon C", 1, "a.html"),
    );
    assert_eq!(
        (created["version"].as_u64(), created["changed"].as_bool()),
        (Some(1), Some(true))
    );
    let (status, text) = request(
        addr,
        "PUT",
        "/api/v1/moments/Coupon%20C",
        &[bearer(&secret)],
        coupon("Coupon C", 5, "a.html").as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    let changed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(changed["version"], 2);
    assert_eq!(changed["diff"], "- priority = 1\n+ priority = 5\n");
    let (status, text) = request(
        addr,
        "PUT",
        "/api/v1/moments/Other",
        &[bearer(&secret)],
        coupon("Coupon C", 5, "a.html").as_bytes(),
    );
    assert_eq!(status, 400);
    assert!(
        text.contains("named \\\"Coupon C\\\", not \\\"Other\\\""),
        "{text}"
    );
    let bad = coupon("Bad", 1, "a.html").replace("within_days = 7", "within_days = 0");
    let (status, text) = request(
        addr,
        "POST",
        "/api/v1/moments",
        &[bearer(&secret)],
        bad.as_bytes(),
    );
    assert_eq!(status, 400);
    assert!(text.contains("line 8: goal.within_days"), "{text}");
    let (status, text) = request(
        addr,
        "POST",
        "/api/v1/moments",
        &[bearer(&secret)],
        coupon("Bad", 1, "missing.html").as_bytes(),
    );
    assert_eq!(status, 400);
    assert!(text.contains("template missing.html"), "{text}");
    let listed = get(addr, "/api/v1/moments", &secret);
    let names: Vec<&str> = listed["moments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Coupon A", "Coupon C"]);

    // The folder: an edited file is a new version within the watch period.
    std::fs::write(moments.join("a.toml"), coupon("Coupon A", 3, "a.html")).unwrap();
    let mut version = Value::Null;
    for _ in 0..100 {
        version = get(addr, "/api/v1/moments/Coupon%20A", &secret)["version"].clone();
        if version == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(version, 2, "the edit was not picked up");
    let v = get(addr, "/api/v1/moments/Coupon%20A", &secret);
    assert!(
        v["definition"].as_str().unwrap().contains("priority = 3"),
        "{v}"
    );
    assert_eq!(v["versions"].as_array().unwrap().len(), 2);
}

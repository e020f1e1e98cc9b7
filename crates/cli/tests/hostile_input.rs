//! Hostile input to the event API, through the real binary: oversized
//! bodies, deep JSON, invalid UTF-8, huge numbers, event times in year 9999
//! or before 1970, SQL metacharacters in every field, template syntax in
//! traits. Each is refused with a 4xx that says why, or stored verbatim and
//! harmless; afterwards the store holds exactly the accepted messages and
//! still answers.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use serde_json::{Value, json};

#[test]
fn hostile_events_are_refused_or_stored_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("h.db").display());
    let (write, secret, public) = (
        create_key(&db, "write"),
        create_key(&db, "secret"),
        create_key(&db, "public"),
    );
    let moments = dir.path().join("moments");
    std::fs::create_dir_all(&moments).unwrap();
    std::fs::write(
        moments.join("hello.toml"),
        "name = \"Hello\"\nholdout = 0\n\n[goal]\nevent = \"Order Completed\"\nwithin_days = 30\n\n[trigger]\nevent = \"Signed Up\"\n\n[[step]]\nsend = { channel = \"onsite\", template = \"hello.html\" }\n",
    )
    .unwrap();
    std::fs::write(
        moments.join("hello.html"),
        "<p>Hello {{ traits.first_name }}!</p>",
    )
    .unwrap();
    let server = start(
        &db,
        &[
            "--refit-every",
            "off",
            "--moments",
            moments.to_str().unwrap(),
        ],
    );
    let addr = server.addr.as_str();
    let post = |path: &str, body: &[u8]| request(addr, "POST", path, &[basic(&write)], body);
    let refused = |path: &str, body: &[u8], status: u16, says: &str| {
        let (got, text) = post(path, body);
        assert_eq!(got, status, "{text}");
        assert!(text.contains(says), "expected \"{says}\" in {text}");
    };
    // Sizes: a message over 32 KB, a batch over 500 KB, a body of 20 MB.
    let big = json!({"userId": "u", "event": "x", "properties": {"p": "a".repeat(40_000)}});
    refused("/v1/track", big.to_string().as_bytes(), 400, "32 KB");
    let batch: Vec<Value> = (0..20)
        .map(|i| json!({"userId": format!("u{i}"), "event": "x", "properties": {"p": "a".repeat(30_000)}}))
        .collect();
    refused(
        "/v1/batch",
        json!({"batch": batch}).to_string().as_bytes(),
        400,
        "500 KB",
    );
    // A body declared at 20 MB is refused from its headers, unread.
    let head = declared_too_large(addr, &write);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    // Deep JSON, invalid UTF-8, not JSON at all.
    let deep = format!(
        "{{\"userId\":\"u\",\"event\":\"x\",\"properties\":{}1{}}}",
        "{\"a\":".repeat(5000),
        "}".repeat(5000)
    );
    refused("/v1/track", deep.as_bytes(), 400, "not JSON");
    refused(
        "/v1/track",
        b"{\"userId\":\"u\xff\xfe\",\"event\":\"x\"}",
        400,
        "not JSON",
    );
    refused("/v1/track", b"\x00\x01\x02", 400, "not JSON");
    // Huge numbers.
    for revenue in ["1e308", "-1e300", "123456789012345678901234567890", "1e400"] {
        let body = format!(
            "{{\"userId\":\"u\",\"event\":\"Order Completed\",\"properties\":{{\"order_id\":\"o\",\"revenue\":{revenue}}}}}"
        );
        let (status, text) = post("/v1/track", body.as_bytes());
        assert_eq!(status, 400, "{revenue}: {text}");
        assert!(text.contains("out of range"), "{revenue}: {text}");
    }
    // Event times: year 9999, before 1970; a birth date before 1970 is fine.
    for at in [
        "9999-12-31T23:59:59Z",
        "1969-07-20T20:17:00Z",
        "0001-01-01T00:00:00Z",
    ] {
        let body = json!({"userId": "u", "event": "x", "timestamp": at}).to_string();
        refused(
            "/v1/track",
            body.as_bytes(),
            400,
            "outside the accepted range",
        );
    }
    let born = json!({"userId": "elder", "messageId": "b1", "traits": {"birthday": "1950-05-01"}});
    assert_eq!(post("/v1/identify", born.to_string().as_bytes()).0, 200);
    // SQL metacharacters in every field, and template syntax in traits:
    // stored and shown verbatim, never run.
    let evil = "x'); DROP TABLE events; -- \" ; DELETE FROM customers WHERE '1'='1";
    let template = "{{ 7*7 }}{% for i in range(3) %}X{% endfor %}";
    let batch = json!({"batch": [
        {"type": "identify", "userId": evil, "anonymousId": format!("{evil}-anon"),
         "messageId": format!("{evil}-1"), "timestamp": "2024-05-01T10:00:00Z",
         "traits": {"first_name": template, evil: evil, "email": "evil@example.com"}},
        {"type": "track", "userId": evil, "event": evil, "messageId": format!("{evil}-2"),
         "timestamp": "2024-05-01T10:01:00Z", "properties": {evil: evil}},
        {"type": "track", "userId": evil, "event": "Signed Up", "messageId": format!("{evil}-3"),
         "timestamp": "2024-05-01T10:02:00Z"},
        {"type": "track", "userId": evil, "event": "Order Completed", "messageId": format!("{evil}-4"),
         "timestamp": "2024-05-01T10:03:00Z", "properties": {"order_id": evil, "revenue": 12.5}},
    ]});
    let (status, text) = post("/v1/batch", batch.to_string().as_bytes());
    assert_eq!(status, 200, "{text}");
    let path = format!("/api/v1/customers/{}", urlencode(evil));
    let (status, text) = request(addr, "GET", &path, &[basic(&secret)], b"");
    assert_eq!(status, 200, "{text}");
    let view: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(view["customer_id"], evil);
    assert_eq!(view["traits"][evil], evil);
    assert_eq!(view["traits"]["first_name"], template);
    assert_eq!(view["order_history"][0]["amount"], 12.5, "{text}");
    assert!(
        view["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == evil && e["properties"][evil] == evil),
        "{text}"
    );
    // The on-site message shows the template text as text.
    // (Delivered by the workers shortly after the trigger.)
    let mut text = String::new();
    for _ in 0..100 {
        let (status, body) = request(
            addr,
            "GET",
            &format!("{path}/messages"),
            &[basic(&public)],
            b"",
        );
        assert_eq!(status, 200, "{body}");
        text = body;
        if text.contains("Hello") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Only the rendered HTML is looked at: the message key carries a time in
    // milliseconds, which may contain "49".
    let messages: Value = serde_json::from_str(&text).unwrap();
    let html = messages["messages"][0]["html"].as_str().unwrap_or_default();
    assert!(
        html.contains("{{ 7*7 }}") && !html.contains("49") && !html.contains("XXX"),
        "{text}"
    );
    // Exactly the accepted messages are stored; the store still answers.
    drop(server);
    let events = all_stored_events(&db);
    assert!(!events.iter().any(|e| e.customer_id == "u"));
    assert_eq!(
        sql_count(
            &db,
            "SELECT COUNT(*) FROM orders WHERE amount > 1e12 OR amount < -1e12"
        ),
        0
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.customer_id == "elder" && e.kind == "identify")
            .count(),
        1
    );
    assert!(sql_count(&db, "SELECT COUNT(*) FROM customers") >= 2);
    let server = start(&db, &["--refit-every", "off"]);
    let (status, text) = request(
        &server.addr,
        "GET",
        "/api/v1/customers/elder",
        &[basic(&secret)],
        b"",
    );
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("1950-05-01"), "{text}");
}

/// Sends only the headers of a 20 MB POST and reads the answer.
fn declared_too_large(addr: &str, key: &str) -> String {
    use std::io::{Read, Write};
    let (name, value) = basic(key);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "POST /v1/batch HTTP/1.1\r\nHost: {addr}\r\n{name}: {value}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        20 << 20
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Percent-encodes a path segment.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

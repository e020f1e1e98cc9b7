//! A webhook receiver that resets the connection, then hangs past the
//! client's timeout, then answers: the message is retried on the backoff
//! (1, then 2 minutes, on the simulated clock) with the same
//! Idempotency-Key every time, recorded as sent once it is answered, and
//! never sent again afterwards (at least once, deduplicable by key).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// What the receiver saw: the Idempotency-Key of each request it read.
type Seen = Arc<Mutex<Vec<String>>>;

/// Connection 1: read nothing, close (reset); connection 2: read the
/// request, answer nothing for 20 s (past the client's 15 s timeout);
/// later ones: 200.
fn flaky_receiver() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            if n == 0 {
                drop(stream);
                continue;
            }
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut key, mut length) = (String::new(), 0usize);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("idempotency-key") {
                            key = v.trim().to_string();
                        } else if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                log.lock().unwrap().push(key);
                if n == 1 {
                    std::thread::sleep(Duration::from_secs(20));
                    return;
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            });
        }
    });
    (addr, seen)
}

#[test]
fn resets_and_timeouts_are_retried_with_one_key() {
    let (receiver, seen) = flaky_receiver();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("f.db").display());
    let (write, secret) = (create_key(&db, "write"), create_key(&db, "secret"));
    let moments = dir.path().join("moments");
    std::fs::create_dir_all(&moments).unwrap();
    std::fs::write(
        moments.join("hook.toml"),
        "name = \"Hook\"\nholdout = 0\n\n[goal]\nevent = \"Order Completed\"\nwithin_days = 30\n\n[trigger]\nevent = \"Signed Up\"\n\n[[step]]\nsend = { channel = \"webhook\", template = \"t.txt\" }\n",
    )
    .unwrap();
    std::fs::write(moments.join("t.txt"), "hello").unwrap();
    let config = dir.path().join("lifecycle.toml");
    std::fs::write(
        &config,
        format!(
            "[moments]\ndir = \"{}\"\nglobal_control = 0\n\n[channels.webhook]\nurl = \"http://{receiver}/hook\"\nsecret = \"a signing secret of 16+\"\nallow_private = [\"127.0.0.1\"]\n",
            moments.display()
        ),
    )
    .unwrap();
    let server = start(
        &db,
        &[
            "--config",
            config.to_str().unwrap(),
            "--simulated-clock",
            "2024-03-01T12:00:00Z",
            "--refit-every",
            "off",
        ],
    );
    let addr = server.addr.clone();
    let batch = json!({"batch": [{"type": "track", "userId": "c1", "event": "Signed Up", "messageId": "s1"}]});
    let (status, text) = request(
        &addr,
        "POST",
        "/v1/batch",
        &[basic(&write)],
        batch.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    let message = || -> Value {
        let (status, body) = request(&addr, "GET", "/api/v1/customers/c1", &[basic(&secret)], b"");
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["messages"][0].clone()
    };
    let wait_attempts = |n: i64, secs: u64| -> Value {
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let m = message();
            if m["attempts"].as_i64().unwrap_or(0) >= n || m["status"] == "sent" {
                return m;
            }
            assert!(
                std::time::Instant::now() < until,
                "attempt {n} never came: {m}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let advance = |seconds: u64| {
        let (status, body) = request(
            &addr,
            "POST",
            "/api/v1/admin/clock",
            &[basic(&secret)],
            format!("{{\"advance_seconds\": {seconds}}}").as_bytes(),
        );
        assert_eq!(status, 200, "{body}");
    };
    // 1: reset, a transient failure waiting for its retry.
    let m = wait_attempts(1, 30);
    assert_eq!(m["status"], "queued", "{m}");
    assert!(!m["detail"].is_null(), "{m}");
    // 2: the receiver reads it and hangs: the client gives up after 15 s.
    advance(61);
    let m = wait_attempts(2, 40);
    assert_eq!(m["status"], "queued", "{m}");
    // 3: answered: sent, and never again.
    advance(121);
    let m = wait_attempts(3, 30);
    assert_eq!(m["status"], "sent", "{m}");
    advance(3600);
    std::thread::sleep(Duration::from_millis(1500));
    let keys = seen.lock().unwrap().clone();
    assert_eq!(keys.len(), 2, "requests read by the receiver: {keys:?}");
    assert!(
        keys.iter()
            .all(|k| k == &keys[0] && k.starts_with("Hook:1:c1:")),
        "{keys:?}"
    );
    assert_eq!(message()["attempts"], 3);
}

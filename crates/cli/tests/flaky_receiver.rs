//! A webhook receiver that resets the connection, then hangs past the
//! client's timeout, then answers: the message is retried on the backoff
//! (1, then 2 minutes, on the simulated clock) with the same
//! Idempotency-Key every time, recorded as sent once it is answered, and
//! never sent again afterwards (at least once, deduplicable by key). The
//! same for an SMTP server that resets, hangs and answers 451, and one
//! that refuses for good (554).
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

/// A served store with one moment (trigger `Signed Up`, one send step)
/// on the simulated clock, for watching a send's attempts.
struct Retries {
    _dir: tempfile::TempDir,
    server: Server,
    write: String,
    secret: String,
}

impl Retries {
    /// `step`: the send step's inline table; `channel`: the config's
    /// channel section.
    fn start(step: &str, template: (&str, &str), channel: &str) -> Retries {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("r.db").display());
        let (write, secret) = (create_key(&db, "write"), create_key(&db, "secret"));
        let moments = dir.path().join("moments");
        std::fs::create_dir_all(&moments).unwrap();
        std::fs::write(
            moments.join("m.toml"),
            format!("name = \"Hook\"\nholdout = 0\n\n[goal]\nevent = \"Order Completed\"\nwithin_days = 30\n\n[trigger]\nevent = \"Signed Up\"\n\n[[step]]\nsend = {step}\n"),
        )
        .unwrap();
        std::fs::write(moments.join(template.0), template.1).unwrap();
        let config = dir.path().join("lifecycle.toml");
        std::fs::write(
            &config,
            format!(
                "[moments]\ndir = \"{}\"\nglobal_control = 0\n\n{channel}",
                moments.display()
            ),
        )
        .unwrap();
        let server = start_at(&db, &config, "2024-03-01T12:00:00Z");
        Retries {
            _dir: dir,
            server,
            write,
            secret,
        }
    }

    /// `user` signs up (leaving `email` first, when given).
    fn sign_up(&self, user: &str, email: Option<&str>) {
        let mut batch = Vec::new();
        if let Some(email) = email {
            batch.push(json!({"type": "identify", "userId": user, "messageId": format!("i-{user}"), "traits": {"email": email}}));
        }
        batch.push(json!({"type": "track", "userId": user, "event": "Signed Up", "messageId": format!("s-{user}")}));
        send_batch(&self.server.addr, &self.write, &json!({ "batch": batch }));
    }

    /// The user's (only) message.
    fn message(&self, user: &str) -> Value {
        let (status, body) = request(
            &self.server.addr,
            "GET",
            &format!("/api/v1/customers/{user}"),
            &[basic(&self.secret)],
            b"",
        );
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["messages"][0].clone()
    }

    /// The message once it has had `n` attempts or is no longer queued.
    fn wait_attempts(&self, user: &str, n: i64, secs: u64) -> Value {
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let m = self.message(user);
            if m["attempts"].as_i64().unwrap_or(0) >= n || m["status"] != "queued" {
                return m;
            }
            assert!(
                std::time::Instant::now() < until,
                "attempt {n} never came: {m}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn advance(&self, seconds: u64) {
        let (status, body) = request(
            &self.server.addr,
            "POST",
            "/api/v1/admin/clock",
            &[basic(&self.secret)],
            format!("{{\"advance_seconds\": {seconds}}}").as_bytes(),
        );
        assert_eq!(status, 200, "{body}");
    }
}

#[test]
fn resets_and_timeouts_are_retried_with_one_key() {
    let (receiver, seen) = flaky_receiver();
    let r = Retries::start(
        "{ channel = \"webhook\", template = \"t.txt\" }",
        ("t.txt", "hello"),
        &format!(
            "[channels.webhook]\nurl = \"http://{receiver}/hook\"\nsecret = \"a signing secret of 16+\"\nallow_private = [\"127.0.0.1\"]\n"
        ),
    );
    r.sign_up("c1", None);
    // 1: reset, a transient failure waiting for its retry.
    let m = r.wait_attempts("c1", 1, 30);
    assert_eq!(m["status"], "queued", "{m}");
    assert!(!m["detail"].is_null(), "{m}");
    // 2: the receiver reads it and hangs: the client gives up after 15 s.
    r.advance(61);
    let m = r.wait_attempts("c1", 2, 40);
    assert_eq!(m["status"], "queued", "{m}");
    // 3: answered: sent, and never again.
    r.advance(121);
    let m = r.wait_attempts("c1", 3, 30);
    assert_eq!(m["status"], "sent", "{m}");
    r.advance(3600);
    std::thread::sleep(Duration::from_millis(1500));
    let keys = seen.lock().unwrap().clone();
    assert_eq!(keys.len(), 2, "requests read by the receiver: {keys:?}");
    assert!(
        keys.iter()
            .all(|k| k == &keys[0] && k.starts_with("Hook:1:c1:")),
        "{keys:?}"
    );
    assert_eq!(r.message("c1")["attempts"], 3);
}

/// What the flaky SMTP server saw: the Message-ID of every message whose
/// data it read, and of those it accepted.
#[derive(Default)]
struct SmtpSeen {
    read: Vec<String>,
    accepted: Vec<String>,
}

/// Connection 1: closed before the greeting (reset). Then, by message:
/// the first is read and never answered (35 s, past the client's 20 s
/// timeout), the second is answered 451 (try again later), later ones 250,
/// except to `bounce@…`, answered 554 (permanent).
fn flaky_smtp() -> (String, Arc<Mutex<SmtpSeen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen: Arc<Mutex<SmtpSeen>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            if n == 0 {
                drop(stream);
                continue;
            }
            let log = log.clone();
            std::thread::spawn(move || smtp_session(stream, &log));
        }
    });
    (addr, seen)
}

fn smtp_session(stream: std::net::TcpStream, log: &Mutex<SmtpSeen>) -> Option<()> {
    let mut out = stream.try_clone().ok()?;
    let mut reader = BufReader::new(stream);
    out.write_all(b"220 flaky ESMTP\r\n").ok()?;
    let mut rcpt = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let upper = line.trim_end().to_ascii_uppercase();
        let answer: &[u8] = if upper.starts_with("EHLO") {
            b"250-flaky\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("RCPT TO:") {
            rcpt = upper;
            b"250 ok\r\n"
        } else if upper == "DATA" {
            out.write_all(b"354 go ahead\r\n").ok()?;
            let mut id = String::new();
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).ok()? == 0 {
                    return None;
                }
                if l == ".\r\n" {
                    break;
                }
                if let Some(v) = l.strip_prefix("Message-ID:") {
                    id = v.trim().to_string();
                }
            }
            let nth = {
                let mut s = log.lock().unwrap();
                s.read.push(id.clone());
                s.read.len()
            };
            if nth == 1 {
                std::thread::sleep(Duration::from_secs(35));
                return None;
            }
            if nth == 2 {
                b"451 try again later\r\n"
            } else if rcpt.contains("BOUNCE@") {
                b"554 no such user here\r\n"
            } else {
                log.lock().unwrap().accepted.push(id);
                b"250 queued\r\n"
            }
        } else if upper == "QUIT" {
            out.write_all(b"221 bye\r\n").ok()?;
            return None;
        } else {
            b"250 ok\r\n"
        };
        out.write_all(answer).ok()?;
    }
}

/// The same for email: an SMTP server that resets the connection, reads a
/// message and never answers (past the 20 s timeout), then answers 451:
/// each is a transient failure retried on the backoff (1, 2, 4 minutes),
/// sent on the fourth attempt and never again; the message read but not
/// answered is the only other copy the server saw, with the same
/// Message-ID (at least once, recognisable). A 554 fails at once, without
/// a retry.
#[test]
fn smtp_resets_timeouts_and_failures() {
    let (smtp, seen) = flaky_smtp();
    let r = Retries::start(
        "{ channel = \"email\", template = \"t.html\", subject = \"Welcome\" }",
        ("t.html", "<p>hello</p>"),
        &format!(
            "[channels.email]\nsmtp = \"smtp://{smtp}\"\nfrom = \"Shop <shop@example.com>\"\n"
        ),
    );
    r.sign_up("c1", Some("ann@example.org"));
    // 1: reset before the greeting.
    let m = r.wait_attempts("c1", 1, 30);
    assert_eq!(m["status"], "queued", "{m}");
    assert!(m["detail"].as_str().unwrap().contains("SMTP"), "{m}");
    // 2: read, never answered: the client gives up after 20 s.
    r.advance(61);
    let m = r.wait_attempts("c1", 2, 60);
    assert_eq!(m["status"], "queued", "{m}");
    // 3: 451, transient.
    r.advance(121);
    let m = r.wait_attempts("c1", 3, 30);
    assert_eq!(m["status"], "queued", "{m}");
    assert!(m["detail"].as_str().unwrap().contains("451"), "{m}");
    // 4: accepted, and never again.
    r.advance(241);
    let m = r.wait_attempts("c1", 4, 30);
    assert_eq!(m["status"], "sent", "{m}");
    r.advance(3600);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(r.message("c1")["attempts"], 4);
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.accepted.len(), 1, "accepted: {:?}", s.accepted);
        assert_eq!(s.read.len(), 3, "read: {:?}", s.read);
        assert!(
            s.read
                .iter()
                .all(|id| id == &s.accepted[0] && id.ends_with("@example.com>")),
            "{:?}",
            s.read
        );
    }

    // A permanent refusal fails at once and is not retried.
    r.sign_up("c2", Some("bounce@example.org"));
    let m = r.wait_attempts("c2", 1, 30);
    assert_eq!(m["status"], "failed", "{m}");
    assert!(m["detail"].as_str().unwrap().contains("554"), "{m}");
    r.advance(3600);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(r.message("c2")["attempts"], 1);
    assert_eq!(seen.lock().unwrap().read.len(), 4);
}

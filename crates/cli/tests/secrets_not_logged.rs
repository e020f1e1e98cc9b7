//! Secrets never leave the server in its output or answers: with every
//! channel configured with credentials (an SMTP password in the URL, the
//! webhook's signing secret, the SMS and push tokens) and every send
//! failing (nothing listens), the server's log, the message list of the
//! API and the stored delivery details name the failures but none of the
//! secrets, nor the API keys used.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::io::Read;

use serde_json::json;

const SECRETS: [&str; 4] = [
    "SMTP-PASS-5up3rS3cret",
    "WEBHOOK-SECRET-5up3rS3cret",
    "SMS-TOKEN-5up3rS3cret",
    "PUSH-TOKEN-5up3rS3cret",
];

#[test]
fn failing_sends_log_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let (write, secret) = (create_key(&db, "write"), create_key(&db, "secret"));
    let moments = dir.path().join("moments");
    std::fs::create_dir_all(&moments).unwrap();
    let mut steps = String::new();
    for channel in ["email", "webhook", "sms", "push"] {
        steps.push_str(&format!(
            "\n[[step]]\nsend = {{ channel = \"{channel}\", template = \"t.html\", subject = \"Hi\" }}\n"
        ));
    }
    std::fs::write(
        moments.join("all.toml"),
        format!(
            "name = \"All\"\nholdout = 0\n\n[goal]\nevent = \"Order Completed\"\nwithin_days = 30\n\n[trigger]\nevent = \"Signed Up\"\n{steps}"
        ),
    )
    .unwrap();
    std::fs::write(
        moments.join("t.html"),
        "<p>Hello {{ traits.first_name }}</p>",
    )
    .unwrap();
    let config = dir.path().join("lifecycle.toml");
    std::fs::write(
        &config,
        format!(
            r#"[moments]
dir = "{moments}"
global_control = 0

[channels.email]
smtp = "smtp://mailer:{}@127.0.0.1:9"
from = "Shop <shop@example.com>"

[channels.webhook]
url = "http://127.0.0.1:9/hook"
secret = "{}"
allow_private = ["127.0.0.1"]

[channels.sms]
base_url = "http://127.0.0.1:9"
account = "AC1"
token = "{}"
from = "+15550001111"
allow_private = ["127.0.0.1"]

[channels.push]
base_url = "http://127.0.0.1:9"
project = "p1"
token = "{}"
allow_private = ["127.0.0.1"]
"#,
            SECRETS[0],
            SECRETS[1],
            SECRETS[2],
            SECRETS[3],
            moments = moments.display()
        ),
    )
    .unwrap();
    let mut server = start(
        &db,
        &["--config", config.to_str().unwrap(), "--refit-every", "off"],
    );
    let addr = server.addr.clone();
    let batch = json!({"batch": [
        {"type": "identify", "userId": "u1", "messageId": "i1",
         "traits": {"first_name": "Ann", "email": "ann@example.com", "phone": "+15551234567", "push_token": "device-1"}},
        {"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "s1"},
    ]});
    send_batch(&addr, &write, &batch);
    // Wait until every channel has failed at least once.
    // (Failed sends wait for a retry, queued; permanent failures are dead letters.)
    let list = || {
        let mut all = Vec::new();
        for status in ["queued", "failed"] {
            let (code, body) = request(
                &addr,
                "GET",
                &format!("/api/v1/messages?status={status}"),
                &[basic(&secret)],
                b"",
            );
            assert_eq!(code, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            all.extend(v["messages"].as_array().unwrap().iter().cloned());
        }
        serde_json::json!({ "messages": all }).to_string()
    };
    let mut messages = String::new();
    for _ in 0..150 {
        messages = list();
        let v: serde_json::Value = serde_json::from_str(&messages).unwrap();
        let tried = v["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter(|x| x["attempts"].as_i64().unwrap_or(0) > 0)
                    .count()
            })
            .unwrap_or(0);
        if tried >= 4 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut log = String::new();
    let mut err = server.child.stderr.take().unwrap();
    let _ = server.child.kill();
    let _ = server.child.wait();
    err.read_to_string(&mut log).unwrap();
    let v: serde_json::Value = serde_json::from_str(&messages).unwrap();
    let tried: Vec<&serde_json::Value> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["attempts"].as_i64().unwrap_or(0) > 0)
        .collect();
    assert_eq!(tried.len(), 4, "{messages}\n{log}");
    assert!(tried.iter().all(|m| !m["detail"].is_null()), "{messages}");
    for s in SECRETS
        .iter()
        .copied()
        .chain([write.as_str(), secret.as_str()])
    {
        assert!(!log.contains(s), "the log holds {s}:\n{log}");
        assert!(!messages.contains(s), "the API holds {s}:\n{messages}");
    }
    let stored = sql_count(
        &db,
        "SELECT COUNT(*) FROM outbox WHERE detail LIKE '%5up3rS3cret%' OR content LIKE '%5up3rS3cret%'",
    );
    assert_eq!(stored, 0);
}

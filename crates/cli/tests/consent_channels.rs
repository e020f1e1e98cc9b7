//! Consent is honoured by every channel: a moment that sends by email,
//! webhook, SMS, push and on-site to two customers who signed up sends
//! (tries) all five to the one who consented and none to the one who
//! withdrew consent for each channel (by traits, and by `Unsubscribed`
//! events for email); each refused message is recorded as suppressed for
//! consent, and nothing is attempted.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use serde_json::{Value, json};

const CHANNELS: [&str; 5] = ["email", "webhook", "sms", "push", "onsite"];

#[test]
fn every_channel_honours_consent() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    let (write, secret) = (create_key(&db, "write"), create_key(&db, "secret"));
    let moments = dir.path().join("moments");
    std::fs::create_dir_all(&moments).unwrap();
    let steps: String = CHANNELS
        .iter()
        .map(|c| {
            format!("\n[[step]]\nsend = {{ channel = \"{c}\", template = \"t.html\", subject = \"Hi\" }}\n")
        })
        .collect();
    std::fs::write(
        moments.join("all.toml"),
        format!(
            "name = \"All\"\nholdout = 0\n\n[goal]\nevent = \"Order Completed\"\nwithin_days = 30\n\n[trigger]\nevent = \"Signed Up\"\n{steps}"
        ),
    )
    .unwrap();
    std::fs::write(moments.join("t.html"), "<p>Hello</p>").unwrap();
    // Nothing listens at port 9: a send that is tried fails and waits for a retry.
    let config = dir.path().join("lifecycle.toml");
    std::fs::write(
        &config,
        format!(
            r#"[moments]
dir = "{}"
global_control = 0

[channels.email]
smtp = "smtp://127.0.0.1:9"
from = "Shop <shop@example.com>"

[channels.webhook]
url = "http://127.0.0.1:9/hook"
secret = "a signing secret of 16+"
allow_private = ["127.0.0.1"]

[channels.sms]
base_url = "http://127.0.0.1:9"
account = "AC1"
token = "t"
from = "+15550001111"
allow_private = ["127.0.0.1"]

[channels.push]
base_url = "http://127.0.0.1:9"
project = "p1"
token = "t"
allow_private = ["127.0.0.1"]
"#,
            moments.display()
        ),
    )
    .unwrap();
    let server = start(
        &db,
        &["--config", config.to_str().unwrap(), "--refit-every", "off"],
    );
    let addr = server.addr.clone();
    let contact = json!({"email": "x@example.com", "phone": "+15551234567", "push_token": "d1"});
    let mut no = contact.clone();
    for c in ["webhook", "sms", "push", "onsite"] {
        no[format!("consent_{c}")] = json!(false);
    }
    let batch = json!({"batch": [
        {"type": "identify", "userId": "yes", "messageId": "i1", "traits": contact},
        {"type": "identify", "userId": "no", "messageId": "i2", "traits": no},
        // Email consent withdrawn the way a preference centre does it.
        {"type": "track", "userId": "no", "event": "Unsubscribed", "messageId": "u2",
         "properties": {"channel": "email"}},
        {"type": "track", "userId": "yes", "event": "Signed Up", "messageId": "s1"},
        {"type": "track", "userId": "no", "event": "Signed Up", "messageId": "s2"},
    ]});
    send_batch(&addr, &write, &batch);
    let messages = |id: &str| -> Vec<Value> {
        let (status, body) = request(
            &addr,
            "GET",
            &format!("/api/v1/customers/{id}"),
            &[basic(&secret)],
            b"",
        );
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["messages"].as_array().unwrap().clone()
    };
    // Wait until every message of both has been decided.
    let decided = |m: &Vec<Value>| {
        m.len() == CHANNELS.len()
            && m.iter()
                .all(|x| x["status"] != "queued" || x["attempts"].as_i64().unwrap_or(0) > 0)
    };
    let (mut yes, mut no) = (Vec::new(), Vec::new());
    for _ in 0..150 {
        yes = messages("yes");
        no = messages("no");
        if decided(&yes) && decided(&no) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for c in CHANNELS {
        let find = |list: &Vec<Value>| list.iter().find(|m| m["channel"] == c).cloned().unwrap();
        let (y, n) = (find(&yes), find(&no));
        assert_ne!(y["status"], "suppressed", "{c}: {y}");
        assert!(
            y["status"] == "sent" || y["attempts"].as_i64().unwrap_or(0) > 0,
            "{c} was not tried for the consenting customer: {y}"
        );
        assert_eq!(n["status"], "suppressed", "{c}: {n}");
        assert!(
            n["detail"]
                .as_str()
                .unwrap_or("")
                .contains(&format!("no {c} consent")),
            "{c}: {n}"
        );
        assert_eq!(n["attempts"].as_i64().unwrap_or(0), 0, "{c}: {n}");
    }
}

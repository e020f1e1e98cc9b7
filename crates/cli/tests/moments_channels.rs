//! Every channel through the real binary, against local fakes:
//!
//! - webhook: signed JSON (HMAC-SHA256 checked here independently), the
//!   outbox key as Idempotency-Key on every attempt, a 503 retried after
//!   the backoff, a 400 given up and listed as a dead letter;
//! - SMS (Twilio-style form POST, Basic auth) and push (FCM-style JSON,
//!   Bearer token) to provider fakes;
//! - on-site: the customer's banner through a public key with CORS, gone
//!   once dismissed;
//! - ad audience: the moment's audience as Google / Meta uploads with
//!   normalised, hashed email and phone, in files and through the API.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::http_fake::HttpFake;
use common::moments::*;
use common::*;

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn moment(name: &str, channel: &str, template: &str, extra_steps: &str) -> String {
    format!(
        r#"name = "{name}"
holdout = 0
reentry = "every_time"

[goal]
event = "Order Completed"
within_days = 30

[trigger]
event = "Signed Up"

[[step]]
send = {{ channel = "{channel}", template = "{template}", subject = "Hello {{{{ traits.first_name }}}}" }}
{extra_steps}"#
    )
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn webhook_sms_push_onsite_and_audiences() {
    let fake = HttpFake::start();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    let m = dir.path().join("moments");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(
        m.join("hook.toml"),
        moment("Hook", "webhook", "hook.txt", ""),
    )
    .unwrap();
    std::fs::write(m.join("text.toml"), moment("Text", "sms", "sms.txt", "")).unwrap();
    std::fs::write(m.join("ping.toml"), moment("Ping", "push", "push.txt", "")).unwrap();
    std::fs::write(
        m.join("banner.toml"),
        moment("Banner", "onsite", "banner.html", ""),
    )
    .unwrap();
    std::fs::write(
        m.join("retarget.toml"),
        moment(
            "Retarget",
            "audience",
            "none.txt",
            "\n[[step]]\nwait = { days = 30 }\n",
        ),
    )
    .unwrap();
    std::fs::write(m.join("hook.txt"), "welcome {{ traits.first_name }}").unwrap();
    std::fs::write(
        m.join("sms.txt"),
        "Hi {{ traits.first_name }}, 10% off today",
    )
    .unwrap();
    std::fs::write(m.join("push.txt"), "Your welcome gift is waiting").unwrap();
    std::fs::write(
        m.join("banner.html"),
        "<b>Welcome, {{ traits.first_name }}!</b>{% for p in products %} <a href=\"{{ p.url }}\">{{ p.name }}</a>{% endfor %}",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("products.csv"),
        "id,name,url,price,category\np1,Green tea,https://s/p1,4.5,tea\np2,Mug,https://s/p2,9,kitchen\np3,Black tea,https://s/p3,5,tea\np4,Pot,https://s/p4,20,kitchen\n",
    )
    .unwrap();
    // The insights' upsell rules: after green tea, customers bought the pot.
    std::fs::write(
        dir.path().join("affinities.csv"),
        "bought,later_bought,customers,bought_customers,later_bought_customers,support,confidence,lift,expected,lift_adjusted,p_value,p_adjusted\np1,p4,40,100,60,0.04,0.4,2.1,12.0,3.3,1e-9,1e-7\n",
    )
    .unwrap();
    std::fs::write(m.join("none.txt"), "").unwrap();
    let secret_hmac = "whsec_0123456789abcdef";
    let config = dir.path().join("lifecycle.toml");
    std::fs::write(
        &config,
        format!(
            r#"[moments]
dir = "moments"
global_control = 0
catalogue = "products.csv"
affinities = "affinities.csv"

[channels.webhook]
url = "{base}/hook"
secret = "{secret_hmac}"
allow_private = ["127.0.0.1"]

[channels.sms]
base_url = "{base}"
account = "AC1"
token = "tok"
from = "+15550001111"
allow_private = ["127.0.0.1"]

[channels.push]
base_url = "{base}"
project = "p1"
token = "push-token"
allow_private = ["127.0.0.1"]

[channels.audience]
dir = "audiences"
"#,
            base = fake.url()
        ),
    )
    .unwrap();
    let key = |kind: &str| {
        let o = lifecycle(&["keys", "create", "--kind", kind, "--db", &db]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_string()
    };
    let (secret, write, public) = (key("secret"), key("write"), key("public"));
    let server = start_at(&db, &config, "2024-03-01T12:00:00Z");
    let addr = server.addr.as_str();
    // The receiver is down for the first webhook; a second customer's
    // webhook is refused for good (400).
    fake.respond("/hook", &[503, 400]);
    // c1 bought green tea (the Segment e-commerce spec's products).
    let signup = |c: &str, traits: Value| {
        let body = json!({"batch": [
            {"type": "identify", "userId": c, "messageId": format!("i-{c}"), "traits": traits},
            {"type": "track", "userId": c, "event": "Order Completed", "messageId": format!("o-{c}"),
             "properties": {"order_id": format!("o-{c}"), "revenue": 4.5, "products": [{"product_id": "p1"}]}},
            {"type": "track", "userId": c, "event": "Signed Up", "messageId": format!("s-{c}")},
        ]})
        .to_string();
        let (status, text) = request(addr, "POST", "/v1/batch", &[basic(&write)], body.as_bytes());
        assert_eq!(status, 200, "{text}");
    };
    signup(
        "c1",
        json!({"first_name": "Ann", "email": " Ann@Example.com", "phone": "+1 415 555 0123", "push_token": "dev-1"}),
    );

    // SMS and push reach their providers.
    assert!(fake.wait_for(
        "/2010-04-01/Accounts/AC1/Messages.json",
        1,
        Duration::from_secs(30)
    ));
    let sms = &fake.to("/2010-04-01/Accounts/AC1/Messages.json")[0];
    assert_eq!(sms.method, "POST");
    assert!(
        sms.headers["authorization"].starts_with("Basic "),
        "{sms:?}"
    );
    assert!(sms.body.contains("To=%2B1+415+555+0123"), "{}", sms.body);
    assert!(
        sms.body.contains("Body=Hi+Ann%2C+10%25+off+today"),
        "{}",
        sms.body
    );
    assert!(fake.wait_for("/v1/projects/p1/messages:send", 1, Duration::from_secs(30)));
    let push = &fake.to("/v1/projects/p1/messages:send")[0];
    assert_eq!(push.headers["authorization"], "Bearer push-token");
    let p: Value = serde_json::from_str(&push.body).unwrap();
    assert_eq!(p["message"]["token"], "dev-1");
    assert_eq!(p["message"]["notification"]["title"], "Hello Ann");

    // The webhook: 503 first, retried a minute later with the same key.
    assert!(fake.wait_for("/hook", 1, Duration::from_secs(30)));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fake.to("/hook").len(), 1, "retried before the backoff");
    fake.respond("/hook", &[]);
    post(
        addr,
        "/api/v1/admin/clock",
        &secret,
        r#"{"advance_seconds": 61}"#,
    );
    assert!(fake.wait_for("/hook", 2, Duration::from_secs(30)));
    let hooks = fake.to("/hook");
    assert_eq!(
        hooks[0].headers["idempotency-key"],
        hooks[1].headers["idempotency-key"]
    );
    let key_sent = hooks[1].headers["idempotency-key"].clone();
    assert!(key_sent.starts_with("Hook:1:c1:"), "{key_sent}");
    // The signature: t=<seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">.
    let sig = &hooks[1].headers["x-lifecycle-signature"];
    let (t, v1) = sig
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret_hmac.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", hooks[1].body).as_bytes());
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, want);
    let body: Value = serde_json::from_str(&hooks[1].body).unwrap();
    assert_eq!(body["id"], key_sent.as_str());
    assert_eq!(body["content"], "welcome Ann");
    assert_eq!(body["customer"]["id"], "c1");

    // On-site: the banner through the public key, with CORS.
    let (status, text) = request(
        addr,
        "GET",
        &format!("/api/v1/customers/c1/messages?key={public}"),
        &[],
        b"",
    );
    assert_eq!(status, 200, "{text}");
    let banners: Value = serde_json::from_str(&text).unwrap();
    // Suggestions: not what she bought; what buyers of green tea bought
    // next (the affinities), then her category (tea), then the rest.
    assert_eq!(
        banners["messages"][0]["html"]
            .as_str()
            .unwrap()
            .replace("&#x2f;", "/"),
        "<b>Welcome, Ann!</b> <a href=\"https://s/p4\">Pot</a> <a href=\"https://s/p3\">Black tea</a> <a href=\"https://s/p2\">Mug</a>"
    );
    let (status, _) = request(addr, "GET", "/api/v1/customers/c1", &[bearer(&public)], b"");
    assert_eq!(status, 401, "a public key reads nothing else");
    let (status, _) = request(addr, "OPTIONS", "/api/v1/customers/c1/messages", &[], b"");
    assert_eq!(status, 204);
    let banner_key = banners["messages"][0]["key"].as_str().unwrap().to_string();
    let (status, _) = request(
        addr,
        "POST",
        &format!(
            "/api/v1/customers/c1/messages/{}/dismiss?key={public}",
            banner_key.replace(' ', "%20")
        ),
        &[],
        b"",
    );
    assert_eq!(status, 200);
    let again = get(
        addr,
        &format!("/api/v1/customers/c1/messages?key={public}"),
        &public,
    );
    assert_eq!(again["messages"].as_array().unwrap().len(), 0);
    let (status, js) = request(addr, "GET", "/onsite.js", &[], b"");
    assert_eq!(status, 200);
    assert!(js.contains("data-key"));

    // The ad audience: normalised, hashed.
    let (status, csv) = request(
        addr,
        "GET",
        "/api/v1/moments/Retarget/audience?platform=google",
        &[bearer(&secret)],
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(
        csv,
        format!(
            "Email,Phone\n{},{}\n",
            sha256_hex("ann@example.com"),
            sha256_hex("+14155550123")
        )
    );
    let file = dir.path().join("audiences/retarget-meta.csv");
    let meta = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        meta,
        format!(
            "email,phone\n{},{}\n",
            sha256_hex("ann@example.com"),
            sha256_hex("14155550123")
        )
    );

    // A second customer's webhook is refused for good: a dead letter.
    fake.respond("/hook", &[400]);
    signup("c2", json!({"first_name": "Bo"}));
    assert!(fake.wait_for("/hook", 3, Duration::from_secs(30)));
    std::thread::sleep(Duration::from_millis(500));
    let dead = get(addr, "/api/v1/messages?status=failed", &secret);
    let dead = dead["messages"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["customer_id"], "c2");
    assert_eq!(dead[0]["detail"], "webhook: HTTP 400");
    // c2 has no phone, push token: suppressed, recorded.
    let c2 = get(addr, "/api/v1/customers/c2", &secret);
    let statuses: Vec<(String, String)> = c2["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["channel"].as_str().unwrap().into(),
                m["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&("sms".into(), "suppressed".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("push".into(), "suppressed".into())),
        "{statuses:?}"
    );
}

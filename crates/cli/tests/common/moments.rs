//! The win-back fixture shared by the moments tests: a population whose
//! 1,000 frequent buyers drift into At Risk as the clock moves, the
//! win-back moment and its templates, and API helpers.
#![allow(dead_code, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{basic, lifecycle, request, stderr, stdout};

pub fn bearer(key: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {key}"))
}

pub fn get(addr: &str, path: &str, key: &str) -> Value {
    let (status, body) = request(addr, "GET", path, &[bearer(key)], b"");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

pub fn post(addr: &str, path: &str, key: &str, body: &str) -> Value {
    let (status, text) = request(addr, "POST", path, &[bearer(key)], body.as_bytes());
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// The recency score of `days` on the run's scale.
pub fn r_score(run: &Value, days: i64) -> u8 {
    for s in run["params"]["scales"]["recency_days"].as_array().unwrap() {
        let bound = match &s["bound"] {
            Value::String(t) if t == "inf" => f64::INFINITY,
            b => b.as_f64().unwrap(),
        };
        if days as f64 <= bound {
            return s["score"].as_u64().unwrap() as u8;
        }
    }
    unreachable!("the last bound is infinite")
}

pub const WIN_BACK: &str = r#"# Win back good customers who stopped buying.
name = "Win back"
holdout = 0.1
reentry = "once"

[goal]
event = "Order Completed"
within_days = 30

[trigger]
segment_entered = "At Risk"

[audience]
consent = ["email"]

[[step]]
send = { channel = "email", template = "templates/win-back.html", subject = "{{ traits.first_name }}, we miss you" }

[[step]]
wait = { days = 14, until = "Order Completed" }

[[step]]
send = { channel = "email", template = "templates/reminder.html", subject = "Still thinking of you" }
"#;

/// Background: single-order customers (never At Risk) spread over 400
/// days; targets: 1,000 customers with five orders, the last one ten days
/// before the clock starts (2024-01-01).
pub fn orders_file(path: &std::path::Path) -> Vec<String> {
    let mut csv = String::from("customer_id,order_id,order_date,amount\n");
    let day = |d: i64| {
        jiff::civil::date(2024, 1, 1)
            .checked_sub(jiff::Span::new().days(d))
            .unwrap()
            .to_string()
    };
    for i in 0..3_000 {
        writeln!(csv, "B{i:05},b{i},{},{}", day(1 + i % 400), 20 + i % 50).unwrap();
    }
    let mut targets = Vec::new();
    for i in 0..1_000 {
        let id = format!("T{i:05}");
        for k in 0..5 {
            writeln!(csv, "{id},t{i}-{k},{},{}", day(10 + 60 * k), 40 + i % 30).unwrap();
        }
        targets.push(id);
    }
    std::fs::write(path, csv).unwrap();
    targets
}

/// A store with the win-back population imported, the keys, the moments
/// folder and a lifecycle.toml pointing at `smtp` (extra settings appended).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub db: String,
    pub secret: String,
    pub write: String,
    pub targets: Vec<String>,
    pub config: PathBuf,
}

pub fn fixture(db: Option<&str>, smtp: &str, extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = db.map_or_else(
        || format!("sqlite://{}", dir.path().join("m.db").display()),
        str::to_string,
    );
    let orders = dir.path().join("orders.csv");
    let targets = orders_file(&orders);
    let o = lifecycle(&["import", orders.to_str().unwrap(), "--db", &db]);
    assert!(o.status.success(), "{}", stderr(&o));
    let key = |kind: &str| {
        let o = lifecycle(&["keys", "create", "--kind", kind, "--db", &db]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_string()
    };
    let (secret, write) = (key("secret"), key("write"));
    let moments = dir.path().join("moments");
    std::fs::create_dir_all(moments.join("templates")).unwrap();
    std::fs::write(moments.join("win-back.toml"), WIN_BACK).unwrap();
    std::fs::write(
        moments.join("templates/win-back.html"),
        "<p>Hi {{ traits.first_name }},</p><p>you were one of our best ({{ profile.segment }}).</p>\
         <p><a href=\"https://shop.example/back?x=1\">Come back</a></p>\
         <p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>",
    )
    .unwrap();
    std::fs::write(
        moments.join("templates/reminder.html"),
        "<p>A last word, {{ traits.first_name }}.</p>",
    )
    .unwrap();
    let config = dir.path().join("lifecycle.toml");
    std::fs::write(
        &config,
        format!(
            "[moments]\ndir = \"moments\"\nglobal_control = 0.05\n{extra}\n[channels.email]\nsmtp = \"{smtp}\"\nfrom = \"Shop <shop@example.com>\"\n"
        ),
    )
    .unwrap();
    Fixture {
        dir,
        db,
        secret,
        write,
        targets,
        config,
    }
}

/// The `serve` flags for the fixture.
pub fn serve_args(f: &Fixture) -> Vec<String> {
    vec![
        "--config".into(),
        f.config.to_str().unwrap().into(),
        "--simulated-clock".into(),
        "2024-01-01".into(),
        "--refit-every".into(),
        "off".into(),
    ]
}

/// Every target leaves an email address and a first name.
pub fn identify_targets(addr: &str, f: &Fixture) {
    let batch: Vec<Value> = f
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({
                "type": "identify", "userId": t, "messageId": format!("id-{t}"),
                "traits": {"email": email_of(t), "first_name": format!("Ann{i}")},
            })
        })
        .collect();
    let body = serde_json::json!({"batch": batch}).to_string();
    let (status, text) = request(
        addr,
        "POST",
        "/v1/batch",
        &[basic(&f.write)],
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
}

pub fn email_of(target: &str) -> String {
    format!("{}@example.org", target.to_lowercase())
}

/// Days to advance from 2024-01-01 until the targets are At Risk.
pub fn days_to_at_risk(addr: &str, secret: &str) -> i64 {
    let run = get(addr, "/api/v1/models/runs", secret)["runs"][0].clone();
    let mut recency = 10;
    while r_score(&run, recency) > 2 {
        recency += 1;
    }
    assert_eq!(r_score(&run, recency), 2, "the R=2 band is empty");
    recency - 10
}

pub fn advance_days(addr: &str, secret: &str, days: f64) -> Value {
    post(
        addr,
        "/api/v1/admin/clock",
        secret,
        &format!("{{\"advance_days\": {days}}}"),
    )
}

pub fn counts(addr: &str, secret: &str, moment: &str) -> Value {
    get(
        addr,
        &format!("/api/v1/moments/{}", moment.replace(' ', "%20")),
        secret,
    )["counts"]
        .clone()
}

pub fn path_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

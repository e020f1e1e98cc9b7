//! Moments through the real binary: a win-back journey for At Risk
//! customers on a simulated clock, delivered by SMTP to a sink started by
//! the test.
//!
//! 1,000 frequent buyers drift into At Risk as the clock moves (no new
//! event); the sink receives one email per treated customer and none for
//! the moment's holdout or the global control group; some customers then
//! order and their enrolments end on the goal, counted for both groups;
//! the reminder after the wait goes only to treated customers who did not
//! order and did not unsubscribe (the link in the email really
//! unsubscribes).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::moments::*;
use common::smtp::SmtpSink;
use common::*;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;

#[test]
fn win_back_journey_on_a_simulated_clock() {
    let sink = SmtpSink::start();
    let f = fixture(None, &sink.url(), "");
    let (secret, write, targets) = (&f.secret, &f.write, &f.targets);
    let args = serve_args(&f);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start(&f.db, &args);
    let addr = server.addr.as_str();
    identify_targets(addr, &f);

    // The moment is loaded from the folder.
    let m = get(addr, "/api/v1/moments/Win%20back", secret);
    assert_eq!(m["version"], 1, "{m}");
    assert_eq!(m["counts"]["enrolled"], 0);

    // The day the targets' recency scores 2 on the run's bands.
    let days = days_to_at_risk(addr, secret);
    let before = get(addr, "/api/v1/segments", secret);
    let at_risk = |v: &Value| {
        v["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["segment"] == "At Risk")
            .map_or(0, |s| s["customers"].as_u64().unwrap())
    };
    assert_eq!(at_risk(&before), 0);
    advance_days(addr, secret, days as f64);
    let after = get(addr, "/api/v1/segments", secret);
    assert_eq!(at_risk(&after), 1_000, "{after}");

    // Enrolment: every target, the groups by their recorded assignment.
    let m = get(addr, "/api/v1/moments/Win%20back", secret);
    let counts = &m["counts"];
    assert_eq!(counts["enrolled"], 1_000, "{m}");
    let holdout = counts["holdout"].as_i64().unwrap();
    let global = counts["global_control"].as_i64().unwrap();
    // 10% and 5% of 1,000 (binomial: well within 4 standard deviations).
    assert!((100 - holdout).abs() < 40, "holdout {holdout}");
    assert!((50 - global).abs() < 30, "global control {global}");
    let treated = 1_000 - holdout - global;

    // The sink receives exactly one email per treated customer.
    assert!(
        sink.wait_for(treated as usize, Duration::from_secs(60)),
        "{} of {treated} emails after 60 s",
        sink.count()
    );
    assert_eq!(sink.settle(Duration::from_millis(1500)), treated as usize);
    let mails = sink.mails();
    let mut group: HashMap<String, String> = HashMap::new();
    for t in targets {
        let v = get(addr, &format!("/api/v1/customers/{t}"), secret);
        let j = &v["journeys"][0];
        assert_eq!(j["moment"], "Win back", "{v}");
        group.insert(
            format!("{}@example.org", t.to_lowercase()),
            j["group"].as_str().unwrap().to_string(),
        );
        let msg = &v["messages"][0];
        if j["group"] == "treatment" {
            assert_eq!(msg["status"], "sent", "{v}");
        } else {
            assert_eq!(msg["status"], "held_out", "{v}");
        }
    }
    let mut recipients = HashSet::new();
    for mail in &mails {
        assert_eq!(mail.to.len(), 1);
        let to = &mail.to[0];
        assert_eq!(group.get(to).map(String::as_str), Some("treatment"), "{to}");
        assert!(recipients.insert(to.clone()), "{to} got two emails");
        assert!(mail.data.contains("we miss you"), "{}", mail.data);
        assert!(mail.header("List-Unsubscribe").is_some(), "{}", mail.data);
        assert!(mail.header("Message-ID").is_some());
    }
    assert_eq!(
        group.values().filter(|g| *g == "holdout").count() as i64,
        holdout
    );

    // Goals: the first 100 targets order (both groups), their journeys end.
    let buyers: Vec<&String> = targets.iter().take(100).collect();
    let batch: Vec<Value> = buyers
        .iter()
        .map(|t| {
            serde_json::json!({
                "type": "track", "userId": t, "event": "Order Completed",
                "messageId": format!("back-{t}"),
                "properties": {"order_id": format!("back-{t}"), "revenue": 30.0},
            })
        })
        .collect();
    let body = serde_json::json!({"batch": batch}).to_string();
    let (status, text) = request(addr, "POST", "/v1/batch", &[basic(write)], body.as_bytes());
    assert_eq!(status, 200, "{text}");
    let buyer_emails: HashSet<String> = buyers
        .iter()
        .map(|t| format!("{}@example.org", t.to_lowercase()))
        .collect();
    let goals_treated = buyer_emails
        .iter()
        .filter(|e| group[*e] == "treatment")
        .count() as i64;
    let m = get(addr, "/api/v1/moments/Win%20back", secret);
    assert_eq!(m["counts"]["goals_treated"], goals_treated, "{m}");
    assert_eq!(m["counts"]["goals_held_out"], 100 - goals_treated, "{m}");
    assert_eq!(m["counts"]["active"], 900, "{m}");
    assert!(
        (m["counts"]["goal_value_treated"].as_f64().unwrap() - 30.0 * goals_treated as f64).abs()
            < 1e-6
    );

    // The live readout: treated vs held out, exact counts and means; the
    // export gives the same numbers through `lifecycle lift`.
    let res = get(addr, "/api/v1/moments/Win%20back/results", secret);
    let held_n = holdout + global;
    assert_eq!(res["arms"][0]["n"], treated, "{res}");
    assert_eq!(res["arms"][1]["n"], held_n, "{res}");
    assert_eq!(res["srm"]["flagged"], false, "{res}");
    let metric = |name: &str| {
        res["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == name)
            .unwrap()
            .clone()
    };
    let conv = metric("converted");
    assert!((conv["mean"].as_f64().unwrap() - goals_treated as f64 / treated as f64).abs() < 1e-12);
    assert!(
        (conv["control_mean"].as_f64().unwrap() - (100 - goals_treated) as f64 / held_n as f64)
            .abs()
            < 1e-12
    );
    let rev = metric("revenue");
    assert!(
        (rev["mean"].as_f64().unwrap() - 30.0 * goals_treated as f64 / treated as f64).abs() < 1e-9
    );
    assert!(
        conv["sequential"]["relative"]["ci"][0].as_f64().unwrap()
            <= conv["relative"]["ci"][0].as_f64().unwrap()
    );
    let (status, csv) = request(
        addr,
        "GET",
        "/api/v1/moments/Win%20back/export",
        &[bearer(secret)],
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 1 + 1_000);
    let export = dir_of(&f).join("export.csv");
    std::fs::write(&export, &csv).unwrap();
    let o = lifecycle(&[
        "lift",
        export.to_str().unwrap(),
        "--metric",
        "converted:proportion",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let offline: Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in ["estimate", "se"] {
        let (a, b) = (
            offline["results"][0]["relative"][k].as_f64().unwrap(),
            conv["relative"][k].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-12, "{k}: {a} vs {b}");
    }

    // All lifecycle marketing vs none: every customer in one arm or the other.
    let g = get(addr, "/api/v1/results/global?days=30", secret);
    let n = |i: usize| g["arms"][i]["n"].as_u64().unwrap();
    assert_eq!(n(0) + n(1), 4_000, "{g}");
    assert_eq!(g["srm"]["flagged"], false, "{g}");
    assert_eq!(g["metrics"].as_array().unwrap().len(), 3);

    // One treated non-buyer unsubscribes through the link in the email.
    let unsubscriber = mails
        .iter()
        .find(|m| !buyer_emails.contains(&m.to[0]))
        .unwrap();
    let link = unsubscriber.header("List-Unsubscribe").unwrap();
    let link = link.trim_start_matches('<').trim_end_matches('>');
    let path = &link[link.find("/u/").unwrap()..];
    let (status, page) = request(addr, "POST", path, &[], b"List-Unsubscribe=One-Click");
    assert_eq!(status, 200, "{page}");
    let (status, _) = request(addr, "POST", &format!("{path}x"), &[], b"");
    assert_eq!(status, 404, "a forged link");

    // Another one's address hard-bounces (the provider's webhook,
    // SendGrid's shape): consent withdrawn, the address suppressed.
    let bounced = mails
        .iter()
        .find(|m| !buyer_emails.contains(&m.to[0]) && m.to[0] != unsubscriber.to[0])
        .unwrap();
    let body = serde_json::json!([{"email": bounced.to[0], "event": "bounce"}]).to_string();
    let v = post(addr, "/api/v1/providers/email/events", secret, &body);
    assert_eq!(v["customers_unsubscribed"], 1, "{v}");

    // A tracked link: UTM parameters added, the click recorded, redirected.
    let text = unsubscriber.decoded();
    let at = text.find("/c/").unwrap();
    let end = at + text[at..].find('"').unwrap();
    let (status, _, location) = {
        let path = &text[at..end];
        let (status, body) = request(addr, "GET", path, &[], b"");
        (status, body, raw_location(addr, path))
    };
    assert_eq!(status, 302);
    assert_eq!(
        location,
        "https://shop.example/back?x=1&utm_source=lifecycle&utm_medium=email&utm_campaign=win-back&utm_content=step-1"
    );
    let who = targets
        .iter()
        .find(|t| email_of(t) == unsubscriber.to[0])
        .unwrap();
    let v = get(addr, &format!("/api/v1/customers/{who}"), secret);
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "Email Link Clicked"
                && e["properties"]["url"]
                    .as_str()
                    .unwrap()
                    .starts_with("https://shop.example/back")),
        "{v}"
    );

    // After the wait: the reminder to treated non-buyers, but not to the
    // one who unsubscribed nor the bounced one (suppressed, recorded).
    let reminders = group
        .iter()
        .filter(|(e, g)| *g == "treatment" && !buyer_emails.contains(*e))
        .count()
        - 2;
    let sent_before = sink.count();
    post(
        addr,
        "/api/v1/admin/clock",
        secret,
        r#"{"advance_days": 14}"#,
    );
    assert!(
        sink.wait_for(sent_before + reminders, Duration::from_secs(60)),
        "{} of {reminders} reminders",
        sink.count() - sent_before
    );
    assert_eq!(
        sink.settle(Duration::from_millis(1500)),
        sent_before + reminders
    );
    let m = get(addr, "/api/v1/moments/Win%20back", secret);
    assert_eq!(m["counts"]["active"], 0, "{m}");
    assert_eq!(m["counts"]["messages"]["suppressed"], 2, "{m}");
    assert_eq!(
        m["counts"]["messages"]["sent"],
        (treated as usize + reminders) as i64,
        "{m}"
    );
    assert!(
        sink.mails()[sent_before..]
            .iter()
            .all(|m| m.to[0] != unsubscriber.to[0] && m.to[0] != bounced.to[0])
    );

    // A test send of step 1 to a seed address, with a customer's data.
    let before = sink.count();
    let v = post(
        addr,
        "/api/v1/moments/Win%20back/test",
        secret,
        r#"{"step": 1, "to": ["seed@example.com"], "customer": "T00000"}"#,
    );
    assert_eq!(v["success"], true, "{v}");
    assert!(sink.wait_for(before + 1, Duration::from_secs(10)));
    let seed = &sink.mails()[before];
    assert_eq!(seed.to, vec!["seed@example.com".to_string()]);
    assert!(
        seed.data.contains("[test] Ann0, we miss you"),
        "{}",
        seed.data
    );
    let (status, body) = request(
        addr,
        "POST",
        "/api/v1/moments/Win%20back/test",
        &[bearer(secret)],
        br#"{"step": 2, "to": ["seed@example.com"]}"#,
    );
    assert_eq!(status, 400);
    assert!(body.contains("not an email send"), "{body}");
}

fn dir_of(f: &Fixture) -> std::path::PathBuf {
    f.dir.path().to_path_buf()
}

/// The Location header of a GET.
fn raw_location(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .unwrap_or("")
        .trim()
        .to_string()
}

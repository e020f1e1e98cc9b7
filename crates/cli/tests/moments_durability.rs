//! Delivery guarantees through the real binary.
//!
//! - kill -9 while emails go out: on restart the dead process's leases run
//!   out and every send goes out; SMTP cannot de-duplicate, so a message
//!   accepted just before the kill may go twice, with the same Message-ID,
//!   at most one per delivery worker (eight); pending waits resume.
//! - Two instances on one PostgreSQL share the outbox (SKIP LOCKED
//!   leases) and never send a message twice.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::moments::*;
use common::smtp::{Mail, SmtpSink};
use common::*;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Message-ID → the mails that carry it.
fn by_message_id(mails: &[Mail]) -> HashMap<String, Vec<&Mail>> {
    let mut out: HashMap<String, Vec<&Mail>> = HashMap::new();
    for m in mails {
        out.entry(m.header("Message-ID").unwrap())
            .or_default()
            .push(m);
    }
    out
}

/// 2024-01-01 plus `days` and `seconds`, as serve's --simulated-clock.
fn clock_at(days: i64, seconds: i64) -> String {
    let t: jiff::Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
    t.checked_add(jiff::SignedDuration::from_secs(days * 86_400 + seconds))
        .unwrap()
        .to_string()
}

#[test]
fn kill_9_while_sending_then_restart() {
    let sink = SmtpSink::start();
    // A slow provider, so that the kill lands in the middle of the sends.
    sink.set_delay(Duration::from_millis(40));
    let f = fixture(None, &sink.url(), "");
    let args = serve_args(&f);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start(&f.db, &args);
    let addr = server.addr.clone();
    identify_targets(&addr, &f);
    let days = days_to_at_risk(&addr, &f.secret);
    advance_days(&addr, &f.secret, days as f64);
    let c = counts(&addr, &f.secret, "Win back");
    let treated = 1_000 - c["holdout"].as_u64().unwrap() - c["global_control"].as_u64().unwrap();
    let treated = treated as usize;
    assert!(sink.wait_for(treated / 3, Duration::from_secs(60)));
    drop(server); // kill -9
    let before = sink.count();
    assert!(before < treated, "all {before} sent before the kill");

    // Restart three minutes later (the dead process's leases run out).
    let mut args = serve_args(&f);
    args[3] = clock_at(days, 180);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start(&f.db, &args);
    let addr = server.addr.clone();
    sink.set_delay(Duration::ZERO);
    assert!(
        sink.wait_for(treated, Duration::from_secs(60)),
        "{} of {treated} after the restart",
        sink.count()
    );
    sink.settle(Duration::from_millis(1500));
    let mails = sink.mails();
    let ids = by_message_id(&mails);
    assert_eq!(ids.len(), treated, "every treated customer, once");
    let repeats = mails.len() - ids.len();
    assert!(repeats <= 8, "{repeats} repeats: more than one per worker");
    for same in ids.values() {
        assert!(same.iter().all(|m| m.to == same[0].to));
    }
    let recipients: HashSet<&String> = mails.iter().map(|m| &m.to[0]).collect();
    assert_eq!(recipients.len(), treated);

    // The waits survived: the reminders go out once each, 14 days on.
    let first_round = mails.len();
    let c = counts(&addr, &f.secret, "Win back");
    assert_eq!(c["active"], 1_000, "{c}");
    advance_days(&addr, &f.secret, 14.0);
    assert!(sink.wait_for(first_round + treated, Duration::from_secs(60)));
    assert_eq!(
        sink.settle(Duration::from_millis(1500)),
        first_round + treated
    );
    let c = counts(&addr, &f.secret, "Win back");
    assert_eq!(c["active"], 0, "{c}");
    assert_eq!(c["messages"]["sent"], 2 * treated as u64, "{c}");
}

#[test]
fn two_instances_on_postgres_never_send_twice() {
    let sink = SmtpSink::start();
    // Slow enough that neither instance can take the whole outbox alone.
    sink.set_delay(Duration::from_millis(20));
    let db = lifecycle_store::testing::postgres_database().unwrap();
    let f = fixture(Some(&db), &sink.url(), "");
    let args = serve_args(&f);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = start(&f.db, &args);
    let b = start(&f.db, &args);
    identify_targets(&a.addr, &f);
    let days = days_to_at_risk(&a.addr, &f.secret);
    // Both clocks move: A's due pass enrols, both deliver.
    advance_days(&a.addr, &f.secret, days as f64);
    advance_days(&b.addr, &f.secret, days as f64);
    let c = counts(&a.addr, &f.secret, "Win back");
    assert_eq!(c["enrolled"], 1_000, "{c}");
    let treated = 1_000 - c["holdout"].as_u64().unwrap() - c["global_control"].as_u64().unwrap();
    let treated = treated as usize;
    assert!(
        sink.wait_for(treated, Duration::from_secs(60)),
        "{} of {treated}",
        sink.count()
    );
    assert_eq!(sink.settle(Duration::from_millis(1500)), treated);
    let mails = sink.mails();
    assert_eq!(by_message_id(&mails).len(), treated);
    let sent = |addr: &str| {
        let (status, text) = request(addr, "GET", "/metrics", &[bearer(&f.secret)], b"");
        assert_eq!(status, 200);
        text.lines()
            .find_map(|l| l.strip_prefix("lifecycle_messages_sent_total "))
            .unwrap()
            .parse::<usize>()
            .unwrap()
    };
    let (sa, sb) = (sent(&a.addr), sent(&b.addr));
    assert_eq!(sa + sb, treated);
    assert!(
        sa > 0 && sb > 0,
        "one instance did all the work: {sa} + {sb}"
    );
}

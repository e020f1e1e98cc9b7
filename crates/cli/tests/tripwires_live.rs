//! Live tripwires in `serve`: 100,000 customers with pending deadlines, a
//! simulated clock moved a day at a time for 40 days, the server killed
//! and restarted half-way. Every `Tripwire Warning` / `Tripwire Tripped`
//! fires exactly once, on the day the run's norms give (recomputed here
//! from the raw orders), and each day's due pass examines exactly the
//! deadlines that are due (counted in the database before the move), not
//! every customer.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

const START: i64 = 19_723; // 2024-01-01

fn day_of(date: &str) -> i64 {
    let d: jiff::civil::Date = date[..10].parse().unwrap();
    jiff::civil::date(1970, 1, 1).until(d).unwrap().get_days() as i64
}

#[test]
fn deadlines_fire_once_on_time_across_a_restart_and_work_is_proportional() {
    let dir = tempfile::tempdir().unwrap();
    let orders = dir.path().join("orders.csv");
    let o = lifecycle(&[
        "generate",
        "--customers",
        "100000",
        "--seed",
        "5",
        "--start",
        "2023-01-01",
        "--days",
        "365",
        "--out",
        orders.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    assert!(
        lifecycle(&["import", orders.to_str().unwrap(), "--db", &db])
            .status
            .success()
    );
    let secret = stdout(&lifecycle(&[
        "keys", "create", "--kind", "secret", "--db", &db,
    ]))
    .trim()
    .to_string();
    // The learned norms only (the personal rhythm is tested elsewhere).
    let config = dir.path().join("lifecycle.toml");
    std::fs::write(&config, "[engine]\nrhythm_threshold = 0\n").unwrap();
    let args = [
        "--simulated-clock",
        "2024-01-01",
        "--refit-every",
        "off",
        "--config",
        config.to_str().unwrap(),
    ];
    let auth = [("Authorization", format!("Bearer {secret}"))];
    let mut server = start(&db, &args);

    let (_, body) = request(&server.addr, "GET", "/api/v1/models/runs", &auth, b"");
    let runs: Value = serde_json::from_str(&body).unwrap();
    let norms: BTreeMap<usize, i64> = runs["runs"][0]["params"]["tripwire_norms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let k = n["step"].as_str().unwrap()[6..7].parse().unwrap();
            (k, n["days"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(norms.len(), 4, "{runs}");
    // The run's backtests (kept with its figures for the dashboard) are
    // the ones `lifecycle tripwires learn` computes from the same orders.
    let o = lifecycle(&[
        "tripwires",
        "learn",
        orders.to_str().unwrap(),
        "--as-of",
        "2024-01-01",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let learned: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let backtests = &runs["runs"][0]["figures"]["backtests"];
    let mut compared = 0;
    for n in learned["norms"].as_array().unwrap() {
        let (cli, live) = (&n["backtest"], &backtests[n["step"].as_str().unwrap()]);
        if cli.is_null() {
            continue;
        }
        compared += 1;
        for group in ["kept", "tripped"] {
            assert_eq!(
                cli[group]["customers"], live[group]["customers"],
                "{}",
                n["step"]
            );
            assert_eq!(
                cli[group]["repeaters"], live[group]["repeaters"],
                "{}",
                n["step"]
            );
        }
        assert_eq!(cli["norm_days"], live["norm_days"]);
    }
    assert!(compared >= 2, "{learned}");

    // The expected firing days, from the raw orders: a customer with k
    // purchase days, the last on L, warns from L + ⌈0.75 N⌉ and trips from
    // L + N + 1; what is already due on the first day fires then.
    const DAYS: i64 = 40;
    let end = START + DAYS;
    let text = std::fs::read_to_string(&orders).unwrap();
    let mut days: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        days.entry(f[0].to_string())
            .or_default()
            .insert(day_of(f[2]));
    }
    let mut want: BTreeMap<(String, &str), i64> = BTreeMap::new();
    for (c, d) in &days {
        let Some(&n) = norms.get(&d.len()) else {
            continue;
        };
        let last = *d.iter().next_back().unwrap();
        let (warn, trip) = (last + ((n as f64) * 0.75).ceil() as i64, last + n + 1);
        let warn_at = warn.max(START);
        if warn_at < trip && warn_at <= end {
            want.insert((c.clone(), "Tripwire Warning"), warn_at);
        }
        if trip.max(START) <= end {
            want.insert((c.clone(), "Tripwire Tripped"), trip.max(START));
        }
    }

    let mut examined_total = 0;
    for step in 1..=DAYS {
        let today = START + step;
        let due = sql_count(
            &db,
            &format!(
                "SELECT COUNT(*) FROM profiles WHERE due_day IS NOT NULL AND due_day <= {today}"
            ),
        );
        let (status, body) = request(
            &server.addr,
            "POST",
            "/api/v1/admin/clock",
            &auth,
            br#"{"advance_days": 1}"#,
        );
        assert_eq!(status, 200, "{body}");
        let moved: Value = serde_json::from_str(&body).unwrap();
        // The work of the pass is the deadlines due, not the customers.
        assert_eq!(moved["rescored"].as_i64().unwrap(), due, "day {step}");
        assert!(due < 10_000, "day {step}: {due} due");
        examined_total += due;
        if step == DAYS / 2 {
            // kill -9 and restart on the same day.
            drop(server);
            let simulated = format!(
                "{}",
                jiff::civil::date(1970, 1, 1)
                    .checked_add(jiff::Span::new().days(today))
                    .unwrap()
            );
            let mut again = args.to_vec();
            again[1] = &simulated;
            server = start(&db, &again);
        }
    }
    assert!(examined_total > 1_000, "{examined_total}");

    // Every firing once, on its day.
    drop(server);
    let mut got: BTreeMap<(String, &str), i64> = BTreeMap::new();
    let fired = all_stored_events(&db).into_iter().filter_map(|e| {
        let name = e.event?;
        name.starts_with("Tripwire ")
            .then_some((e.customer_id, name, e.at_ms))
    });
    for (c, e, at) in fired {
        let e = if e == "Tripwire Warning" {
            "Tripwire Warning"
        } else {
            "Tripwire Tripped"
        };
        let previous = got.insert((c.clone(), e), at.div_euclid(86_400_000));
        assert!(previous.is_none(), "{c}: {e} fired twice");
    }
    assert_eq!(got.len(), want.len());
    let wrong: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .take(5)
        .map(|(k, v)| format!("{k:?}: want day {v}, got {:?}", got.get(k)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}");
}

/// Custom tripwires from lifecycle.toml: an action due after a starting
/// event (with a warning point) and after a date trait (with a property
/// filter), fired live on the simulated clock, once, across a restart.
#[test]
fn custom_tripwires_fire_live_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    let write = stdout(&lifecycle(&[
        "keys", "create", "--kind", "write", "--db", &db,
    ]))
    .trim()
    .to_string();
    let secret = stdout(&lifecycle(&[
        "keys", "create", "--kind", "secret", "--db", &db,
    ]))
    .trim()
    .to_string();
    std::fs::write(
        dir.path().join("custom.toml"),
        r#"
[[tripwire]]
name = "activation"
start = { event = "Email Signup" }
action = { event = "Order Completed" }
within_days = 10
warn_at_days = 7

[[tripwire]]
name = "renewal"
start = { date_trait = "renewal_date" }
action = { event = "Subscription Renewed", where = { plan = "annual" } }
within_days = 5
"#,
    )
    .unwrap();
    let config = dir.path().join("lifecycle.toml");
    std::fs::write(
        &config,
        "[engine]\nrhythm_threshold = 0\ntripwires = \"custom.toml\"\n",
    )
    .unwrap();
    let args = [
        "--simulated-clock",
        "2024-01-01",
        "--refit-every",
        "off",
        "--config",
        config.to_str().unwrap(),
    ];
    let mut server = start(&db, &args);
    let send = |addr: &str, body: &str| {
        let (status, text) = request(addr, "POST", "/v1/batch", &[basic(&write)], body.as_bytes());
        assert_eq!(status, 200, "{text}");
    };
    send(
        &server.addr,
        r#"{"batch":[
        {"type":"track","userId":"a","event":"Email Signup","timestamp":"2024-01-01T09:00:00Z"},
        {"type":"track","userId":"b","event":"Email Signup","timestamp":"2024-01-01T09:00:00Z"},
        {"type":"track","userId":"b","event":"Order Completed","timestamp":"2024-01-04T09:00:00Z","properties":{"order_id":"b1","total":20}},
        {"type":"identify","userId":"c","traits":{"renewal_date":"2024-01-03"}},
        {"type":"identify","userId":"d","traits":{"renewal_date":"2024-01-03"}},
        {"type":"track","userId":"d","event":"Subscription Renewed","timestamp":"2024-01-05T09:00:00Z","properties":{"plan":"annual"}},
        {"type":"identify","userId":"e","traits":{"renewal_date":"2024-01-03"}},
        {"type":"track","userId":"e","event":"Subscription Renewed","timestamp":"2024-01-05T09:00:00Z","properties":{"plan":"monthly"}}
    ]}"#,
    );
    let auth = [("Authorization", format!("Bearer {secret}"))];
    let advance = |addr: &str, days: i64| {
        let (status, body) = request(
            addr,
            "POST",
            "/api/v1/admin/clock",
            &auth,
            format!("{{\"advance_days\": {days}}}").as_bytes(),
        );
        assert_eq!(status, 200, "{body}");
    };
    // The tripwire events in the customers' views (the server holds the
    // store), by customer, then time.
    let fired = |addr: &str| -> Vec<(String, String, String, i64)> {
        let mut out = Vec::new();
        for c in ["a", "b", "c", "d", "e"] {
            let (status, body) =
                request(addr, "GET", &format!("/api/v1/customers/{c}"), &auth, b"");
            assert_eq!(status, 200, "{body}");
            let view: serde_json::Value = serde_json::from_str(&body).unwrap();
            let mut mine: Vec<(String, String, String, i64)> = view["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| {
                    e["event"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("Tripwire "))
                })
                .map(|e| {
                    let at: jiff::Timestamp = e["timestamp"].as_str().unwrap().parse().unwrap();
                    (
                        c.to_string(),
                        e["event"].as_str().unwrap().to_string(),
                        e["messageId"].as_str().unwrap().to_string(),
                        at.as_millisecond().div_euclid(86_400_000),
                    )
                })
                .collect();
            mine.sort_by_key(|f| f.3);
            out.extend(mine);
        }
        out
    };
    advance(&server.addr, 6); // 2024-01-07
    assert!(fired(&server.addr).is_empty(), "{:?}", fired(&server.addr));
    advance(&server.addr, 1); // 01-08: a at warning (day 7 of 10)
    advance(&server.addr, 1); // 01-09: c and e tripped (renewal + 5 days passed)
    advance(&server.addr, 3); // 01-12: a tripped (10 days passed)
    drop(server);
    server = start(&db, &{
        let mut a = args.to_vec();
        a[1] = "2024-01-12";
        a
    });
    advance(&server.addr, 2);
    let got: Vec<(String, String, i64)> = fired(&server.addr)
        .into_iter()
        .map(|(c, e, id, day)| {
            assert!(id.starts_with("tripwire-"), "{id}");
            (c, e, day - 19_723)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("a".to_string(), "Tripwire Warning".to_string(), 7),
            ("a".to_string(), "Tripwire Tripped".to_string(), 11),
            ("c".to_string(), "Tripwire Tripped".to_string(), 8),
            ("e".to_string(), "Tripwire Tripped".to_string(), 8),
        ]
    );
    let (_, body) = request(&server.addr, "GET", "/api/v1/customers/a", &auth, b"");
    let view: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["tripwires"][0]["tripwire"], "activation", "{view}");
    assert_eq!(view["tripwires"][0]["status"], "tripped");
}

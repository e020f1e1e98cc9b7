//! The live engine through the real binary: a store imported from a file,
//! `serve` on a simulated clock, the customer API (view, list with cursor,
//! CSV, segments, model runs), the access table, `/openapi.json`,
//! `/metrics`, and a Champion drifting into At Risk with no new event at
//! exactly the day the run's recency bands say, `Segment Entered` emitted
//! once.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use serde_json::Value;

fn bearer(key: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {key}"))
}

fn get(addr: &str, path: &str, key: &str) -> Value {
    let (status, body) = request(addr, "GET", path, &[bearer(key)], b"");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn post(addr: &str, path: &str, key: &str, body: &str) -> Value {
    let (status, text) = request(addr, "POST", path, &[bearer(key)], body.as_bytes());
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// 2024-01-01 is day 19723.
const JAN1: i64 = 19_723;

fn iso(day: i64) -> String {
    let d = jiff::civil::date(1970, 1, 1)
        .checked_add(jiff::Span::new().days(day))
        .unwrap();
    d.to_string()
}

/// The recency score of `days` on the run's scale (steps of upper bounds).
fn r_score(run: &Value, days: i64) -> u8 {
    let steps = run["params"]["scales"]["recency_days"].as_array().unwrap();
    for s in steps {
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

#[test]
fn customer_api_and_recency_drift_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("live.db").display());
    customer_api_and_recency_drift(&db);
}

#[test]
fn customer_api_and_recency_drift_on_postgres() {
    let db = lifecycle_store::testing::postgres_database().unwrap();
    customer_api_and_recency_drift(&db);
}

fn customer_api_and_recency_drift(db: &str) {
    let dir = tempfile::tempdir().unwrap();
    // A year of BG/NBD customers (2023), the clock on the day after.
    let orders = dir.path().join("orders.csv");
    let o = lifecycle(&[
        "generate",
        "--customers",
        "400",
        "--seed",
        "7",
        "--start",
        "2023-01-01",
        "--days",
        "365",
        "--out",
        orders.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lifecycle(&["import", orders.to_str().unwrap(), "--db", db]);
    assert!(o.status.success(), "{}", stderr(&o));
    let key = |kind: &str| {
        let o = lifecycle(&["keys", "create", "--kind", kind, "--db", db]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_string()
    };
    let (secret, write) = (key("secret"), key("write"));

    // A run is made on
    // start because the store has history and no run.
    let server = start(
        db,
        &["--simulated-clock", "2024-01-01", "--refit-every", "off"],
    );
    let addr = server.addr.as_str();

    // The access table: no key, a write key on the API, a secret key on
    // ingestion: 401 without detail.
    for (path, auth) in [
        ("/api/v1/segments", vec![]),
        ("/api/v1/segments", vec![basic(&write)]),
        ("/metrics", vec![]),
    ] {
        let (status, body) = request(addr, "GET", path, &auth, b"");
        assert_eq!(
            (status, body.as_str()),
            (401, r#"{"error":"unauthorized","success":false}"#),
            "{path}"
        );
    }
    let (status, _) = request(addr, "POST", "/v1/track", &[basic(&secret)], b"{}");
    assert_eq!(status, 401);
    let (status, doc) = request(addr, "GET", "/openapi.json", &[], b"");
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert!(doc["paths"]["/api/v1/customers/{id}"]["get"].is_object());

    // Model runs: one, with its scales and models.
    let runs = get(addr, "/api/v1/models/runs", &secret);
    let run = runs["runs"][0].clone();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    let customers = run["customers"].as_u64().unwrap();
    assert!(customers > 300, "{run}");
    assert!(
        run["params"]["purchase_model"]["r"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{run}"
    );

    // Segments: everyone counted once, live.
    let segments = get(addr, "/api/v1/segments", &secret);
    let total: u64 = segments["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["customers"].as_u64().unwrap())
        .sum();
    assert_eq!(total, customers);
    assert_eq!(segments["segments"].as_array().unwrap().len(), 11);

    // Cursor pagination visits every customer exactly once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(
            addr,
            &format!("/api/v1/customers?limit=37{cursor}"),
            &secret,
        );
        for c in page["customers"].as_array().unwrap() {
            seen.push(c["customer_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(
        (seen.len() as u64, unique.len() as u64),
        (customers, customers)
    );
    // CSV export of a filtered list.
    let (status, csv) = request(
        addr,
        "GET",
        "/api/v1/customers?segment=Champions&format=csv",
        &[bearer(&secret)],
        b"",
    );
    assert_eq!(status, 200);
    assert!(
        csv.starts_with("customer_id,segment,phase,orders,total_spend"),
        "{csv}"
    );
    let champions: Vec<&str> = csv.lines().skip(1).collect();
    assert!(!champions.is_empty(), "no Champions in the population");
    assert!(
        champions
            .iter()
            .all(|l| l.contains(",Champions,Veneration,")),
        "{csv}"
    );

    // Every filter at once (segment, CLV floor, cursor, page size) agrees
    // with filtering the export here.
    let clv_of = |l: &str| l.split(',').nth(10).and_then(|v| v.parse::<f64>().ok());
    let mut clvs: Vec<f64> = champions.iter().filter_map(|l| clv_of(l)).collect();
    clvs.sort_by(f64::total_cmp);
    // Halfway between two neighbouring values well apart, so that the CSV's
    // rounding cannot put a customer on the other side.
    let mid = clvs.len() / 2;
    let floor = (mid..clvs.len() - 1)
        .find(|&i| clvs[i + 1] - clvs[i] > 1e-3)
        .map(|i| (clvs[i] + clvs[i + 1]) / 2.0)
        .unwrap();
    let after = champions[0].split(',').next().unwrap();
    let want: Vec<&str> = champions
        .iter()
        .skip(1)
        .filter(|l| clv_of(l).is_some_and(|c| c >= floor))
        .map(|l| l.split(',').next().unwrap())
        .take(3)
        .collect();
    let page = get(
        addr,
        &format!("/api/v1/customers?segment=Champions&min_clv={floor}&cursor={after}&limit=3"),
        &secret,
    );
    let got: Vec<&str> = page["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, want);

    // A Champion's view.
    let id = champions[0].split(',').next().unwrap();
    let view = get(addr, &format!("/api/v1/customers/{id}"), &secret);
    assert_eq!(view["segment"], "Champions");
    assert_eq!(view["phase"], "Veneration");
    assert!(view["segment_goal"].is_string());
    let clv = view["value"]["clv"].as_f64().unwrap();
    let p_alive = view["value"]["p_alive"].as_f64().unwrap();
    assert!(clv > 0.0 && (0.0..=1.0).contains(&p_alive), "{view}");
    assert_eq!(view["model_run"], run["id"]);
    let last = view["orders"]["last_order"].as_str().unwrap().to_string();
    let last_day = jiff::civil::date(1970, 1, 1)
        .until(last.parse::<jiff::civil::Date>().unwrap())
        .unwrap()
        .get_days() as i64;
    let f = view["rfm"]["f"].as_i64().unwrap();
    assert!(f >= 4);
    let entered = |v: &Value, segment: &str| {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "Segment Entered" && e["properties"]["segment"] == segment)
            .count()
    };
    assert_eq!(entered(&view, "Champions"), 1, "{view}");

    // The day recency first scores 2 (At Risk for F >= 3) on the run's bands.
    let today = JAN1;
    let mut due = today - last_day;
    while r_score(&run, due) > 2 {
        due += 1;
    }
    assert_eq!(
        r_score(&run, due),
        2,
        "the R=2 band is empty; pick another population"
    );
    let at_risk_day = last_day + due;
    assert!(at_risk_day > today + 1);

    // The day before: not yet At Risk.
    let moved = post(
        addr,
        "/api/v1/admin/clock",
        &secret,
        &format!("{{\"advance_days\": {}}}", at_risk_day - 1 - today),
    );
    assert!(
        moved["now"]
            .as_str()
            .unwrap()
            .starts_with(&iso(at_risk_day - 1))
    );
    let before = get(addr, &format!("/api/v1/customers/{id}"), &secret);
    assert_ne!(before["segment"], "At Risk", "{before}");
    assert_eq!(entered(&before, "At Risk"), 0);
    // The day itself: At Risk, with no event and no refit, entered once.
    post(
        addr,
        "/api/v1/admin/clock",
        &secret,
        r#"{"advance_days": 1}"#,
    );
    let after = get(addr, &format!("/api/v1/customers/{id}"), &secret);
    assert_eq!(after["segment"], "At Risk", "{after}");
    assert_eq!(after["rfm"]["r"], 2);
    assert_eq!(entered(&after, "At Risk"), 1, "{after}");
    assert_eq!(after["model_run"], run["id"]);
    // Time passing within the band emits nothing more.
    post(
        addr,
        "/api/v1/admin/clock",
        &secret,
        r#"{"advance_seconds": 3600}"#,
    );
    let later = get(addr, &format!("/api/v1/customers/{id}"), &secret);
    assert_eq!(entered(&later, "At Risk"), 1);
    let exited = later["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "Segment Exited")
        .count();
    assert!(exited >= 1);

    // Metrics with the secret key.
    let (status, text) = request(addr, "GET", "/metrics", &[bearer(&secret)], b"");
    assert_eq!(status, 200);
    assert!(text.contains("lifecycle_due_rescored_total"), "{text}");
    assert!(text.contains("lifecycle_request_duration_seconds_bucket{class=\"api\""));
    // The writer's time in transactions: it has ingested, so both count.
    for name in [
        "lifecycle_writer_work_seconds_total",
        "lifecycle_writer_commit_seconds_total",
    ] {
        let seconds: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing: {text}"))
            .parse()
            .unwrap();
        assert!(seconds > 0.0, "{name} {seconds}");
    }
    drop(server);
}

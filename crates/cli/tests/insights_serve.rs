//! The insights from `serve`: a generated shop with planted truths is
//! imported into the store, `[kpis]` names its attributes, order lines,
//! spend and survey files, and `GET /api/v1/kpis/insights` returns what
//! `analyze --kpis` finds (Lyon over-represented among Champions, P07 → P12
//! the strongest affinity, display the dearest channel) while the files are
//! served by `GET /api/v1/kpis/files/{name}`. A bad input file is a 400
//! naming its line; a server without `[kpis]` answers 404.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use serde_json::Value;

#[test]
fn serve_runs_the_insights_over_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let shop = dir.path().join("shop");
    let o = lifecycle(&[
        "generate-shop",
        "--out",
        shop.to_str().unwrap(),
        "--customers",
        "8000",
        "--seed",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let o = lifecycle(&[
        "import",
        shop.join("lines.csv").to_str().unwrap(),
        "--db",
        &db,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let config = dir.path().join("lifecycle.toml");
    std::fs::write(
        &config,
        "[kpis]\nattributes = \"shop/attributes.csv\"\nlines = \"shop/lines.csv\"\nspend = \"shop/spend.csv\"\nexperience = \"shop/experience.csv\"\nout = \"insights\"\nlookalikes = 50\n",
    )
    .unwrap();
    let o = lifecycle(&["keys", "create", "--kind", "secret", "--db", &db]);
    let key = stdout(&o).trim().to_string();
    let server = start(
        &db,
        &[
            "--config",
            config.to_str().unwrap(),
            "--simulated-clock",
            "2026-01-01T00:00:00Z",
        ],
    );
    let addr = server.addr.as_str();
    let get = |path: &str| request(addr, "GET", path, &[basic(&key)], b"");
    let (status, text) = get("/api/v1/kpis/insights");
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["customers"], 8000);
    let i = &v["insights"];
    let heads = i["anomalies"]["headlines"].to_string();
    assert!(heads.contains("Brittle"), "{heads}");
    let top = &i["lines"]["affinities"]["top"][0];
    assert_eq!(
        (top["bought"].as_str(), top["later_bought"].as_str()),
        (Some("P07"), Some("P12"))
    );
    assert!(
        i["icp"]["traits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["value"] == "Lyon" && t["index"].as_f64().unwrap() > 1.3),
        "{}",
        i["icp"]
    );
    let payback = i["payback"]["groups"].as_array().unwrap();
    let dearest = payback
        .iter()
        .max_by(|a, b| {
            a["mean_cac"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["mean_cac"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(dearest["acquisition_channel"], "display");
    assert!(i["experience"]["groups"][0]["nps"].is_number());

    // The files.
    let (status, csv) = get("/api/v1/kpis/files/lookalikes.csv");
    assert_eq!(status, 200);
    assert!(csv.starts_with("customer_id,segment,score,because,email,phone\n"));
    assert_eq!(csv.lines().count(), 51);
    let (status, csv) = get("/api/v1/kpis/files/next_best.csv");
    assert_eq!(status, 200);
    assert!(
        csv.lines().skip(1).all(|l| l.contains(",P12,P07,")),
        "{csv}"
    );
    assert_eq!(get("/api/v1/kpis/files/..%2Flifecycle.toml").0, 404);
    assert_eq!(get("/api/v1/kpis/files/summary.json").0, 404);
    // Without the secret key: refused.
    assert_eq!(
        request(addr, "GET", "/api/v1/kpis/insights", &[], b"").0,
        401
    );

    // A bad line in the survey file: 400 naming the file and line.
    std::fs::write(
        shop.join("experience.csv"),
        "customer_id,kind,value\nC0000001,nps,12\n",
    )
    .unwrap();
    let (status, text) = get("/api/v1/kpis/insights");
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("experience.csv:2: column 'value'"), "{text}");
    drop(server);

    // No [kpis]: 404 that says what to add.
    let plain = start(&db, &["--simulated-clock", "2026-01-01T00:00:00Z"]);
    let (status, text) = request(
        plain.addr.as_str(),
        "GET",
        "/api/v1/kpis/insights",
        &[basic(&key)],
        b"",
    );
    assert_eq!(status, 404);
    assert!(text.contains("[kpis]"), "{text}");
}

/// The event forms: with an empty `[kpis]`, traits come from `identify`,
/// order lines from `Order Completed` products and NPS from `Survey
/// Answered` events.
#[test]
fn serve_reads_the_event_forms_when_no_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let config = dir.path().join("lifecycle.toml");
    std::fs::write(&config, "[kpis]\n").unwrap();
    let (secret, write) = (create_key(&db, "secret"), create_key(&db, "write"));
    let server = start_at(&db, &config, "2024-06-01T00:00:00Z");
    let addr = server.addr.as_str();
    let mut batch = Vec::new();
    let send = |batch: &mut Vec<Value>| {
        let body = serde_json::json!({"batch": batch}).to_string();
        let (status, text) = request(addr, "POST", "/v1/batch", &[basic(&write)], body.as_bytes());
        assert_eq!(status, 200, "{text}");
        batch.clear();
    };
    for i in 0..300 {
        let c = format!("c{i}");
        let city = if i % 2 == 0 { "Lyon" } else { "Paris" };
        batch.push(serde_json::json!({"type": "identify", "userId": c, "messageId": format!("i{i}"),
            "timestamp": "2024-01-01T10:00:00Z", "traits": {"address": {"city": city}, "email": format!("{c}@x.io")}}));
        let first = if i % 3 == 0 { "a" } else { "c" };
        batch.push(serde_json::json!({"type": "track", "event": "Order Completed", "userId": c, "messageId": format!("o{i}"),
            "timestamp": "2024-01-02T10:00:00Z",
            "properties": {"order_id": format!("o{i}"), "revenue": 10, "products": [{"product_id": first, "category": "tea", "price": 10, "quantity": 1}]}}));
        let next = if first == "a" && i % 5 != 0 {
            "b"
        } else if i % 2 == 0 {
            "d"
        } else {
            "e"
        };
        batch.push(serde_json::json!({"type": "track", "event": "Order Completed", "userId": c, "messageId": format!("p{i}"),
            "timestamp": "2024-02-10T10:00:00Z",
            "properties": {"order_id": format!("p{i}"), "revenue": 12, "products": [{"product_id": next, "price": 12}]}}));
        batch.push(serde_json::json!({"type": "track", "event": "Survey Answered", "userId": c, "messageId": format!("s{i}"),
            "timestamp": "2024-02-11T10:00:00Z", "properties": {"nps": if i % 2 == 0 { 10 } else { 4 }}}));
        if batch.len() >= 100 {
            send(&mut batch);
        }
    }
    send(&mut batch);
    let (status, text) = request(addr, "GET", "/api/v1/kpis/insights", &[basic(&secret)], b"");
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["sources"]["attributes"], "identify traits",
        "{}",
        v["sources"]
    );
    assert_eq!(v["sources"]["lines"], "Order Completed products");
    let i = &v["insights"];
    let top = &i["lines"]["affinities"]["top"][0];
    assert_eq!(
        (top["bought"].as_str(), top["later_bought"].as_str()),
        (Some("a"), Some("b")),
        "{}",
        i["lines"]
    );
    // NPS: 150 promoters, 150 detractors overall.
    let all = &i["experience"]["groups"][0];
    assert_eq!(
        (all["group"].as_str(), all["nps_answers"].as_u64()),
        (Some("all"), Some(300))
    );
    assert!(all["nps"].as_f64().unwrap().abs() < 1e-9);
    // Stickiness by the traits' city (everyone ordered again).
    let groups = i["stickiness"]["groups"].as_array().unwrap();
    assert!(
        groups
            .iter()
            .any(|g| g["attribute"] == "city" && g["value"] == "Lyon"),
        "{groups:?}"
    );
    assert!(
        !groups.iter().any(|g| g["attribute"] == "email"),
        "contact traits are not grouped"
    );
}

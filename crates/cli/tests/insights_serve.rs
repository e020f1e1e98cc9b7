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

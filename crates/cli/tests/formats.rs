//! Every input format gives the same customers: the same synthetic orders
//! as CSV, gzip CSV, Parquet, TSV and NDJSON; plus time zones, events,
//! custom segment rules and fixed thresholds end to end.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::io::Write;
use std::path::Path;

fn generate(out: &Path) {
    let o = lifecycle(&[
        "generate",
        "--customers",
        "3000",
        "--seed",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn customers_csv(input: &Path) -> String {
    let (_, out) = analyze_json(input, &["--as-of", "2025-12-31"]);
    std::fs::read_to_string(out.path().join("customers.csv")).unwrap()
}

#[test]
fn csv_gzip_parquet_tsv_and_ndjson_agree() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("orders.csv");
    let gz = dir.path().join("orders.csv.gz");
    let pq = dir.path().join("orders.parquet");
    generate(&csv);
    generate(&gz);
    generate(&pq);
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("customer_id,order_id,order_date,amount\n"));
    let tsv = dir.path().join("orders.tsv");
    std::fs::write(&tsv, text.replace(',', "\t")).unwrap();
    let ndjson = dir.path().join("orders.ndjson");
    let mut f = std::fs::File::create(&ndjson).unwrap();
    for line in text.lines().skip(1) {
        let v: Vec<&str> = line.split(',').collect();
        writeln!(
            f,
            r#"{{"customer_id":"{}","order_id":"{}","order_date":"{}","amount":{}}}"#,
            v[0], v[1], v[2], v[3]
        )
        .unwrap();
    }
    drop(f);
    let reference = customers_csv(&csv);
    assert!(reference.lines().count() > 3000);
    for other in [&gz, &pq, &tsv, &ndjson] {
        assert_eq!(customers_csv(other), reference, "{}", other.display());
    }
}

#[test]
fn timezone_moves_purchase_days() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("orders.csv");
    // 03:30 UTC on the 2nd is still the 1st in New York; two orders become one purchase day there.
    std::fs::write(
        &p,
        "customer_id,date,amount\na,2024-03-01T12:00:00Z,5\na,2024-03-02T03:30:00Z,7\n",
    )
    .unwrap();
    let (_, out) = analyze_json(&p, &[]);
    let (_, rows) = read_csv(&out.path().join("customers.csv"));
    assert_eq!(rows[0][4], "2", "UTC: two purchase days");
    let (_, out) = analyze_json(&p, &["--timezone", "America/New_York"]);
    let (_, rows) = read_csv(&out.path().join("customers.csv"));
    assert_eq!(rows[0][4], "1", "New York: one purchase day");
    assert_eq!(rows[0][2], "2024-03-01");
}

#[test]
fn events_fill_the_visitor_segments() {
    let dir = tempfile::tempdir().unwrap();
    let orders = dir.path().join("orders.csv");
    std::fs::write(&orders, "customer_id,date,amount\nbuyer,2024-03-01,5\n").unwrap();
    let events = dir.path().join("events.csv");
    std::fs::write(
        &events,
        "customer_id,timestamp,event,email\nv1,2024-02-01T10:00:00Z,Product Viewed,\nv2,2024-02-02T10:00:00Z,Signed Up,\nv3,2024-02-03T10:00:00Z,Page Viewed,v3@example.com\nbuyer,2024-02-01T09:00:00Z,Product Viewed,\n",
    )
    .unwrap();
    let (summary, out) = analyze_json(&orders, &["--events", events.to_str().unwrap()]);
    assert_eq!(summary["customers"], 4);
    assert_eq!(summary["visitors"], 3);
    let seg = |name: &str| {
        summary["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["customers"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(seg("Engaged Visitors"), 1);
    assert_eq!(seg("Loyal Visitors"), 2);
    assert!(
        summary["notes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| !n.as_str().unwrap().contains("--events"))
    );
    let (_, rows) = read_csv(&out.path().join("customers.csv"));
    let v1 = rows.iter().find(|r| r[0] == "v1").unwrap();
    assert_eq!(
        (v1[1].as_str(), v1[8].as_str(), v1[11].as_str()),
        ("", "", "Engaged Visitors")
    );
}

#[test]
fn custom_segments_and_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let orders = dir.path().join("orders.csv");
    std::fs::write(&orders, "customer_id,date,amount\na,2024-03-01,5\nb,2024-01-01,500\nb,2024-02-01,500\nb,2024-03-01,500\n").unwrap();
    let thresholds = dir.path().join("t.toml");
    std::fs::write(
        &thresholds,
        "recency_days = [30, 90, 180, 365]\norders = [2, 3, 5, 10]\nspend = [50, 100, 250, 1000]\n",
    )
    .unwrap();
    let (summary, out) = analyze_json(&orders, &["--rfm-thresholds", thresholds.to_str().unwrap()]);
    assert_eq!(summary["scoring"]["method"], "thresholds");
    let (_, rows) = read_csv(&out.path().join("customers.csv"));
    let b = rows.iter().find(|r| r[0] == "b").unwrap();
    assert_eq!(
        (b[8].as_str(), b[9].as_str(), b[10].as_str()),
        ("5", "3", "5")
    );

    let segments = dir.path().join("segments.toml");
    std::fs::write(
        &segments,
        r#"
[[segment]]
name = "Everyone else"
phase = "Retention"
rules = [{ who = "visitor" }, { who = "visitor-with-email" }, { who = "one-order" }]
[[segment]]
name = "Repeaters"
phase = "Veneration"
goal = "Keep them"
campaigns = ["Say thanks"]
rules = [{ who = "repeat" }]
"#,
    )
    .unwrap();
    let (summary, _out) = analyze_json(&orders, &["--segments", segments.to_str().unwrap()]);
    let segs = summary["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[1]["name"], "Repeaters");
    assert_eq!(segs[1]["customers"], 1);
    // A gap is an input error naming the profile.
    std::fs::write(&segments, "[[segment]]\nname = \"Only repeat\"\nphase = \"Retention\"\nrules = [{ who = \"repeat\" }]\n").unwrap();
    let o = lifecycle(&[
        "analyze",
        orders.to_str().unwrap(),
        "--segments",
        segments.to_str().unwrap(),
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no segment matches customers with visitor without email"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn segments_command_prints_the_shipped_default_table() {
    let o = lifecycle(&["segments"]);
    assert!(o.status.success());
    let shipped = std::fs::read_to_string(repo().join("docs/segments.default.toml")).unwrap();
    assert_eq!(stdout(&o), shipped);
}

#[test]
fn table_output_lists_every_segment_with_goal_and_campaigns() {
    let out = tempfile::tempdir().unwrap();
    let o = lifecycle(&[
        "analyze",
        data("CDNOW_sample.txt").to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    for name in [
        "Engaged Visitors",
        "Loyal Visitors",
        "First-time Customers",
        "Recent Customers",
        "Promising",
        "Potential Loyalists",
        "Loyal Customers",
        "Champions",
        "Cannot Lose",
        "At Risk",
        "Falling Asleep",
    ] {
        assert!(table.contains(name), "{name} missing from\n{table}");
    }
    assert!(table.contains("Get the second order"));
    assert!(table.contains("Suggested campaigns"));
    assert!(table.contains("Pareto: the top 20% of customers bring"));
    // Not a terminal: no progress bar escape codes.
    assert!(!stderr(&o).contains('\u{1b}'));
}

#[test]
fn generate_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    generate(&a);
    generate(&b);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn mixed_currencies_need_rates() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("orders.csv");
    std::fs::write(&p, "customer_id,date,amount,currency\na,2024-03-01,10.00,USD\nb,2024-03-02,20.00,usd\nc,2024-03-03,30.00,EUR\n").unwrap();
    let o = lifecycle(&[
        "analyze",
        p.to_str().unwrap(),
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("orders.csv:4: column 'currency': currency 'EUR' differs from 'USD'"),
        "{err}"
    );
    assert!(err.contains("--currency-rates"), "{err}");
    let rates = dir.path().join("rates.csv");
    std::fs::write(&rates, "currency,rate\nUSD,1\nEUR,1.10\n").unwrap();
    let (summary, _out) = analyze_json(&p, &["--currency-rates", rates.to_str().unwrap()]);
    assert!((summary["revenue"].as_f64().unwrap() - 63.0).abs() < 1e-9);
    // A currency without a rate is an error naming it.
    std::fs::write(&rates, "EUR,1.10\n").unwrap();
    let o = lifecycle(&[
        "analyze",
        p.to_str().unwrap(),
        "--currency-rates",
        rates.to_str().unwrap(),
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no rate for currency 'USD'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn ambiguous_day_month_order_needs_a_date_format() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("orders.csv");
    std::fs::write(
        &p,
        "customer_id,date,amount\na,01/02/2024,10\na,03/04/2024,20\n",
    )
    .unwrap();
    let o = lifecycle(&[
        "analyze",
        p.to_str().unwrap(),
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--date-format"), "{}", stderr(&o));
    let (_, out) = analyze_json(&p, &["--date-format", "%d/%m/%Y"]);
    let (_, rows) = read_csv(&out.path().join("customers.csv"));
    assert_eq!(
        (rows[0][1].as_str(), rows[0][2].as_str()),
        ("2024-02-01", "2024-04-03")
    );
    let (_, out) = analyze_json(&p, &["--date-format", "%m/%d/%Y"]);
    let (_, rows) = read_csv(&out.path().join("customers.csv"));
    assert_eq!(
        (rows[0][1].as_str(), rows[0][2].as_str()),
        ("2024-01-02", "2024-03-04")
    );
    // A day above 12 late in the file settles it without a flag.
    let mut text = String::from("customer_id,date,amount\n");
    for i in 0..3000 {
        text.push_str(&format!("c{i},01/02/2024,1\n"));
    }
    text.push_str("z,25/02/2024,1\n");
    std::fs::write(&p, text).unwrap();
    let (summary, _out) = analyze_json(&p, &[]);
    assert_eq!(summary["input"]["date_format"], "day first (DD/MM/YYYY)");
}

#[test]
fn bench_command_reports_rows_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let o = lifecycle(&[
        "bench",
        "--rows",
        "2000",
        "--runs",
        "1",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("M rows/s") && out.contains("peak memory"),
        "{out}"
    );
}

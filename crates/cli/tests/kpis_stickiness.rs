//! New-customer stickiness by acquisition channel and campaign with a
//! planted truth: "social" customers come back within 90 days far more
//! often than the rest, "display" far less, "search" as everyone; the
//! campaign column carries no effect. `analyze --kpis --attributes` finds
//! the two planted effects and no other.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::fmt::Write as _;

#[test]
fn planted_stickiness_is_found_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (mut orders, mut attrs) = (
        String::from("customer_id,order_id,order_date,amount\n"),
        String::from("customer_id,acquisition_cost,acquisition_channel,campaign\n"),
    );
    let day = |d: i64| {
        jiff::civil::date(2023, 1, 1)
            .checked_add(jiff::Span::new().days(d))
            .unwrap()
            .to_string()
    };
    for i in 0..1_500 {
        let (channel, rate) = match i % 3 {
            0 => ("social", 70),
            1 => ("display", 15),
            _ => ("search", 42),
        };
        // A deterministic spread of "random" draws per customer.
        let draw = (i * 37 + 11) % 100;
        let first = (i % 200) as i64;
        writeln!(orders, "c{i},a{i},{},50", day(first)).unwrap();
        if draw < rate {
            writeln!(orders, "c{i},b{i},{},30", day(first + 20 + (i % 50) as i64)).unwrap();
        }
        let campaign = if (i / 3) % 2 == 0 { "spring" } else { "autumn" };
        writeln!(attrs, "c{i},10,{channel},{campaign}").unwrap();
    }
    let o_path = dir.path().join("orders.csv");
    let a_path = dir.path().join("attributes.csv");
    std::fs::write(&o_path, orders).unwrap();
    std::fs::write(&a_path, attrs).unwrap();
    let (summary, out) = analyze_json(
        &o_path,
        &[
            "--kpis",
            "--attributes",
            a_path.to_str().unwrap(),
            "--as-of",
            "2024-06-30",
        ],
    );
    let s = &summary["kpis"]["stickiness"];
    assert_eq!(s["window_days"], 90);
    let groups = s["groups"].as_array().unwrap();
    let find = |attr: &str, v: &str| {
        groups
            .iter()
            .find(|g| g["attribute"] == attr && g["value"] == v)
            .unwrap()
            .clone()
    };
    let social = find("acquisition_channel", "social");
    let display = find("acquisition_channel", "display");
    assert!(
        (social["rate"].as_f64().unwrap() - 0.70).abs() < 0.02,
        "{social}"
    );
    assert!(
        (display["rate"].as_f64().unwrap() - 0.15).abs() < 0.02,
        "{display}"
    );
    let flagged: Vec<String> = groups
        .iter()
        .filter(|g| g["differs"] == true)
        .map(|g| {
            format!(
                "{}={}",
                g["attribute"].as_str().unwrap(),
                g["value"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        flagged.contains(&"acquisition_channel=social".to_string()),
        "{flagged:?}"
    );
    assert!(
        flagged.contains(&"acquisition_channel=display".to_string()),
        "{flagged:?}"
    );
    assert_eq!(flagged.len(), 2, "only the planted effects: {flagged:?}");
    let (header, rows) = read_csv(&out.path().join("stickiness.csv"));
    assert_eq!(header[0], "attribute");
    assert_eq!(rows.len(), 5, "3 channels and 2 campaigns");
}

/// Anomalies with a planted truth: customers in Lyon buy often, recently
/// and much (Champions); gender carries no effect. The headlines name Lyon
/// and Champions, and nothing about gender is significant.
#[test]
fn planted_anomaly_is_found_and_gender_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let (mut orders, mut attrs) = (
        String::from("customer_id,order_id,order_date,amount\n"),
        String::from("customer_id,acquisition_cost,acquisition_channel,city,gender\n"),
    );
    let day = |d: i64| {
        jiff::civil::date(2024, 6, 30)
            .checked_sub(jiff::Span::new().days(d))
            .unwrap()
            .to_string()
    };
    for i in 0..1_000i64 {
        let lyon = i % 5 == 0;
        let city = if lyon {
            "Lyon"
        } else {
            ["Paris", "Nice", "Lille", "Nantes"][(i % 4) as usize]
        };
        let gender = if (i / 5) % 2 == 0 { "F" } else { "M" };
        if lyon {
            for k in 0..5 {
                writeln!(
                    orders,
                    "c{i},o{i}-{k},{},{}",
                    day(5 + 15 * k + i % 7),
                    90 + i % 20
                )
                .unwrap();
            }
        } else {
            let n = 1 + i % 3;
            for k in 0..n {
                writeln!(
                    orders,
                    "c{i},o{i}-{k},{},{}",
                    day(30 + (i * 13 + k * 97) % 700),
                    20 + (i * 7) % 40
                )
                .unwrap();
            }
        }
        writeln!(attrs, "c{i},5,web,{city},{gender}").unwrap();
    }
    let o_path = dir.path().join("orders.csv");
    let a_path = dir.path().join("attributes.csv");
    std::fs::write(&o_path, orders).unwrap();
    std::fs::write(&a_path, attrs).unwrap();
    let (summary, out) = analyze_json(
        &o_path,
        &[
            "--kpis",
            "--attributes",
            a_path.to_str().unwrap(),
            "--as-of",
            "2024-06-30",
        ],
    );
    let a = &summary["kpis"]["anomalies"];
    let headlines = a["headlines"].as_array().unwrap();
    assert!(!headlines.is_empty(), "{a}");
    let top = &headlines[0];
    assert_eq!(
        (top["attribute"].as_str(), top["value"].as_str()),
        (Some("city"), Some("Lyon")),
        "{a}"
    );
    assert!(
        headlines.iter().any(|h| h["value"] == "Lyon"
            && h["segment"] == "Champions"
            && h["lift"].as_f64().unwrap() > 2.0),
        "{a}"
    );
    assert!(
        top["text"]
            .as_str()
            .unwrap()
            .starts_with("Customers in Lyon are"),
        "{top}"
    );
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(
        html.contains("What distinguishes the segments") && html.contains("Customers in Lyon are")
    );
    let (_, rows) = read_csv(&out.path().join("anomalies.csv"));
    for r in rows.iter().filter(|r| r[0] == "gender") {
        let p: f64 = r[11].parse().unwrap();
        assert!(p >= 0.05, "gender is not significant: {r:?}");
    }
}

/// LTV:CAC by channel: the mean predicted CLV (customers.csv, `--clv`)
/// over the mean acquisition cost, recomputed here from the two files.
#[test]
fn ltv_cac_by_channel_matches_the_files() {
    let dir = tempfile::tempdir().unwrap();
    // BG/NBD customers (the value model needs a realistic process).
    let o_path = dir.path().join("orders.csv");
    let o = lifecycle(&[
        "generate",
        "--customers",
        "1200",
        "--seed",
        "5",
        "--start",
        "2023-01-01",
        "--days",
        "365",
        "--out",
        o_path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, order_rows) = read_csv(&o_path);
    let mut ids: Vec<String> = order_rows.iter().map(|r| r[0].clone()).collect();
    ids.sort();
    ids.dedup();
    let mut attrs = String::from("customer_id,acquisition_cost,acquisition_channel\n");
    let mut cost_of = std::collections::HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let (channel, cost) = [("social", 30.0), ("display", 5.0), ("search", 12.0)][i % 3];
        writeln!(attrs, "{id},{cost},{channel}").unwrap();
        cost_of.insert(id.clone(), (channel, cost));
    }
    let a_path = dir.path().join("attributes.csv");
    std::fs::write(&a_path, attrs).unwrap();
    let (summary, out) = analyze_json(
        &o_path,
        &[
            "--kpis",
            "--clv",
            "--attributes",
            a_path.to_str().unwrap(),
            "--as-of",
            "2023-12-31",
        ],
    );
    let groups = summary["kpis"]["ltv_cac"]["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no LTV:CAC: {}", summary["notes"]))
        .clone();
    // Independently: customers.csv's clv column joined with the costs.
    let (header, rows) = read_csv(&out.path().join("customers.csv"));
    let id = header.iter().position(|h| h == "customer_id").unwrap();
    let clv = header.iter().position(|h| h == "clv").unwrap();
    let mut sums: std::collections::HashMap<&str, (f64, f64, u64)> = Default::default();
    for r in &rows {
        let Ok(v) = r[clv].parse::<f64>() else {
            continue;
        };
        let (channel, cost) = cost_of[&r[id]];
        for g in [channel, "all"] {
            let e = sums.entry(g).or_default();
            e.0 += v;
            e.1 += cost;
            e.2 += 1;
        }
    }
    for g in &groups {
        let name = g["acquisition_channel"].as_str().unwrap();
        let (v, c, n) = sums[name];
        assert_eq!(g["customers"].as_u64().unwrap(), n, "{name}");
        let want = (v / n as f64) / (c / n as f64);
        let got = g["ltv_cac"].as_f64().unwrap();
        // customers.csv rounds CLV to a few decimals.
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "{name}: {got} vs {want}"
        );
    }
    assert_eq!(groups.len(), 4, "all and three channels");
    assert!(out.path().join("ltv_cac.csv").exists());
}

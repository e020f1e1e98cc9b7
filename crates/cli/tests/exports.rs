//! The common store exports load without flags and give the per-customer
//! results documented in `tests/fixtures/exports/README.md`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/exports")
        .join(name)
}

/// (customer, orders, purchase days, spend, first order, last order)
type Expected<'a> = &'a [(&'a str, &'a str, &'a str, &'a str, &'a str, &'a str)];

fn check(file: &str, extra: &[&str], expected: Expected<'_>) -> serde_json::Value {
    let (summary, out) = analyze_json(&fixture(file), extra);
    let (_, rows) = read_csv(&out.path().join("customers.csv"));
    assert_eq!(rows.len(), expected.len(), "{file}: {rows:?}");
    for &(id, orders, days, spend, first, last) in expected {
        let r = rows
            .iter()
            .find(|r| r[0] == id)
            .unwrap_or_else(|| panic!("{file}: no customer {id} in {rows:?}"));
        assert_eq!(
            (
                r[3].as_str(),
                r[4].as_str(),
                r[5].as_str(),
                r[1].as_str(),
                r[2].as_str()
            ),
            (orders, days, spend, first, last),
            "{file}: {id}"
        );
    }
    summary
}

#[test]
fn shopify_orders_export() {
    let s = check(
        "shopify_orders.csv",
        &["--timezone", "America/Los_Angeles"],
        &[
            (
                "ava.martin@example.com",
                "3",
                "3",
                "207.55",
                "2024-01-05",
                "2024-03-03",
            ),
            (
                "liam.chen@example.com",
                "2",
                "2",
                "169.92",
                "2024-01-07",
                "2024-03-02",
            ),
            (
                "emma.jones@example.org",
                "1",
                "1",
                "88.15",
                "2024-02-21",
                "2024-02-21",
            ),
            (
                "mia.patel@example.com",
                "1",
                "1",
                "61.63",
                "2024-03-03",
                "2024-03-03",
            ),
            (
                "noah.garcia@example.net",
                "1",
                "1",
                "127.74",
                "2024-03-10",
                "2024-03-10",
            ),
        ],
    );
    assert_eq!(s["rows"]["excluded_by_status"], 2);
    assert_eq!(s["rows"]["line_item_continuations"], 4);
    assert_eq!(s["input"]["columns"]["order"], "Name");
    assert_eq!(s["currency"], "USD");
    // In UTC the evening orders of Los Angeles fall on the next day.
    let (_, out) = analyze_json(&fixture("shopify_orders.csv"), &[]);
    let (_, rows) = read_csv(&out.path().join("customers.csv"));
    let liam = rows
        .iter()
        .find(|r| r[0] == "liam.chen@example.com")
        .unwrap();
    assert_eq!(
        (liam[1].as_str(), liam[2].as_str()),
        ("2024-01-08", "2024-03-03")
    );
}

#[test]
fn woocommerce_orders_export() {
    let s = check(
        "woocommerce_orders.csv",
        &[],
        &[
            (
                "olivia@example.co.uk",
                "2",
                "2",
                "61.00",
                "2024-04-02",
                "2024-04-20",
            ),
            (
                "jack.wilson@example.co.uk",
                "2",
                "2",
                "63.95",
                "2024-04-03",
                "2024-05-03",
            ),
            (
                "harry.evans@example.co.uk",
                "1",
                "1",
                "18.45",
                "2024-05-01",
                "2024-05-01",
            ),
            (
                "grace@example.org",
                "1",
                "1",
                "48.00",
                "2024-05-03",
                "2024-05-03",
            ),
            (
                "sophie.t@example.com",
                "1",
                "1",
                "15.95",
                "2024-05-20",
                "2024-05-20",
            ),
        ],
    );
    assert_eq!(s["rows"]["excluded_by_status"], 2);
    assert!((s["revenue"].as_f64().unwrap() - 207.35).abs() < 0.005);
}

#[test]
fn stripe_payments_export() {
    let s = check(
        "stripe_payments.csv",
        &["--timezone", "UTC"],
        &[
            ("cus_PkR8a1", "2", "2", "264.00", "2024-03-01", "2024-04-01"),
            ("cus_PkR9b2", "2", "2", "90.00", "2024-03-01", "2024-04-10"),
            ("cus_PkS1c3", "1", "1", "79.99", "2024-03-06", "2024-03-06"),
            (
                "guest.buyer@example.net",
                "1",
                "1",
                "15.50",
                "2024-04-02",
                "2024-04-02",
            ),
        ],
    );
    assert_eq!(s["rows"]["excluded_by_status"], 2);
    // `Created date (UTC)` holds UTC times: in Tokyo (UTC+9) the 23:59:59
    // payment falls on the next day, the 08:15 one stays on its day.
    let (_, out) = analyze_json(
        &fixture("stripe_payments.csv"),
        &["--timezone", "Asia/Tokyo"],
    );
    let (_, rows) = read_csv(&out.path().join("customers.csv"));
    let acme = rows.iter().find(|r| r[0] == "cus_PkR8a1").unwrap();
    assert_eq!(acme[1], "2024-03-01");
    let dana = rows.iter().find(|r| r[0] == "cus_PkR9b2").unwrap();
    assert_eq!(dana[1], "2024-03-02");
}

#[test]
fn uci_online_retail_layout() {
    let s = check(
        "uci_online_retail.csv",
        &[],
        &[
            ("17850", "4", "3", "138.54", "2010-12-01", "2011-01-04"),
            ("13047", "3", "2", "127.58", "2010-12-01", "2010-12-09"),
            ("12583", "2", "2", "264.75", "2010-12-01", "2010-12-13"),
            ("13748", "2", "2", "276.00", "2010-12-01", "2010-12-05"),
            ("15311", "2", "2", "72.23", "2010-12-01", "2010-12-16"),
            ("16098", "1", "1", "29.70", "2011-01-04", "2011-01-04"),
        ],
    );
    assert_eq!(s["rows"]["without_customer"], 3);
    assert_eq!(s["rows"]["refund_only_customers_left_out"], 1);
    assert_eq!(s["input"]["date_format"], "month first (MM/DD/YYYY)");
}

#[test]
fn segment_order_completed_messages() {
    let s = check(
        "segment_orders.ndjson",
        &[],
        &[
            ("user_019", "2", "2", "63.50", "2024-05-01", "2024-05-12"),
            ("user_044", "2", "2", "27.00", "2024-05-03", "2024-05-10"),
            ("anon-5f2c9a", "1", "1", "12.50", "2024-05-04", "2024-05-04"),
            ("user_101", "2", "2", "219.00", "2024-05-06", "2024-05-07"),
        ],
    );
    assert_eq!(s["rows"]["non_order_events"], 3);
    let events = fixture("events.csv");
    let (s, _out) = analyze_json(
        &fixture("segment_orders.ndjson"),
        &["--events", events.to_str().unwrap()],
    );
    let seg = |name: &str| {
        s["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .unwrap()["customers"]
            .clone()
    };
    assert_eq!(seg("Engaged Visitors"), 2);
    assert_eq!(seg("Loyal Visitors"), 2);
}

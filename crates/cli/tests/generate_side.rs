//! `lifecycle generate` beside the orders: NDJSON (Segment `Order
//! Completed` messages) reads as the same orders as the CSV; asking for
//! events and attributes leaves the orders unchanged; the events make the
//! visitor segments (some visitors signed up, some only looked) and every
//! buyer has a first visit; the attributes give one row per customer.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

#[test]
fn ndjson_events_and_attributes_beside_the_same_orders() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let generate = |extra: &[&str]| {
        let mut args = vec!["generate", "--customers", "3000", "--seed", "12"];
        args.extend_from_slice(extra);
        let o = lifecycle(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    generate(&["--out", &p("plain.csv")]);
    generate(&[
        "--out",
        &p("with.csv"),
        "--events",
        &p("events.csv"),
        "--attributes",
        &p("attributes.csv"),
    ]);
    generate(&["--out", &p("orders.ndjson")]);
    assert_eq!(
        std::fs::read(p("plain.csv")).unwrap(),
        std::fs::read(p("with.csv")).unwrap(),
        "side files never change the orders"
    );

    let summary = |input: &str, extra: &[&str], out: &str| {
        let mut args = vec!["analyze", input, "--json", "--out", out];
        args.extend_from_slice(extra);
        let o = lifecycle(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()
    };
    let csv = summary(&p("plain.csv"), &[], &p("a"));
    let ndjson = summary(&p("orders.ndjson"), &[], &p("b"));
    for k in ["orders", "purchase_days", "revenue", "buyers"] {
        assert_eq!(csv[k], ndjson[k], "{k}");
    }

    let with_events = summary(&p("plain.csv"), &["--events", &p("events.csv")], &p("c"));
    let count = |name: &str| {
        with_events["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["customers"]
            .as_u64()
            .unwrap()
    };
    let (engaged, loyal) = (count("Engaged Visitors"), count("Loyal Visitors"));
    assert!(
        engaged > 300 && loyal > 300,
        "{engaged} engaged, {loyal} loyal visitors"
    );
    assert_eq!(with_events["buyers"], csv["buyers"]);

    let events = std::fs::read_to_string(p("events.csv")).unwrap();
    let buyers_seen: std::collections::BTreeSet<&str> = events
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .filter(|id| id.starts_with('C'))
        .collect();
    assert_eq!(buyers_seen.len(), 3000, "every buyer visited");
    let attributes = std::fs::read_to_string(p("attributes.csv")).unwrap();
    assert!(attributes.starts_with("customer_id,acquisition_channel,acquisition_cost,city,age\n"));
    assert_eq!(attributes.lines().count(), 3001);
    let kpis = summary(
        &p("plain.csv"),
        &["--kpis", "--attributes", &p("attributes.csv")],
        &p("d"),
    );
    assert!(
        std::fs::read_to_string(dir.path().join("d/stickiness.csv"))
            .unwrap()
            .contains("acquisition_channel,search,"),
        "{kpis}"
    );
}

//! `lifecycle survey sample`: a stratified sample per segment, sized per
//! segment (all of a smaller one), reproducible by seed, with the
//! attributes' contact columns copied.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::collections::HashMap;

#[test]
fn stratified_reproducible_sample_with_contacts() {
    let dir = tempfile::tempdir().unwrap();
    let orders = data("CDNOW_master.txt");
    let attrs = dir.path().join("attributes.csv");
    let mut a = String::from("customer_id,acquisition_cost,acquisition_channel,email\n");
    for i in 1..=23_570 {
        a.push_str(&format!("{i:05},1,web,c{i}@example.org\n"));
    }
    std::fs::write(&attrs, a).unwrap();
    let draw = |seed: &str, out: &str| {
        let path = dir.path().join(out);
        let o = lifecycle(&[
            "survey",
            "sample",
            orders.to_str().unwrap(),
            "--per-segment",
            "50",
            "--seed",
            seed,
            "--attributes",
            attrs.to_str().unwrap(),
            "--out",
            path.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        read_csv(&path)
    };
    let (header, rows) = draw("1", "a.csv");
    assert_eq!(
        header,
        [
            "segment",
            "phase",
            "customer_id",
            "acquisition_channel",
            "email"
        ]
    );
    // Segment sizes from analyze.
    let (summary, _out) = analyze_json(&orders, &[]);
    let sizes: HashMap<String, u64> = summary["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["customers"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut per: HashMap<&str, u64> = HashMap::new();
    for r in &rows {
        *per.entry(r[0].as_str()).or_default() += 1;
        let id: u32 = r[2].parse().unwrap();
        assert_eq!(r[4], format!("c{id}@example.org"), "contact copied");
    }
    for (segment, size) in &sizes {
        assert_eq!(
            per.get(segment.as_str()).copied().unwrap_or(0),
            (*size).min(50),
            "{segment}"
        );
    }
    let (_, again) = draw("1", "b.csv");
    assert_eq!(rows, again, "the same seed draws the same sample");
    let (_, other) = draw("2", "c.csv");
    assert_ne!(rows, other, "another seed draws another");
}

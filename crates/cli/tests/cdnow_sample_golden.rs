//! Golden test: the per-customer BTYD summary of CDNOW_sample.txt with
//! calibration end 1997-09-30 equals the published summary shipped with
//! `lifetimes` 0.11.3 (`cdnow_customers_summary.csv`: frequency, recency, T
//! in weeks, 2 decimals; `..._with_transactions.csv`: zbar), the data of
//! Fader, Hardie & Lee (2005), "Counting your customers the easy way".
//! Conventions: data/README.md and ../shared/data/README.md.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::collections::HashMap;

use lifecycle_ingest::{ReadOptions, parse_day, read_orders};

/// Weeks rounded to 2 decimals, as the published file has them.
fn weeks(days: i32) -> f64 {
    (f64::from(days) / 7.0 * 100.0).round() / 100.0
}

fn published() -> HashMap<String, (u32, f64, f64, f64)> {
    let (_, rows) = read_csv(&data("cdnow_customers_summary_with_transactions.csv"));
    rows.iter()
        .map(|r| {
            (
                r[0].clone(),
                (
                    r[1].parse().unwrap(),
                    r[2].parse().unwrap(),
                    r[3].parse().unwrap(),
                    r[4].parse().unwrap(),
                ),
            )
        })
        .collect()
}

/// Master id → sample id, from the sample file's own first two columns.
fn sample_ids() -> HashMap<String, String> {
    std::fs::read_to_string(data("CDNOW_sample.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].trim_start_matches('0').to_string())
        })
        .collect()
}

#[test]
fn library_summaries_match_the_published_btyd_summary() {
    let as_of = parse_day("1997-09-30").unwrap();
    let opts = ReadOptions {
        as_of: Some(as_of),
        ..ReadOptions::default()
    };
    let input = read_orders(&data("CDNOW_sample.txt"), &opts).unwrap();
    let (summaries, _) = input.builder.finish(as_of);
    let expected = published();
    let ids = sample_ids();
    assert_eq!(summaries.len(), 2_357);
    let mut total_x = 0;
    for s in &summaries {
        let id = &ids[&*s.customer_id];
        let (x, t_x, t, zbar) = expected[id];
        assert_eq!(s.frequency(), x, "customer {id}");
        assert_eq!(weeks(s.recency_days().unwrap()), t_x, "customer {id}");
        assert_eq!(weeks(s.age_days(as_of).unwrap()), t, "customer {id}");
        assert!(
            (s.repeat_mean_value() - zbar).abs() <= 0.005 + 1e-9,
            "customer {id}: zbar {} vs {zbar}",
            s.repeat_mean_value()
        );
        total_x += s.frequency();
    }
    assert_eq!(total_x, 2_457, "the README's sum of frequencies");
}

#[test]
fn binary_output_reproduces_frequency_recency_and_t() {
    let (summary, out) = analyze_json(&data("CDNOW_sample.txt"), &["--as-of", "1997-09-30"]);
    assert_eq!(summary["customers"], 2_357);
    let (_, rows) = read_csv(&out.path().join("customers.csv"));
    let expected = published();
    let ids = sample_ids();
    let as_of = parse_day("1997-09-30").unwrap();
    for r in &rows {
        let id = &ids[&r[0]];
        let (x, t_x, t, _) = expected[id];
        let first = parse_day(&r[1]).unwrap();
        let last = parse_day(&r[2]).unwrap();
        let days: u32 = r[4].parse().unwrap();
        assert_eq!(days - 1, x, "customer {id}");
        assert_eq!(weeks(last - first), t_x, "customer {id}");
        assert_eq!(weeks(as_of - first), t, "customer {id}");
    }
}

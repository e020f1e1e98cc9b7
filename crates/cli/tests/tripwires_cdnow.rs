//! `lifecycle tripwires learn` on CDNOW (the bundled master file), checked
//! against an independent computation in this test: the Champions come
//! from `analyze`'s customers.csv (not from the tripwires code), the purchase
//! days straight from the raw file, the Kaplan-Meier curve from a few lines
//! written here, and the backtest's cohort, repeat counts and revenue by
//! plain loops over the raw rows.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

/// Days since 1970-01-01 of a YYYYMMDD date.
fn day(yyyymmdd: &str) -> i64 {
    let d: jiff::civil::Date = format!(
        "{}-{}-{}",
        &yyyymmdd[0..4],
        &yyyymmdd[4..6],
        &yyyymmdd[6..8]
    )
    .parse()
    .unwrap();
    jiff::civil::date(1970, 1, 1).until(d).unwrap().get_days() as i64
}

/// customer → purchase day → that day's dollars.
fn raw() -> BTreeMap<String, BTreeMap<i64, f64>> {
    let text = std::fs::read_to_string(data("CDNOW_master.txt")).unwrap();
    let mut out: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || f[0] == "customer_id" {
            continue;
        }
        *out.entry(f[0].to_string())
            .or_default()
            .entry(day(f[1]))
            .or_default() += f[3].parse::<f64>().unwrap();
    }
    out
}

/// The Champions of `analyze --as-of DATE` (its customers.csv).
fn champions(as_of: &str) -> HashSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let o = lifecycle(&[
        "analyze",
        data("CDNOW_master.txt").to_str().unwrap(),
        "--as-of",
        as_of,
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (header, rows) = read_csv(&dir.path().join("customers.csv"));
    let id = header.iter().position(|h| h == "customer_id").unwrap();
    let seg = header.iter().position(|h| h == "segment").unwrap();
    rows.iter()
        .filter(|r| r[seg] == "Champions")
        .map(|r| r[id].clone())
        .collect()
}

/// The smallest t with Kaplan-Meier F(t) ≥ p; censored subjects stay at
/// risk through their time (events first at ties).
fn km_quantile(mut data: Vec<(i64, bool)>, p: f64) -> Option<i64> {
    data.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut at_risk = data.len() as f64;
    let mut s = 1.0;
    let mut i = 0;
    while i < data.len() {
        let t = data[i].0;
        let (mut d, mut gone) = (0.0, 0.0);
        while i < data.len() && data[i].0 == t {
            d += f64::from(u8::from(data[i].1));
            gone += 1.0;
            i += 1;
        }
        s *= 1.0 - d / at_risk;
        if 1.0 - s >= p - 1e-12 {
            return Some(t);
        }
        at_risk -= gone;
    }
    None
}

/// (time to the 2nd purchase day or censoring at `as_of`, observed).
fn gap_1_2(days: &BTreeMap<i64, f64>, as_of: i64) -> Option<(i64, bool)> {
    let mut it = days.keys().filter(|&&d| d <= as_of);
    let first = *it.next()?;
    Some(match it.next() {
        Some(&second) => (second - first, true),
        None => (as_of - first, false),
    })
}

#[test]
fn cdnow_norm_and_backtest_match_an_independent_computation() {
    let o = lifecycle(&[
        "tripwires",
        "learn",
        data("CDNOW_master.txt").to_str().unwrap(),
        "--as-of",
        "1998-06-30",
        "--max-k",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let norm = &out["norms"][0];
    assert_eq!(norm["step"], "order_1_to_2");
    let customers = raw();
    let as_of = day("19980630");

    // The norm: 80% of the Champions of 1998-06-30 had their 2nd purchase
    // day within N days of their 1st.
    let best = champions("1998-06-30");
    assert_eq!(out["best_customers"], best.len());
    let gaps: Vec<(i64, bool)> = best
        .iter()
        .filter_map(|id| gap_1_2(&customers[id], as_of))
        .collect();
    let n = km_quantile(gaps.clone(), 0.8).unwrap();
    assert_eq!(norm["days"], n, "{norm}");
    assert_eq!(norm["customers"], gaps.len());
    // Published here as the expected answer for CDNOW's Champions.
    assert_eq!(n, 151);
    assert!(
        norm["statement"].as_str().unwrap().starts_with(
            "80% of your Champions placed their 2nd order within 151 days of their 1st (n=6,286)."
        ),
        "{norm}"
    );

    // The backtest: learned from the Champions of the split day, on the
    // history then; judged on every customer whose deadline falls in
    // [split, as_of − 180]: kept (2nd order by the deadline) vs tripped,
    // orders and revenue in the 180 days after the deadline.
    let bt = &norm["backtest"];
    let split_text = bt["split"].as_str().unwrap().replace('-', "");
    let split = day(&split_text);
    let best_then = champions(bt["split"].as_str().unwrap());
    let gaps_then: Vec<(i64, bool)> = best_then
        .iter()
        .filter_map(|id| gap_1_2(&customers[id], split))
        .collect();
    let n_then = km_quantile(gaps_then, 0.8).unwrap();
    assert_eq!(bt["norm_days"], n_then);
    let (mut kept, mut tripped) = ((0u64, 0u64, 0.0f64), (0u64, 0u64, 0.0f64));
    for days in customers.values() {
        let first = *days.keys().next().unwrap();
        let deadline = first + n_then;
        if deadline < split || deadline + 180 > as_of {
            continue;
        }
        let second = days.keys().nth(1).copied();
        let group = if second.is_some_and(|s| s <= deadline) {
            &mut kept
        } else {
            &mut tripped
        };
        let window: Vec<f64> = days
            .iter()
            .filter(|(d, _)| **d > deadline && **d <= deadline + 180)
            .map(|(_, v)| *v)
            .collect();
        group.0 += 1;
        group.1 += u64::from(!window.is_empty());
        group.2 += window.iter().sum::<f64>();
    }
    assert_eq!(bt["kept"]["customers"], kept.0, "{bt}");
    assert_eq!(bt["kept"]["repeaters"], kept.1);
    assert_eq!(bt["tripped"]["customers"], tripped.0);
    assert_eq!(bt["tripped"]["repeaters"], tripped.1);
    let per = |g: (u64, u64, f64)| g.2 / g.0 as f64;
    let close = |a: &Value, b: f64| (a.as_f64().unwrap() - b).abs() < 1e-6 * b.abs().max(1.0);
    assert!(
        close(&bt["kept"]["revenue_per_customer"], per(kept)),
        "{bt}"
    );
    assert!(close(&bt["tripped"]["revenue_per_customer"], per(tripped)));
    let diff = kept.1 as f64 / kept.0 as f64 - tripped.1 as f64 / tripped.0 as f64;
    assert!(close(&bt["repeat_rate_difference"]["value"], diff));
    // Customers who kept the norm went on buying more: the whole interval
    // is above zero.
    assert!(bt["repeat_rate_difference"]["low"].as_f64().unwrap() > 0.0);
}

/// `tripwires check`: every customer waiting for their (k+1)-th order is
/// tripped once the k-th norm's days have passed and at warning from 75% of
/// them, counted here from the raw rows with the norms `check` reports.
#[test]
fn cdnow_check_flags_exactly_the_customers_past_their_norm() {
    let dir = tempfile::tempdir().unwrap();
    let o = lifecycle(&[
        "tripwires",
        "check",
        data("CDNOW_master.txt").to_str().unwrap(),
        "--as-of",
        "1998-06-30",
        "--rhythm",
        "off",
        "--out",
        dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let as_of = day("19980630");
    let norms: Vec<(usize, i64)> = out["norms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let k: usize = n["step"].as_str().unwrap()[6..7].parse().unwrap();
            (k, n["days"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(norms.len(), 4);
    let mut want: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for days in raw().values() {
        let k = days.len();
        let Some(&(_, n)) = norms.iter().find(|(nk, _)| *nk == k) else {
            continue;
        };
        let elapsed = as_of - *days.keys().last().unwrap();
        let warn_from = ((n as f64) * 0.75).ceil() as i64;
        let e = want.entry(format!("order_{k}_to_{}", k + 1)).or_default();
        if elapsed > n {
            e.1 += 1;
        } else if elapsed >= warn_from {
            e.0 += 1;
        }
    }
    let got: BTreeMap<String, (u64, u64)> = out["tripwires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tripwire"].as_str().unwrap().to_string(),
                (
                    t["warning"].as_u64().unwrap(),
                    t["tripped"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    want.retain(|_, v| *v != (0, 0));
    assert_eq!(got, want);
    // The CSV has one row per flag.
    let (_, rows) = read_csv(&dir.path().join("tripwires.csv"));
    let flags: u64 = want.values().map(|(w, t)| w + t).sum();
    assert_eq!(rows.len() as u64, flags);
}

/// `analyze --tripwires`: the same norms in summary.json, tripwires.csv
/// beside the other outputs, and a report section with the backtest chart.
#[test]
fn analyze_reports_tripwires() {
    let dir = tempfile::tempdir().unwrap();
    let o = lifecycle(&[
        "analyze",
        data("CDNOW_master.txt").to_str().unwrap(),
        "--as-of",
        "1998-06-30",
        "--tripwires",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    let t = &summary["tripwires"];
    assert_eq!(t["norms"][0]["days"], 151, "{t}");
    assert!(
        t["norms"][0]["backtest"]["kept"]["customers"]
            .as_u64()
            .unwrap()
            > 0
    );
    let (header, rows) = read_csv(&dir.path().join("tripwires.csv"));
    assert_eq!(header[..3], ["customer_id", "tripwire", "status"]);
    let flagged: u64 = t["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["warning"].as_u64().unwrap() + f["tripped"].as_u64().unwrap())
        .sum();
    assert_eq!(rows.len() as u64, flagged);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("<h2>Tripwires</h2>") && html.contains("kept the norm"));
    assert!(html.contains("placed their 2nd order within 151 days of their 1st"));
}

//! Acquisition costs from a spend file and the payback period, on a
//! generated shop where half the customers have no cost of their own: the
//! channel's spend in their acquisition month is shared over the customers
//! it acquired. Mean CAC and first-month margin per channel are recomputed
//! here from the files (a month's margin: its revenue times the customer's
//! margin rate, `lines.csv` amounts less `unit_cost × quantity`).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::collections::HashMap;

#[test]
fn spend_fills_missing_costs_and_payback_matches_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let shop = dir.path().join("shop");
    let p = |n: &str| shop.join(n).to_str().unwrap().to_string();
    let o = lifecycle(&[
        "generate-shop",
        "--out",
        shop.to_str().unwrap(),
        "--customers",
        "3000",
        "--seed",
        "5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Blank every other customer's own cost, and double the spend of one
    // channel-month (so spend-based costs differ from the own costs).
    let (header, rows) = read_csv(&shop.join("attributes.csv"));
    let mut text = header.join(",") + "\n";
    let mut own: HashMap<String, (String, Option<f64>)> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let cost = (i % 2 == 0).then(|| r[3].parse::<f64>().unwrap());
        own.insert(r[0].clone(), (r[2].clone(), cost));
        let c = cost.map_or_else(String::new, |c| format!("{c}"));
        text += &format!("{},{},{},{c},{}\n", r[0], r[1], r[2], r[4..].join(","));
    }
    std::fs::write(shop.join("attr.csv"), text).unwrap();
    let (_, spend_rows) = read_csv(&shop.join("spend.csv"));
    let spend: HashMap<(String, String), f64> = spend_rows
        .iter()
        .map(|r| ((r[0].clone(), r[1].clone()), r[2].parse().unwrap()))
        .collect();
    // First order month and first-month margin per customer from the lines.
    let (_, lines) = read_csv(&shop.join("lines.csv"));
    let mut first: HashMap<String, String> = HashMap::new();
    for l in &lines {
        let m = l[2][..7].to_string();
        let e = first.entry(l[0].clone()).or_insert(m.clone());
        if m < *e {
            *e = m;
        }
    }
    // (revenue in the first month, revenue, margin) per customer: the
    // margin of a month is its revenue times the customer's margin rate.
    let mut sums: HashMap<String, (f64, f64, f64)> = HashMap::new();
    for l in &lines {
        let q: f64 = l[6].parse().unwrap();
        let amount: f64 = l[10].parse().unwrap();
        let e = sums.entry(l[0].clone()).or_insert((0.0, 0.0, 0.0));
        if l[2][..7] == first[&l[0]] {
            e.0 += amount;
        }
        e.1 += amount;
        e.2 += amount - l[8].parse::<f64>().unwrap() * q;
    }
    // Customers whose returns cancel their revenue take the overall rate.
    let (all_margin, all_revenue) = sums
        .values()
        .fold((0.0, 0.0), |(m, r), s| (m + s.2, r + s.1));
    let month0: HashMap<String, f64> = sums
        .into_iter()
        .map(|(id, (m0, revenue, margin))| {
            let rate = if revenue > 0.0 {
                margin / revenue
            } else {
                all_margin / all_revenue
            };
            (id, m0 * rate)
        })
        .collect();
    let mut acquired: HashMap<(String, String), f64> = HashMap::new();
    for (id, (channel, _)) in &own {
        *acquired
            .entry((channel.clone(), first[id].clone()))
            .or_insert(0.0) += 1.0;
    }
    let mut expect: HashMap<String, (f64, f64, f64)> = HashMap::new();
    for (id, (channel, cost)) in &own {
        let key = (channel.clone(), first[id].clone());
        let cac = cost.unwrap_or_else(|| spend[&key] / acquired[&key]);
        let e = expect.entry(channel.clone()).or_insert((0.0, 0.0, 0.0));
        e.0 += cac;
        e.1 += month0.get(id).copied().unwrap_or(0.0);
        e.2 += 1.0;
    }
    let out = dir.path().join("out");
    let o = lifecycle(&[
        "analyze",
        &p("lines.csv"),
        "--kpis",
        "--attributes",
        &p("attr.csv"),
        "--lines",
        &p("lines.csv"),
        "--spend",
        &p("spend.csv"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (h, rows) = read_csv(&out.join("payback.csv"));
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    assert_eq!(rows.len(), 5);
    for r in &rows {
        let (cac, m0, n) = expect[&r[0]];
        let got: f64 = r[col("mean_cac")].parse().unwrap();
        assert!(
            (got - cac / n).abs() < 0.006,
            "{}: CAC {got} vs {}",
            r[0],
            cac / n
        );
        let got: f64 = r[col("margin_month_0")].parse().unwrap();
        assert!(
            (got - m0 / n).abs() < 0.006,
            "{}: month 0 {got} vs {}",
            r[0],
            m0 / n
        );
        let months = &r[col("payback_months")];
        if r[0] == "display" {
            assert!(
                months.parse::<u32>().unwrap() >= 1,
                "display pays back later: {r:?}"
            );
        } else {
            assert_eq!(months, "0", "{r:?}");
        }
    }
    // Without attributes the spend file is refused.
    let o = lifecycle(&[
        "analyze",
        &p("lines.csv"),
        "--kpis",
        "--spend",
        &p("spend.csv"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--spend needs --attributes"),
        "{}",
        stderr(&o)
    );
}

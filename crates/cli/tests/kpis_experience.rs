//! Experience KPIs by segment and phase (`analyze --kpis --experience`),
//! recomputed here by hand from customers.csv's segments: NPS from the NPS
//! answers alone (promoters 9–10 minus detractors 0–6), CES and review
//! means, returns per item bought (negative order lines) and tickets
//! resolved per ticket opened; free-text answers land in comments.csv with
//! the customer's segment.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::collections::HashMap;
use std::fmt::Write as _;

#[test]
fn experience_by_segment_and_phase_matches_a_hand_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::from("customer_id,date,product_id,quantity,unit_price\n");
    let mut exp = String::from("customer_id,kind,value,comment\n");
    for i in 0..60 {
        // 1 to 4 orders of 1 or 2 lines; every 7th customer returns one item.
        for k in 0..(1 + i % 4) {
            let day = 1 + (i * 5 + k * 40) % 300;
            let date = format!("2024-{:02}-{:02}", 1 + day / 28, 1 + day % 28);
            writeln!(lines, "c{i},{date},p{},1,{}", k % 3, 20 + i).unwrap();
            if i % 2 == 0 {
                writeln!(lines, "c{i},{date},q{},1,5", k % 2).unwrap();
            }
            if i % 7 == 0 && k == 0 {
                writeln!(lines, "c{i},{date},p0,-1,{}", 20 + i).unwrap();
            }
        }
        if i % 3 != 0 {
            writeln!(exp, "c{i},nps,{},", (i * 7) % 11).unwrap();
        }
        if i % 5 == 0 {
            writeln!(exp, "c{i},ces,{},too many steps", 1 + i % 7).unwrap();
        }
        if i % 4 == 1 {
            writeln!(exp, "c{i},review,{},", 1 + i % 5).unwrap();
        }
        if i % 6 == 2 {
            writeln!(exp, "c{i},ticket,{},", i % 12 / 6).unwrap();
        }
    }
    writeln!(exp, "stranger,nps,10,").unwrap();
    let lp = dir.path().join("lines.csv");
    let ep = dir.path().join("experience.csv");
    std::fs::write(&lp, &lines).unwrap();
    std::fs::write(&ep, &exp).unwrap();
    let out = dir.path().join("out");
    let o = lifecycle(&[
        "analyze",
        lp.to_str().unwrap(),
        "--kpis",
        "--lines",
        lp.to_str().unwrap(),
        "--experience",
        ep.to_str().unwrap(),
        "--as-of",
        "2024-12-31",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (h, rows) = read_csv(&out.join("customers.csv"));
    let seg_col = h.iter().position(|x| x == "segment").unwrap();
    let phase_col = h.iter().position(|x| x == "phase").unwrap();
    let group: HashMap<String, (String, String)> = rows
        .iter()
        .map(|r| (r[0].clone(), (r[seg_col].clone(), r[phase_col].clone())))
        .collect();
    // Hand sums per group: [nps n, promoters, detractors, ces n, ces sum,
    // reviews, review sum, returned, bought, opened, resolved, customers].
    let mut sums: HashMap<String, [f64; 12]> = HashMap::new();
    let mut add = |id: &str, f: &dyn Fn(&mut [f64; 12])| {
        let (s, p) = &group[id];
        for g in [s.clone(), p.clone(), "all".to_string()] {
            f(sums.entry(g).or_insert([0.0; 12]));
        }
    };
    for id in group.keys() {
        add(id, &|v| v[11] += 1.0);
    }
    for l in lines.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        let returned = f[3].starts_with('-');
        add(f[0], &|v| if returned { v[7] += 1.0 } else { v[8] += 1.0 });
    }
    for l in exp.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        if f[0] == "stranger" {
            continue;
        }
        let x: f64 = f[2].parse().unwrap();
        add(f[0], &|v| match f[1] {
            "nps" => {
                v[0] += 1.0;
                v[1] += f64::from(x >= 9.0);
                v[2] += f64::from(x <= 6.0);
            }
            "ces" => {
                v[3] += 1.0;
                v[4] += x;
            }
            "review" => {
                v[5] += 1.0;
                v[6] += x;
            }
            _ => {
                v[9] += 1.0;
                v[10] += x;
            }
        });
    }
    let (h, rows) = read_csv(&out.join("experience.csv"));
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let mut checked = 0;
    for r in &rows {
        let Some(v) = sums.get(&r[1]) else {
            assert_eq!(r[col("customers")], "0", "{r:?}");
            continue;
        };
        checked += 1;
        let close = |name: &str, want: Option<f64>| {
            let got = &r[col(name)];
            match want {
                Some(w) => assert!(
                    (got.parse::<f64>().unwrap() - w).abs() < 0.051,
                    "{}: {name} {got} vs {w}",
                    r[1]
                ),
                None => assert_eq!(got, "", "{}: {name}", r[1]),
            }
        };
        assert_eq!(r[col("customers")], format!("{}", v[11]), "{r:?}");
        close("nps", (v[0] > 0.0).then(|| 100.0 * (v[1] - v[2]) / v[0]));
        close("ces", (v[3] > 0.0).then(|| v[4] / v[3]));
        close("review_score", (v[5] > 0.0).then(|| v[6] / v[5]));
        close("return_rate", (v[8] > 0.0).then(|| v[7] / v[8]));
        close("resolution_rate", (v[9] > 0.0).then(|| v[10] / v[9]));
    }
    assert!(checked >= 4, "all, some phases and segments: {checked}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["kpis"]["experience"]["signals_of_unknown_customers"],
        1
    );
    let (_, comments) = read_csv(&out.join("comments.csv"));
    assert_eq!(comments.len(), 12);
    assert!(
        comments
            .iter()
            .all(|c| c[1] == group[&c[0]].0 && c[3] == "too many steps")
    );
}

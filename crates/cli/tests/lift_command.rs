//! `lifecycle lift` through the real binary: the JSON readout's shape and
//! values on a file whose arms are known, the sample-ratio check, inverse
//! metrics, corrections, and errors that name the file, line and column.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::fmt::Write as _;

use serde_json::Value;

/// 1,000 control customers converting 10%, 9,000 treated converting 12%,
/// revenue 20 per conversion; an unsubscribe column.
fn file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut csv = String::from("id,arm,converted,revenue,unsubscribed\n");
    for i in 0..10_000 {
        let (arm, k) = if i < 1_000 {
            ("control", i)
        } else {
            ("treatment", i - 1_000)
        };
        let rate = if arm == "control" { 10 } else { 12 };
        let converted = u8::from(k % 100 < rate);
        let uns = u8::from(k % 50 == 0);
        writeln!(
            csv,
            "c{i},{arm},{converted},{},{uns}",
            20 * u32::from(converted)
        )
        .unwrap();
    }
    let p = dir.join("customers.csv");
    std::fs::write(&p, csv).unwrap();
    p
}

fn lift(args: &[&str]) -> Value {
    let o = lifecycle(args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn readout_json_srm_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path());
    let f = f.to_str().unwrap();
    let v = lift(&[
        "lift",
        f,
        "--metric",
        "converted:proportion",
        "--metric",
        "revenue:mean",
        "--metric",
        "unsubscribed:proportion",
        "--inverse",
        "unsubscribed",
        "--split",
        "control=0.1,treatment=0.9",
        "--json",
    ]);
    assert_eq!(v["srm"]["flagged"], false, "{v}");
    let r = &v["results"][0];
    assert_eq!(
        (r["metric"].as_str(), r["arm"].as_str()),
        (Some("converted"), Some("treatment"))
    );
    assert_eq!(
        (r["n"].as_u64(), r["control_n"].as_u64()),
        (Some(9_000), Some(1_000))
    );
    assert!((r["mean"].as_f64().unwrap() - 0.12).abs() < 1e-12);
    assert!((r["control_mean"].as_f64().unwrap() - 0.10).abs() < 1e-12);
    // Absolute 0.02 with Var = .1*.9/1000 + .12*.88/9000; relative 0.2.
    let abs = &r["absolute"];
    let se = (0.09_f64 / 1000.0 + 0.1056 / 9000.0).sqrt();
    assert!((abs["estimate"].as_f64().unwrap() - 0.02).abs() < 1e-12);
    assert!((abs["se"].as_f64().unwrap() - se).abs() < 1e-12);
    assert!((r["relative"]["estimate"].as_f64().unwrap() - 0.2).abs() < 1e-12);
    let total = &r["incremental_total"];
    assert!(
        (total["estimate"].as_f64().unwrap() - 180.0).abs() < 1e-9,
        "{total}"
    );
    assert_eq!(v["results"][2]["inverse"], true);

    // Equal weights: 1,000 vs 9,000 is a mismatch, flagged.
    let v = lift(&["lift", f, "--metric", "converted:proportion", "--json"]);
    assert_eq!(v["srm"]["flagged"], true);
    let o = lifecycle(&["lift", f, "--metric", "converted:proportion"]);
    assert!(
        stdout(&o).starts_with("!! SAMPLE RATIO MISMATCH"),
        "{}",
        stdout(&o)
    );

    // Bayesian: chance to win and risk; Holm raises p-values.
    let v = lift(&[
        "lift",
        f,
        "--metric",
        "converted:proportion",
        "--method",
        "bayesian",
        "--prior",
        "0,0.3",
        "--json",
    ]);
    let ctw = v["results"][0]["chance_to_win"].as_f64().unwrap();
    assert!(ctw > 0.9 && ctw < 1.0, "{ctw}");
    assert_eq!(v["results"][0]["risk"].as_array().unwrap().len(), 2);
    let plain = lift(&[
        "lift",
        f,
        "--metric",
        "converted:proportion",
        "--metric",
        "revenue:mean",
        "--json",
    ]);
    let holm = lift(&[
        "lift",
        f,
        "--metric",
        "converted:proportion",
        "--metric",
        "revenue:mean",
        "--correction",
        "holm",
        "--json",
    ]);
    let p = |v: &Value, i: usize| v["results"][i]["relative"]["p_value"].as_f64().unwrap();
    assert!(p(&holm, 0) >= p(&plain, 0) && p(&holm, 1) >= p(&plain, 1));
    // Bonferroni: p·2 and the t interval at alpha/2 (wider).
    let bonf = lift(&[
        "lift",
        f,
        "--metric",
        "converted:proportion",
        "--metric",
        "revenue:mean",
        "--correction",
        "bonferroni",
        "--json",
    ]);
    assert!((p(&bonf, 0) - (2.0 * p(&plain, 0)).min(1.0)).abs() < 1e-12);
    let width = |v: &Value| {
        let ci = &v["results"][0]["relative"]["ci"];
        ci[1].as_f64().unwrap() - ci[0].as_f64().unwrap()
    };
    assert!(width(&bonf) > width(&plain));

    // The HTML report: a forest plot, the table, the SRM warning.
    let html = dir.path().join("lift.html");
    let o = lifecycle(&[
        "lift",
        f,
        "--metric",
        "converted:proportion",
        "--html",
        html.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<svg") && page.contains("converted · treatment"),
        "{page}"
    );
    assert!(
        page.contains("class=\"warn\">Sample ratio mismatch"),
        "{page}"
    );

    // Errors: the column, the line.
    let o = lifecycle(&["lift", f, "--metric", "orders:mean"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no column \"orders\""),
        "{}",
        stderr(&o)
    );
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "arm,converted\ncontrol,1\ntreatment,yes\n").unwrap();
    let o = lifecycle(&[
        "lift",
        bad.to_str().unwrap(),
        "--metric",
        "converted:proportion",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("line 3, column converted: \"yes\" is not a number"),
        "{}",
        stderr(&o)
    );
    let o = lifecycle(&[
        "lift",
        f,
        "--metric",
        "converted:proportion",
        "--control",
        "holdout",
    ]);
    assert!(stderr(&o).contains("no arm \"holdout\""), "{}", stderr(&o));
}

/// `lifecycle lift plan`: the baseline from history (customers who bought
/// before the last window; who ordered in it, for how much), power and MDE
/// for a planned audience; more customers, more power; sequential testing
/// costs power.
#[test]
fn plan_from_history() {
    let dir = tempfile::tempdir().unwrap();
    let orders = dir.path().join("orders.csv");
    let mut csv = String::from("customer_id,order_id,order_date,amount\n");
    for i in 0..10 {
        writeln!(csv, "c{i},a{i},2024-01-0{},20", 1 + i % 5).unwrap();
        if i < 4 {
            writeln!(csv, "c{i},b{i},2024-03-2{},{}", i, 10 * (i + 1)).unwrap();
        }
    }
    // A customer whose first order is inside the window is not in the baseline.
    writeln!(csv, "new,n1,2024-03-25,99").unwrap();
    std::fs::write(&orders, csv).unwrap();
    let plan = |audience: &str| {
        lift(&[
            "lift",
            "plan",
            "--baseline-from",
            orders.to_str().unwrap(),
            "--audience",
            audience,
            "--window-days",
            "30",
            "--effect",
            "0.2",
            "--json",
        ])
    };
    let small = plan("2000");
    assert_eq!(small["history_customers"], 10, "{small}");
    let conv = &small["metrics"][0];
    assert!(
        (conv["baseline_mean"].as_f64().unwrap() - 0.4).abs() < 1e-12,
        "{conv}"
    );
    let rev = &small["metrics"][1];
    assert!(
        (rev["baseline_mean"].as_f64().unwrap() - 10.0).abs() < 1e-12,
        "{rev}"
    );
    let big = plan("200000");
    let p = |v: &Value, key: &str| v["metrics"][0][key].as_f64().unwrap();
    assert!(p(&big, "power") > p(&small, "power"));
    assert!(p(&big, "mde") < p(&small, "mde"));
    let seq = small["metrics"][0]["sequential"]["mde"].as_f64().unwrap();
    assert!(
        seq > p(&small, "mde"),
        "sequential testing needs a larger effect"
    );
    let o = lifecycle(&[
        "lift",
        "plan",
        "--baseline-from",
        orders.to_str().unwrap(),
        "--audience",
        "1000",
        "--holdout",
        "1.5",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

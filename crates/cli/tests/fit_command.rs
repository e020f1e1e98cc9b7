//! `lifecycle fit` end to end: from raw orders and from the published
//! summary files, with the parameter names of the papers in `--json`.
//! Reference values: see `crates/models/tests/*_golden.rs` for the sources.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

fn fit_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["fit"];
    all.extend_from_slice(args);
    all.push("--json");
    let o = lifecycle(&all);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn param(v: &serde_json::Value, name: &str) -> f64 {
    v["params"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

#[test]
fn bgnbd_from_raw_orders_reproduces_the_paper() {
    let v = fit_json(&[
        data("CDNOW_sample.txt").to_str().unwrap(),
        "--model",
        "bgnbd",
        "--calibration-end",
        "1997-09-30",
    ]);
    assert_eq!(v["model"], "bgnbd");
    assert_eq!(v["time_unit"], "weeks");
    assert_eq!(v["calibration_end"], "1997-09-30");
    assert_eq!(v["n_customers"], 2357.0);
    for (name, want) in [("r", 0.243), ("alpha", 4.414), ("a", 0.793), ("b", 2.426)] {
        assert!(
            (param(&v, name) - want).abs() < 5e-4,
            "{name} = {}",
            param(&v, name)
        );
        assert!(v["standard_errors"][name].as_f64().unwrap() > 0.0);
    }
    assert!((v["log_likelihood"].as_f64().unwrap() + 9582.4).abs() < 0.05);
    assert!(
        v["data_sufficiency"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );
    // In days the same fit has alpha seven times larger.
    let d = fit_json(&[
        data("CDNOW_sample.txt").to_str().unwrap(),
        "--model",
        "bgnbd",
        "--calibration-end",
        "1997-09-30",
        "--time-unit",
        "day",
    ]);
    assert!((param(&d, "alpha") / param(&v, "alpha") - 7.0).abs() < 1e-3);
    assert!((param(&d, "r") - param(&v, "r")).abs() < 1e-4);
}

#[test]
fn summary_files_and_the_other_models() {
    let summary = data("cdnow_customers_summary.csv");
    // A summary must state its unit.
    let o = lifecycle(&["fit", summary.to_str().unwrap(), "--model", "bgnbd"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("time unit"), "{}", stderr(&o));
    let v = fit_json(&[
        summary.to_str().unwrap(),
        "--model",
        "pareto-nbd",
        "--time-unit",
        "week",
    ]);
    assert!((param(&v, "r") - 0.553).abs() < 5e-4 && (param(&v, "s") - 0.606).abs() < 5e-4);
    let v = fit_json(&[
        data("cdnow_customers_summary_with_transactions.csv")
            .to_str()
            .unwrap(),
        "--model",
        "gamma-gamma",
        "--time-unit",
        "week",
    ]);
    assert!((param(&v, "p") - 6.25).abs() < 5e-3 && (param(&v, "q") - 3.74).abs() < 5e-3);
    assert_eq!(v["n_customers"], 946.0);
    let v = fit_json(&[data("donations.csv").to_str().unwrap(), "--model", "bgbb"]);
    for (name, want) in [
        ("alpha", 1.204),
        ("beta", 0.750),
        ("gamma", 0.657),
        ("delta", 2.783),
    ] {
        assert!((param(&v, name) - want).abs() < 5e-4, "{name}");
    }
    let dir = tempfile::tempdir().unwrap();
    let cohort = dir.path().join("cohort.csv");
    std::fs::write(
        &cohort,
        "year,survivors\n0,1000\n1,631\n2,468\n3,382\n4,326\n5,289\n6,262\n7,241\n",
    )
    .unwrap();
    let v = fit_json(&[cohort.to_str().unwrap(), "--model", "sbg"]);
    assert!((param(&v, "alpha") - 0.704).abs() < 5e-4 && (param(&v, "beta") - 1.182).abs() < 5e-4);
    // The wrong data for a model is an input error, not a panic.
    let o = lifecycle(&["fit", cohort.to_str().unwrap(), "--model", "bgnbd"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn no_repeat_buyers_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("orders.csv");
    std::fs::write(
        &p,
        "customer_id,date,amount\na,2024-01-01,5\nb,2024-01-02,6\nc,2024-01-03,7\n",
    )
    .unwrap();
    let o = lifecycle(&["fit", p.to_str().unwrap(), "--model", "bgnbd"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no customer has a repeat purchase"),
        "{}",
        stderr(&o)
    );
}

/// `fit --model auto` fits BG/NBD, MBG/NBD and Pareto/NBD; with a
/// calibration end before the data's end it scores each on the holdout (the
/// later 39 weeks of CDNOW) and keeps the lowest MAE, otherwise the lowest BIC.
#[test]
fn auto_compares_the_purchase_models() {
    let v = fit_json(&[
        data("CDNOW_sample.txt").to_str().unwrap(),
        "--model",
        "auto",
        "--calibration-end",
        "1997-09-30",
    ]);
    assert_eq!(v["model"], "auto");
    assert_eq!(v["holdout_end"], "1998-06-30");
    let candidates = v["candidates"].as_array().unwrap();
    let names: Vec<&str> = candidates
        .iter()
        .map(|c| c["model"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bgnbd", "mbgnbd", "pareto-nbd"]);
    let mae = |c: &serde_json::Value| c["holdout"]["mae"].as_f64().unwrap();
    let best = candidates
        .iter()
        .min_by(|a, b| mae(a).total_cmp(&mae(b)))
        .unwrap();
    assert_eq!(v["chosen"], best["model"]);
    assert!(v["reason"].as_str().unwrap().contains("holdout"));
    // The holdout's actual repeat purchases are the same for every model.
    for c in candidates {
        assert_eq!(c["holdout"]["actual_purchases"], 1882.0);
    }
    assert!((param(&candidates[0], "r") - 0.243).abs() < 5e-4);

    // A summary file has no holdout: BIC decides.
    let s = fit_json(&[
        data("cdnow_customers_summary.csv").to_str().unwrap(),
        "--model",
        "auto",
        "--time-unit",
        "weeks",
    ]);
    assert!(s["reason"].as_str().unwrap().contains("BIC"));
    let bic = |c: &serde_json::Value| c["bic"].as_f64().unwrap();
    let candidates = s["candidates"].as_array().unwrap();
    let best = candidates
        .iter()
        .min_by(|a, b| bic(a).total_cmp(&bic(b)))
        .unwrap();
    assert_eq!(s["chosen"], best["model"]);
    assert!(candidates.iter().all(|c| c.get("holdout").is_none()));
}

/// `--covariates` reads the customers file, dummy-codes text columns
/// against their most common value and fits the BG/NBD with covariates
/// (papers' names plus trans./life. coefficients). Customers marked "vip"
/// here are those with 3+ purchase days in the calibration period, so the
/// purchase-rate coefficient must come out strongly positive; the region,
/// assigned by id parity, carries no signal.
#[test]
fn covariates_from_the_customers_file() {
    let text = std::fs::read_to_string(data("CDNOW_sample.txt")).unwrap();
    let mut days: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 5 && f[2] <= "19970930" {
            days.entry(f[0].to_string())
                .or_default()
                .insert(f[2].to_string());
        }
    }
    let mut csv = String::from("customer_id,acquisition_channel,region\n");
    for (id, d) in &days {
        let channel = if d.len() >= 3 { "vip" } else { "regular" };
        let region = if id.parse::<u32>().unwrap() % 2 == 0 {
            "US"
        } else {
            "EU"
        };
        csv.push_str(&format!("{id},{channel},{region}\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let customers = dir.path().join("customers.csv");
    std::fs::write(&customers, csv).unwrap();
    let v = fit_json(&[
        data("CDNOW_sample.txt").to_str().unwrap(),
        "--model",
        "bgnbd",
        "--calibration-end",
        "1997-09-30",
        "--customers",
        customers.to_str().unwrap(),
        "--covariates",
        "acquisition_channel,region",
    ]);
    assert_eq!(v["n_customers"], 2357);
    assert_eq!(
        v["covariates"],
        serde_json::json!(["acquisition_channel=vip", "region=US"])
    );
    let coef = |name: &str| {
        (
            v["params"][name].as_f64().unwrap(),
            v["standard_errors"][name].as_f64().unwrap(),
        )
    };
    let (vip, se) = coef("trans.acquisition_channel=vip");
    assert!(vip / se > 5.0, "vip {vip} (SE {se})");
    let (us, se) = coef("trans.region=US");
    assert!((us / se).abs() < 3.0, "region {us} (SE {se})");
    assert!(v["params"]["life.region=US"].is_f64());

    // Errors: an unknown column, a model without covariates.
    let o = lifecycle(&[
        "fit",
        data("CDNOW_sample.txt").to_str().unwrap(),
        "--model",
        "bgnbd",
        "--customers",
        customers.to_str().unwrap(),
        "--covariates",
        "age",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no column 'age'"), "{}", stderr(&o));
    let o = lifecycle(&[
        "fit",
        data("CDNOW_sample.txt").to_str().unwrap(),
        "--model",
        "pareto-nbd",
        "--customers",
        customers.to_str().unwrap(),
        "--covariates",
        "region",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

//! `analyze --kpis` on CDNOW against an independent computation: the
//! cohort matrix (cohorts.csv) and monthly retention (retention.csv), the
//! repeat rate, the top 20%'s share of revenue, the Gini coefficient and
//! the time between orders, as computed by pandas and DuckDB (three routes
//! agreeing to the cent) in `crates/kpis/tests/fixtures/cdnow_kpis.py`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use serde_json::Value;

fn reference() -> Value {
    let text =
        std::fs::read_to_string(repo().join("crates/kpis/tests/fixtures/cdnow_kpis.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[track_caller]
fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!((got - want).abs() <= tol, "{what}: got {got}, want {want}");
}

#[test]
fn cohorts_retention_and_concentration_match_pandas_and_duckdb() {
    let r = reference();
    let (summary, out) = analyze_json(&data("CDNOW_master.txt"), &["--kpis"]);
    let k = &summary["kpis"];
    assert_eq!(k["customers"], r["customers"]);
    close(
        k["repeat_rate"].as_f64().unwrap(),
        r["repeat_rate"].as_f64().unwrap(),
        1e-12,
        "repeat rate",
    );
    close(
        k["pareto_top20_share"].as_f64().unwrap(),
        r["pareto_top20_share"].as_f64().unwrap(),
        1e-9,
        "pareto",
    );
    assert_eq!(k["pareto_top_n"], r["pareto_top_n"]);
    close(
        k["gini"].as_f64().unwrap(),
        r["gini"].as_f64().unwrap(),
        1e-9,
        "gini",
    );
    for q in ["count", "mean", "p25", "p50", "p75", "p90"] {
        close(
            k["days_between_orders"][q].as_f64().unwrap(),
            r["gaps"][q].as_f64().unwrap(),
            1e-9,
            q,
        );
    }

    // cohorts.csv: one row per cohort and month since acquisition.
    let (header, rows) = read_csv(&out.path().join("cohorts.csv"));
    assert_eq!(
        header,
        [
            "cohort",
            "size",
            "months_since",
            "active",
            "retention",
            "revenue"
        ]
    );
    let mut checked = 0;
    for c in r["cohorts"].as_array().unwrap() {
        let name = c["cohort"].as_str().unwrap();
        let ours: Vec<&Vec<String>> = rows.iter().filter(|row| row[0] == name).collect();
        let active = c["active"].as_array().unwrap();
        assert_eq!(ours.len(), active.len(), "{name}: months");
        for (k, row) in ours.iter().enumerate() {
            assert_eq!(row[1], c["size"].to_string(), "{name} size");
            assert_eq!(row[2], k.to_string());
            assert_eq!(row[3], active[k].to_string(), "{name}+{k} active");
            close(
                row[5].parse().unwrap(),
                c["revenue"][k].as_f64().unwrap(),
                0.005 + 1e-9,
                &format!("{name}+{k} revenue"),
            );
            checked += 1;
        }
    }
    assert_eq!(checked, rows.len());

    // The report's section: the heatmap and the curves.
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("<h2>Retention and concentration</h2>") && html.contains("class=heat"));
    assert!(html.contains("<polyline"), "retention curves");
    assert!(html.contains("Lorenz curve"));
    let lorenz = k["lorenz"].as_array().unwrap();
    assert_eq!(lorenz.len(), 101);
    // 80% of customers (the smallest) hold 1 − the top 20%'s share.
    close(
        lorenz[80][1].as_f64().unwrap(),
        1.0 - r["pareto_top20_share"].as_f64().unwrap(),
        1e-9,
        "lorenz at 80%",
    );

    // retention.csv: of the customers active in a month, those active in the next.
    let (_, rows) = read_csv(&out.path().join("retention.csv"));
    let want = r["period_retention"].as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    for (row, w) in rows.iter().zip(want) {
        assert_eq!(row[0], w["month"].as_str().unwrap());
        assert_eq!(row[1], w["previous_active"].to_string());
        assert_eq!(row[2], w["retained"].to_string());
    }
}

/// Quarterly and yearly retention (`--retention-period quarter`):
/// retention_quarter.csv and retention_year.csv against a count made here
/// from the raw CDNOW lines (the quarters and years each customer bought in).
#[test]
fn quarterly_and_yearly_retention_match_a_direct_count() {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    let text = std::fs::read_to_string(data("CDNOW_master.txt")).unwrap();
    // Per customer: the quarters and the years with an order.
    type Sets = (BTreeSet<i32>, BTreeSet<i32>);
    let mut periods: HashMap<&str, Sets> = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (y, m): (i32, i32) = (f[1][..4].parse().unwrap(), f[1][4..6].parse().unwrap());
        let e = periods.entry(f[0]).or_default();
        e.0.insert(y * 4 + (m - 1) / 3);
        e.1.insert(y);
    }
    // period → (active, active also in the period before).
    let count = |pick: &dyn Fn(&Sets) -> &BTreeSet<i32>| {
        let mut c: BTreeMap<i32, (u64, u64)> = BTreeMap::new();
        for p in periods.values() {
            let set = pick(p);
            for &x in set {
                let e = c.entry(x).or_default();
                e.0 += 1;
                e.1 += u64::from(set.contains(&(x - 1)));
            }
        }
        c
    };
    let (quarters, years) = (count(&|p| &p.0), count(&|p| &p.1));
    let (summary, out) = analyze_json(
        &data("CDNOW_master.txt"),
        &["--kpis", "--retention-period", "quarter"],
    );
    assert_eq!(summary["kpis"]["retention_period"], "quarter");
    let (header, rows) = read_csv(&out.path().join("retention_quarter.csv"));
    assert_eq!(header[0], "quarter");
    // 1997-Q1 to 1998-Q2: five transitions.
    assert_eq!(rows.len(), 5);
    for r in &rows {
        let (y, q): (i32, i32) = (r[0][..4].parse().unwrap(), r[0][6..].parse().unwrap());
        let key = y * 4 + q - 1;
        assert_eq!(r[1], quarters[&(key - 1)].0.to_string(), "{r:?}");
        assert_eq!(r[2], quarters[&key].1.to_string(), "{r:?}");
    }
    let last = rows.last().unwrap();
    let rate: f64 = last[3].parse().unwrap();
    close(
        summary["kpis"]["retention_rate_last_period"]
            .as_f64()
            .unwrap(),
        rate,
        1e-6,
        "headline",
    );
    let (_, rows) = read_csv(&out.path().join("retention_year.csv"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], "1998");
    assert_eq!(rows[0][1], years[&1997].0.to_string());
    assert_eq!(rows[0][2], years[&1998].1.to_string());
}

/// The same KPIs live: CDNOW imported into a store, `GET /api/v1/kpis`.
#[test]
fn kpis_api_on_the_store() {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("k.db").display());
    let o = lifecycle(&[
        "import",
        data("CDNOW_master.txt").to_str().unwrap(),
        "--db",
        &db,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lifecycle(&["keys", "create", "--kind", "secret", "--db", &db]);
    let secret = stdout(&o).trim().to_string();
    let server = start(
        &db,
        &["--simulated-clock", "1998-07-01", "--refit-every", "off"],
    );
    let (status, body) = request(
        &server.addr,
        "GET",
        "/api/v1/kpis",
        &[("Authorization", format!("Bearer {secret}"))],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let k: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(k["customers"], r["customers"]);
    close(
        k["repeat_rate"].as_f64().unwrap(),
        r["repeat_rate"].as_f64().unwrap(),
        1e-12,
        "repeat rate",
    );
    close(
        k["gini"].as_f64().unwrap(),
        r["gini"].as_f64().unwrap(),
        1e-9,
        "gini",
    );
    let cohorts = k["cohorts"].as_array().unwrap();
    for (ours, want) in cohorts.iter().zip(r["cohorts"].as_array().unwrap()) {
        assert_eq!(ours["cohort"], want["cohort"]);
        assert_eq!(ours["size"], want["size"]);
        // The clock is a day into July 1998: one more (empty) month.
        let active = ours["active"].as_array().unwrap();
        let want_active = want["active"].as_array().unwrap();
        assert_eq!(&active[..want_active.len()], &want_active[..]);
    }
}

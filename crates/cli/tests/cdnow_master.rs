//! Acceptance on the full CDNOW file (Fader & Hardie's CDNOW cohort, 23,570
//! customers; see data/README.md): every customer is in exactly one segment,
//! segments add up to the totals, revenue equals the file's total, and the
//! count per segment equals an independent computation of the published rules
//! (README, "Segment rules") in SQL over the raw rows in an in-memory SQLite.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::collections::BTreeMap;

const AS_OF: &str = "1998-06-30";

/// Loads the raw rows into SQLite with our own trivial parsing (not the
/// product's reader) and computes segment counts and revenue with SQL.
fn sql_segments() -> (BTreeMap<String, (i64, f64)>, f64, i64) {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch("CREATE TABLE rows(customer TEXT, day TEXT, amount REAL);")
        .unwrap();
    let text = std::fs::read_to_string(data("CDNOW_master.txt")).unwrap();
    let tx = db.unchecked_transaction().unwrap();
    {
        let mut ins = tx.prepare("INSERT INTO rows VALUES (?1, ?2, ?3)").unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let d = f[1];
            let day = format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..]);
            ins.execute(rusqlite::params![f[0], day, f[3].parse::<f64>().unwrap()])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    let total: f64 = db
        .query_row("SELECT SUM(amount) FROM rows", [], |r| r.get(0))
        .unwrap();
    let n: i64 = db
        .query_row("SELECT COUNT(DISTINCT customer) FROM rows", [], |r| {
            r.get(0)
        })
        .unwrap();
    let sql = format!(
        "WITH orders AS (SELECT customer, day, SUM(amount) AS amt FROM rows WHERE day <= '{AS_OF}' GROUP BY customer, day),
         cust AS (SELECT customer, COUNT(*) AS n_orders, ROUND(SUM(amt), 2) AS spend,
                  CAST(julianday('{AS_OF}') - julianday(MAX(day)) AS INTEGER) AS rec
                  FROM orders GROUP BY customer),
         scored AS (SELECT *,
           1 + (5 * (RANK() OVER (ORDER BY rec DESC) - 1)) / COUNT(*) OVER () AS r,
           1 + (5 * (RANK() OVER (ORDER BY n_orders) - 1)) / COUNT(*) OVER () AS f,
           1 + (5 * (RANK() OVER (ORDER BY spend) - 1)) / COUNT(*) OVER () AS m FROM cust)
         SELECT CASE
           WHEN n_orders = 1 AND r >= 4 THEN 'First-time Customers'
           WHEN n_orders = 1 THEN 'Falling Asleep'
           WHEN r >= 4 AND f >= 4 AND m >= 4 THEN 'Champions'
           WHEN (r >= 4 AND f >= 4) OR (r = 3 AND f >= 3) THEN 'Loyal Customers'
           WHEN r >= 4 AND m >= 3 THEN 'Potential Loyalists'
           WHEN r = 5 THEN 'Recent Customers'
           WHEN r = 4 THEN 'Promising'
           WHEN r = 1 AND f >= 4 THEN 'Cannot Lose'
           WHEN (r = 2 AND f >= 3) OR (r = 1 AND f = 3) THEN 'At Risk'
           ELSE 'Falling Asleep' END AS seg, COUNT(*), SUM(spend)
         FROM scored GROUP BY seg"
    );
    let mut stmt = db.prepare(&sql).unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get::<_, i64>(1)?, r.get::<_, f64>(2)?),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (rows, total, n)
}

#[test]
fn cdnow_master_segments_match_an_independent_sql_computation() {
    let (summary, out) = analyze_json(&data("CDNOW_master.txt"), &["--as-of", AS_OF]);
    let (expected, file_total, n_customers) = sql_segments();

    assert_eq!(n_customers, 23_570);
    assert_eq!(summary["customers"], 23_570);
    assert_eq!(summary["rows"]["read"], 69_659);
    assert_eq!(summary["rows"]["rejected"], 0);
    assert_eq!(summary["as_of"], AS_OF);
    assert!(
        (file_total - 2_500_315.63).abs() < 0.005,
        "README total {file_total}"
    );
    let revenue = summary["revenue"].as_f64().unwrap();
    assert!(
        (revenue - file_total).abs() < 0.01,
        "revenue {revenue} vs file {file_total}"
    );

    let segments = summary["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 11);
    let n: u64 = segments
        .iter()
        .map(|s| s["customers"].as_u64().unwrap())
        .sum();
    assert_eq!(n, 23_570);
    let rev: f64 = segments
        .iter()
        .map(|s| s["revenue"].as_f64().unwrap())
        .sum();
    assert!((rev - file_total).abs() < 0.01);

    for s in segments {
        let name = s["name"].as_str().unwrap();
        let (count, spend) = expected.get(name).copied().unwrap_or((0, 0.0));
        assert_eq!(s["customers"].as_i64().unwrap(), count, "{name}");
        assert!(
            (s["revenue"].as_f64().unwrap() - spend).abs() < 0.01,
            "{name}"
        );
    }
    let names: Vec<&str> = segments
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for k in expected.keys() {
        assert!(
            names.contains(&k.as_str()),
            "SQL produced unknown segment {k}"
        );
    }

    // customers.csv: the leading columns, one row per customer, one segment each.
    let (header, rows) = read_csv(&out.path().join("customers.csv"));
    assert_eq!(
        header[..13],
        [
            "customer_id",
            "first_order",
            "last_order",
            "n_orders",
            "n_purchase_days",
            "total_spend",
            "avg_order_value",
            "days_since_last_order",
            "r_score",
            "f_score",
            "m_score",
            "segment",
            "phase"
        ]
    );
    assert_eq!(rows.len(), 23_570);
    let mut per_segment: BTreeMap<String, i64> = BTreeMap::new();
    for r in &rows {
        *per_segment.entry(r[11].clone()).or_default() += 1;
    }
    for (name, (count, _)) in &expected {
        assert_eq!(
            per_segment.get(name).copied().unwrap_or(0),
            *count,
            "{name} in customers.csv"
        );
    }
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.matches("<svg").count() >= 2);
    assert!(
        !html.contains("http://")
            || html.matches("http://").count()
                == html.matches("http://www.w3.org/2000/svg").count()
    );
    let (_, seg_rows) = read_csv(&out.path().join("segments.csv"));
    assert_eq!(seg_rows.len(), 11);
}

#[test]
fn as_of_defaults_to_the_last_order_and_later_rows_are_counted() {
    let (summary, _out) = analyze_json(&data("CDNOW_master.txt"), &[]);
    assert_eq!(summary["as_of"], "1998-06-30");
    assert_eq!(summary["as_of_source"], "last order date");
    let (summary, _out) = analyze_json(&data("CDNOW_master.txt"), &["--as-of", "1997-03-31"]);
    assert_eq!(
        summary["customers"], 23_570,
        "all first purchases are in Q1 1997"
    );
    let after = summary["rows"]["after_as_of"].as_u64().unwrap();
    let used = summary["rows"]["used"].as_u64().unwrap();
    assert!(after > 0);
    assert_eq!(after + used, 69_659);
}

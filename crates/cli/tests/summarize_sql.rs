//! `lifecycle summarize --emit-sql postgres|duckdb` computes, on a real
//! PostgreSQL server and in DuckDB (from PyPI), the same per-customer
//! summaries as the Rust aggregation
//! (`lifecycle summarize FILE`) of the same orders: generated customers
//! plus the awkward cases (an order of several rows, a refund inside an
//! order and a later one, a refund-only customer, two orders on one day,
//! an order after the as-of day, a negative order net of its refund).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::collections::BTreeMap;

type Row = (i64, i64, i64, f64, i64, f64);

/// Summary rows (`customer_id,frequency,recency,T,monetary_value,orders,
/// total_spend`) by customer.
fn rows_of(lines: &str) -> BTreeMap<String, Row> {
    lines
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n = |i: usize| f[i].parse::<f64>().unwrap();
            (
                f[0].to_string(),
                (
                    n(1) as i64,
                    n(2) as i64,
                    n(3) as i64,
                    n(4),
                    n(5) as i64,
                    n(6),
                ),
            )
        })
        .collect()
}

/// A summaries file (after its comment lines and header).
fn rust_summaries(path: &std::path::Path) -> BTreeMap<String, Row> {
    let text = std::fs::read_to_string(path).unwrap();
    let body: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .collect();
    rows_of(&body.join("\n"))
}

/// A Parquet summaries file (`summarize --out x.parquet`) by customer, and
/// its `lifecycle.*` key-value metadata.
fn parquet_summaries(path: &std::path::Path) -> (BTreeMap<String, Row>, Vec<(String, String)>) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let meta = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let lines: Vec<String> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| {
            let row = row.unwrap();
            row.get_column_iter()
                .map(|(_, f)| match f {
                    Field::Str(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    (rows_of(&lines.join("\n")), meta)
}

const AS_OF: &str = "2023-12-15";

/// Generated orders plus the awkward cases, and the Rust summaries of them
/// (checked by hand for the awkward customers).
fn fixture(
    dir: &std::path::Path,
) -> (
    std::path::PathBuf,
    String,
    std::path::PathBuf,
    BTreeMap<String, Row>,
) {
    let orders = dir.join("orders.csv");
    let o = lifecycle(&[
        "generate",
        "--customers",
        "4000",
        "--seed",
        "9",
        "--start",
        "2023-01-01",
        "--days",
        "365",
        "--out",
        orders.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut text = std::fs::read_to_string(&orders).unwrap();
    assert!(text.starts_with("customer_id,order_id,order_date,amount\n"));
    text.push_str(
        "X1,A1,2023-03-01 10:00:00,20.00
X1,A1,2023-03-01 10:00:00,5.50
X1,A2,2023-03-01 18:00:00,7.25
X1,A3,2023-04-02 09:00:00,40.00
X1,A3,2023-04-02 09:30:00,-10.00
X1,A3,2023-05-09 12:00:00,-15.00
X1,A4,2023-12-30 12:00:00,99.00
X2,B1,2023-06-01 12:00:00,-30.00
X3,C1,2023-02-01 08:00:00,10.00
X3,C2,2023-07-01 08:00:00,0.00
X3,C2,2023-07-01 08:00:00,-25.00
",
    );
    std::fs::write(&orders, &text).unwrap();
    let as_of = AS_OF;
    let rust = dir.join("rust.csv");
    let o = lifecycle(&[
        "summarize",
        orders.to_str().unwrap(),
        "--as-of",
        as_of,
        "--out",
        rust.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = rust_summaries(&rust);
    // By hand: X1 has orders A1 (25.50) and A2 (7.25) on 03-01, A3 net
    // 30.00 on 04-02, a refund of A3 on 05-09 and A4 after the as-of day.
    assert_eq!(want["X1"], (1, 32, 289, 30.0, 3, 47.75));
    assert!(
        !want.contains_key("X2"),
        "a refund-only customer has no order"
    );
    // X3's second order is net negative (a zero row makes it an order).
    assert_eq!(want["X3"], (1, 150, 317, -25.0, 2, -15.0));

    (orders, text, rust, want)
}

#[test]
fn postgres_and_duckdb_compute_the_rust_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let (orders, text, rust, want) = fixture(dir.path());
    let as_of = AS_OF;
    let o = lifecycle(&["summarize", "--emit-sql", "postgres", "--as-of", as_of]);
    assert!(o.status.success(), "{}", stderr(&o));
    let query = stdout(&o);

    let db = lifecycle_store::testing::postgres_database().unwrap();
    let mut pg = postgres::Client::connect(&db, postgres::NoTls).unwrap();
    pg.batch_execute(
        "CREATE TABLE orders (customer_id TEXT, order_id TEXT, order_date TEXT, amount DOUBLE PRECISION)",
    )
    .unwrap();
    let mut copy = pg
        .copy_in("COPY orders FROM STDIN WITH (FORMAT csv, HEADER true)")
        .unwrap();
    std::io::Write::write_all(&mut copy, text.as_bytes()).unwrap();
    copy.finish().unwrap();
    let got: BTreeMap<String, Row> = pg
        .query(query.as_str(), &[])
        .unwrap()
        .iter()
        .map(|r| {
            let int = |i: usize| -> i64 {
                r.try_get::<_, i64>(i)
                    .or_else(|_| r.try_get::<_, i32>(i).map(i64::from))
                    .unwrap()
            };
            (
                r.get::<_, String>(0),
                (int(1), int(2), int(3), r.get(4), int(5), r.get(6)),
            )
        })
        .collect();
    same(&want, &got, "PostgreSQL");
    // The same through `--engine postgres`, into a summaries file that
    // `fit` reads.
    let pg_file = dir.path().join("pg.csv");
    let o = lifecycle(&[
        "summarize",
        "--engine",
        "postgres",
        "--db",
        &db,
        "--table",
        "orders",
        "--as-of",
        as_of,
        "--out",
        pg_file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    same(&want, &rust_summaries(&pg_file), "--engine postgres");
    let fit = |file: &std::path::Path| {
        let o = lifecycle(&["fit", file.to_str().unwrap(), "--model", "bgnbd", "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        v["log_likelihood"].as_f64().unwrap()
    };
    assert!((fit(&pg_file) - fit(&rust)).abs() < 1e-6);

    // DuckDB (from PyPI in a scratch venv) runs its dialect on the same rows.
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("summarize-duckdb");
    let o = std::process::Command::new("bash")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/summarize_sql/duckdb.sh"))
        .arg(&venv)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let python = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let o = lifecycle(&["summarize", "--emit-sql", "duckdb", "--as-of", as_of]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sql_file = dir.path().join("duckdb.sql");
    std::fs::write(&sql_file, stdout(&o)).unwrap();
    let o = std::process::Command::new(&python)
        .args([
            "-c",
            "import duckdb, sys
con = duckdb.connect()
con.execute(\"CREATE TABLE orders AS SELECT * FROM read_csv(?, header=true, columns={'customer_id': 'VARCHAR', 'order_id': 'VARCHAR', 'order_date': 'VARCHAR', 'amount': 'DOUBLE'})\", [sys.argv[1]])
for r in con.execute(open(sys.argv[2]).read()).fetchall():
    print(','.join(repr(x) if isinstance(x, float) else str(x) for x in r))",
            orders.to_str().unwrap(),
            sql_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = rows_of(&String::from_utf8(o.stdout).unwrap());
    same(&want, &got, "DuckDB");
}

fn same(want: &BTreeMap<String, Row>, got: &BTreeMap<String, Row>, engine: &str) {
    assert_eq!(got.len(), want.len(), "{engine}");
    for (id, w) in want {
        let g = got
            .get(id)
            .unwrap_or_else(|| panic!("{id} missing from {engine}"));
        assert_eq!((g.0, g.1, g.2, g.4), (w.0, w.1, w.2, w.4), "{engine}: {id}");
        assert!(
            (g.3 - w.3).abs() < 1e-6 && (g.5 - w.5).abs() < 1e-6,
            "{engine}: {id}: {g:?} vs {w:?}"
        );
    }
}

/// `--engine spark` runs the Spark SQL dialect through `spark-sql` in local
/// mode (Spark from the PySpark wheel) on the orders as CSV and as Parquet.
#[test]
fn spark_computes_the_rust_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let (orders, _, _, want) = fixture(dir.path());
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("summarize-spark");
    let o = std::process::Command::new("bash")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/summarize_sql/spark.sh"))
        .arg(&venv)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "spark: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let spark_home = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let launcher = format!("{spark_home}/bin/spark-sql");
    let out = dir.path().join("spark.parquet");
    let o = lifecycle(&[
        "summarize",
        "--engine",
        "spark",
        "--spark-sql",
        &launcher,
        "--spark-master",
        "local[2]",
        "--input",
        orders.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (got, meta) = parquet_summaries(&out);
    same(&want, &got, "Spark (Parquet summaries)");
    assert!(
        meta.contains(&("lifecycle.as_of".into(), AS_OF.into())),
        "{meta:?}"
    );
    assert!(
        meta.contains(&("lifecycle.time_unit".into(), "days".into())),
        "{meta:?}"
    );
}

/// The summaries as Parquet hold what the CSV holds, and `fit`, `predict`
/// and `analyze` read either; `analyze` on the summaries scores and values
/// every customer as it does from the orders, and refuses what needs the
/// order history.
#[test]
fn summaries_in_parquet_and_analyze_from_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let orders = dir.path().join("orders.csv");
    let o = lifecycle(&[
        "generate",
        "--customers",
        "3000",
        "--seed",
        "21",
        "--out",
        orders.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = dir.path().join("s.csv");
    let pq = dir.path().join("s.parquet");
    for out in [&csv, &pq] {
        let o = lifecycle(&[
            "summarize",
            orders.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (from_parquet, _) = parquet_summaries(&pq);
    assert_eq!(from_parquet.len(), 3000);
    same(&rust_summaries(&csv), &from_parquet, "Parquet summaries");
    let analyze = |input: &std::path::Path, out: &str, extra: &[&str]| {
        let out = dir.path().join(out);
        let mut args = vec![
            "analyze",
            input.to_str().unwrap(),
            "--clv",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let o = lifecycle(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (
            std::fs::read_to_string(out.join("customers.csv")).unwrap(),
            json,
        )
    };
    let (want, want_json) = analyze(&orders, "a", &[]);
    for (input, name) in [(&csv, "b"), (&pq, "c")] {
        let (got, json) = analyze(input, name, &[]);
        assert_eq!(got, want, "customers.csv from {}", input.display());
        assert_eq!(json["segments"], want_json["segments"]);
        assert_eq!(json["clv"]["total_clv"], want_json["clv"]["total_clv"]);
        assert!(json["clv"]["tracking"].is_null());
    }
    // The explicit flag on a summaries file is the same as recognising it.
    let (got, _) = analyze(&pq, "d", &["--summaries"]);
    assert_eq!(got, want);
    // fit reads both forms alike.
    let fit = |input: &std::path::Path| {
        let o = lifecycle(&["fit", "--model", "bgnbd", "--json", input.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["log_likelihood"].as_f64().unwrap()
    };
    assert_eq!(fit(&csv), fit(&pq));
    // What needs the orders is refused, in words.
    for (flag, value) in [
        ("--tripwires", None),
        ("--kpis", None),
        ("--as-of", Some("2024-01-01")),
    ] {
        let mut args = vec!["analyze", pq.to_str().unwrap(), flag];
        args.extend(value);
        let x = dir.path().join("x");
        args.extend(["--out", x.to_str().unwrap()]);
        let o = lifecycle(&args);
        assert_eq!(o.status.code(), Some(2), "{flag}: {}", stderr(&o));
        assert!(stderr(&o).contains("s.parquet"), "{flag}: {}", stderr(&o));
        assert!(stderr(&o).contains("orders"), "{flag}: {}", stderr(&o));
    }
}

/// `predict` reads a summaries file as it reads the orders: the same
/// predictions for every customer (the purchase and spend models only need
/// the summaries); a calibration end needs the orders.
#[test]
fn predict_reads_the_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let (orders, _, summaries, _) = fixture(dir.path());
    let predict = |input: &std::path::Path, out: &str| {
        let out = dir.path().join(out);
        let o = lifecycle(&[
            "predict",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read_to_string(out.join("predictions.csv")).unwrap()
    };
    // The fixture's summaries stop at the as-of day; so must the orders.
    let o = lifecycle(&[
        "predict",
        orders.to_str().unwrap(),
        "--calibration-end",
        AS_OF,
        "--out",
        dir.path().join("holdout").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let from_orders = std::fs::read_to_string(dir.path().join("holdout/predictions.csv")).unwrap();
    let from_summaries = predict(&summaries, "s");
    // The orders' run also counts the holdout's purchases (a last column).
    let without_holdout: Vec<&str> = from_orders
        .lines()
        .map(|l| l.rsplit_once(',').map_or(l, |(head, _)| head))
        .collect();
    assert!(
        from_orders.starts_with("customer_id,")
            && from_orders
                .lines()
                .next()
                .unwrap()
                .ends_with(",holdout_purchases")
    );
    assert_eq!(without_holdout, from_summaries.lines().collect::<Vec<_>>());
    let o = lifecycle(&[
        "predict",
        summaries.to_str().unwrap(),
        "--calibration-end",
        AS_OF,
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("needs the orders"), "{}", stderr(&o));
}

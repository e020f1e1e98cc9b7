//! Bad input never panics: each case exits with code 2 and a message that
//! names the file, the line and the column where it can.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::io::Write;
use std::path::PathBuf;

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Runs analyze on `bytes` and returns stderr, asserting exit code 2.
fn fails(name: &str, bytes: &[u8], extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, name, bytes);
    let out = dir.path().join("out");
    let mut args = vec![
        "analyze",
        p.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = lifecycle(&args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "exit code for {name}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err.replace(&format!("{}/", dir.path().display()), "")
}

#[test]
fn bad_number_names_file_line_and_column() {
    let err = fails(
        "orders.csv",
        b"customer_id,date,amount\na,2024-01-01,12.30\nb,2024-01-02,\"12,3O\"\n",
        &[],
    );
    assert!(
        err.contains(r#"orders.csv:3: column 'amount': "12,3O" is not a number"#),
        "{err}"
    );
}

#[test]
fn bad_date() {
    let err = fails(
        "orders.csv",
        b"customer_id,date,amount\na,2024-01-01,1\nb,2024-13-45,2\n",
        &[],
    );
    assert!(
        err.contains(r#"orders.csv:3: column 'date': "2024-13-45" is not a date"#),
        "{err}"
    );
}

#[test]
fn missing_column_lists_the_columns() {
    let err = fails(
        "orders.csv",
        b"customer_id,date,colour\na,2024-01-01,red\n",
        &[],
    );
    assert!(
        err.contains("no amount column found") && err.contains("customer_id, date, colour"),
        "{err}"
    );
}

#[test]
fn empty_file_and_header_only() {
    let err = fails("orders.csv", b"", &[]);
    assert!(err.contains("orders.csv: the file is empty"), "{err}");
    let err = fails("orders.csv", b"customer_id,date,amount\n", &[]);
    assert!(
        err.contains("orders.csv: the file has a header but no rows"),
        "{err}"
    );
}

#[test]
fn binary_garbage() {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0, 0, 0, 13];
    bytes.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let err = fails("orders.csv", &bytes, &[]);
    assert!(
        err.contains("not a text export") || err.contains("not UTF-8"),
        "{err}"
    );
}

#[test]
fn line_longer_than_the_limit() {
    let mut text = b"customer_id,date,amount\na,2024-01-01,1\n".to_vec();
    text.extend(std::iter::repeat_n(b'x', 5_000));
    text.extend(b"\nb,2024-01-02,2\n");
    let err = fails("orders.csv", &text, &["--max-line-bytes", "1000"]);
    assert!(
        err.contains("orders.csv:3: line is longer than the limit of 1000 bytes"),
        "{err}"
    );
    // Also when the first line alone exceeds the sniffing window.
    let huge = vec![b'y'; 300_000];
    let err = fails("huge.csv", &huge, &[]);
    assert!(err.contains("huge.csv:1: line is longer"), "{err}");
}

#[test]
fn file_ending_mid_row() {
    let err = fails(
        "orders.csv",
        b"customer_id,date,amount\na,2024-01-01,1\nb,2024-01-02",
        &[],
    );
    assert!(
        err.contains("orders.csv:3: has 2 fields where 3 were expected"),
        "{err}"
    );
    let err = fails(
        "orders.csv",
        b"customer_id,date,amount,note\na,2024-01-01,1,ok\nb,2024-01-02,2,\"cut her",
        &[],
    );
    assert!(
        err.contains("orders.csv:3: a quoted field opens here and never closes"),
        "{err}"
    );
}

#[test]
fn truncated_gzip() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..20_000 {
        writeln!(gz, "c{i},2024-01-{:02},{}.50", i % 28 + 1, i % 90).unwrap();
    }
    let mut bytes = gz.finish().unwrap();
    bytes.truncate(bytes.len() / 2);
    let err = fails("orders.csv.gz", &bytes, &[]);
    assert!(
        err.contains("orders.csv.gz: the gzip stream is corrupt or truncated"),
        "{err}"
    );
}

#[test]
fn invalid_utf8_in_a_customer_id() {
    let err = fails(
        "orders.csv",
        b"customer_id,date,amount\na,2024-01-01,1\n\xff\xfe,2024-01-02,2\n",
        &[],
    );
    assert!(
        err.contains("not UTF-8")
            || err.contains("orders.csv:3: column 'customer_id': is not valid UTF-8"),
        "{err}"
    );
}

#[test]
fn bad_flags_are_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "orders.csv",
        b"customer_id,date,amount\na,2024-01-01,1\n",
    );
    for args in [
        vec!["--as-of", "yesterday"],
        vec!["--timezone", "Mars/Olympus"],
        vec!["--columns", "colour=red"],
        vec!["--columns", "amount=nope"],
    ] {
        let mut all = vec![
            "analyze",
            p.to_str().unwrap(),
            "--out",
            dir.path().to_str().unwrap(),
        ];
        all.extend(args.iter());
        let o = lifecycle(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    let o = lifecycle(&["analyze", "/nonexistent/orders.csv"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent/orders.csv"));
}

#[test]
fn skip_bad_rows_counts_and_reports_the_first_ten() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("customer_id,date,amount\n");
    for i in 0..30 {
        text.push_str(&format!(
            "c{i},2024-01-02,{}\n",
            if i % 2 == 0 { "oops" } else { "5.00" }
        ));
    }
    let p = write(&dir, "orders.csv", text.as_bytes());
    let (summary, _out) = analyze_json(&p, &["--skip-bad-rows"]);
    assert_eq!(summary["rows"]["rejected"], 15);
    assert_eq!(summary["customers"], 15);
    let first = summary["rows"]["first_rejected"].as_array().unwrap();
    assert_eq!(first.len(), 10);
    assert!(
        first[0]
            .as_str()
            .unwrap()
            .ends_with("orders.csv:2: column 'amount': \"oops\" is not a number"),
        "{first:?}"
    );
    // Strict (the default) stops at the first.
    let o = lifecycle(&[
        "analyze",
        p.to_str().unwrap(),
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("orders.csv:2:"), "{}", stderr(&o));
}

#[test]
fn strict_mode_reports_the_first_bad_row_even_with_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("customer_id,date,amount\n");
    for i in 0..200_000 {
        let amount = if i == 150_000 || i == 190_000 {
            "bad".to_string()
        } else {
            format!("{}.25", i % 50)
        };
        text.push_str(&format!(
            "c{},2024-02-{:02},{amount}\n",
            i % 5000,
            i % 28 + 1
        ));
    }
    let p = write(&dir, "orders.csv", text.as_bytes());
    for threads in ["1", "2", "4"] {
        let o = lifecycle(&[
            "analyze",
            p.to_str().unwrap(),
            "--threads",
            threads,
            "--out",
            dir.path().join("o").to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains("orders.csv:150002: column 'amount'"),
            "{threads}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn bad_json_line_and_broken_parquet() {
    let err = fails(
        "orders.ndjson",
        b"{\"customer_id\":\"a\",\"date\":\"2024-01-01\",\"amount\":1}\n{\"customer_id\":\"b\",\"date\":\"2024-01-02\",\"amount\":2}\n{\"customer_id\":\"c\",\"date\":\n{\"customer_id\":\"d\",\"date\":\"2024-01-03\",\"amount\":3}\n",
        &[],
    );
    assert!(err.contains("orders.ndjson:3: is not valid JSON"), "{err}");
    let err = fails(
        "orders.ndjson",
        b"{\"customer_id\":\"a\",\"date\":\"2024-01-01\",\"amount\":\"lots\"}\n",
        &[],
    );
    assert!(
        err.contains("orders.ndjson:1: column 'amount': \"lots\" is not a number"),
        "{err}"
    );
    let mut bytes = b"PAR1".to_vec();
    bytes.extend(std::iter::repeat_n(7u8, 100));
    bytes.extend(b"PAR1");
    let err = fails("orders.parquet", &bytes, &[]);
    assert!(
        err.contains("orders.parquet: not a readable Parquet file"),
        "{err}"
    );
}

/// The Parquet files that made the `parquet` crate panic (found by
/// fuzzing, `fuzz/artifacts/orders/`): each is an error naming the file,
/// on one line, with no panic message printed.
#[test]
fn parquet_files_that_panic_the_reader_are_errors_without_a_panic_message() {
    let dir = repo().join("fuzz/artifacts/orders");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if !bytes.starts_with(b"PAR1") {
            continue;
        }
        let err = fails("orders.parquet", &bytes, &[]);
        assert!(err.starts_with("error: orders.parquet: "), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        n += 1;
    }
    assert!(n >= 2, "{n} Parquet reproducers");
}

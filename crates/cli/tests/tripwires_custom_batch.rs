//! `tripwires check --custom FILE --events FILE`: custom tripwires judged
//! on an events file (Segment messages), with a property filter, a warning
//! point and a trip, on a hand-built history whose answer is known.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

#[test]
fn custom_tripwires_in_the_batch_check() {
    let dir = tempfile::tempdir().unwrap();
    let orders = dir.path().join("orders.csv");
    std::fs::write(
        &orders,
        "customer_id,order_id,date,amount\nz,o1,2023-12-01,10\n",
    )
    .unwrap();
    let events = dir.path().join("events.ndjson");
    std::fs::write(
        &events,
        [
            r#"{"type":"track","userId":"a","event":"Email Signup","timestamp":"2024-01-01T10:00:00Z"}"#,
            r#"{"type":"track","userId":"b","event":"Email Signup","timestamp":"2024-01-01T10:00:00Z"}"#,
            r#"{"type":"track","userId":"b","event":"Sample Requested","timestamp":"2024-01-03T10:00:00Z","properties":{"size":"large"}}"#,
            r#"{"type":"track","userId":"c","event":"Email Signup","timestamp":"2024-01-01T10:00:00Z"}"#,
            r#"{"type":"track","userId":"c","event":"Sample Requested","timestamp":"2024-01-03T10:00:00Z","properties":{"size":"small"}}"#,
            r#"{"type":"track","userId":"d","event":"Email Signup","timestamp":"2023-12-20T10:00:00Z"}"#,
            r#"{"type":"page","userId":"e","name":"Home","timestamp":"2024-01-01T10:00:00Z"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let custom = dir.path().join("tripwires.toml");
    std::fs::write(
        &custom,
        "[[tripwire]]\nname = \"sample\"\nstart = { event = \"Email Signup\" }\naction = { event = \"Sample Requested\", where = { size = \"large\" } }\nwithin_days = 10\nwarn_at_days = 7\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = lifecycle(&[
        "tripwires",
        "check",
        orders.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
        "--custom",
        custom.to_str().unwrap(),
        "--as-of",
        "2024-01-09",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (header, rows) = read_csv(&out.join("tripwires.csv"));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut got: Vec<(String, String, String, String)> = rows
        .iter()
        .filter(|r| r[col("tripwire")] == "sample")
        .map(|r| {
            (
                r[col("customer_id")].clone(),
                r[col("status")].clone(),
                r[col("since")].clone(),
                r[col("days_overdue")].clone(),
            )
        })
        .collect();
    got.sort();
    // a and c (the wrong size) are at warning since day 7 of 10; d tripped
    // after 10 days (since 2023-12-31), 10 days overdue; b did it.
    assert_eq!(
        got,
        vec![
            (
                "a".into(),
                "warning".into(),
                "2024-01-08".into(),
                "-2".into()
            ),
            (
                "c".into(),
                "warning".into(),
                "2024-01-08".into(),
                "-2".into()
            ),
            (
                "d".into(),
                "tripped".into(),
                "2023-12-31".into(),
                "10".into()
            ),
        ]
    );
    // Custom tripwires without their events: a clear error.
    let o = lifecycle(&[
        "tripwires",
        "check",
        orders.to_str().unwrap(),
        "--custom",
        custom.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("need --events"), "{}", stderr(&o));
}

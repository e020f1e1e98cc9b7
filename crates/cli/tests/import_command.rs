//! `lifecycle import` end to end: the CDNOW master file into a fresh
//! SQLite store holds the same customers, orders and revenue as `analyze`
//! reports; importing again adds nothing; a changed or added order is an
//! update or an insert; a bad file leaves the store as it was.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

fn import(file: &std::path::Path, db: &str) -> std::process::Output {
    lifecycle(&["import", file.to_str().unwrap(), "--db", db])
}

fn line(o: &std::process::Output, prefix: &str) -> String {
    stdout(o)
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no '{prefix}' in {}", stdout(o)))
        .to_string()
}

#[test]
fn import_is_idempotent_and_matches_analyze() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let master = data("CDNOW_master.txt");
    let o = import(&master, &db);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        line(&o, "imported")
            .ends_with("23570 new customers, 67591 new orders or refunds, 0 updated, 0 unchanged"),
        "{}",
        stdout(&o)
    );
    assert!(
        line(&o, "store")
            .ends_with("23570 customers, 67591 orders, 0 refunds, net amount 2500315.63")
    );
    // The same totals as analyze.
    let (summary, _) = analyze_json(&master, &["--as-of", "1998-06-30"]);
    assert_eq!(summary["customers"], 23570);
    assert_eq!(summary["orders"], 67591);
    assert_eq!(summary["revenue"], 2500315.63);
    // Again: nothing new.
    let o = import(&master, &db);
    assert!(
        line(&o, "imported")
            .ends_with("0 new customers, 0 new orders or refunds, 0 updated, 67591 unchanged")
    );

    // A later export: one amount corrected, one new order.
    let text = std::fs::read_to_string(&master).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["00001", "19970101", "1", "11.77"]
    );
    lines[1] = " 00001 19970101  1   12.77".into();
    lines.push(" 00001 19980630  1    5.00".into());
    let later = dir.path().join("later.txt");
    std::fs::write(&later, lines.join("\n") + "\n").unwrap();
    let o = import(&later, &db);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        line(&o, "imported")
            .ends_with("0 new customers, 1 new orders or refunds, 1 updated, 67590 unchanged"),
        "{}",
        stdout(&o)
    );

    // A bad row: an input error naming the line, and the store unchanged.
    let bad = dir.path().join("bad.txt");
    std::fs::write(
        &bad,
        " customer_id  date number_of_cds  dollar_value\n 00001 19970101  1   11.77\n 00002 19970112  1   7x.00\n",
    )
    .unwrap();
    let o = import(&bad, &db);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.txt:3"), "{}", stderr(&o));
    let o = import(&later, &db);
    assert!(
        line(&o, "imported")
            .ends_with("0 new customers, 0 new orders or refunds, 0 updated, 67592 unchanged"),
        "{}",
        stdout(&o)
    );

    // A URL that is not a store.
    let o = import(&master, "mysql://x");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("expected sqlite://PATH"),
        "{}",
        stderr(&o)
    );
}

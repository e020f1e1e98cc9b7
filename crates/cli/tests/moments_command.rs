//! `lifecycle moments init` writes a playbook that `moments check` accepts;
//! `moments check` names the file, the line and what is wrong.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

#[test]
fn init_then_check_and_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let plays = dir.path().join("moments");
    let o = lifecycle(&["moments", "init", plays.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lifecycle(&["moments", "check", plays.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).lines().filter(|l| l.starts_with("ok ")).count(),
        16
    );

    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("winback.toml"),
        r#"name = "win-back"
holdout = 0.1

[goal]
event = "Order Completed"
within_days = 30

[trigger]
segment_entered = "At Risk"

[[step]]
send = { channel = "email", template = "winback.html" }

[[step]]
send = { channel = "fax", template = "x" }
"#,
    )
    .unwrap();
    std::fs::write(
        bad.join("split.toml"),
        r#"name = "split"

[goal]
event = "Order Completed"
within_days = 30

[trigger]
segment_entered = "At Rsik"

[[step]]
label = "a"
send = { channel = "email", template = "a.html" }

[[step]]
split = [{ weight = 0.5, to = "a" }, { weight = 0.4, to = "b" }]
"#,
    )
    .unwrap();
    let o = lifecycle(&["moments", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("winback.toml: line 14: step[2].send.channel = \"fax\" is not one of email"),
        "{e}"
    );
    assert!(
        e.contains("split.toml: line 8: trigger: no segment \"At Rsik\""),
        "{e}"
    );
    assert!(
        e.contains(
            "split.toml: line 15: step[2].split.arms: weights must be positive and add up to 1"
        ),
        "{e}"
    );
    assert!(
        e.contains("split.toml: line 15: step[2].split.arms: no step labelled \"b\""),
        "{e}"
    );

    // A valid definition whose templates are missing or broken.
    let t = dir.path().join("templates");
    std::fs::create_dir_all(t.join("templates")).unwrap();
    std::fs::write(
        t.join("m.toml"),
        r#"name = "m"

[goal]
event = "Order Completed"
within_days = 30

[trigger]
segment_entered = "At Risk"

[[step]]
send = { channel = "email", template = "templates/missing.html" }

[[step]]
send = { channel = "email", template = "templates/broken.html" }
"#,
    )
    .unwrap();
    std::fs::write(t.join("templates/broken.html"), "<p>\n{{ traits.name </p>").unwrap();
    let o = lifecycle(&["moments", "check", t.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("m.toml: step[1].send.template: template templates/missing.html:"),
        "{e}"
    );
    assert!(
        e.contains("m.toml: step[2].send.template: template templates/broken.html: line 2:"),
        "{e}"
    );
}

/// `moments simulate` replays a year through the win-back moment: the
/// 1,000 frequent buyers drift into At Risk on one day and enter (none of
/// the single-order customers), each treated one gets the email and the
/// reminder 14 days later, held-out ones none; nobody orders, so the
/// historical goal rate is 0.
#[test]
fn simulate_replays_history_through_a_draft_moment() {
    use common::moments::{WIN_BACK, orders_file};
    let dir = tempfile::tempdir().unwrap();
    let orders = dir.path().join("orders.csv");
    orders_file(&orders);
    let m = dir.path().join("m");
    std::fs::create_dir_all(m.join("templates")).unwrap();
    std::fs::write(m.join("win-back.toml"), WIN_BACK).unwrap();
    std::fs::write(m.join("templates/win-back.html"), "<p>hi</p>").unwrap();
    std::fs::write(m.join("templates/reminder.html"), "<p>again</p>").unwrap();
    let out = dir.path().join("out");
    let o = lifecycle(&[
        "moments",
        "simulate",
        m.to_str().unwrap(),
        "--from",
        orders.to_str().unwrap(),
        "--since",
        "2024-01-01",
        "--until",
        "2024-10-31",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let w = &v["moments"][0];
    assert_eq!(w["moment"], "Win back", "{v}");
    let entered = &w["entered"];
    let treated = entered["treatment"].as_u64().unwrap();
    let total = treated
        + entered["holdout"].as_u64().unwrap()
        + entered["global_control"].as_u64().unwrap();
    assert_eq!(total, 1_000, "{v}");
    assert_eq!(w["goal_rate"], 0.0);
    let sent: u64 = w["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["status"] == "sent")
        .map(|m| m["count"].as_u64().unwrap())
        .sum();
    assert_eq!(sent, 2 * treated, "{v}");
    let (_, rows) = read_csv(&out.join("entrants.csv"));
    assert_eq!(rows.len(), 1_000);
    assert!(
        rows.iter().all(|r| r[0].starts_with('T')),
        "only the targets"
    );
    let days: std::collections::HashSet<&String> = rows.iter().map(|r| &r[2]).collect();
    assert_eq!(days.len(), 1, "they all drift in on one day: {days:?}");
}

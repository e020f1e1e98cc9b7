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

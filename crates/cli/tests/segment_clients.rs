//! Segment's real client libraries against the real binary:
//! `segment-analytics-python` (PyPI) and `@segment/analytics-node` (npm),
//! installed by `tests/segment_clients/setup.sh` into the target directory,
//! send identify, `Order Completed` and batches to `lifecycle serve`
//! unchanged; the customer view then shows the orders, segment and CLV.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn get(addr: &str, path: &str, key: &str) -> Value {
    let (status, body) = request(
        addr,
        "GET",
        path,
        &[("Authorization", format!("Bearer {key}"))],
        b"",
    );
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn run(program: &Path, script: &Path, cwd: &Path, host: &str, key: &str) {
    let out = Command::new(program)
        .arg(script)
        .current_dir(cwd)
        .env("HOST", host)
        .env("WRITE_KEY", key)
        // Node resolves modules from the script's folder, not the cwd.
        .env("NODE_PATH", cwd.join("node_modules"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {}: {}\n{}",
        program.display(),
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn segment_client_libraries_drive_the_engine_unchanged() {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/segment_clients");
    let clients = Path::new(env!("CARGO_TARGET_TMPDIR")).join("segment-clients");
    let setup = Command::new("bash")
        .arg(scripts.join("setup.sh"))
        .arg(&clients)
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "installing Segment's client libraries failed:\n{}",
        String::from_utf8_lossy(&setup.stderr)
    );

    // A store with a year of history, so that the run has quintiles and
    // models to score the new customers against.
    let dir = tempfile::tempdir().unwrap();
    let orders = dir.path().join("orders.csv");
    let o = lifecycle(&[
        "generate",
        "--customers",
        "500",
        "--seed",
        "3",
        "--start",
        "2023-01-01",
        "--days",
        "365",
        "--out",
        orders.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let db = format!("sqlite://{}", dir.path().join("seg.db").display());
    assert!(
        lifecycle(&["import", orders.to_str().unwrap(), "--db", &db])
            .status
            .success()
    );
    let key = |kind: &str| {
        let o = lifecycle(&["keys", "create", "--kind", kind, "--db", &db]);
        stdout(&o).trim().to_string()
    };
    let (write, secret) = (key("write"), key("secret"));
    let server = start(
        &db,
        &["--simulated-clock", "2024-01-01", "--refit-every", "off"],
    );
    let host = format!("http://{}", server.addr);

    run(
        &clients.join("venv/bin/python"),
        &scripts.join("client.py"),
        &clients,
        &host,
        &write,
    );
    run(
        Path::new("node"),
        &scripts.join("client.js"),
        &clients,
        &host,
        &write,
    );

    let addr = server.addr.as_str();
    // Python: the anonymous visitor merged on identify; found by email and
    // by the anonymous id; two orders of 40 and 60.
    let py = get(addr, "/api/v1/customers/py@example.com", &secret);
    assert_eq!(py["customer_id"], "py-1", "{py}");
    assert_eq!(py["orders"]["count"], 2, "{py}");
    assert_eq!(py["orders"]["total_spend"], 100.0);
    assert_eq!(py["orders"]["last_order"], "2023-12-20");
    assert_eq!(py["traits"]["name"], "Py");
    assert!(
        py["ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "anon:anon-py"),
        "{py}"
    );
    assert!(
        py["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "page"),
        "{py}"
    );
    assert_eq!(
        get(addr, "/api/v1/customers/anon-py", &secret)["customer_id"],
        "py-1"
    );
    // Node: the re-sent order counted once.
    let node = get(addr, "/api/v1/customers/node-1", &secret);
    assert_eq!(node["orders"]["count"], 2, "{node}");
    assert_eq!(node["orders"]["total_spend"], 60.0);
    assert!(
        node["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "Email Opened")
    );
    for c in [&py, &node] {
        // Scored under the run: a repeat buyer's segment, R/F/M, CLV.
        let segment = c["segment"].as_str().unwrap();
        assert!(!segment.is_empty() && !segment.contains("Visitor"), "{c}");
        assert!(c["rfm"]["r"].as_i64().is_some(), "{c}");
        assert!(c["value"]["clv"].as_f64().is_some_and(|v| v > 0.0), "{c}");
        assert!(
            c["value"]["p_alive"]
                .as_f64()
                .is_some_and(|p| p > 0.0 && p <= 1.0)
        );
        assert!(
            c["value"]["expected_next_order"].is_string()
                || c["value"]["expected_next_order"].is_null()
        );
        assert!(c["model_run"].as_i64().is_some());
    }
}

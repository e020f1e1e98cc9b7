//! The server's threads run at the priorities the engine gives them
//! (Linux): requests at the default, the writer and the threads parsing
//! ingested bodies at nice 10, the events tree's flushes and compactions at
//! 19, so that on a busy machine a customer view is served before a batch
//! and both before background work (ARCHITECTURE.md, `server`).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// (name, nice value) of every thread of process `pid`.
#[cfg(target_os = "linux")]
fn threads(pid: u32) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // The fields after the name's closing parenthesis: state is the
        // 3rd field of the line, nice the 19th.
        let after = &stat[stat.rfind(')').unwrap() + 1..];
        let nice = after.split_whitespace().nth(16).unwrap().parse().unwrap();
        out.push((name.trim_end().to_string(), nice));
    }
    out
}

#[cfg(target_os = "linux")]
#[test]
fn the_writer_the_parsers_and_the_trees_background_work_yield_to_requests() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    let key = create_key(&db, "write");
    let server = start(&db, &["--refit-every", "off"]);
    let batch = json!({"batch": (0..50).map(|i| json!({
        "type": "track", "event": "Product Viewed", "userId": format!("c{}", i % 5),
        "messageId": format!("m{i}"), "timestamp": "2026-11-01T10:00:00Z",
    })).collect::<Vec<_>>()});
    send_batch(&server.addr, &key, &batch);

    // Every thread of that name (at least one) at that nice value.
    let all_at = |t: &[(String, i32)], name: &str, nice: i32| {
        let mut of = t.iter().filter(|(n, _)| n == name).peekable();
        of.peek().is_some() && of.all(|(_, v)| *v == nice)
    };
    let wanted = |t: &[(String, i32)]| {
        all_at(t, "lifecycle-write", 10)
            && t.iter().filter(|(n, _)| n == "lifecycle-write").count() == 1
            && all_at(t, "lifecycle-parse", 10)
            && all_at(t, "flusher", 19)
            && all_at(t, "compactor", 19)
            && all_at(t, "tokio-rt-worker", 0)
            // The allocator's own thread, which purges freed pages on time
            // (tests/allocator.rs).
            && t.iter().any(|(n, _)| n == "jemalloc_bg_thd")
    };
    let until = Instant::now() + Duration::from_secs(10);
    let mut seen = threads(server.child.id());
    while !wanted(&seen) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        seen = threads(server.child.id());
    }
    assert!(wanted(&seen), "threads and their nice values: {seen:?}");
}

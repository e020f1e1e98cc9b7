//! The binary's allocator hands freed memory back to the system on time:
//! jemalloc with its background threads (Cargo.toml's `background_threads`
//! feature) and freed pages purged after ~1 s instead of 10
//! (`.cargo/config.toml`'s `JEMALLOC_SYS_WITH_MALLOC_CONF`), both compiled
//! in. Under the soak's load the pages freed by flushed memtables otherwise
//! stayed resident, 12–30 MiB of a ~90 MiB server (README, the soak).
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn the_allocator_purges_freed_pages_within_a_second_from_its_own_threads() {
    // jemalloc prints its options when the process exits if asked to
    // (`stats_print`); the options asked for at build time are among them.
    let out = Command::new(env!("CARGO_BIN_EXE_lifecycle"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stderr);
    for option in [
        "opt.background_thread: true",
        "opt.dirty_decay_ms: 1000",
        "opt.muzzy_decay_ms: 0",
    ] {
        assert!(
            printed.contains(option),
            "jemalloc's options should include {option:?}; it printed:\n{}",
            printed
                .lines()
                .filter(|l| l.contains("opt."))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

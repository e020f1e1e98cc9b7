//! What each fuzz target does with its input, shared by the libFuzzer
//! targets (`fuzz/fuzz_targets/*.rs`) and the regression test that replays
//! the committed corpus and crash reproducers on the stable toolchain
//! (`crates/cli/tests/fuzz_corpus.rs`). Every function must return (an
//! error is a fine answer); a panic, an abort or a hang is the bug.

use std::path::PathBuf;

/// The targets, by name (the corpus folders are named the same).
pub const TARGETS: [&str; 5] = [
    "orders",
    "segment_api",
    "moment",
    "segment_rules",
    "template",
];

/// Runs target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "orders" => orders(data),
        "segment_api" => segment_api(data),
        "moment" => moment(data),
        "segment_rules" => segment_rules(data),
        "template" => template(data),
        _ => {}
    }
}

fn scratch() -> PathBuf {
    thread_local! {
        static DIR: tempfile::TempDir = tempfile::tempdir().expect("a temporary folder");
    }
    DIR.with(|d| d.path().to_path_buf())
}

/// An orders file in any format the readers sniff (CSV, TSV, whitespace,
/// NDJSON, Segment messages, Parquet, gzip), read strictly and leniently.
pub fn orders(data: &[u8]) {
    let path = scratch().join("orders");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    for skip in [false, true] {
        let opts = lifecycle_ingest::ReadOptions {
            bad_rows: if skip {
                lifecycle_ingest::BadRows::Skip
            } else {
                lifecycle_ingest::BadRows::Stop
            },
            threads: 2,
            ..lifecycle_ingest::ReadOptions::default()
        };
        if let Ok(read) = lifecycle_ingest::read_orders(&path, &opts)
            && let Some(day) = read.builder.last_order_day()
        {
            let (summaries, _) = read.builder.finish(day);
            let _ =
                lifecycle_rfm::analyze(summaries, day, &lifecycle_rfm::AnalysisConfig::default());
        }
    }
}

/// A body of the Segment-compatible event API, as a batch and as each
/// single-message endpoint.
pub fn segment_api(data: &[u8]) {
    use lifecycle_server::segment::{Kind, batch, single};
    let now = jiff::Timestamp::from_second(1_700_000_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let _ = batch(data, now, now);
    for kind in ["track", "identify", "page", "screen", "alias", "group"] {
        if let Some(k) = Kind::parse(kind) {
            let _ = single(data, k, now, now);
        }
    }
}

/// A moment definition (TOML), validated against the default segments.
pub fn moment(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = lifecycle_ingest::config::parse_moment(
        &text,
        &lifecycle_rfm::SegmentTable::default_table(),
    );
}

/// Segment rules, RFM thresholds and custom tripwires (TOML).
pub fn segment_rules(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = lifecycle_ingest::config::parse_segments(&text);
    let _ = lifecycle_ingest::config::parse_thresholds(&text);
    let _ = lifecycle_ingest::config::parse_custom_tripwires(&text);
}

/// A message template (minijinja) rendered with hostile traits.
pub fn template(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let templates = lifecycle_deliver::templates::Templates::new(&scratch());
    let ctx = serde_json::json!({
        "traits": {"first_name": "{{ 7*7 }}", "email": "a@example.com\r\nBcc: b@example.com"},
        "profile": {"segment": "Champions", "clv": 1.5e308, "orders": -1},
        "customer_id": "x'); DROP TABLE events; --",
        "moment": "m",
        "unsubscribe_url": "https://example.com/u/t",
    });
    let _ = templates.render_line("fuzz", &text, &ctx);
}

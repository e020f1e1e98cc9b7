//! The fuzz targets' committed corpus and crash reproducers, replayed on
//! the stable toolchain as regression tests: every file under
//! `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` goes through the
//! same harness the libFuzzer target runs (`fuzz/harness.rs`), and must
//! neither panic nor hang. `scripts/fuzz.sh` runs the targets themselves.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "../../../fuzz/harness.rs"]
mod harness;

#[test]
fn fuzz_corpus_and_reproducers_replay() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for target in harness::TARGETS {
        let mut seeds = 0;
        for kind in ["corpus", "artifacts"] {
            let dir = root.join(kind).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.file_name().is_none_or(|n| n != ".keep"))
                .collect();
            files.sort();
            for f in files {
                let data = std::fs::read(&f).unwrap();
                let started = std::time::Instant::now();
                harness::run(target, &data);
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(10),
                    "{} took {:?}",
                    f.display(),
                    started.elapsed()
                );
                seeds += usize::from(kind == "corpus");
                replayed += 1;
            }
        }
        assert!(seeds > 0, "no corpus for the {target} target");
    }
    assert!(replayed >= harness::TARGETS.len());
}

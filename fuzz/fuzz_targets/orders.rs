#![no_main]

#[path = "../harness.rs"]
mod harness;

static HOOK: std::sync::Once = std::sync::Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // libFuzzer's panic hook aborts on every panic; a panic of the parquet
    // crate that the product contains (reported as an unreadable file) is
    // let unwind to it instead. Any other panic still aborts.
    HOOK.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !lifecycle_ingest::panic_is_contained(info) {
                fuzzer_hook(info);
            }
        }));
    });
    harness::orders(data)
});

//! Fuzz target `core_open`: see `nova_hypercore_fuzz::core_open`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = nova_hypercore_fuzz::core_open(data);
});

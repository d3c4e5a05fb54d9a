//! Fuzz target `proof`: see `nova_hypercore_fuzz::proof`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = nova_hypercore_fuzz::proof(data);
});

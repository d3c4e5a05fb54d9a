//! Fuzz target `manifest`: see `nova_hypercore_fuzz::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nova_hypercore_fuzz::manifest(data));

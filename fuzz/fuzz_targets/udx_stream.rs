//! Fuzz target `udx_stream`: see `nova_hypercore_fuzz::udx_stream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nova_hypercore_fuzz::udx_stream(data));

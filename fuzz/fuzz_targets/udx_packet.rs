//! Fuzz target `udx_packet`: see `nova_hypercore_fuzz::udx_packet`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nova_hypercore_fuzz::udx_packet(data));

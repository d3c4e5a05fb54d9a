//! Fuzz target `wire_message`: see `nova_hypercore_fuzz::wire_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nova_hypercore_fuzz::wire_message(data));

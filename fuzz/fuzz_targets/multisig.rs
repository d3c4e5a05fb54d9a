//! Fuzz target `multisig`: see `nova_hypercore_fuzz::multisig`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nova_hypercore_fuzz::multisig(data));

//! Fuzz target `oplog`: see `nova_hypercore_fuzz::oplog`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nova_hypercore_fuzz::oplog(data));

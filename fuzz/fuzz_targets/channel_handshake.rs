//! Fuzz target `channel_handshake`: see `nova_hypercore_fuzz::channel_handshake`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = nova_hypercore_fuzz::channel_handshake(data);
});

//! Fuzz target `protomux_frames`: see `nova_hypercore_fuzz::protomux_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = nova_hypercore_fuzz::protomux_frames(data);
});

//! tauri-build: the app's context (tauri.conf.json, capabilities/, the plugin's permissions).

fn main() {
    // The page embeds the guest-js bundle that `cargo xtask` copies in: rebuild when it changes.
    println!("cargo:rerun-if-changed=page");
    tauri_build::build();
}

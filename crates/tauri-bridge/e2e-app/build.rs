//! tauri-build: the app's context (tauri.conf.json, capabilities/, the plugin's permissions).

fn main() {
    // The page is embedded, and so is the plugin's `withGlobalTauri` script (read by
    // `generate_context!`, which does not watch it): rebuild when either changes.
    println!("cargo:rerun-if-changed=page");
    println!("cargo:rerun-if-changed=../api-iife.js");
    tauri_build::build();
}

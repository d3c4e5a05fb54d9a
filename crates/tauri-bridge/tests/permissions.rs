//! The permission sets (`read-only`, `replicate`) and the command-less `global-scope`
//! permission, resolved by Tauri's own ACL code from this plugin's permission files and
//! capabilities as an app writes them, then enforced on the real IPC path.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{Harness, capability, config, resolve};
use serde_json::{Value, json};
use tauri::utils::acl::capability::Capability;
use tauri_plugin_nova_hypercore::init;

fn code(err: &Value) -> &str {
    err["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error object: {err}"))
}

fn refused_by_tauri(err: &Value) -> bool {
    err.as_str().is_some_and(|t| t.contains("not allowed"))
}

/// The commands a capability's permissions grant, without the `plugin:nova-hypercore|`.
fn granted(permissions: Value) -> Vec<String> {
    let (_, resolved) = resolve(vec![capability(permissions)]);
    resolved
        .allowed_commands
        .keys()
        .map(|k| k.strip_prefix("plugin:nova-hypercore|").unwrap().to_owned())
        .collect()
}

#[test]
fn the_sets_grant_exactly_their_commands() {
    assert_eq!(
        granted(json!(["nova-hypercore:read-only"])),
        [
            "download_progress",
            "length",
            "log_keys",
            "read",
            "read_range",
            "replication_status",
            "status",
            "subscribe",
            "tail",
            "unsubscribe"
        ]
    );
    assert_eq!(
        granted(json!(["nova-hypercore:replicate"])),
        [
            "download_progress",
            "follow",
            "log_keys",
            "replication_status",
            "share",
            "unshare"
        ]
    );
    assert_eq!(
        granted(json!(["nova-hypercore:default"])),
        [
            "append",
            "atlas_query",
            "atlas_store",
            "download_progress",
            "length",
            "log_keys",
            "read",
            "read_range",
            "replication_status",
            "status",
            "subscribe",
            "tail",
            "unsubscribe"
        ],
        "everything but share, unshare, follow and the crdt commands"
    );
    // Command-less: grants nothing, only scope.
    assert!(granted(json!(["nova-hypercore:global-scope"])).is_empty());
}

#[test]
fn read_only_reads_the_logs_of_its_scope_and_cannot_append() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(
        dir.path(),
        capability(json!([
            { "identifier": "nova-hypercore:read-only", "allow": [{ "name": "notes" }] }
        ])),
    );
    tauri::async_runtime::block_on(h.manager().append("notes", b"written by the app")).unwrap();
    assert!(refused_by_tauri(&h.append("notes", b"x").unwrap_err()));
    assert!(refused_by_tauri(&h.append_raw("notes", b"x").unwrap_err()));
    assert_eq!(h.read("notes", 0).unwrap(), b"written by the app");
    let length = h.json("length", json!({ "logName": "notes" })).unwrap();
    assert_eq!(length.deserialize::<u64>().unwrap(), 1);
    // The set grants commands, not logs: outside its scope is UNAUTHORIZED.
    assert_eq!(code(&h.read("other", 0).unwrap_err()), "UNAUTHORIZED");
    h.shut_down();
}

#[test]
fn a_scope_on_the_global_scope_permission_reaches_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(
        dir.path(),
        capability(json!([
            "nova-hypercore:default",
            { "identifier": "nova-hypercore:global-scope", "allow": [{ "name": "shared-*" }] }
        ])),
    );
    assert_eq!(h.append("shared-a", b"one").unwrap(), 0);
    assert_eq!(h.read("shared-a", 0).unwrap(), b"one");
    assert_eq!(
        code(&h.append("private", b"x").unwrap_err()),
        "UNAUTHORIZED"
    );
    h.shut_down();
}

#[test]
fn a_global_deny_removes_logs_a_command_scope_allows() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new(
        dir.path(),
        capability(json!([
            { "identifier": "nova-hypercore:default", "allow": [{ "name": "agent-*" }] },
            { "identifier": "nova-hypercore:global-scope", "deny": [{ "name": "agent-secret*" }] }
        ])),
    );
    assert_eq!(h.append("agent-state", b"ok").unwrap(), 0);
    for log in ["agent-secret", "agent-secrets"] {
        let err = h.append(log, b"x").unwrap_err();
        assert_eq!(code(&err), "UNAUTHORIZED", "{err}");
        assert_eq!(err["logName"], log);
    }
    h.shut_down();
}

#[test]
fn the_global_scope_is_app_wide_across_capabilities() {
    // Another capability, for another window, sets a global allow: Tauri merges global
    // scopes for the whole app, so window `main` (plain default, no scope) gets it too.
    let other: Capability = serde_json::from_value(json!({
        "identifier": "other-window",
        "windows": ["other"],
        "permissions": [
            { "identifier": "nova-hypercore:global-scope", "allow": [{ "name": "shared-*" }] }
        ],
    }))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::try_with(
        vec![capability(json!(["nova-hypercore:default"])), other],
        init(config(dir.path())),
        None,
    )
    .unwrap();
    assert_eq!(h.append("shared-x", b"x").unwrap(), 0);
    assert_eq!(
        code(&h.append("private", b"x").unwrap_err()),
        "UNAUTHORIZED"
    );
    h.shut_down();
}

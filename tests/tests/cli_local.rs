//! The commands that work on one store: init, append, read, range, tail, status,
//! metrics, keys, verify, clear, delete; human output snapshotted, bad input giving the
//! documented exit codes (docs/cli.md, "Exit codes").
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod cli_common;

use cli_common::{cli, ok, public_key};
use serde_json::Value;

/// A store with "notes" holding `hello`, `a`, `b`.
fn notes() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(cli(dir.path()).args(["append", "notes", "hello"]));
    ok(cli(dir.path())
        .args(["append", "notes", "-"])
        .write_stdin("a\nb\n"));
    dir
}

#[test]
fn append_read_range_tail_print_what_was_appended() {
    let dir = tempfile::tempdir().unwrap();
    let init = ok(cli(dir.path()).arg("init"));
    assert!(init.starts_with("store ready at "), "{init}");
    let first = ok(cli(dir.path()).args(["append", "notes", "hello"]));
    let lines = ok(cli(dir.path())
        .args(["append", "notes", "-"])
        .write_stdin("a\nb\r\nc\n"));
    let file = dir.path().join("entry.txt");
    std::fs::write(&file, "from a file").unwrap();
    let from_file = ok(cli(dir.path())
        .args(["append", "notes", "--file"])
        .arg(&file));
    insta::assert_snapshot!("append", format!("{first}{lines}{from_file}"));

    assert_eq!(ok(cli(dir.path()).args(["read", "notes", "0"])), "hello\n");
    assert_eq!(
        ok(cli(dir.path()).args(["read", "notes", "4"])),
        "from a file\n"
    );
    insta::assert_snapshot!(
        "range",
        ok(cli(dir.path()).args(["range", "notes", "0", "5"]))
    );
    insta::assert_snapshot!(
        "range_json",
        ok(cli(dir.path()).args(["--json", "range", "notes", "1", "3"]))
    );
    assert_eq!(
        ok(cli(dir.path()).args(["tail", "notes", "-n", "2"])),
        "c\nfrom a file\n"
    );
}

#[test]
fn status_lists_the_logs() {
    let dir = notes();
    ok(cli(dir.path()).args(["append", "todo", "x"]));
    let shown = ok(cli(dir.path()).arg("status"));
    // The directory and the disk usage depend on the machine.
    let shown: String = shown
        .lines()
        .map(|l| {
            if l.starts_with("store ") {
                "store  [dir]".to_owned()
            } else if l.starts_with("disk ") {
                "disk   [usage]".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("status", shown);
    let json: Value =
        serde_json::from_str(&ok(cli(dir.path()).args(["--json", "status"]))).unwrap();
    assert_eq!(json["logs"][0]["name"], "notes");
    assert_eq!(json["logs"][0]["length"], 3);
    assert_eq!(json["logs"][1]["name"], "todo");
    assert_eq!(json["bootstrap"], Value::Array(vec![]));
    let metrics: Value =
        serde_json::from_str(&ok(cli(dir.path()).args(["--json", "metrics"]))).unwrap();
    assert_eq!(metrics["managedLogs"], 2);
}

#[test]
fn keys_are_hex_and_stable() {
    let dir = notes();
    let key = public_key(dir.path(), "notes");
    assert_eq!(key.len(), 64);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    let human = ok(cli(dir.path()).args(["keys", "notes"]));
    assert!(
        human.starts_with(&format!("public key     {key}\ndiscovery key  ")),
        "{human}"
    );
    assert_eq!(public_key(dir.path(), "notes"), key);
}

#[test]
fn verify_reports_the_first_bad_block() {
    let dir = notes();
    let good = ok(cli(dir.path()).args(["verify", "notes"]));
    assert_eq!(
        good,
        "notes: 3 blocks checked, all verify (0 not stored here)\n"
    );
    // Flip a byte of block 1 ("a", stored after "hello") in the log's data file.
    let data = find_file(dir.path(), "data");
    let mut bytes = std::fs::read(&data).unwrap();
    assert_eq!(&bytes[..7], b"helloab");
    bytes[5] ^= 1;
    std::fs::write(&data, &bytes).unwrap();
    let out = cli(dir.path()).args(["verify", "notes"]).assert().code(13);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stdout.contains("the first at seq 1"), "{stdout}");
    assert!(stderr.contains("error[SIGNATURE_INVALID]"), "{stderr}");
    assert!(stderr.contains("seq:  1"), "{stderr}");
}

#[test]
fn clear_then_delete() {
    let dir = notes();
    let cleared = ok(cli(dir.path()).args(["--json", "clear", "notes", "0", "2"]));
    let v: Value = serde_json::from_str(cleared.trim()).unwrap();
    assert_eq!(v["blocks"], 2);
    // Cleared blocks are gone locally (REPLICATION_FAILED: only a peer can send them).
    cli(dir.path())
        .args(["read", "notes", "0"])
        .assert()
        .code(14);
    assert_eq!(ok(cli(dir.path()).args(["read", "notes", "2"])), "b\n");
    let verify = ok(cli(dir.path()).args(["verify", "notes"]));
    assert_eq!(
        verify,
        "notes: 1 block checked, all verify (2 not stored here)\n"
    );
    assert_eq!(
        ok(cli(dir.path()).args(["delete", "notes"])),
        "deleted notes\n"
    );
    cli(dir.path())
        .args(["read", "notes", "2"])
        .assert()
        .code(10);
    // Our own log's name is never reused (a second history under the same key).
    cli(dir.path())
        .args(["append", "notes", "again"])
        .assert()
        .code(16);
}

#[test]
fn bad_input_gives_the_documented_exit_codes() {
    let dir = notes();
    let unknown = cli(dir.path())
        .args(["read", "nope", "0"])
        .assert()
        .code(10);
    let stderr = String::from_utf8_lossy(&unknown.get_output().stderr).into_owned();
    insta::assert_snapshot!("unknown_log", stderr);
    // Past the end: OUT_OF_RANGE, with log and seq.
    let past = cli(dir.path())
        .args(["--json", "read", "notes", "9"])
        .assert()
        .code(11);
    let err: Value = serde_json::from_slice(&past.get_output().stderr).unwrap();
    assert_eq!(err["error"]["code"], "OUT_OF_RANGE");
    assert_eq!(err["error"]["seq"], 9);
    assert_eq!(err["error"]["logName"], "notes");
    assert_eq!(err["error"]["exitCode"], 11);
    cli(dir.path())
        .args(["range", "notes", "2", "1"])
        .assert()
        .code(11);
    // Usage errors: a seq that is not a number, a key that is not hex.
    cli(dir.path())
        .args(["read", "notes", "x"])
        .assert()
        .code(2);
    cli(dir.path())
        .args(["read", "notes", "-1"])
        .assert()
        .code(2);
    cli(dir.path())
        .args(["follow", "abcd", "--as", "r"])
        .assert()
        .code(2);
    cli(dir.path())
        .args(["follow", &"zz".repeat(32), "--as", "r"])
        .assert()
        .code(2);
    cli(dir.path()).args(["append", "notes"]).assert().code(2);
    // A bad log name: UNAUTHORIZED.
    cli(dir.path())
        .args(["append", "../x", "y"])
        .assert()
        .code(16);
    // A missing store, for commands that only read.
    let missing = dir.path().join("missing");
    let out = cli(&missing).args(["status"]).assert().code(10);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("init"), "{stderr}");
    assert!(stderr.contains("path: "), "{stderr}");
    assert!(!missing.exists(), "a read must not create the store");
    // A store that cannot be created (its parent is a file; as root permissions
    // would not stop us).
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    cli(&file.join("store"))
        .args(["append", "notes", "x"])
        .assert()
        .code(10);
    cli(&file.join("store")).arg("init").assert().code(10);
    // A file to append that does not exist: IO_ERROR.
    cli(dir.path())
        .args(["append", "notes", "--file", "/nonexistent/x"])
        .assert()
        .code(18);
}

#[test]
fn the_store_dir_comes_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = assert_cmd::Command::new(cli_common::binary());
    cmd.env("NOVA_HYPERCORE_DIR", dir.path())
        .args(["append", "env", "x"])
        .assert()
        .success();
    assert!(dir.path().join("keys").join("env.key").exists());
}

/// The one file called `name` under `dir`.
fn find_file(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let mut stack = vec![dir.to_owned()];
    let mut found = Vec::new();
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == name) {
                found.push(path);
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

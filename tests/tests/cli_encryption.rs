//! `--encryption-key` end to end: a writer appends to an encrypted log, a `seed` given
//! only the public key holds the ciphertext (it never had the key), and after the writer
//! has gone a follower with the key gets every entry from the seeder and reads them as
//! written; without the key the same reads print other bytes. Bad keys and the flag on
//! a command that does not take it give the documented exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod cli_common;

use cli_common::{Proc, cli, ok, public_key};
use serde_json::Value;

const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn arg(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// Whether any file of the store at `dir` holds `text`.
fn store_holds(dir: &std::path::Path, text: &str) -> bool {
    nova_hypercore_testkit::files_under(dir).iter().any(|f| {
        std::fs::read(dir.join(f))
            .unwrap()
            .windows(text.len())
            .any(|w| w == text.as_bytes())
    })
}

#[test]
fn a_seeder_without_the_key_keeps_an_encrypted_log_for_a_follower_with_it() {
    let a = tempfile::tempdir().unwrap();
    ok(cli(a.path())
        .args(["--encryption-key", KEY, "append", "diary", "-"])
        .write_stdin("dear diary\nnothing happened\nthe end\n"));
    assert_eq!(
        ok(cli(a.path()).args(["--encryption-key", KEY, "range", "diary", "0", "3"])),
        "dear diary\nnothing happened\nthe end\n"
    );
    // The key comes from the environment too; without any, the stored bytes.
    assert_eq!(
        ok(cli(a.path())
            .env("NOVA_HYPERCORE_ENCRYPTION_KEY", KEY)
            .args(["read", "diary", "2"])),
        "the end\n"
    );
    let stored = ok(cli(a.path()).args(["--json", "read", "diary", "2"]));
    assert!(!stored.contains("the end"), "{stored}");
    assert!(
        !store_holds(a.path(), "nothing happened"),
        "plaintext on the writer's disk"
    );
    // Forgetting the key does not append plaintext to it: UNAUTHORIZED (16); another
    // key is refused the same way.
    cli(a.path())
        .args(["append", "diary", "in clear"])
        .assert()
        .code(16);
    cli(a.path())
        .args(["--encryption-key", &"11".repeat(32), "append", "diary", "x"])
        .assert()
        .code(16);

    let key = public_key(a.path(), "diary");
    let mut share = Proc::spawn(&[
        "--dir",
        arg(a.path()),
        "--encryption-key",
        KEY,
        "share",
        "diary",
        "--listen",
        "127.0.0.1:0",
    ]);
    let writer_addr = share.listening();

    // The seeder is given the public key only.
    let s = tempfile::tempdir().unwrap();
    let target = format!("diary={key}");
    let mut seeder = Proc::spawn(&[
        "--dir",
        arg(s.path()),
        "--json",
        "seed",
        "--listen",
        "127.0.0.1:0",
        "--connect",
        &writer_addr,
        &target,
    ]);
    let mut seeder_addr = None;
    seeder.wait_for(|l| {
        let v: Value = serde_json::from_str(l).ok()?;
        match v["event"].as_str()? {
            "listening" => seeder_addr = v["addr"].as_str().map(str::to_owned),
            "synced" if v["length"] == 3 => return Some(()),
            _ => {}
        }
        None
    });
    let seeder_addr = seeder_addr.unwrap();
    assert!(share.stop("INT").success());

    let c = tempfile::tempdir().unwrap();
    ok(cli(c.path()).args([
        "--encryption-key",
        KEY,
        "follow",
        &key,
        "--as",
        "diary",
        "--connect",
        &seeder_addr,
    ]));
    assert_eq!(
        ok(cli(c.path()).args(["--encryption-key", KEY, "range", "diary", "0", "3"])),
        "dear diary\nnothing happened\nthe end\n"
    );
    assert!(seeder.stop("INT").success());
    // The seeder never held the plaintext.
    let plain = tempfile::tempdir().unwrap();
    ok(cli(plain.path()).args(["append", "diary", "dear diary"]));
    assert!(
        store_holds(plain.path(), "dear diary"),
        "the check finds plaintext where it is"
    );
    assert!(
        !store_holds(c.path(), "dear diary"),
        "the follower stores ciphertext too"
    );
    for text in ["dear diary", "nothing happened", "the end"] {
        assert!(
            !store_holds(s.path(), text),
            "the seeder's store holds {text:?}"
        );
    }
}

#[test]
fn bad_encryption_keys_and_misplaced_ones_give_their_exit_codes() {
    let a = tempfile::tempdir().unwrap();
    ok(cli(a.path()).args(["append", "log", "x"]));
    // Not hex, or too short: DESERIALIZATION_FAILED (15).
    for bad in ["zz", "abcd"] {
        let out = cli(a.path())
            .args(["--encryption-key", bad, "read", "log", "0"])
            .assert()
            .code(15)
            .get_output()
            .stderr
            .clone();
        let err = String::from_utf8(out).unwrap();
        assert!(err.contains("DESERIALIZATION_FAILED"), "{err}");
    }
    // status opens every log as stored: the flag is a usage error (2) there.
    cli(a.path())
        .args(["--encryption-key", KEY, "status"])
        .assert()
        .code(2);
}

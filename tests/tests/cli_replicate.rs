//! Two and three `nova-hypercore` processes on loopback: share/follow over direct TCP,
//! over a DHT bootstrap node the test hosts (`nova-hypercore bootstrap`), and a seeder
//! that keeps a log available after its writer has gone, and `--max-peers` holding a
//! second peer off until the first leaves.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod cli_common;

use std::io::{Read, Write};

use cli_common::{Proc, cli, ok, public_key};
use serde_json::Value;

/// A writer store with "notes" holding three entries.
fn writer() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(cli(dir.path())
        .args(["append", "notes", "-"])
        .write_stdin("one\ntwo\nthree\n"));
    dir
}

fn arg(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn follow_over_listen_and_connect() {
    let a = writer();
    let key = public_key(a.path(), "notes");
    let mut share = Proc::spawn(&[
        "--dir",
        arg(a.path()),
        "share",
        "notes",
        "--listen",
        "127.0.0.1:0",
    ]);
    let shared_key = share.wait_for(|l| l.strip_prefix("sharing notes ").map(str::to_owned));
    assert_eq!(shared_key, key);
    let addr = share.listening();

    let b = tempfile::tempdir().unwrap();
    let followed = ok(cli(b.path()).args(["follow", &key, "--as", "notes", "--connect", &addr]));
    assert!(
        followed.contains("notes: complete, 3/3 blocks"),
        "{followed}"
    );
    assert_eq!(
        ok(cli(b.path()).args(["tail", "notes"])),
        "one\ntwo\nthree\n"
    );
    assert_eq!(
        ok(cli(b.path()).args(["verify", "notes"])),
        "notes: 3 blocks checked, all verify (0 not stored here)\n"
    );
    // The replica cannot be written to.
    cli(b.path())
        .args(["append", "notes", "x"])
        .assert()
        .code(16);
    // Ctrl-C closes the sharing store cleanly: exit 0, and the store opens again.
    assert!(share.stop("INT").success());
    assert_eq!(ok(cli(a.path()).args(["read", "notes", "2"])), "three\n");
}

#[test]
fn follow_over_a_dht_bootstrap_node() {
    let mut node = Proc::spawn(&["bootstrap", "127.0.0.1:0"]);
    let bootstrap = node.wait_for(|l| l.strip_prefix("bootstrap node on ").map(str::to_owned));
    let a = writer();
    let key = public_key(a.path(), "notes");
    let mut share = Proc::spawn(&[
        "--dir",
        arg(a.path()),
        "--bootstrap",
        &bootstrap,
        "share",
        "notes",
    ]);
    share.wait_for(|l| l.starts_with("on the DHT").then_some(()));

    let b = tempfile::tempdir().unwrap();
    let followed = ok(cli(b.path()).args([
        "--bootstrap",
        &bootstrap,
        "--json",
        "follow",
        &key,
        "--as",
        "notes",
    ]));
    let last: Value = serde_json::from_str(followed.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "complete");
    assert_eq!(last["have"], 3);
    assert_eq!(
        ok(cli(b.path()).args(["range", "notes", "0", "3"])),
        "one\ntwo\nthree\n"
    );
    assert!(share.stop("TERM").success());
    assert!(node.stop("INT").success());
}

#[test]
fn a_seeder_keeps_a_log_available_after_the_writer_left() {
    let a = writer();
    let key = public_key(a.path(), "notes");
    let mut share = Proc::spawn(&[
        "--dir",
        arg(a.path()),
        "share",
        "notes",
        "--listen",
        "127.0.0.1:0",
    ]);
    let writer_addr = share.listening();

    let s = tempfile::tempdir().unwrap();
    let seed_args = [
        "--dir",
        arg(s.path()),
        "--json",
        "seed",
        "--listen",
        "127.0.0.1:0",
        "--status-addr",
        "127.0.0.1:0",
        "--connect",
        &writer_addr,
    ];
    let mut args: Vec<&str> = seed_args.to_vec();
    let target = format!("notes={key}");
    args.push(&target);
    let mut seeder = Proc::spawn(&args);
    let mut seeder_addr = None;
    let mut status_addr = None;
    seeder.wait_for(|l| {
        let v: Value = serde_json::from_str(l).ok()?;
        match v["event"].as_str()? {
            "listening" => seeder_addr = v["addr"].as_str().map(str::to_owned),
            "status-endpoint" => status_addr = v["addr"].as_str().map(str::to_owned),
            "synced" if v["length"] == 3 => return Some(()),
            _ => {}
        }
        None
    });
    let (seeder_addr, status_addr) = (seeder_addr.unwrap(), status_addr.unwrap());
    let status = get_status(&status_addr);
    assert_eq!(status["logs"][0]["name"], "notes");
    assert_eq!(status["logs"][0]["have"], 3);
    assert_eq!(status["logs"][0]["kind"], "replica");

    // The writer goes; a fresh follower gets every entry from the seeder.
    assert!(share.stop("INT").success());
    let c = tempfile::tempdir().unwrap();
    ok(cli(c.path()).args(["follow", &key, "--as", "notes", "--connect", &seeder_addr]));
    assert_eq!(
        ok(cli(c.path()).args(["range", "notes", "0", "3"])),
        "one\ntwo\nthree\n"
    );

    // The seeder restarts from seeds.json with no arguments.
    assert!(seeder.stop("TERM").success());
    let mut again = Proc::spawn(&["--dir", arg(s.path()), "--json", "seed"]);
    let name = again.wait_for(|l| {
        let v: Value = serde_json::from_str(l).ok()?;
        (v["event"] == "seeding").then(|| v["log"].as_str().unwrap().to_owned())
    });
    assert_eq!(name, "notes");
    assert!(again.stop("INT").success());
}

#[test]
fn ctrl_c_before_a_follow_completes_exits_130_and_keeps_the_store() {
    let a = writer();
    let key = public_key(a.path(), "notes");
    let b = tempfile::tempdir().unwrap();
    // Nobody listens on the address given: the follow cannot complete.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let connect = format!("127.0.0.1:{port}");
    let mut follow = Proc::spawn(&[
        "--dir",
        arg(b.path()),
        "follow",
        &key,
        "--as",
        "notes",
        "--connect",
        &connect,
    ]);
    follow.wait_for(|l| l.starts_with("following ").then_some(()));
    assert_eq!(follow.stop("INT").code(), Some(130));
    // The replica was recorded and the store closed cleanly: it opens again.
    let status: Value =
        serde_json::from_str(&ok(cli(b.path()).args(["--json", "status"]))).unwrap();
    assert_eq!(status["logs"][0]["name"], "notes");
    assert_eq!(status["logs"][0]["kind"], "replica");
    assert_eq!(status["logs"][0]["have"], 0);
}

/// `GET /status` from the seeder's endpoint.
fn get_status(addr: &str) -> Value {
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    socket
        .write_all(b"GET /status HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body).unwrap()
}

#[test]
fn max_peers_holds_a_second_follower_off_until_the_first_leaves() {
    let a = writer();
    let key = public_key(a.path(), "notes");
    let mut share = Proc::spawn(&[
        "--dir",
        arg(a.path()),
        "share",
        "notes",
        "--listen",
        "127.0.0.1:0",
        "--max-peers",
        "1",
    ]);
    let addr = share.listening();
    let follower = |dir: &std::path::Path| {
        Proc::spawn(&[
            "--dir",
            arg(dir),
            "--json",
            "follow",
            &key,
            "--as",
            "notes",
            "--connect",
            &addr,
            "--keep",
        ])
    };
    let complete = |l: &str| {
        let v: Value = serde_json::from_str(l).ok()?;
        (v["event"] == "complete").then_some(())
    };
    let (b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut first = follower(b.path());
    first.wait_for(complete);
    // The writer serves one peer: the second is closed at accept and redials.
    let mut second = follower(c.path());
    assert!(
        second
            .within(std::time::Duration::from_secs(3), complete)
            .is_none(),
        "a second peer was served past --max-peers 1: {:?}",
        second.seen
    );
    // The first leaves: the second's next dial (backoff at most 5 s) is served.
    assert!(first.stop("INT").success());
    second.wait_for(complete);
    assert!(second.stop("INT").success());
    assert_eq!(
        ok(cli(c.path()).args(["range", "notes", "0", "3"])),
        "one\ntwo\nthree\n"
    );
    assert!(share.stop("INT").success());
}

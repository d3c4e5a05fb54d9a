//! The outgoing frame queue of a connection is bounded in bytes: a real loopback peer
//! that completes the handshake and then never reads gets its connection dropped with a
//! typed error, and this process's memory stays bounded meanwhile (VmRSS).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use futures::SinkExt;
use nova_hypercore_replication::transport::{MAX_QUEUED_BYTES, encrypt};
use tokio::net::{TcpListener, TcpStream};

/// Resident set size of this process in bytes (`VmRSS` of /proc/self/status).
fn vm_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_dropped_with_memory_bounded() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        // The peer completes the handshake, then never polls its side: its pump stops
        // reading the socket once its inbound queue is full, and TCP stalls.
        encrypt(socket, false).await.unwrap()
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut cipher, ended) = encrypt(stream, true).await.unwrap();
    let _silent_peer = peer.await.unwrap();

    let frame = vec![0x5a_u8; 64 * 1024];
    let rss_before = vm_rss();
    let mut sent: u64 = 0;
    // Without a bound this loop would queue 1 GiB and never fail.
    let error = loop {
        match cipher.send(frame.clone()).await {
            Ok(()) => sent += frame.len() as u64,
            Err(e) => break e,
        }
        assert!(
            sent < 1024 * MIB,
            "1 GiB queued for a peer that never reads, connection not dropped"
        );
    };
    let grown = vm_rss().saturating_sub(rss_before);

    // Typed: the session above sees REPLICATION_FAILED with the reason.
    assert_eq!(error.kind(), std::io::ErrorKind::Other, "{error}");
    let typed = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<nova_hypercore_serialization::HypercoreError>())
        .expect("a HypercoreError inside the I/O error");
    assert_eq!(typed.code().to_string(), "REPLICATION_FAILED", "{typed}");
    assert!(typed.to_string().contains("does not read"), "{typed}");
    // The ending watch says why the connection ended.
    match ended.borrow().clone() {
        Some(Err(reason)) => assert!(reason.contains("does not read"), "{reason}"),
        other => panic!("connection not marked as dropped: {other:?}"),
    }
    // Dropped for good: nothing more is accepted.
    let again = cipher.send(frame.clone()).await.unwrap_err();
    assert_eq!(again.kind(), std::io::ErrorKind::BrokenPipe, "{again}");
    assert_eq!(cipher.queued_bytes(), 0, "queued frames are released");

    // What was accepted before the drop: the bound, plus what the socket buffers and the
    // silent peer's inbound queue (256 frames) swallowed.
    let peer_inbound = 256 * frame.len() as u64;
    let slack = 32 * MIB;
    assert!(
        sent <= MAX_QUEUED_BYTES as u64 + peer_inbound + slack,
        "{sent} bytes accepted before the drop"
    );
    assert!(
        grown <= MAX_QUEUED_BYTES as u64 + peer_inbound + slack,
        "RSS grew by {} MiB while sending {} MiB to a peer that never reads",
        grown / MIB,
        sent / MIB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_queue_limit_drops_sooner() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        encrypt(socket, false).await.unwrap()
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    let (cipher, _ended) = encrypt(stream, true).await.unwrap();
    let mut cipher = cipher.with_queue_limit(1024 * 1024);
    let _silent_peer = peer.await.unwrap();
    let frame = vec![1_u8; 64 * 1024];
    let mut sent: u64 = 0;
    while cipher.send(frame.clone()).await.is_ok() {
        sent += frame.len() as u64;
        assert!(sent < 512 * MIB, "never dropped");
    }
    // 1 MiB queue + the peer's 16 MiB inbound + socket buffers.
    assert!(sent <= 48 * MIB, "{sent} bytes accepted with a 1 MiB queue");
}

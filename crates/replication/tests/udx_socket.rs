//! Our UDX streams on real UDP sockets (loopback): two endpoints, streams both ways at
//! once with every byte compared, the server side learning its peer from the first
//! packet, other traffic on the socket passed on, and the ends: EOF after shutdown,
//! a reset after destroy, the id released after close.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use nova_hypercore_replication::udx::socket::{Datagram, Endpoint, UdxStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u64)
                .wrapping_mul(2654435761)
                .wrapping_add(u64::from(seed)) as u8
        })
        .collect()
}

/// An endpoint on a loopback port, and its channel of other traffic.
async fn local() -> (Endpoint, tokio::sync::mpsc::Receiver<Datagram>) {
    Endpoint::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn pair() -> (Endpoint, Endpoint, UdxStream, UdxStream) {
    let (a, _) = local().await;
    let (b, _) = local().await;
    let sa = a.stream();
    let sb = b.stream();
    sa.connect(sb.id(), b.local_addr().unwrap());
    sb.connect(sa.id(), a.local_addr().unwrap());
    (a, b, sa, sb)
}

/// Writes `bytes`, shuts down, and reads everything the other side sends until EOF.
async fn exchange(mut stream: UdxStream, bytes: Vec<u8>) -> Vec<u8> {
    let (mut reader, mut writer) = tokio::io::split(&mut stream);
    let write = async {
        for chunk in bytes.chunks(64 * 1024) {
            writer.write_all(chunk).await.unwrap();
        }
        writer.shutdown().await.unwrap();
    };
    let read = async {
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.unwrap();
        got
    };
    let ((), got) = tokio::join!(write, read);
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_endpoints_exchange_both_ways_at_once_every_byte_in_order() {
    let (_a, _b, sa, sb) = pair().await;
    let to_b = data(32 << 20, 1);
    let to_a = data(1 << 20, 2);
    let started = Instant::now();
    let (got_b, got_a) = tokio::time::timeout(Duration::from_secs(120), async {
        tokio::join!(exchange(sb, to_a.clone()), exchange(sa, to_b.clone()))
    })
    .await
    .expect("no hang");
    let elapsed = started.elapsed();
    println!(
        "UDX_LOOPBACK 32 MiB + 1 MiB in {elapsed:?}: {:.1} MiB/s",
        32.0 / elapsed.as_secs_f64()
    );
    assert!(
        got_b == to_b,
        "b got {} of {} bytes",
        got_b.len(),
        to_b.len()
    );
    assert!(
        got_a == to_a,
        "a got {} of {} bytes",
        got_a.len(),
        to_a.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_stream_learns_its_peer_from_the_first_packet_and_other_traffic_passes() {
    let (server, mut server_other) = local().await;
    let (client, _) = local().await;
    let mut waiting = server.stream();
    let mut dialing = client.stream();
    // The ids were exchanged out of band (hyperdht's handshake); only the client knows
    // where the server is.
    dialing.connect(waiting.id(), server.local_addr().unwrap());
    dialing.write_all(b"hello from the client").await.unwrap();
    let mut buf = [0u8; 21];
    tokio::time::timeout(Duration::from_secs(5), waiting.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"hello from the client");
    let (None, Some(from)) = waiting.remote() else {
        panic!(
            "the first packet's source is the peer: {:?}",
            waiting.remote()
        );
    };
    assert_eq!(from, client.local_addr().unwrap());
    waiting.connect(dialing.id(), from);
    waiting.write_all(b"hello back").await.unwrap();
    let mut buf = [0u8; 10];
    dialing.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello back");

    // Not UDX, and UDX for an id nobody holds: both go to the socket's other users.
    let probe = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    probe
        .send_to(b"not udx", server.local_addr().unwrap())
        .await
        .unwrap();
    let mut stray = vec![0xff, 1, 0, 0];
    stray.extend_from_slice(&(waiting.id() ^ 1).to_le_bytes());
    stray.extend_from_slice(&[0; 12]);
    probe
        .send_to(&stray, server.local_addr().unwrap())
        .await
        .unwrap();
    let (bytes, from) = server_other.recv().await.unwrap();
    assert_eq!(bytes, b"not udx");
    assert_eq!(from, probe.local_addr().unwrap());
    assert_eq!(server_other.recv().await.unwrap().0, stray);
    // A packet for the stream from another address is not taken.
    let mut spoof = vec![0xff, 1, 0x01, 0];
    spoof.extend_from_slice(&waiting.id().to_le_bytes());
    spoof.extend_from_slice(&[0; 12]);
    spoof.extend_from_slice(b"injected");
    probe
        .send_to(&spoof, server.local_addr().unwrap())
        .await
        .unwrap();
    dialing.write_all(b"!").await.unwrap();
    let mut buf = [0u8; 1];
    waiting.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"!");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_resets_the_peer_and_a_vanished_peer_is_an_error_not_a_hang() {
    let (_a, _b, sa, mut sb) = pair().await;
    sa.destroy();
    let mut buf = [0u8; 8];
    let err = tokio::time::timeout(Duration::from_secs(5), sb.read(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);

    // The peer's endpoint disappears: our writes time out (C's give-up, ~13 RTOs).
    let (a, _) = local().await;
    let gone = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut lonely = a.stream();
    lonely.connect(7, gone.local_addr().unwrap());
    drop(gone);
    lonely.write_all(b"anyone?").await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), lonely.read(&mut buf))
        .await
        .expect("the stream gives up within its bound")
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_stream_takes_the_first_packet_its_hook_accepts_and_connects_to_it() {
    let (server, _other) = local().await;
    let (wrong, _) = local().await;
    let (right, _) = local().await;
    let right_addr = right.local_addr().unwrap();
    let mut intruder = wrong.stream();
    let mut dialing = right.stream();
    // Both know the server's id; only one is the peer the hook waits for.
    let mut waiting = server
        .stream_waiting(0x5eed, dialing.id(), move |from| from == right_addr)
        .unwrap();
    assert!(server.stream_with_id(0x5eed).is_none(), "the id is taken");
    intruder.connect(waiting.id(), server.local_addr().unwrap());
    intruder.write_all(b"refused").await.unwrap();
    dialing.connect(waiting.id(), server.local_addr().unwrap());
    dialing.write_all(b"taken").await.unwrap();
    let mut buf = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), waiting.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"taken");
    assert_eq!(waiting.remote(), (Some(dialing.id()), Some(right_addr)));
    // Connected by the hook: it answers without a connect call.
    waiting.write_all(b"back").await.unwrap();
    let mut buf = [0u8; 4];
    dialing.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_endpoint_closes_its_socket_even_if_nothing_arrives() {
    // A holepunch opens up to 256 sockets per punch: each must close once unused.
    let (endpoint, _) = local().await;
    let addr = endpoint.local_addr().unwrap();
    drop(endpoint);
    let rebound = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(socket) = tokio::net::UdpSocket::bind(addr).await {
                return socket;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        rebound.is_ok(),
        "the port is still bound after the endpoint went"
    );
}

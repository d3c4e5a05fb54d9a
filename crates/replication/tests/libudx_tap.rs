//! Pins the libudx 1.7.3 behaviour the planned DHT-socket tap relies on
//! (docs/udx-socket-seam.md §5(e); issue 22's last paths): a libudx stream with our id
//! on a DHT socket, given `relay_to` a stream on a loopback socket of ours, forwards
//! every raw UDX packet for our id (only the id field rewritten, in order) and nothing
//! else; the reverse, a relay stream that sends what we give it out of the DHT socket
//! toward the peer; none of the relay streams sends heartbeats or acks of its own;
//! other traffic still reaches the DHT socket's fallback; a DESTROY from the peer is
//! forwarded and closes the relay. If a libudx upgrade changes
//! any of this, this test says so before the tap breaks.
//!
//! Real loopback sockets; the peer is a raw UDP socket speaking UDX datagrams made with
//! our own codec.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use libudx::UdxRuntime;
use nova_hypercore_replication::udx::packet::{self, Flags, Header, Packet};
use tokio::net::UdpSocket;

const OURS: u32 = 0x0a11_ce01;
const PEER: u32 = 0x0b0b_0002;
const TO_US: u32 = 0x0c0c_0003;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn data(id: u32, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Packet {
        header: Header {
            flags: Flags::DATA | Flags::ACK,
            data_offset: 0,
            id,
            rwnd: 1 << 20,
            seq,
            ack: 0,
        },
        sacks: Vec::new(),
        payload,
    }
    .encode_into(&mut out);
    out
}

/// The next datagram on `socket` within `wait`, or `None`.
async fn next(socket: &UdpSocket, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 4096];
    let (n, from) = tokio::time::timeout(wait, socket.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some((buf, from))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_stream_taps_a_dht_socket_both_ways_and_adds_nothing() {
    let rt = UdxRuntime::new().unwrap();
    // The DHT's socket (libudx), a loopback libudx socket of the tap, our raw socket.
    let dht = rt.create_socket().await.unwrap();
    dht.bind(loopback()).await.unwrap();
    let mut dht_other = dht.recv_start().unwrap();
    let dht_addr = dht.local_addr().await.unwrap();
    let lo = rt.create_socket().await.unwrap();
    lo.bind(loopback()).await.unwrap();
    let lo_addr = lo.local_addr().await.unwrap();
    let ours = UdpSocket::bind(loopback()).await.unwrap();
    let ours_addr = ours.local_addr().unwrap();
    let peer = UdpSocket::bind(loopback()).await.unwrap();
    let peer_addr = peer.local_addr().unwrap();

    // D: on the loopback socket, toward our socket with our id (an identity rewrite);
    // its own keepalive silenced by a relay toward an idle stream.
    let idle = rt.create_stream(0x1d1e).await.unwrap();
    let d = rt.create_stream(0x0d0d).await.unwrap();
    d.relay_to(&idle).unwrap();
    d.connect(&lo, OURS, ours_addr).await.unwrap();
    // T: our id on the DHT socket, relaying to D, connected to the peer.
    let t = rt.create_stream(OURS).await.unwrap();
    t.relay_to(&d).unwrap();
    t.connect(&dht, PEER, peer_addr).await.unwrap();
    // U: on the loopback socket, what we send it goes out through T.
    let u = rt.create_stream(TO_US).await.unwrap();
    u.relay_to(&t).unwrap();
    u.connect(&lo, 0, ours_addr).await.unwrap();

    // Peer -> DHT socket -> T -> D -> our socket: every packet, in order, as sent.
    for seq in 0..100u32 {
        let bytes = data(OURS, seq, format!("to us {seq}").as_bytes());
        peer.send_to(&bytes, dht_addr).await.unwrap();
        let (got, from) = next(&ours, Duration::from_secs(2))
            .await
            .unwrap_or_else(|| panic!("packet {seq} was not forwarded"));
        assert_eq!(from, lo_addr, "forwarded from the tap's loopback socket");
        assert_eq!(got, bytes, "forwarded unchanged (our id kept)");
    }
    // Other traffic on the DHT socket still goes to its own receiver.
    peer.send_to(b"not udx", dht_addr).await.unwrap();
    let other = tokio::time::timeout(Duration::from_secs(2), dht_other.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.data, b"not udx");

    // Ours -> loopback socket (U) -> T -> out of the DHT socket to the peer, the id
    // rewritten to the peer's, in order.
    for seq in 0..100u32 {
        let bytes = data(TO_US, seq, format!("to the peer {seq}").as_bytes());
        ours.send_to(&bytes, lo_addr).await.unwrap();
        let (got, from) = next(&peer, Duration::from_secs(2))
            .await
            .unwrap_or_else(|| panic!("packet {seq} did not reach the peer"));
        assert_eq!(from, dht_addr, "sent from the DHT socket");
        let p = packet::decode(&got).unwrap().unwrap();
        assert_eq!(p.header.id, PEER, "the id rewritten to the peer's stream");
        assert_eq!(p.header.seq, seq);
        assert_eq!(p.payload, format!("to the peer {seq}").as_bytes());
    }

    // Nothing of the relays' own: no heartbeat, no ack, either way, for longer than
    // libudx's 1 s keepalive.
    assert!(
        next(&ours, Duration::from_millis(2500)).await.is_none(),
        "a relay stream sent something of its own to us"
    );
    assert!(
        next(&peer, Duration::from_millis(100)).await.is_none(),
        "a relay stream sent something of its own to the peer"
    );

    // The peer's DESTROY is forwarded, then T closes: a later packet for our id is
    // nobody's stream's, so it reaches the DHT socket's own receiver.
    let mut destroy = Vec::new();
    Packet {
        header: Header {
            flags: Flags::DESTROY,
            data_offset: 0,
            id: OURS,
            rwnd: 0,
            seq: 100,
            ack: 0,
        },
        sacks: Vec::new(),
        payload: &[],
    }
    .encode_into(&mut destroy);
    peer.send_to(&destroy, dht_addr).await.unwrap();
    let (got, _) = next(&ours, Duration::from_secs(2))
        .await
        .expect("the DESTROY was not forwarded");
    assert_eq!(got, destroy);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = data(OURS, 101, b"after the end");
    peer.send_to(&after, dht_addr).await.unwrap();
    let other = tokio::time::timeout(Duration::from_secs(2), dht_other.recv())
        .await
        .expect("a packet after DESTROY went nowhere")
        .unwrap();
    assert_eq!(other.data, after, "T still relays after DESTROY");
    assert!(next(&ours, Duration::from_millis(200)).await.is_none());
    drop((idle, d, t, u));
}

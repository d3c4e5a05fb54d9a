//! Our own UDX stream (issue 22), wire-compatible with C libudx / JS udx-native: built
//! as a sans-I/O state machine (datagrams and a clock in; datagrams and timer deadlines
//! out) under a thin tokio driver. The protocol, as read from the C sources, is
//! described in `docs/udx-protocol.md`.
//!
//! Owns: the packet format ([`packet`]: the 20-byte header, SACK blocks, padding,
//! what is and is not a UDX datagram), sequence arithmetic ([`seq`]) and the stream
//! ([`stream`]: the state machine, built from [`send`] (bytes and packets in flight,
//! RACK), [`recv`] (ordering, SACK blocks, the receive window), [`rtt`], [`cubic`]
//! (congestion window and pacer) and [`mtu`] (path MTU probing)) and its tokio driver
//! ([`socket`]: an endpoint per UDP socket, a stream per peer). Must not: know about
//! the secret stream above it. Used by: the swarm (`swarm/stream.rs`: every connection
//! on a socket of ours); tested over a simulated link with a virtual clock
//! (`tests/udx_link.rs`) and real loopback (`tests/udx_socket.rs`), and fuzzed (`fuzz`
//! targets `udx_packet`, `udx_stream`).

pub mod cubic;
pub mod mtu;
pub mod packet;
pub mod recv;
pub mod rtt;
pub mod send;
pub mod seq;
pub mod socket;
pub mod stream;

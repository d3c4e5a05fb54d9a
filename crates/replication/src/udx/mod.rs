//! Our own UDX stream (issue 22), wire-compatible with C libudx / JS udx-native: built
//! as a sans-I/O state machine (datagrams and a clock in; datagrams and timer deadlines
//! out) under a thin tokio driver. The protocol, as read from the C sources, is
//! described in `docs/udx-protocol.md`.
//!
//! Owns: the packet format ([`packet`]: the 20-byte header, SACK blocks, padding,
//! what is and is not a UDX datagram) and sequence arithmetic ([`seq`]). Must not:
//! touch sockets or clocks itself, or know about the secret stream above it. Used by:
//! nothing yet; `swarm/stream.rs` is the seam it will replace libudx at.

pub mod packet;
pub mod seq;

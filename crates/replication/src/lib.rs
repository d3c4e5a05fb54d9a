//! Replication of nova-hypercore logs over the Hypercore wire protocol (spec: the
//! network layer's replication streams).
//!
//! Owns: turning a duplex byte stream into an encrypted hypercore connection
//! ([`transport::encrypt`]: Noise XX + uint24 framing), and the session logic on top of
//! `hypercore-protocol` 0.7.2 ([`Replicator`]): one channel per log, synchronize /
//! request / data, pipelined and windowed requests matched by id, timeouts and retries,
//! live updates pushed from the log's progress watch (no polling), verification of every
//! received proof before it is stored, and wire counters ([`Stats`]). Also the
//! discovery mechanics on a Hyperswarm DHT ([`swarm`]: peeroxide, explicit bootstrap,
//! bounded joins, swarm connections as cipher channels, keepalives, self-made
//! reconnects, direct-endpoint records) and the protomux hygiene JS peers need
//! ([`guard`]).
//!
//! Does not: decide which logs are shared or when to reconnect (the manager does),
//! persist replication state or emit manager events (the manager integration does, from
//! [`SessionEvent`]s), or use the `hypercore` crate's own replication loop (unfit: it
//! stalls and can corrupt a writer).

mod channel;
pub mod cipher;
pub mod protomux;
mod session;
pub mod swarm;
pub mod transport;
mod wanted;
pub mod wire;

/// The encrypted, framed channel a session runs on (see [`Replicator::run_encrypted`]).
pub use cipher::{CipherEvent, CipherTrait};
pub use session::{
    LogSet, LogSource, MAX_WIRE_BLOCK, Observer, Replicator, SessionConfig, SessionEvent, Stats,
    Transfer,
};

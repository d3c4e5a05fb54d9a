//! Replication of nova-hypercore logs over the Hypercore wire protocol (spec: the
//! network layer's replication streams).
//!
//! Owns: turning a duplex byte stream into an encrypted hypercore connection
//! ([`transport::encrypt`]: Noise XX + uint24 framing; [`CipherTrait`] is what a session
//! runs on); the wire itself, in our own code: [`wire`] (the channel handshake and the
//! ten hypercore messages with hypercore 11's fields, each decoded from exactly its own
//! bytes, every length checked before allocating) and [`protomux`] (frames, the channel
//! table of a connection, capability checks, and the hygiene JS peers need: rejects,
//! unknown protocols, messages and types, bounded channel ids); the session logic on
//! top ([`Replicator`]): one channel per log, synchronize / request / data, pipelined
//! and windowed requests matched by id, the blocks still wanted kept as ranges (memory
//! and work per channel bounded by what is in flight, whatever length a peer
//! announces), timeouts and retries, live updates pushed from the log's progress watch
//! (no polling), verification of every received proof before it is stored, and wire
//! counters ([`Stats`]). Also the discovery mechanics on a Hyperswarm DHT ([`swarm`]:
//! our own swarm layer on peeroxide-dht's DHT: a firewalled server that answers
//! forwarded handshakes with holepunching, explicit bootstrap, bounded joins, swarm
//! connections as cipher channels, keepalives, direct-endpoint records).
//!
//! Does not: decide which logs are shared or when to reconnect (the manager does),
//! persist replication state or emit manager events (the manager integration does, from
//! [`SessionEvent`]s), store or verify blocks (the storage core,
//! `nova-hypercore-managed-core`, does), or interpret manifests (the session carries
//! them: a manifest core's writer announces `hasManifest` and sends its manifest when
//! asked; a replica still waiting for one asks for it and hands what arrives to the
//! core, which checks it against the key before any proof is verified under it).
//!
//! Used by: `nova-hypercore-manager` (`replicate`, `listen` / `connect`, the swarm) and
//! the bench crate.

mod budget;
mod channel;
pub mod cipher;
pub mod protomux;
mod session;
pub mod swarm;
pub mod transport;
pub mod udx;
mod wanted;
pub mod wire;

/// The encrypted, framed channel a session runs on (see [`Replicator::run_encrypted`]).
pub use cipher::{CipherEvent, CipherTrait};
pub use session::{
    DEFAULT_IDLE_TIMEOUT, LogSet, LogSource, MAX_WIRE_BLOCK, Observer, Replicator, SessionConfig,
    SessionEvent, Stats, Transfer,
};

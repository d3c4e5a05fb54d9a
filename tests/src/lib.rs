//! The workspace's cross-crate test suites (issue #25, "Layout"): scenarios put together
//! from several of our crates' public APIs, usually across peers, whose outcome no single
//! crate owns.
//!
//! Owns: the integration tests in `tests/tests/`. A suite belongs here when it drives two
//! or more of our crates, each through its public API and each doing its own part (an
//! adapter on every peer, the manager replicating between them, an application library
//! on top, a binary in separate processes):
//! - `atlas_across_peers.rs`: ATLAS across peers. An `AtlasMemoryAdapter` on each of two
//!   managers, the manager replicating the ATLAS log over loopback TCP; the reader's
//!   queries answer as the writer's, live appends included.
//! - `yrs_three_peers.rs`: a real CRDT (`yrs`) over the `CrdtBridge` on three managers
//!   that replicate over loopback TCP, one peer restarting and editing offline; the three
//!   documents converge, every update delivered once per peer in order.
//! - `cli_local.rs`, `cli_replicate.rs`, `cli_encryption.rs` (helpers in `cli_common/`,
//!   `insta` snapshots in `snapshots/`): the `nova-hypercore` binary end to end, on one
//!   store and as two or three processes sharing logs over loopback (direct TCP, a DHT
//!   bootstrap node, a seeder; encrypted logs held by a keyless seeder).
//!
//! The CLI suites run another package's binary. Cargo sets `CARGO_BIN_EXE_*` only for the
//! tests of the binary's own package and builds a package's binaries only for those, and
//! a binary picked up from the target directory may be older than the sources. So
//! `cli_common::binary` has cargo build it (in the test's profile; a no-op when it is up
//! to date) once per test process and runs the executable cargo reports. The first time,
//! that is one more build of the CLI with its own feature set; `cargo xtask test` runs it
//! before the tests.
//!
//! Stayed in their crates, because each pins one crate's behaviour: the manager's
//! two-peer tests (`crates/manager/tests/replication.rs` and `swarm.rs`, its replication
//! control through its own API; `cargo xtask test-integration swarm` also runs `swarm.rs`
//! by package and name) and `hostile.rs` (raw wire peers against the manager), the ATLAS
//! sparse-replica suite (`crates/atlas-adapter/tests/sparse.rs`, the adapter's `sparse`
//! module and the blocks it fetches), the CRDT bridge's two-peer follow test
//! (`crates/crdt-bridge/tests/bridge.rs`) and the Tauri plugin's tests (its crate is
//! outside the default build).
//!
//! Does not: hold product code or helpers a shipped crate could use (this library is
//! empty; every dependency is a dev-dependency). Does not take a crate's own tests: a
//! test that pins one crate's behaviour stays in `crates/<name>/tests/`, even when it
//! needs a second peer to show it or uses `serialization`'s error codes, so that
//! `cargo test -p <name>` still checks that crate. Property tests stay with the crate
//! that owns the property (`cargo xtask test-props` looks for them in `crates/*`).
//!
//! Used by: `cargo test` / `cargo nextest run --workspace` and `cargo xtask test` (it is
//! a default member); `cargo nextest run -p nova-hypercore-tests` runs these suites alone.

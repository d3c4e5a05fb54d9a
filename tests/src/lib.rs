//! The workspace's cross-crate test suites (issue #25, "Layout"): scenarios put together
//! from several of our crates' public APIs, usually across peers, whose outcome no single
//! crate owns.
//!
//! Owns: the integration tests in `tests/tests/`. A suite belongs here when it drives two
//! or more of our crates, each through its public API and each doing its own part (an
//! adapter on every peer, the manager replicating between them, an application library
//! on top).
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

//! A hostile peer, built from our own codec, over a real loopback TCP connection with
//! the real Noise handshake: each bad thing it sends is refused with a typed error
//! (a `Rejected` event naming the code, or the session's `REPLICATION_FAILED`), the
//! local log keeps no bad data, and memory stays bounded (VmRSS from /proc).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod raw_peer;

use std::sync::Arc;
use std::time::Duration;

use blake2::{Blake2b, Digest, digest::consts::U32};
use ed25519_dalek::Signer;
use futures::SinkExt;
use hypercore_schema::{DataUpgrade, Node, RequestBlock, RequestUpgrade};
use nova_hypercore_managed_core::{CoreFormat, ManagedCore, OpenOptions, RequestSeek, SigningKey};
use nova_hypercore_replication::protomux;
use nova_hypercore_replication::wire::{
    Data, Message, NoData, Range, Request, Synchronize, Unwant, Want,
};
use nova_hypercore_replication::{LogSet, Replicator, SessionConfig, SessionEvent};
use nova_hypercore_serialization::{HypercoreError, LogName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use raw_peer::{OURS, Raw, WAIT, sync};

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

struct Victim {
    replica: ManagedCore,
    events: mpsc::UnboundedReceiver<SessionEvent>,
    session: JoinHandle<Result<(), HypercoreError>>,
    _dir: tempfile::TempDir,
}

impl Victim {
    async fn rejected(&mut self) -> String {
        loop {
            match tokio::time::timeout(WAIT, self.events.recv()).await {
                Ok(Some(SessionEvent::Rejected { reason, .. })) => return reason,
                Ok(Some(_)) => continue,
                other => panic!("no rejection: {other:?}"),
            }
        }
    }
}

/// A replica of `key` served by a real session on loopback TCP, and the raw peer
/// connected to it (channel opened, handshake done).
async fn connect(key: ed25519_dalek::VerifyingKey) -> (Victim, Raw) {
    connect_with(
        OpenOptions::new().public_key(key),
        key.to_bytes(),
        SessionConfig::default(),
    )
    .await
}

/// [`connect`] for a replica opened with `options` (its core key `key`), the session
/// tuned by `config`.
async fn connect_with(options: OpenOptions, key: [u8; 32], config: SessionConfig) -> (Victim, Raw) {
    let dir = tempfile::tempdir().unwrap();
    let replica = ManagedCore::open(dir.path(), LogName::parse("r").unwrap(), options)
        .await
        .unwrap();
    let set = LogSet::new();
    set.insert(replica.clone());
    let (tx, events) = mpsc::unbounded_channel();
    let replicator = Replicator::new(Arc::new(set))
        .with_config(config)
        .with_observer(Arc::new(move |e| {
            let _ = tx.send(e.clone());
        }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let session = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        replicator.run(stream, false).await
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut raw = Raw::connect(stream).await;
    raw.open(&key).await;
    let victim = Victim {
        replica,
        events,
        session,
        _dir: dir,
    };
    (victim, raw)
}

/// A session that asks again soon (200 ms request timeout, 50 ms tick): for tests where
/// the victim must retry what a peer declined or sent at another fork.
fn quick_retries() -> SessionConfig {
    SessionConfig {
        request_timeout: Duration::from_millis(200),
        tick: Duration::from_millis(50),
        ..SessionConfig::default()
    }
}

async fn writer(n: usize, key: Option<SigningKey>) -> (ManagedCore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = OpenOptions::new();
    if let Some(key) = key {
        options = options.signing_key(key);
    }
    let w = ManagedCore::open(dir.path(), LogName::parse("w").unwrap(), options)
        .await
        .unwrap();
    for i in 0..n {
        w.append(format!("entry {i}").as_bytes()).await.unwrap();
    }
    (w, dir)
}

/// Announces `length`, then answers the victim's upgrade request with `tamper(proof)`.
async fn upgrade_with(raw: &mut Raw, w: &ManagedCore, tamper: impl Fn(&mut DataUpgrade)) {
    raw.send_message(sync(w.length())).await;
    let req = raw.request().await.expect("an upgrade request");
    let u = req.upgrade.clone().expect("upgrade");
    let proof = w.serve_proof(None, Some(u)).await.unwrap().unwrap();
    let mut upgrade = proof.upgrade.unwrap();
    tamper(&mut upgrade);
    raw.send_message(Message::Data(Data {
        request: req.id,
        fork: proof.fork,
        upgrade: Some(upgrade),
        ..Data::default()
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_signature_is_refused_and_the_log_is_unchanged() {
    let (w, _wd) = writer(20, None).await;
    let (mut victim, mut raw) = connect(w.verifying_key()).await;
    upgrade_with(&mut raw, &w, |u| u.signature[0] ^= 1).await;
    let reason = victim.rejected().await;
    assert!(reason.starts_with("SIGNATURE_INVALID"), "{reason}");
    assert_eq!(victim.replica.info().await.unwrap().length, 0);
    // The victim closed that channel.
    while raw.next().await.is_some() {}
    assert!(raw.closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_for_the_wrong_index_is_refused_and_nothing_is_stored() {
    let (w, _wd) = writer(20, None).await;
    let (mut victim, mut raw) = connect(w.verifying_key()).await;
    upgrade_with(&mut raw, &w, |_| {}).await;
    raw.send_message(Message::Range(Range {
        drop: false,
        start: 0,
        length: 20,
    }))
    .await;
    let req = loop {
        let r = raw.request().await.expect("a block request");
        if r.block.is_some() {
            break r;
        }
    };
    let asked = req.block.clone().unwrap();
    // A valid proof, but of the next block.
    let proof = w
        .serve_proof(
            Some(RequestBlock {
                index: asked.index + 1,
                nodes: asked.nodes,
            }),
            None,
        )
        .await
        .unwrap()
        .unwrap();
    raw.send_message(Message::Data(Data {
        request: req.id,
        fork: proof.fork,
        block: proof.block,
        ..Data::default()
    }))
    .await;
    let reason = victim.rejected().await;
    assert!(reason.starts_with("UNAUTHORIZED"), "{reason}");
    let info = victim.replica.info().await.unwrap();
    assert_eq!((info.length, info.contiguous_length), (20, 0));
    for seq in 0..20 {
        assert!(!victim.replica.has_block(seq).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_unknown_channels_are_dropped_and_a_malformed_open_ends_the_session() {
    let (w, _wd) = writer(5, None).await;
    let (victim, mut raw) = connect(w.verifying_key()).await;
    // Garbage frames, a message for a channel nobody opened, unknown control messages,
    // a batch that does not parse, unknown message types: all dropped.
    for frame in [
        vec![0xff; 40],
        protomux::message_frame(77, &sync(1 << 50)),
        vec![0, 9, 1, 2, 3],
        vec![0, 0, 1, 0xfe, 1],
        vec![OURS as u8, 42, 1, 2],
        vec![3],
    ] {
        raw.send(frame).await;
    }
    // The session still serves: it answers our length with an upgrade request.
    raw.send_message(sync(5)).await;
    let req = raw.request().await.expect("still serving");
    assert_eq!(
        req.upgrade,
        Some(RequestUpgrade {
            start: 0,
            length: 5
        })
    );
    // A range whose end overflows u64: the channel is closed with a typed error.
    raw.send_message(Message::Range(Range {
        drop: false,
        start: u64::MAX - 1,
        length: 10,
    }))
    .await;
    let mut victim = victim;
    let reason = victim.rejected().await;
    assert!(
        reason.starts_with("REPLICATION_FAILED") && reason.contains("overflows"),
        "{reason}"
    );
    // A malformed channel open ends the connection with a typed error.
    raw.send(vec![0, 1, 2, 0xff]).await;
    let ended = tokio::time::timeout(WAIT, victim.session)
        .await
        .unwrap()
        .unwrap();
    match ended {
        Err(HypercoreError::ReplicationFailed { reason, .. }) => {
            assert!(reason.contains("malformed channel open"), "{reason}");
        }
        other => panic!("expected REPLICATION_FAILED, got {other:?}"),
    }
    assert_eq!(victim.replica.info().await.unwrap().length, 0);
}

/// `crypto.namespace('hypercore', 6)[0]`, the tree signature's namespace.
fn tree_namespace() -> [u8; 32] {
    let name = Blake2b::<U32>::digest(b"hypercore");
    let mut h = Blake2b::<U32>::new();
    h.update(name);
    h.update([0u8]);
    h.finalize().into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_upgrade_to_2_pow_40_blocks_costs_bounded_memory() {
    // The writer's own key signs a tree of 2^40 blocks it does not have: one root.
    let key = SigningKey::from_bytes(&[3; 32]);
    let (w, _wd) = writer(0, Some(key.clone())).await;
    let (mut victim, mut raw) = connect(w.verifying_key()).await;
    let length: u64 = 1 << 40;
    let root = Node::new(length - 1, vec![0xab; 32], length * 10);
    let mut tree = Blake2b::<U32>::new();
    tree.update([2u8]);
    tree.update([0xab; 32]);
    tree.update(root.index.to_le_bytes());
    tree.update(root.length.to_le_bytes());
    let tree: [u8; 32] = tree.finalize().into();
    let mut signable = Vec::new();
    signable.extend(tree_namespace());
    signable.extend(tree);
    signable.extend(length.to_le_bytes());
    signable.extend(0u64.to_le_bytes());
    let signature = key.sign(&signable).to_bytes().to_vec();

    let before = vm_rss_kib();
    raw.send_message(sync(length)).await;
    let req = raw.request().await.expect("an upgrade request");
    assert_eq!(req.upgrade.as_ref().map(|u| u.length), Some(length));
    raw.send_message(Message::Data(Data {
        request: req.id,
        upgrade: Some(DataUpgrade {
            start: 0,
            length,
            nodes: vec![root],
            additional_nodes: vec![],
            signature,
        }),
        ..Data::default()
    }))
    .await;
    // It verifies (it is signed by the writer): the log is 2^40 blocks long now.
    let mut progress = victim.replica.watch_progress();
    tokio::time::timeout(WAIT, async {
        while victim.replica.info().await.unwrap().length < length {
            progress.changed().await.unwrap();
        }
    })
    .await
    .expect("upgrade applied");
    // The peer says it holds all of them: the victim asks for one window, no more.
    raw.send_message(Message::Range(Range {
        drop: false,
        start: 0,
        length,
    }))
    .await;
    let mut asked = std::collections::BTreeSet::new();
    while asked.len() < 64 {
        let r = raw.request().await.expect("block requests");
        if let Some(b) = r.block {
            asked.insert(b.index);
        }
    }
    assert_eq!(
        asked.iter().copied().collect::<Vec<_>>(),
        (0..64).collect::<Vec<_>>()
    );
    // Nothing more is asked while those are in flight.
    raw.send_message(sync(length)).await;
    let extra = tokio::time::timeout(Duration::from_millis(300), raw.request()).await;
    assert!(
        !matches!(&extra, Ok(Some(r)) if r.block.is_some()),
        "asked beyond the window: {extra:?}"
    );
    let grown = vm_rss_kib().saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "RSS grew {grown} KiB for a 2^40-block upgrade"
    );
    assert!(victim.events.try_recv().is_ok());
}

/// A request flood: 100,000 requests for blocks, hashes and upgrades the victim does not
/// hold, sent as fast as the connection takes them and never read back while sending.
/// Each is answered (`noData`) or dropped, memory stays bounded, nothing is stored, and
/// the session still serves: afterwards a real upgrade goes through on the same channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_flood_is_answered_within_bounded_memory_and_the_session_goes_on() {
    let (w, _wd) = writer(20, None).await;
    let (victim, mut raw) = connect(w.verifying_key()).await;
    let before = vm_rss_kib();
    const FLOOD: u64 = 100_000;
    for id in 1..=FLOOD {
        let index = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 12;
        let request = match id % 3 {
            0 => Request {
                id,
                block: Some(RequestBlock { index, nodes: 64 }),
                ..Request::default()
            },
            1 => Request {
                id,
                hash: Some(RequestBlock { index, nodes: 1 }),
                ..Request::default()
            },
            _ => Request {
                id,
                upgrade: Some(RequestUpgrade {
                    start: index,
                    length: u64::MAX - index,
                }),
                ..Request::default()
            },
        };
        raw.send_message(Message::Request(request)).await;
    }
    let grown_mib = vm_rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "{FLOOD} requests grew the process by {grown_mib} MiB"
    );
    assert!(
        !victim.session.is_finished(),
        "the session ended on a flood"
    );
    assert_eq!(victim.replica.info().await.unwrap().length, 0);
    // The same channel still works: a real upgrade and the blocks after it.
    upgrade_with(&mut raw, &w, |_| {}).await;
    let mut progress = victim.replica.watch_progress();
    tokio::time::timeout(WAIT, async {
        while progress.borrow_and_update().length < 20 {
            progress.changed().await.unwrap();
        }
    })
    .await
    .expect("the upgrade after the flood applies");
    assert_eq!(victim.replica.length(), 20);
}

/// A v1 writer's core, appended `n` entries.
async fn v1_writer(n: usize) -> (ManagedCore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let w = ManagedCore::open(
        dir.path(),
        LogName::parse("w").unwrap(),
        OpenOptions::new().format(CoreFormat::V1),
    )
    .await
    .unwrap();
    for i in 0..n {
        w.append(format!("entry {i}").as_bytes()).await.unwrap();
    }
    (w, dir)
}

/// A replica that knows only the core `key`, and a raw peer connected to its session.
async fn connect_by_core_key(key: [u8; 32]) -> (Victim, Raw) {
    connect_with(
        OpenOptions::new().core_key(key),
        key,
        SessionConfig::default(),
    )
    .await
}

fn sync_with_manifest(length: u64) -> Message {
    Message::Synchronize(Synchronize {
        length,
        can_upgrade: true,
        uploading: true,
        downloading: true,
        has_manifest: true,
        ..Synchronize::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_manifest_is_refused_and_the_replica_is_unchanged() {
    let (w, _wd) = v1_writer(20).await;
    let key = w.public_key();
    let (mut victim, mut raw) = connect_by_core_key(key).await;
    raw.send_message(sync_with_manifest(20)).await;
    let req = raw.request().await.expect("an upgrade request");
    // The replica asks for the manifest with its first upgrade.
    assert!(req.manifest, "{req:?}");
    let proof = w
        .serve_proof(None, req.upgrade.clone())
        .await
        .unwrap()
        .unwrap();
    // Another signer's manifest: its hash is not this core's key.
    let other = SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes();
    let wrong = nova_hypercore_managed_core::manifest::Manifest::default_signer(other).encode();
    raw.send_message(Message::Data(Data {
        request: req.id,
        fork: proof.fork,
        upgrade: proof.upgrade,
        manifest: Some(wrong),
        ..Data::default()
    }))
    .await;
    let reason = victim.rejected().await;
    assert!(reason.starts_with("SIGNATURE_INVALID"), "{reason}");
    assert!(reason.contains("manifest"), "{reason}");
    let info = victim.replica.info().await.unwrap();
    assert_eq!(info.length, 0);
    assert!(victim.replica.needs_manifest());
    assert_eq!(victim.replica.manifest(), None);
    while raw.next().await.is_some() {}
    assert!(raw.closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_upgrade_without_its_manifest_is_asked_again_with_it_and_twice_is_refused() {
    let (w, _wd) = v1_writer(5).await;
    let key = w.public_key();
    let (mut victim, mut raw) = connect_by_core_key(key).await;
    // A peer that does not announce a manifest: the first upgrade asks for none.
    raw.send_message(sync(5)).await;
    let req = raw.request().await.expect("an upgrade request");
    assert!(!req.manifest);
    let proof = w
        .serve_proof(None, req.upgrade.clone())
        .await
        .unwrap()
        .unwrap();
    raw.send_message(Message::Data(Data {
        request: req.id,
        fork: proof.fork,
        upgrade: proof.upgrade.clone(),
        ..Data::default()
    }))
    .await;
    // It cannot verify yet: it asks again, for the manifest too (not a refusal).
    let again = raw.request().await.expect("a second upgrade request");
    assert!(again.manifest && again.upgrade.is_some(), "{again:?}");
    assert!(
        victim
            .events
            .try_recv()
            .iter()
            .all(|e| !matches!(e, SessionEvent::Rejected { .. }))
    );
    // Still no manifest: now that is a bad peer.
    raw.send_message(Message::Data(Data {
        request: again.id,
        fork: proof.fork,
        upgrade: proof.upgrade,
        ..Data::default()
    }))
    .await;
    let reason = victim.rejected().await;
    assert!(reason.starts_with("SIGNATURE_INVALID"), "{reason}");
    assert_eq!(victim.replica.info().await.unwrap().length, 0);
}

/// Answers every request of the victim from `w` (the manifest when asked), except that
/// the first `decline` requests get a `NoData` with `reason`. Returns when the victim
/// holds `n` blocks.
async fn serve(
    raw: &mut Raw,
    victim: &Victim,
    w: &ManagedCore,
    n: u64,
    decline: usize,
    reason: u64,
) {
    let mut declined = 0;
    let mut progress = victim.replica.watch_progress();
    loop {
        let req = tokio::select! {
            req = raw.request() => req,
            _ = async {
                while progress.borrow_and_update().contiguous_length < n {
                    progress.changed().await.unwrap();
                }
            } => return,
        };
        let Some(req) = req else {
            panic!(
                "the victim stopped asking: {:?}",
                victim.replica.info().await
            );
        };
        if declined < decline {
            declined += 1;
            raw.send_message(Message::NoData(NoData {
                request: req.id,
                reason,
            }))
            .await;
            continue;
        }
        let proof = w
            .serve_proof(req.block.clone(), req.upgrade.clone())
            .await
            .unwrap();
        let manifest = if req.manifest { w.manifest() } else { None };
        let (block, upgrade) = proof.map(|p| (p.block, p.upgrade)).unwrap_or_default();
        raw.send_message(Message::Data(Data {
            request: req.id,
            block,
            upgrade,
            manifest,
            ..Data::default()
        }))
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js11_peers_no_data_with_a_reason_and_wants_do_not_break_the_session() {
    let (w, _wd) = v1_writer(40).await;
    let key = w.public_key();
    let config = quick_retries();
    let (mut victim, mut raw) = connect_with(OpenOptions::new().core_key(key), key, config).await;
    // What a JS 11 reader sends while it has nothing: wants (one with hypercore 11's
    // `any` field), an unwant, then its Sync (with `allowPush`).
    raw.send_message(Message::Want(Want {
        start: 0,
        length: 1024,
        any: true,
    }))
    .await;
    raw.send_message(Message::Want(Want {
        start: 7,
        length: 1,
        any: false,
    }))
    .await;
    raw.send_message(Message::Unwant(Unwant {
        start: 7,
        length: 1,
        any: false,
    }))
    .await;
    raw.send_message(Message::Synchronize(Synchronize {
        length: 40,
        can_upgrade: true,
        uploading: true,
        downloading: true,
        has_manifest: true,
        allow_push: true,
        ..Synchronize::default()
    }))
    .await;
    raw.send_message(Message::Range(Range {
        drop: false,
        start: 0,
        length: 40,
    }))
    .await;
    // The first requests get JS 11's NoData reasons (NOT_AVAILABLE = 1, then
    // INVALID_REQUEST = 2): asked again later, the session goes on.
    serve(&mut raw, &victim, &w, 1, 1, 1).await;
    serve(&mut raw, &victim, &w, 40, 1, 2).await;
    for i in 0..40 {
        assert_eq!(
            victim.replica.get(i).await.unwrap(),
            w.get(i).await.unwrap()
        );
    }
    assert!(!victim.replica.needs_manifest());
    while let Ok(e) = victim.events.try_recv() {
        assert!(!matches!(e, SessionEvent::Rejected { .. }), "{e:?}");
    }
    assert!(!victim.session.is_finished());
}

/// Changes a signature container's bytes.
type Tamper = fn(&[u8]) -> Vec<u8>;

/// A relaying peer (no write key) that takes a v1 writer's real upgrade and changes
/// only its signature container, each way the container's format would let it grow
/// or change without breaking the writer's signature. Before the fix the padded one
/// verified, was stored and written into the oplog header (4 KiB), whose next
/// checkpoint overflowed and marked the log broken; the victim then served the padded
/// signature on. Each is refused now, and the replica is unchanged and still opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_v1_signature_that_is_not_canonical_is_refused_and_the_replica_stays_whole() {
    let (w, _wd) = v1_writer(20).await;
    let key = w.public_key();
    let manifest = w.manifest().expect("a v1 core has a manifest");
    // 01 00 | signature | 00 00: one proof (signer 0, patch 0), no patch nodes.
    let tampers: [(&str, Tamper); 4] = [
        ("300 KiB after the container", |sig| {
            let mut padded = sig.to_vec();
            padded.extend(std::iter::repeat_n(0u8, 300 * 1024));
            padded
        }),
        ("a second proof past the quorum", |sig| {
            let mut two = vec![2];
            two.extend_from_slice(&sig[1..66]);
            two.extend_from_slice(&sig[1..66]);
            two.push(0);
            two
        }),
        ("a patch node", |sig| {
            let mut with_node = sig[..67].to_vec();
            with_node.push(1);
            with_node.extend_from_slice(&[3, 100]);
            with_node.extend_from_slice(&[7; 32]);
            with_node
        }),
        ("a non-minimal signer index", |sig| {
            // 0xfd then a 16-bit 0: the same number in three bytes.
            let mut long = vec![1, 0xfd, 0, 0];
            long.extend_from_slice(&sig[2..]);
            long
        }),
    ];
    for (what, tamper) in tampers {
        let (mut victim, mut raw) = connect_by_core_key(key).await;
        raw.send_message(sync_with_manifest(20)).await;
        let req = raw.request().await.expect("an upgrade request");
        let proof = w
            .serve_proof(None, req.upgrade.clone())
            .await
            .unwrap()
            .unwrap();
        let mut upgrade = proof.upgrade.expect("an upgrade");
        assert_eq!(upgrade.signature.len(), 68, "the writer's own container");
        upgrade.signature = tamper(&upgrade.signature);
        raw.send_message(Message::Data(Data {
            request: req.id,
            fork: proof.fork,
            upgrade: Some(upgrade),
            manifest: Some(manifest.clone()),
            ..Data::default()
        }))
        .await;
        let reason = victim.rejected().await;
        assert!(reason.starts_with("SIGNATURE_INVALID"), "{what}: {reason}");
        assert_eq!(victim.replica.info().await.unwrap().length, 0, "{what}");
        // The replica's files are whole: it closes and opens again.
        let dir = victim.replica.path().unwrap().to_path_buf();
        victim.replica.close().await.unwrap();
        let again = ManagedCore::open(
            &dir,
            LogName::parse("r").unwrap(),
            OpenOptions::new().core_key(key),
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: the replica does not open again: {e}"));
        assert_eq!(again.info().await.unwrap().length, 0, "{what}");
    }
}

/// Issue 21 (medium): a peer that completes the handshake and then shares nothing
/// (its channel is for a log we do not have; it sends only keepalives) held the
/// connection for ever. Now the session ends, cleanly, once no channel has been open
/// for `idle_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_shares_nothing_is_closed_after_the_idle_timeout() {
    let (w, _wdir) = writer(1, None).await;
    let config = SessionConfig {
        idle_timeout: Duration::from_millis(400),
        ..SessionConfig::default()
    };
    let (mut victim, mut raw) = connect_with(
        OpenOptions::new().public_key(w.verifying_key()),
        // Not the victim's log: its open is refused, no channel pairs.
        [3; 32],
        config,
    )
    .await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            // Keepalives (empty frames) do not count as sharing.
            let _ = raw.cipher.send(Vec::new()).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            if victim.session.is_finished() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the idle connection was kept for 10 s");
    let result = (&mut victim.session).await.unwrap();
    assert!(result.is_ok(), "an idle close is a clean end: {result:?}");
}

/// Issue 21 (low): a peer that closes and opens the same log's channel again and again
/// made the session pair it and start a channel task each time, without bound. Now the
/// 33rd open within a minute is a protocol violation and the connection ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_churning_one_channel_is_disconnected() {
    let (w, _wdir) = writer(1, None).await;
    let (mut victim, mut raw) = connect(w.verifying_key()).await;
    let open = raw.open_frame(&w.public_key());
    for _ in 0..200 {
        if raw.cipher.send(protomux::close_frame(OURS)).await.is_err()
            || raw.cipher.send(open.clone()).await.is_err()
        {
            break;
        }
    }
    let result = tokio::time::timeout(WAIT, &mut victim.session)
        .await
        .expect("the churning peer was kept")
        .unwrap();
    let err = result.expect_err("churn is a violation");
    assert!(
        err.to_string().contains("times in a minute"),
        "unexpected error: {err}"
    );
}

/// A peer on another fork (docs/forks.md step 0, wire hygiene): its requests get
/// `NoData` (ours are served at our fork), its `Synchronize` gets no acknowledged
/// length and no upgrade offer, and its data is stale, not hostile: asked again later,
/// the channel stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_on_another_fork_gets_no_data_and_no_upgrade_offer() {
    let key = SigningKey::from_bytes(&[23; 32]);
    let public = key.verifying_key().to_bytes();
    let (mut victim, mut raw) = connect_with(
        OpenOptions::new().signing_key(key),
        public,
        SessionConfig::default(),
    )
    .await;
    for i in 0..10 {
        victim
            .replica
            .append(format!("entry {i}").as_bytes())
            .await
            .unwrap();
    }
    // The peer says it is on fork 2 with 10 blocks.
    raw.send_message(Message::Synchronize(Synchronize {
        fork: 2,
        length: 10,
        can_upgrade: true,
        uploading: true,
        downloading: true,
        ..Synchronize::default()
    }))
    .await;
    // (A Synchronize sent before ours arrived may come first; the one after it must
    // acknowledge no length and offer no upgrade.)
    loop {
        match raw.next().await.expect("a Synchronize answering ours") {
            Message::Synchronize(s) if s.length == 10 && !s.can_upgrade => {
                assert_eq!(s.fork, 0);
                assert_eq!(s.remote_length, 0, "a length on another fork acknowledged");
                break;
            }
            _ => continue,
        }
    }
    // A block request at fork 2: NoData. The same at fork 0: the block.
    let ask = |id, fork| {
        Message::Request(Request {
            id,
            fork,
            block: Some(RequestBlock { index: 3, nodes: 0 }),
            ..Request::default()
        })
    };
    raw.send_message(ask(1, 2)).await;
    loop {
        match raw.next().await.expect("an answer") {
            Message::NoData(n) => {
                assert_eq!(n.request, 1);
                break;
            }
            Message::Data(d) => panic!("served a request at another fork: {d:?}"),
            _ => continue,
        }
    }
    raw.send_message(ask(2, 0)).await;
    loop {
        match raw.next().await.expect("an answer") {
            Message::Data(d) => {
                assert_eq!((d.request, d.fork), (2, 0));
                assert_eq!(d.block.unwrap().value, b"entry 3");
                break;
            }
            Message::NoData(n) => panic!("not served at our fork: {n:?}"),
            _ => continue,
        }
    }
    while let Ok(e) = victim.events.try_recv() {
        assert!(!matches!(e, SessionEvent::Rejected { .. }), "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_at_another_fork_is_asked_again_not_refused() {
    let (w, _wd) = writer(10, None).await;
    let key = w.verifying_key();
    let config = quick_retries();
    let (mut victim, mut raw) =
        connect_with(OpenOptions::new().public_key(key), key.to_bytes(), config).await;
    raw.send_message(sync(10)).await;
    raw.send_message(Message::Range(Range {
        drop: false,
        start: 0,
        length: 10,
    }))
    .await;
    // The first upgrade is answered with a real proof labelled fork 1.
    let req = raw.request().await.expect("an upgrade request");
    let proof = w
        .serve_proof(None, req.upgrade.clone())
        .await
        .unwrap()
        .unwrap();
    raw.send_message(Message::Data(Data {
        request: req.id,
        fork: 1,
        upgrade: proof.upgrade,
        ..Data::default()
    }))
    .await;
    // Then everything at fork 0: the victim asks again and gets the log.
    serve(&mut raw, &victim, &w, 10, 0, 0).await;
    for i in 0..10 {
        assert_eq!(
            victim.replica.get(i).await.unwrap(),
            w.get(i).await.unwrap()
        );
    }
    while let Ok(e) = victim.events.try_recv() {
        assert!(!matches!(e, SessionEvent::Rejected { .. }), "{e:?}");
    }
    assert!(!victim.session.is_finished());
}

/// Whether the victim sends a block request within `wait` (other messages are passed over).
async fn asks_for_a_block(raw: &mut Raw, wait: Duration) -> Option<u64> {
    tokio::time::timeout(wait, async {
        loop {
            match raw.next().await {
                Some(Message::Request(Request { block: Some(b), .. })) => return Some(b.index),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_blocks_and_a_peer_on_another_fork_are_not_asked_for() {
    let (w, _wd) = writer(10, None).await;
    let key = w.verifying_key();
    let (mut victim, mut raw) = connect_with(
        OpenOptions::new().public_key(key),
        key.to_bytes(),
        quick_retries(),
    )
    .await;
    // The peer holds 0..10, then says it dropped 5..10 (a clear or a truncation).
    raw.send_message(sync(10)).await;
    for (drop, start, length) in [(false, 0, 10), (true, 5, 5)] {
        raw.send_message(Message::Range(Range {
            drop,
            start,
            length,
        }))
        .await;
    }
    // Every request is answered; none may name a dropped block.
    let mut progress = victim.replica.watch_progress();
    while progress.borrow_and_update().contiguous_length < 5 {
        let req = tokio::select! {
            req = raw.request() => req.expect("the victim stopped asking"),
            _ = progress.changed() => continue,
        };
        if let Some(b) = &req.block {
            assert!(b.index < 5, "asked for block {} the peer dropped", b.index);
        }
        let proof = w
            .serve_proof(req.block.clone(), req.upgrade.clone())
            .await
            .unwrap()
            .unwrap();
        raw.send_message(Message::Data(Data {
            request: req.id,
            block: proof.block,
            upgrade: proof.upgrade,
            ..Data::default()
        }))
        .await;
    }
    assert_eq!(
        asks_for_a_block(&mut raw, Duration::from_millis(600)).await,
        None,
        "asked for a block the peer dropped"
    );
    // The peer holds them again, but on fork 1: still nothing asked of it.
    raw.send_message(Message::Synchronize(Synchronize {
        fork: 1,
        length: 10,
        can_upgrade: true,
        uploading: true,
        downloading: true,
        ..Synchronize::default()
    }))
    .await;
    raw.send_message(Message::Range(Range {
        drop: false,
        start: 0,
        length: 10,
    }))
    .await;
    assert_eq!(
        asks_for_a_block(&mut raw, Duration::from_millis(600)).await,
        None,
        "asked a peer on another fork for a block"
    );
    // Back on our fork: the rest is asked for and served.
    raw.send_message(sync(10)).await;
    serve(&mut raw, &victim, &w, 10, 0, 0).await;
    assert_eq!(victim.replica.info().await.unwrap().contiguous_length, 10);
    while let Ok(e) = victim.events.try_recv() {
        assert!(!matches!(e, SessionEvent::Rejected { .. }), "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_request_is_answered_with_the_nodes_proof() {
    let key = SigningKey::from_bytes(&[29; 32]);
    let public = key.verifying_key().to_bytes();
    let (victim, mut raw) = connect_with(
        OpenOptions::new().signing_key(key),
        public,
        SessionConfig::default(),
    )
    .await;
    for i in 0..16 {
        victim
            .replica
            .append(format!("entry {i}").as_bytes())
            .await
            .unwrap();
    }
    // JS readers bisect a fork with these: leaf 6 (index 12) and three levels above.
    let hash = RequestBlock {
        index: 12,
        nodes: 3,
    };
    raw.send_message(Message::Request(Request {
        id: 7,
        fork: 0,
        hash: Some(hash.clone()),
        ..Request::default()
    }))
    .await;
    let expected = victim
        .replica
        .serve_hash(hash, None)
        .await
        .unwrap()
        .expect("a proof of node 12")
        .hash
        .expect("its hash part");
    loop {
        match raw.next().await.expect("an answer") {
            Message::Data(d) => {
                assert_eq!(d.request, 7);
                let got = d.hash.expect("a hash proof");
                assert_eq!(got.index, 12);
                // The node itself, then its siblings up to the missing levels (JS
                // `merkle-tree.js` proofs; pinned by the golden vectors in managed-core).
                let indexes: Vec<u64> = got.nodes.iter().map(|n| n.index).collect();
                assert_eq!(indexes, [12, 14, 9, 3]);
                assert_eq!(got, expected);
                break;
            }
            Message::NoData(n) => panic!("a hash request declined: {n:?}"),
            _ => continue,
        }
    }
}

/// A `Synchronize` on `fork` announcing `length`.
fn sync_at(fork: u64, length: u64) -> Message {
    Message::Synchronize(Synchronize {
        fork,
        length,
        can_upgrade: true,
        uploading: true,
        downloading: true,
        ..Synchronize::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_announcing_a_huge_fork_that_never_proves_it_gets_no_request_loop() {
    let (w, _wd) = writer(10, None).await;
    let key = w.verifying_key();
    let (mut victim, mut raw) = connect_with(
        OpenOptions::new().public_key(key),
        key.to_bytes(),
        quick_retries(),
    )
    .await;
    let huge = 1u64 << 50;
    raw.send_message(sync_at(huge, 10)).await;
    let mut asked = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(message)) = tokio::time::timeout_at(until, raw.next()).await {
        if let Message::Request(req) = message {
            assert_eq!(req.fork, huge);
            let up = req.upgrade.expect("a fork proof request");
            assert_eq!((up.start, up.length), (0, 10));
            asked += 1;
            raw.send_message(Message::NoData(NoData {
                request: req.id,
                reason: 1,
            }))
            .await;
        }
    }
    // Asked again after each request timeout (200 ms here), not as fast as the link.
    assert!((2..=10).contains(&asked), "asked {asked} times in 1.5 s");
    let info = victim.replica.info().await.unwrap();
    assert_eq!((info.length, info.fork), (0, 0));
    assert!(!victim.session.is_finished());
    while let Ok(e) = victim.events.try_recv() {
        assert!(!matches!(e, SessionEvent::Rejected { .. }), "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_fork_proof_is_refused_and_the_replica_is_unchanged() {
    let (w, _wd) = writer(10, None).await;
    let key = w.verifying_key();
    let (mut victim, mut raw) = connect(key).await;
    // The replica gets fork 0 first.
    raw.send_message(sync(10)).await;
    raw.send_message(Message::Range(Range {
        drop: false,
        start: 0,
        length: 10,
    }))
    .await;
    serve(&mut raw, &victim, &w, 10, 0, 0).await;
    // Then the peer claims fork 1 and proves it with fork 0's tree: its signature does
    // not cover fork 1.
    raw.send_message(sync_at(1, 10)).await;
    let req = loop {
        let req = raw.request().await.expect("a fork proof request");
        if req.fork == 1 {
            break req;
        }
    };
    let proof = w
        .serve_proof(None, req.upgrade.clone())
        .await
        .unwrap()
        .unwrap();
    raw.send_message(Message::Data(Data {
        request: req.id,
        fork: 1,
        upgrade: proof.upgrade,
        ..Data::default()
    }))
    .await;
    assert!(victim.rejected().await.contains("SIGNATURE_INVALID"));
    let info = victim.replica.info().await.unwrap();
    assert_eq!(
        (info.length, info.fork, info.contiguous_length),
        (10, 0, 10)
    );
    assert_eq!(victim.replica.get(9).await.unwrap(), b"entry 9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seek_proof_with_wrong_nodes_is_refused_and_the_replica_is_unchanged() {
    let (w, _wd) = writer(300, None).await;
    let key = w.verifying_key();
    let (mut victim, mut raw) = connect_with(
        OpenOptions::new().public_key(key).sparse(true),
        key.to_bytes(),
        SessionConfig::default(),
    )
    .await;
    upgrade_with(&mut raw, &w, |_| {}).await;
    raw.send_message(Message::Range(Range {
        drop: false,
        start: 0,
        length: 300,
    }))
    .await;
    let bytes = w.byte_length() / 2;
    let seeker = victim.replica.clone();
    let seek =
        tokio::spawn(async move { seeker.seek_waiting(bytes, Duration::from_secs(20)).await });
    // The victim asks as JS does: a hash of a block under the node it holds, and the seek.
    let req = raw.request().await.expect("a seek request");
    let s = req.seek.expect("a seek");
    assert_eq!((s.bytes, s.padding), (bytes, 0));
    assert!(req.block.is_none() && req.upgrade.is_none());
    let hash = req.hash.clone().expect("a hash of a block of the span");
    let proof = w
        .serve_seek(None, Some(hash), RequestSeek { bytes }, 0, None)
        .await
        .unwrap()
        .expect("the writer proves it");
    let mut seek_part = proof.seek.clone().expect("seek nodes");
    seek_part.nodes[0].hash[5] ^= 0x40;
    raw.send_message(Message::Data(Data {
        request: req.id,
        fork: proof.fork,
        hash: proof.hash.clone(),
        seek: Some(seek_part),
        ..Data::default()
    }))
    .await;
    let reason = victim.rejected().await;
    assert!(reason.starts_with("SIGNATURE_INVALID"), "{reason}");
    // Nothing stored: the seek still lacks the nodes, and no block is held.
    let err = victim.replica.seek(bytes).await.unwrap_err();
    assert!(
        matches!(err, HypercoreError::BlockUnavailable { .. }),
        "{err:?}"
    );
    assert_eq!(victim.replica.has_range(0..300).await.unwrap(), 0);
    seek.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seek_request_is_answered_with_the_seek_proof() {
    let key = SigningKey::from_bytes(&[31; 32]);
    let public = key.verifying_key().to_bytes();
    let (victim, mut raw) = connect_with(
        OpenOptions::new().signing_key(key),
        public,
        SessionConfig::default(),
    )
    .await;
    for i in 0..16 {
        victim
            .replica
            .append(format!("entry {i}").as_bytes())
            .await
            .unwrap();
    }
    // What a JS reader holding only the root of 16 blocks sends (`_requestSeek`).
    let bytes = 75; // blocks 0..10 are 7 bytes ("entry N"): block 10, offset 5
    let hash = RequestBlock { index: 0, nodes: 4 };
    raw.send_message(Message::Request(Request {
        id: 9,
        fork: 0,
        hash: Some(hash.clone()),
        seek: Some(nova_hypercore_replication::wire::RequestSeek { bytes, padding: 0 }),
        ..Request::default()
    }))
    .await;
    let expected = victim
        .replica
        .serve_seek(None, Some(hash), RequestSeek { bytes }, 0, None)
        .await
        .unwrap()
        .expect("a seek proof");
    loop {
        match raw.next().await.expect("an answer") {
            Message::Data(d) => {
                assert_eq!(d.request, 9);
                assert!(d.block.is_none(), "no block value");
                let seek = d.seek.expect("a seek proof");
                assert_eq!(seek.bytes, bytes);
                // The leaf holding byte 75 (block 10, index 20), then its siblings up
                // to the right half (node 23), which stands in the hash proof.
                let indexes: Vec<u64> = seek.nodes.iter().map(|n| n.index).collect();
                assert_eq!(indexes, [20, 22, 17, 27]);
                assert_eq!(Some(seek), expected.seek);
                assert_eq!(d.hash, expected.hash);
                break;
            }
            Message::NoData(n) => panic!("a seek request declined: {n:?}"),
            _ => continue,
        }
    }
    // With padding (an encrypted JS core), declined, not an error.
    raw.send_message(Message::Request(Request {
        id: 10,
        fork: 0,
        hash: Some(RequestBlock { index: 0, nodes: 4 }),
        seek: Some(nova_hypercore_replication::wire::RequestSeek { bytes, padding: 8 }),
        ..Request::default()
    }))
    .await;
    loop {
        match raw.next().await.expect("an answer") {
            Message::NoData(n) => {
                assert_eq!(n.request, 10);
                break;
            }
            Message::Data(d) => panic!("a padded seek answered: {d:?}"),
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_round_that_proves_another_node_is_refused_and_the_replica_is_unchanged() {
    let (w, _wd) = writer(16, Some(SigningKey::from_bytes(&[31; 32]))).await;
    let key = w.verifying_key();
    let (mut victim, mut raw) = connect(key).await;
    raw.send_message(sync(16)).await;
    raw.send_message(Message::Range(Range {
        drop: false,
        start: 0,
        length: 16,
    }))
    .await;
    serve(&mut raw, &victim, &w, 16, 0, 0).await;
    // The writer forks; the peer announces it and serves the fork proof honestly...
    w.truncate(5).await.unwrap();
    w.append_batch(&[b"n5".as_slice(), b"n6", b"n7"])
        .await
        .unwrap();
    raw.send_message(sync_at(1, 8)).await;
    let req = loop {
        let req = raw.request().await.expect("a fork proof request");
        if req.fork == 1 && req.upgrade.is_some() {
            break req;
        }
    };
    let proof = w
        .serve_proof(None, req.upgrade.clone())
        .await
        .unwrap()
        .unwrap();
    raw.send_message(Message::Data(Data {
        request: req.id,
        fork: 1,
        upgrade: proof.upgrade,
        ..Data::default()
    }))
    .await;
    // ...then answers the first hash round with a proof one level short.
    let round = loop {
        let req = raw.request().await.expect("a hash round");
        if req.hash.is_some() {
            break req;
        }
    };
    let hash = round.hash.clone().unwrap();
    let short = w
        .serve_hash(
            RequestBlock {
                index: hash.index,
                nodes: hash.nodes.saturating_sub(1),
            },
            None,
        )
        .await
        .unwrap()
        .unwrap();
    raw.send_message(Message::Data(Data {
        request: round.id,
        fork: 1,
        hash: short.hash,
        ..Data::default()
    }))
    .await;
    assert!(victim.rejected().await.contains("SIGNATURE_INVALID"));
    let info = victim.replica.info().await.unwrap();
    assert_eq!(
        (info.length, info.fork, info.contiguous_length),
        (16, 0, 16)
    );
}

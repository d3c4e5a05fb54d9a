//! A real CRDT over the bridge: three peers (separate managers, loopback TCP) edit one
//! shared `yrs` text concurrently; one of them goes down midway, edits offline after a
//! restart and reconnects. At the end the three documents are identical, every update
//! reached every peer exactly once (each writer's in log order), and every update made
//! after seeing others carries a clock that dominates theirs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nova_hypercore_crdt_bridge::clock::{VectorClock, concurrent, dominates};
use nova_hypercore_crdt_bridge::{CrdtBridge, DEFAULT_LOG, Subscription};
use nova_hypercore_manager::{Connector, HypercoreManager, ManagerConfig};
use nova_hypercore_serialization::{CRDTUpdateEntry, deserialize};
use tokio::sync::watch;
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, Text, Transact, Update};

const DEADLINE: Duration = Duration::from_secs(60);
const TEXT: &str = "shared";
/// Edits per peer in each phase.
const EDITS: usize = 8;

async fn manager(path: &Path) -> HypercoreManager {
    let m = HypercoreManager::new(ManagerConfig::builder().storage_path(path).build().unwrap())
        .unwrap();
    m.initialize().await.unwrap();
    m
}

/// A broadcast's seq and the clocks of everything delivered before it.
type Broadcast = (u64, Vec<VectorClock>);

/// What lives on across a peer's restart (the app keeps its document and its record).
#[derive(Clone)]
struct Editor {
    source: &'static str,
    doc: Arc<Mutex<Doc>>,
    /// Every entry the handler got, in delivery order.
    delivered: Arc<Mutex<Vec<CRDTUpdateEntry>>>,
    count: Arc<watch::Sender<usize>>,
    /// Each broadcast: its seq and the clocks of everything delivered before it.
    broadcasts: Arc<Mutex<Vec<Broadcast>>>,
    /// Deterministic "random" positions.
    rng: Arc<Mutex<u64>>,
}

impl Editor {
    fn new(source: &'static str, client_id: u64) -> Self {
        Editor {
            source,
            doc: Arc::new(Mutex::new(Doc::with_client_id(client_id))),
            delivered: Arc::default(),
            count: Arc::new(watch::channel(0).0),
            broadcasts: Arc::default(),
            rng: Arc::new(Mutex::new(client_id * 0x9E37_79B9)),
        }
    }

    /// Applies every delivered update that is not ours to the document.
    fn attach(&self, bridge: &CrdtBridge) -> Subscription {
        let me = self.clone();
        bridge.on_update(move |entry| {
            if entry.source_id != me.source {
                let update = Update::decode_v1(&entry.payload).unwrap();
                let doc = me.doc.lock().unwrap();
                doc.transact_mut().apply_update(update).unwrap();
            }
            let mut delivered = me.delivered.lock().unwrap();
            delivered.push(entry.clone());
            me.count.send_replace(delivered.len());
        })
    }

    /// One local edit: insert a token at some position, broadcast the update.
    async fn edit(&self, bridge: &CrdtBridge, i: usize) {
        let update = {
            let doc = self.doc.lock().unwrap();
            let text = doc.get_or_insert_text(TEXT);
            let mut txn = doc.transact_mut();
            let len = text.len(&txn);
            let mut rng = self.rng.lock().unwrap();
            *rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let at = u32::try_from((*rng >> 33) % u64::from(len + 1)).unwrap();
            text.insert(&mut txn, at, &format!("<{}{i}>", self.source));
            txn.encode_update_v1()
        };
        let seen: Vec<VectorClock> = self
            .delivered
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.causal_clock.clone())
            .collect();
        let seq = bridge.broadcast(&update, self.source).await.unwrap();
        self.broadcasts.lock().unwrap().push((seq, seen));
        tokio::task::yield_now().await;
    }

    async fn wait_delivered(&self, n: usize) {
        let mut rx = self.count.subscribe();
        tokio::time::timeout(DEADLINE, rx.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{}: {} of {n} updates delivered in time",
                    self.source,
                    *self.count.borrow()
                )
            })
            .unwrap();
    }

    fn text(&self) -> String {
        let doc = self.doc.lock().unwrap();
        let text = doc.get_or_insert_text(TEXT);
        text.get_string(&doc.transact())
    }
}

/// One running peer: its manager, bridge and handler.
struct Peer {
    manager: HypercoreManager,
    bridge: CrdtBridge,
    _subscription: Subscription,
}

impl Peer {
    async fn start(dir: &Path, editor: &Editor) -> Peer {
        let manager = manager(dir).await;
        let bridge = CrdtBridge::open(&manager).await.unwrap();
        let _subscription = editor.attach(&bridge);
        Peer {
            manager,
            bridge,
            _subscription,
        }
    }

    fn dial(&self, addrs: &[SocketAddr]) -> Vec<Connector> {
        addrs.iter().map(|a| self.manager.connect(*a)).collect()
    }

    async fn stop(self) {
        self.bridge.close().await.unwrap();
        self.manager.close().await.unwrap();
    }
}

async fn edits(editor: Editor, bridge: CrdtBridge, range: std::ops::Range<usize>) {
    for i in range {
        editor.edit(&bridge, i).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_yrs_documents_converge_over_the_bridge_with_one_peer_reconnecting() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (ea, eb, ec) = (
        Editor::new("a", 1),
        Editor::new("b", 2),
        Editor::new("c", 3),
    );
    let a = Peer::start(dirs[0].path(), &ea).await;
    let b = Peer::start(dirs[1].path(), &eb).await;
    let c = Peer::start(dirs[2].path(), &ec).await;
    for (x, y) in [(&a, &b), (&a, &c), (&b, &a), (&b, &c), (&c, &a), (&c, &b)] {
        x.bridge.follow(y.bridge.public_key()).await.unwrap();
    }
    let la = a
        .manager
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let lb = b
        .manager
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let peers_of_c = [la.local_addr(), lb.local_addr()];
    let _b_to_a = b.dial(&[la.local_addr()]);
    let c_links = c.dial(&peers_of_c);

    // Phase 1: all three edit at once.
    let phase1 = [
        tokio::spawn(edits(ea.clone(), a.bridge.clone(), 0..EDITS)),
        tokio::spawn(edits(eb.clone(), b.bridge.clone(), 0..EDITS)),
        tokio::spawn(edits(ec.clone(), c.bridge.clone(), 0..EDITS)),
    ];
    for task in phase1 {
        task.await.unwrap();
    }

    // C goes down (whatever it has not delivered yet waits in the logs) ...
    drop(c_links);
    c.stop().await;
    let c_delivered_before_restart = ec.delivered.lock().unwrap().len();

    // ... A and B go on editing while C restarts and edits offline, then reconnects.
    let phase2 = [
        tokio::spawn(edits(ea.clone(), a.bridge.clone(), EDITS..2 * EDITS)),
        tokio::spawn(edits(eb.clone(), b.bridge.clone(), EDITS..2 * EDITS)),
    ];
    let c = Peer::start(dirs[2].path(), &ec).await; // follows A and B from its state file
    assert_eq!(c.bridge.writers().len(), 3);
    edits(ec.clone(), c.bridge.clone(), EDITS..EDITS + EDITS / 2).await;
    let _c_links = c.dial(&peers_of_c);
    edits(ec.clone(), c.bridge.clone(), EDITS + EDITS / 2..2 * EDITS).await;
    for task in phase2 {
        task.await.unwrap();
    }

    let total = 3 * 2 * EDITS;
    for editor in [&ea, &eb, &ec] {
        editor.wait_delivered(total).await;
    }

    // Every update reached every peer exactly once, each writer's in log order.
    let expected: BTreeSet<(String, u64)> = ["a", "b", "c"]
        .iter()
        .flat_map(|s| (1..=2 * EDITS as u64).map(move |n| ((*s).to_owned(), n)))
        .collect();
    for editor in [&ea, &eb, &ec] {
        let delivered = editor.delivered.lock().unwrap().clone();
        assert_eq!(delivered.len(), total, "{} got duplicates", editor.source);
        let ids: BTreeSet<(String, u64)> = delivered
            .iter()
            .map(|e| (e.source_id.clone(), e.causal_clock[&e.source_id]))
            .collect();
        assert_eq!(ids, expected, "{} did not get every update", editor.source);
        let mut per_source: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for e in &delivered {
            per_source
                .entry(&e.source_id)
                .or_default()
                .push(e.causal_clock[&e.source_id]);
        }
        for counters in per_source.values() {
            assert_eq!(*counters, (1..=2 * EDITS as u64).collect::<Vec<_>>());
        }
    }
    assert!(c_delivered_before_restart < total);

    // The three documents are identical and hold every inserted character once
    // (insertions land inside each other's tokens, so compare the characters).
    let (ta, tb, tc) = (ea.text(), eb.text(), ec.text());
    assert_eq!(ta, tb);
    assert_eq!(ta, tc);
    let mut inserted: Vec<char> = ["a", "b", "c"]
        .iter()
        .flat_map(|s| {
            (0..2 * EDITS).flat_map(move |i| format!("<{s}{i}>").chars().collect::<Vec<_>>())
        })
        .collect();
    let mut held: Vec<char> = ta.chars().collect();
    inserted.sort_unstable();
    held.sort_unstable();
    assert_eq!(held, inserted, "{ta}");

    // Clocks: an update made after seeing others dominates each of them; C's offline
    // edits were concurrent with some of A's and B's.
    let managers = [&a.manager, &b.manager, &c.manager];
    let mut all_clocks = Vec::new();
    for (editor, m) in [&ea, &eb, &ec].into_iter().zip(managers) {
        let broadcasts = editor.broadcasts.lock().unwrap().clone();
        for (seq, seen) in &broadcasts {
            let bytes = m.read(DEFAULT_LOG, *seq).await.unwrap();
            let entry: CRDTUpdateEntry = deserialize(&bytes).unwrap();
            for before in seen {
                assert!(
                    dominates(&entry.causal_clock, before),
                    "{:?} does not dominate {before:?}",
                    entry.causal_clock
                );
            }
            all_clocks.push(entry.causal_clock);
        }
    }
    assert!(
        all_clocks
            .iter()
            .any(|x| all_clocks.iter().any(|y| concurrent(x, y)))
    );

    for p in [a, b, c] {
        p.stop().await;
    }
}

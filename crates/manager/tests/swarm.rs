//! Two managers that find each other on a Hyperswarm DHT (a bootstrap node hosted in
//! this process) and replicate over the swarm's connection.
//!
//! Run by `cargo xtask test-integration swarm`, inside a network namespace that has only
//! `lo` (the DHT's holepuncher advertises every interface it sees; a namespace keeps
//! every packet on loopback). Ignored in the plain test run for that reason.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use nova_hypercore_manager::{BootstrapNode, HypercoreManager, ManagerConfig, SwarmOptions};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Refuses to run where packets could leave loopback.
fn only_loopback() {
    // /proc/self/net/dev lists the interfaces of this process's network namespace.
    let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap();
    let interfaces: Vec<String> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_owned())
        .collect();
    assert_eq!(
        interfaces,
        vec!["lo".to_owned()],
        "swarm tests run only in a network namespace with nothing but lo: use `cargo xtask test-integration swarm`"
    );
}

async fn manager(path: &std::path::Path) -> HypercoreManager {
    let m = HypercoreManager::new(ManagerConfig::builder().storage_path(path).build().unwrap())
        .unwrap();
    m.initialize().await.unwrap();
    m
}

fn options(bootstrap: SocketAddr) -> SwarmOptions {
    SwarmOptions::new(vec![bootstrap]).host(LOOPBACK)
}

async fn wait_for(log: &nova_hypercore_manager::ManagedLog, n: u64) {
    let mut progress = log.watch_progress().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        while progress.borrow_and_update().contiguous_length < n {
            progress.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("replica stuck at {:?}", *progress.borrow()));
}

fn entries(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(|i| format!("entry {i}").into_bytes()).collect()
}

/// A bootstrap node, a writer `a` holding `n` entries of "notes", and a reader `b` with
/// the replica open (neither on the swarm yet).
struct Pair {
    node: BootstrapNode,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    a: HypercoreManager,
    b: HypercoreManager,
    replica: nova_hypercore_manager::ManagedLog,
}

impl Pair {
    async fn new(n: u32) -> Pair {
        only_loopback();
        let node = BootstrapNode::start(SocketAddr::new(LOOPBACK, 0))
            .await
            .unwrap();
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = manager(dirs.0.path()).await;
        let b = manager(dirs.1.path()).await;
        a.append_batch("notes", &entries(0..n)).await.unwrap();
        let replica = b
            .open_replica("notes", a.get_log("notes").await.unwrap().public_key())
            .await
            .unwrap();
        Pair {
            node,
            _dirs: dirs,
            a,
            b,
            replica,
        }
    }

    /// A server that serves and advertises a direct TCP endpoint.
    fn server(&self) -> SwarmOptions {
        let mut server = options(self.node.addr()).direct(SocketAddr::new(LOOPBACK, 0));
        server.client = false;
        server
    }

    fn client(&self) -> SwarmOptions {
        let mut client = options(self.node.addr());
        client.server = false;
        client
    }

    async fn close(self) {
        self.a.close().await.unwrap();
        self.b.close().await.unwrap();
        self.node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a loopback-only network namespace: cargo xtask test-integration swarm"]
async fn two_managers_find_each_other_on_the_dht_and_replicate() {
    let p = Pair::new(300).await;
    p.a.start_swarm(options(p.node.addr()))
        .await
        .unwrap()
        .unwrap();
    p.a.enable_replication("notes").await.unwrap();
    p.b.start_swarm(options(p.node.addr()))
        .await
        .unwrap()
        .unwrap();
    p.b.enable_replication("notes").await.unwrap();
    wait_for(&p.replica, 300).await;
    assert_eq!(
        p.b.read_range("notes", 0, 300).await.unwrap(),
        entries(0..300)
    );
    // Live over the same swarm connection (nobody advertises a direct endpoint).
    p.a.append("notes", b"after discovery").await.unwrap();
    wait_for(&p.replica, 301).await;
    assert_eq!(p.b.read("notes", 300).await.unwrap(), b"after discovery");
    assert!(p.b.direct_peers().await.is_empty());
    // On our own UDX stream at both ends (the LAN path: our client dials from a
    // socket of ours, our server offers its puncher's socket), never libudx's.
    for m in [&p.a, &p.b] {
        let stats = *m.watch_swarm_stats().await.unwrap().borrow();
        assert!(stats.connections >= 1, "{stats:?}");
        assert_eq!(stats.libudx_connections, 0, "{stats:?}");
    }
    p.close().await;
}

/// A writer that says it is reachable (`firewalled: false`: a public host, a forwarded
/// port) is dialled at its DHT socket, which is peeroxide-dht's (libudx's): our stream
/// runs there through the tap (docs/udx-socket-seam.md §5(e)), both ways, for the
/// backlog and live appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a loopback-only network namespace: cargo xtask test-integration swarm"]
async fn a_reachable_writer_serves_on_our_stream_through_the_dht_socket() {
    let p = Pair::new(3_000).await;
    let mut writer = options(p.node.addr());
    writer.firewalled = Some(false);
    writer.client = false;
    p.a.start_swarm(writer).await.unwrap().unwrap();
    p.a.enable_replication("notes").await.unwrap();
    p.b.start_swarm(p.client()).await.unwrap().unwrap();
    p.b.enable_replication("notes").await.unwrap();
    wait_for(&p.replica, 3_000).await;
    assert_eq!(
        p.b.read_range("notes", 0, 3_000).await.unwrap(),
        entries(0..3_000)
    );
    for i in 0..50u32 {
        p.a.append("notes", format!("live {i}").as_bytes())
            .await
            .unwrap();
    }
    wait_for(&p.replica, 3_050).await;
    assert_eq!(p.b.read("notes", 3_049).await.unwrap(), b"live 49");
    let a = *p.a.watch_swarm_stats().await.unwrap().borrow();
    let b = *p.b.watch_swarm_stats().await.unwrap().borrow();
    assert!(
        a.tapped_connections >= 1,
        "the writer's stream was not tapped: {a:?}"
    );
    assert_eq!(a.libudx_connections, 0, "{a:?}");
    assert_eq!(b.libudx_connections, 0, "{b:?}");
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a loopback-only network namespace: cargo xtask test-integration swarm"]
async fn a_reader_that_dialled_us_comes_back_with_the_same_identity_while_we_run() {
    let p = Pair::new(50).await;
    p.a.start_swarm(options(p.node.addr()))
        .await
        .unwrap()
        .unwrap();
    p.a.enable_replication("notes").await.unwrap();
    // The reader keeps its swarm identity (an app that stores its key pair).
    let mut reader = p.client();
    reader.seed = Some([7; 32]);
    let reader_key = p.b.start_swarm(reader.clone()).await.unwrap().unwrap();
    p.b.enable_replication("notes").await.unwrap();
    wait_for(&p.replica, 50).await;
    // Its connection ends (the swarm stops: a laptop quitting the app), the writer
    // runs on and appends; the reader comes back as the same peer and dials again.
    // (peeroxide's swarm refused a peer it had met for the life of the swarm.)
    p.b.stop_swarm().await;
    p.a.append_batch("notes", &entries(50..80)).await.unwrap();
    assert_eq!(p.b.start_swarm(reader).await.unwrap(), Some(reader_key));
    wait_for(&p.replica, 80).await;
    assert_eq!(
        p.b.read_range("notes", 0, 80).await.unwrap(),
        entries(0..80)
    );
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a loopback-only network namespace: cargo xtask test-integration swarm"]
async fn rust_peers_move_to_direct_tcp_once_the_dht_introduced_them() {
    let p = Pair::new(500).await;
    let a_key = p.a.start_swarm(p.server()).await.unwrap().unwrap();
    p.a.enable_replication("notes").await.unwrap();
    p.b.start_swarm(p.client()).await.unwrap().unwrap();
    p.b.enable_replication("notes").await.unwrap();
    wait_for(&p.replica, 500).await;
    assert_eq!(
        p.b.read_range("notes", 0, 500).await.unwrap(),
        entries(0..500)
    );
    // The reader replicates with the writer over TCP, not over the UDX stream.
    assert_eq!(p.b.direct_peers().await, vec![a_key]);
    p.a.append("notes", b"live over tcp").await.unwrap();
    wait_for(&p.replica, 501).await;
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a loopback-only network namespace: cargo xtask test-integration swarm"]
async fn a_reader_that_joined_first_still_reaches_a_writer_that_announces_later() {
    let p = Pair::new(2).await;
    // The reader joins while nobody announces the log yet.
    p.b.start_swarm(p.client()).await.unwrap().unwrap();
    p.b.enable_replication("notes").await.unwrap();
    let a_key = p.a.start_swarm(p.server()).await.unwrap().unwrap();
    p.a.enable_replication("notes").await.unwrap();
    wait_for(&p.replica, 2).await;
    assert_eq!(p.b.read("notes", 1).await.unwrap(), b"entry 1");
    assert_eq!(p.b.direct_peers().await, vec![a_key]);
    p.close().await;
}

/// A TCP relay on loopback to a target set later; [`Relay::cut`] drops every relayed
/// connection (both peers see their stream end) and keeps listening.
struct Relay {
    addr: SocketAddr,
    target: Arc<OnceLock<SocketAddr>>,
    open: Arc<Mutex<tokio::task::JoinSet<()>>>,
}

impl Relay {
    async fn start() -> Relay {
        let listener = tokio::net::TcpListener::bind((LOOPBACK, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target: Arc<OnceLock<SocketAddr>> = Arc::default();
        let open: Arc<Mutex<tokio::task::JoinSet<()>>> = Arc::default();
        let (t, o) = (target.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let Some(to) = t.get().copied() else { continue };
                o.lock().unwrap().spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { addr, target, open }
    }

    fn cut(&self) {
        self.open.lock().unwrap().abort_all();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a loopback-only network namespace: cargo xtask test-integration swarm"]
async fn a_direct_endpoint_that_is_no_peer_of_ours_costs_the_swarm_connection_nothing() {
    let p = Pair::new(100).await;
    // The writer advertises an endpoint that accepts TCP and never speaks (a stale
    // port forward, a port another program took): the reader must replicate over the
    // swarm connection anyway, and soon.
    let silent = tokio::net::TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut streams = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            streams.push(stream);
        }
    });
    let mut server = p.server();
    server.advertise = Some(silent_addr);
    p.a.start_swarm(server).await.unwrap().unwrap();
    p.a.enable_replication("notes").await.unwrap();
    let started = std::time::Instant::now();
    p.b.start_swarm(p.client()).await.unwrap().unwrap();
    p.b.enable_replication("notes").await.unwrap();
    wait_for(&p.replica, 100).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the swarm connection waited on the silent endpoint: {:?}",
        started.elapsed()
    );
    assert_eq!(
        p.b.read_range("notes", 0, 100).await.unwrap(),
        entries(0..100)
    );
    assert!(p.b.direct_peers().await.is_empty());
    let stats = *p.b.watch_swarm_stats().await.unwrap().borrow();
    assert_eq!(stats.direct_connections, 0, "{stats:?}");
    held.abort();
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a loopback-only network namespace: cargo xtask test-integration swarm"]
async fn a_dropped_direct_connection_is_redialled() {
    let p = Pair::new(200).await;
    // The writer advertises a relay in front of its direct listener (as behind port
    // forwarding), so that the test can drop the TCP connection and nothing else.
    let relay = Relay::start().await;
    let mut server = p.server();
    server.advertise = Some(relay.addr);
    let a_key = p.a.start_swarm(server).await.unwrap().unwrap();
    relay
        .target
        .set(p.a.direct_listen_addr().await.unwrap())
        .unwrap();
    p.a.enable_replication("notes").await.unwrap();
    p.b.start_swarm(p.client()).await.unwrap().unwrap();
    p.b.enable_replication("notes").await.unwrap();
    wait_for(&p.replica, 200).await;
    assert_eq!(p.b.direct_peers().await, vec![a_key]);
    // Once the swarm's own connection has come and gone (the swarm does not connect to
    // a peer twice), the TCP connection is the only one: cut it.
    let mut stats = p.b.watch_swarm_stats().await.unwrap();
    let seen = tokio::time::timeout(
        Duration::from_secs(30),
        stats.wait_for(|s| s.connections >= 1),
    )
    .await
    .expect("the swarm connection never arrived")
    .unwrap()
    .direct_connections;
    relay.cut();
    p.a.append_batch("notes", &entries(200..300)).await.unwrap();
    wait_for(&p.replica, 300).await;
    assert_eq!(
        p.b.read_range("notes", 0, 300).await.unwrap(),
        entries(0..300)
    );
    let now = *stats.borrow();
    assert!(
        now.redials >= 1 && now.direct_connections > seen,
        "the entries arrived without a redial: {now:?}"
    );
    assert_eq!(p.b.direct_peers().await, vec![a_key]);
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a loopback-only network namespace: cargo xtask test-integration swarm"]
async fn max_peers_caps_the_live_connections() {
    // Two writers, each with its own log; a reader that wants both but may hold one peer.
    let p = Pair::new(50).await;
    let dc = tempfile::tempdir().unwrap();
    let c = manager(dc.path()).await;
    c.append_batch("other", &entries(0..50)).await.unwrap();
    let other =
        p.b.open_replica("other", c.get_log("other").await.unwrap().public_key())
            .await
            .unwrap();
    for (m, log) in [(&p.a, "notes"), (&c, "other")] {
        let mut server = options(p.node.addr());
        server.client = false;
        m.start_swarm(server).await.unwrap().unwrap();
        m.enable_replication(log).await.unwrap();
    }
    let mut client = p.client();
    client.max_peers = 1;
    p.b.start_swarm(client).await.unwrap().unwrap();
    let mut stats = p.b.watch_swarm_stats().await.unwrap();
    p.b.enable_replication("notes").await.unwrap();
    p.b.enable_replication("other").await.unwrap();
    // Both writers get connected by the swarm; only one connection is taken.
    tokio::time::timeout(
        Duration::from_secs(30),
        stats.wait_for(|s| s.connections >= 2),
    )
    .await
    .expect("the swarm did not connect to both writers")
    .unwrap();
    let (done, idle) = tokio::select! {
        () = wait_for(&p.replica, 50) => (&p.replica, &other),
        () = wait_for(&other, 50) => (&other, &p.replica),
    };
    assert_eq!(done.current_length().await.unwrap(), 50);
    // The dropped connection never replicated, and nothing dials that writer again.
    assert_eq!(idle.current_length().await.unwrap(), 0);
    c.close().await.unwrap();
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_bootstrap_list_means_no_dht() {
    let d = tempfile::tempdir().unwrap();
    let m = manager(d.path()).await;
    assert_eq!(
        m.start_swarm(SwarmOptions::new(Vec::new())).await.unwrap(),
        None
    );
    assert_eq!(m.swarm_public_key().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_bootstrap_node_is_a_clear_error_within_the_bound() {
    let d = tempfile::tempdir().unwrap();
    let m = manager(d.path()).await;
    // A port nobody listens on, on loopback: nothing answers.
    let silent = std::net::UdpSocket::bind((LOOPBACK, 0)).unwrap();
    let addr = silent.local_addr().unwrap();
    let mut opts = options(addr);
    opts.start_timeout = Duration::from_millis(1500);
    let err = m.start_swarm(opts).await.unwrap_err();
    assert_eq!(
        err.code(),
        nova_hypercore_serialization::ErrorCode::ReplicationFailed
    );
    assert!(err.to_string().contains("bootstrap"), "{err}");
}

/// How long a refused peer is watched for entries that must not come.
const REFUSED_WINDOW: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a loopback-only network namespace: cargo xtask test-integration swarm"]
async fn a_firewall_admits_only_known_peers_and_a_banned_one_gets_nothing() {
    let p = Pair::new(40).await;
    // Two more readers of the same log: `c` will be banned, `d` is not on the list.
    let (dc, dd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (c, d) = (manager(dc.path()).await, manager(dd.path()).await);
    let key = p.a.get_log("notes").await.unwrap().public_key();
    let c_log = c.open_replica("notes", key).await.unwrap();
    let d_log = d.open_replica("notes", key).await.unwrap();
    let mut keys = Vec::new();
    for m in [&p.b, &c, &d] {
        keys.push(m.start_swarm(p.client()).await.unwrap().unwrap());
        m.enable_replication("notes").await.unwrap();
    }
    let mut writer = options(p.node.addr());
    writer.firewall = Some(nova_hypercore_manager::Firewall::allow_only([
        keys[0], keys[1],
    ]));
    let writer_key = p.a.start_swarm(writer).await.unwrap().unwrap();
    p.a.ban_peer(keys[1], true).await;
    p.a.enable_replication("notes").await.unwrap();
    // The admitted reader gets everything (it found the writer by its repeated lookups).
    wait_for(&p.replica, 40).await;
    assert_eq!(
        p.b.read_range("notes", 0, 40).await.unwrap(),
        entries(0..40)
    );
    // The banned one and the one not on the list get nothing: neither is answered.
    tokio::time::sleep(REFUSED_WINDOW).await;
    assert_eq!(
        c_log.current_length().await.unwrap(),
        0,
        "banned peer served"
    );
    assert_eq!(
        d_log.current_length().await.unwrap(),
        0,
        "refused peer served"
    );
    // Each refused reader can see why it gets nothing: the writer it found stays
    // unreachable, with the dial's error.
    for refused in [&c, &d] {
        let failure = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let failures = refused.dial_failures().await;
                if let Some(f) = failures.into_iter().find(|f| f.public_key == writer_key) {
                    return f;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("no dial failure recorded for the writer that refuses us");
        assert!(
            failure.attempts >= 1 && !failure.error.is_empty(),
            "{failure:?}"
        );
    }
    assert!(
        p.b.dial_failures().await.is_empty(),
        "the admitted reader connected: nothing to report"
    );
    c.close().await.unwrap();
    d.close().await.unwrap();
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a loopback-only network namespace: cargo xtask test-integration swarm"]
async fn a_suspended_swarm_neither_dials_nor_answers_and_reconnects_on_resume() {
    let p = Pair::new(30).await;
    p.b.start_swarm(options(p.node.addr()))
        .await
        .unwrap()
        .unwrap();
    p.b.enable_replication("notes").await.unwrap();
    p.b.suspend_swarm().await;
    // The writer comes while the reader sleeps: it finds the reader (still announced)
    // and dials it, and the reader would find it by its lookups; neither may connect.
    p.a.start_swarm(options(p.node.addr()))
        .await
        .unwrap()
        .unwrap();
    p.a.enable_replication("notes").await.unwrap();
    tokio::time::sleep(REFUSED_WINDOW).await;
    assert_eq!(p.replica.current_length().await.unwrap(), 0);
    // Woken up: it looks again at once and dials (its lookups would otherwise wait
    // for the 10-minute refresh).
    let woke = std::time::Instant::now();
    p.b.resume_swarm().await;
    wait_for(&p.replica, 30).await;
    assert!(
        woke.elapsed() < Duration::from_secs(10),
        "reconnected only after {:?}",
        woke.elapsed()
    );
    assert_eq!(
        p.b.read_range("notes", 0, 30).await.unwrap(),
        entries(0..30)
    );
    p.close().await;
}

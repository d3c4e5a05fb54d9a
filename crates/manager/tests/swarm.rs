//! Two managers that find each other on a Hyperswarm DHT (a bootstrap node hosted in
//! this process) and replicate over the swarm's connection.
//!
//! Run by `cargo xtask test-integration swarm`, inside a network namespace that has only
//! `lo` (the DHT's holepuncher advertises every interface it sees; a namespace keeps
//! every packet on loopback). Ignored in the plain test run for that reason.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a loopback-only network namespace: cargo xtask test-integration swarm"]
async fn two_managers_find_each_other_on_the_dht_and_replicate() {
    only_loopback();
    let node = BootstrapNode::start(SocketAddr::new(LOOPBACK, 0))
        .await
        .unwrap();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(da.path()).await;
    let b = manager(db.path()).await;
    let payloads: Vec<Vec<u8>> = (0..300u32)
        .map(|i| format!("entry {i}").into_bytes())
        .collect();
    a.append_batch("notes", &payloads).await.unwrap();
    a.start_swarm(options(node.addr())).await.unwrap().unwrap();
    a.enable_replication("notes").await.unwrap();
    let replica = b
        .open_replica("notes", a.get_log("notes").await.unwrap().public_key())
        .await
        .unwrap();
    b.start_swarm(options(node.addr())).await.unwrap().unwrap();
    b.enable_replication("notes").await.unwrap();
    wait_for(&replica, 300).await;
    assert_eq!(b.read_range("notes", 0, 300).await.unwrap(), payloads);
    // Live over the same swarm connection.
    a.append("notes", b"after discovery").await.unwrap();
    wait_for(&replica, 301).await;
    assert_eq!(b.read("notes", 300).await.unwrap(), b"after discovery");
    a.close().await.unwrap();
    b.close().await.unwrap();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a loopback-only network namespace: cargo xtask test-integration swarm"]
async fn rust_peers_move_to_direct_tcp_once_the_dht_introduced_them() {
    only_loopback();
    let node = BootstrapNode::start(SocketAddr::new(LOOPBACK, 0))
        .await
        .unwrap();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(da.path()).await;
    let b = manager(db.path()).await;
    let payloads: Vec<Vec<u8>> = (0..500u32)
        .map(|i| format!("entry {i}").into_bytes())
        .collect();
    a.append_batch("notes", &payloads).await.unwrap();
    // The writer serves a direct TCP endpoint and advertises it on the DHT.
    let mut server = options(node.addr()).direct(SocketAddr::new(LOOPBACK, 0));
    server.client = false;
    let a_key = a.start_swarm(server).await.unwrap().unwrap();
    a.enable_replication("notes").await.unwrap();
    let replica = b
        .open_replica("notes", a.get_log("notes").await.unwrap().public_key())
        .await
        .unwrap();
    let mut client = options(node.addr());
    client.server = false;
    b.start_swarm(client).await.unwrap().unwrap();
    b.enable_replication("notes").await.unwrap();
    wait_for(&replica, 500).await;
    assert_eq!(b.read_range("notes", 0, 500).await.unwrap(), payloads);
    // The reader replicates with the writer over TCP, not over the UDX stream.
    assert_eq!(b.direct_peers().await, vec![a_key]);
    a.append("notes", b"live over tcp").await.unwrap();
    wait_for(&replica, 501).await;
    a.close().await.unwrap();
    b.close().await.unwrap();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a loopback-only network namespace: cargo xtask test-integration swarm"]
async fn a_reader_that_joined_first_still_reaches_a_writer_that_announces_later() {
    only_loopback();
    let node = BootstrapNode::start(SocketAddr::new(LOOPBACK, 0))
        .await
        .unwrap();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(da.path()).await;
    let b = manager(db.path()).await;
    a.append_batch("notes", &[b"early".to_vec(), b"bird".to_vec()])
        .await
        .unwrap();
    let replica = b
        .open_replica("notes", a.get_log("notes").await.unwrap().public_key())
        .await
        .unwrap();
    // The reader joins while nobody announces the log yet.
    let mut client = options(node.addr());
    client.server = false;
    b.start_swarm(client).await.unwrap().unwrap();
    b.enable_replication("notes").await.unwrap();
    let mut server = options(node.addr()).direct(SocketAddr::new(LOOPBACK, 0));
    server.client = false;
    let a_key = a.start_swarm(server).await.unwrap().unwrap();
    a.enable_replication("notes").await.unwrap();
    wait_for(&replica, 2).await;
    assert_eq!(b.read("notes", 1).await.unwrap(), b"bird");
    assert_eq!(b.direct_peers().await, vec![a_key]);
    a.close().await.unwrap();
    b.close().await.unwrap();
    node.stop().await;
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

//! The tap: our own UDX stream on one of the DHT's sockets. peeroxide-dht's sockets
//! are libudx's; we can neither read a stream's packets from them nor send on them in
//! order (docs/udx-socket-seam.md §1-2), so libudx's packet relay carries them to a
//! loopback socket of ours and back (§5(e)), and our stream, on that loopback socket,
//! does everything else. The relay semantics this relies on are pinned by
//! `tests/libudx_tap.rs` (libudx is pinned `=1.7.3`).
//!
//! Per connection, all libudx streams, none of which sends anything of its own (a
//! stream with a relay target sends no heartbeats and no acks):
//! - **T** (on the DHT socket, our stream id): every packet the peer sends for our id
//!   goes on unchanged to D's destination. One T per DHT socket a waiting server
//!   listens on; the first to hear the peer wins (libudx's firewall hook).
//! - **D** (on the tap's loopback libudx socket L, connected to our endpoint R with our
//!   id): only a destination for T, so T's rewrite of the id is the identity and R gets
//!   the peer's packets as the peer sent them.
//! - **U** (on L, an id `u` of the tap's): what our stream sends to L:`u` leaves from
//!   the DHT socket toward the peer, the id rewritten to the peer's stream (T's), in
//!   order (libudx sends a relayed packet inline).
//!
//! Our stream sits on R with our id, connected to (`u`, L): it sees the peer at L. R
//! takes packets for a connected stream from L only. R does no MTU probing (L would
//! forward a probe fragmented rather than lose it). The relays (and the sockets they
//! send from) live as long as our stream's task (its END and linger still go out),
//! then are dropped, silently, as libudx drops a stream.
//!
//! What guards a tapped connection from strangers is its ids. libudx's relay takes a
//! packet for our id from anyone (a waiting T takes the first plausible one and
//! connects to its sender; any T or U forwards a DESTROY and closes), and UDX sequence
//! numbers and the secret stream reject forged data, not a DESTROY. So every id here
//! is random: our stream id (the handshake's, [`unguessable_stream_id`], also kept
//! clear of peeroxide-dht's counter, whose ids a libudx socket would let one stream
//! overwrite) and U's and D's ids on L (a local process could otherwise close U).
//! This is more than the libudx streams these paths had before (counted ids).
//!
//! Costs (measured, docs/udx-socket-seam.md §5(e)): two loopback hops per packet and
//! three libudx streams per connection (four for a server waiting on both DHT
//! sockets); L's receive buffer is libudx's, so bursts above ~25,000 packets/s may drop
//! (our stream takes that as loss). A dropped stream's END goes through L and U, two
//! libudx tasks: when the process exits at once it may not leave (a peer then notices
//! by its own timeout). The paths that need a
//! tap are the ones JS puts on the DHT's socket: a handshake that reached the server
//! directly, a server that is not firewalled, an open client.
//!
//! Must not: decide which socket a connection uses (the set-up's), or touch the DHT's
//! other traffic (it goes on to peeroxide-dht untouched: a relay sees only the packets
//! for its own id).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Weak};

use libudx::{UdxRuntime, UdxSocket, UdxStream as LibudxStream};
use tokio::sync::OnceCell;

use crate::udx::socket::{Endpoint, UdxStream as OurStream};
use crate::udx::stream::{Config, MSS};

/// The loopback half of the tap, shared by every tapped connection of a swarm; made
/// when the first connection needs it.
#[derive(Clone, Default)]
pub(crate) struct Tap {
    cell: Arc<OnceCell<Loopback>>,
}

struct Loopback {
    runtime: UdxRuntime,
    /// L: the libudx socket D and U live on.
    lo: UdxSocket,
    lo_addr: SocketAddr,
    /// R: where our streams live.
    endpoint: Endpoint,
    /// A stream that is never connected: a relay pointed at it sends nothing (what D
    /// relays to, and U until a waiting connection knows its T).
    idle: LibudxStream,
}

/// A random stream id with the top bit set: unguessable by a stranger (module docs),
/// and never one of peeroxide-dht's own (a counter from 1) on the sockets we share.
pub(crate) fn unguessable_stream_id() -> u32 {
    crate::udx::socket::random_id() | 0x8000_0000
}

/// What carries one tapped connection's packets, kept by its stream (the DHT's
/// sockets and L too: a libudx socket stops receiving when its last handle goes).
struct Relays {
    _sockets: Vec<UdxSocket>,
    _t: Vec<Arc<LibudxStream>>,
    _d: LibudxStream,
    _u: Arc<LibudxStream>,
}

impl Tap {
    async fn loopback(&self) -> Result<&Loopback, String> {
        self.cell
            .get_or_try_init(|| async {
                let runtime = UdxRuntime::new().map_err(|e| format!("tap runtime: {e}"))?;
                let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
                let lo = runtime
                    .create_socket()
                    .await
                    .map_err(|e| format!("tap socket: {e}"))?;
                lo.bind(any)
                    .await
                    .map_err(|e| format!("tap socket bind: {e}"))?;
                let lo_addr = lo
                    .local_addr()
                    .await
                    .map_err(|e| format!("tap socket address: {e}"))?;
                let r = tokio::net::UdpSocket::bind(any)
                    .await
                    .map_err(|e| format!("tap endpoint bind: {e}"))?;
                // No probing: the path beyond L is not ours to probe (module docs).
                let config = Config {
                    max_mss: MSS,
                    ..Config::default()
                };
                // Anything else that reaches R (nothing should) is dropped.
                let (endpoint, _other) = Endpoint::from_socket(r, config);
                let idle = runtime
                    .create_stream(0)
                    .await
                    .map_err(|e| format!("tap idle stream: {e}"))?;
                Ok(Loopback {
                    runtime,
                    lo,
                    lo_addr,
                    endpoint,
                    idle,
                })
            })
            .await
    }

    /// Our stream with id `local_id` on the DHT socket `dht`, connected to the peer's
    /// stream `remote_id` at `addr`.
    pub(crate) async fn connect(
        &self,
        dht: &UdxSocket,
        local_id: u32,
        remote_id: u32,
        addr: SocketAddr,
    ) -> Result<OurStream, String> {
        let lo = self.loopback().await?;
        let stream = lo.stream(local_id)?;
        let d = lo.destination(local_id).await?;
        let t = Arc::new(lo.libudx_stream(local_id).await?);
        // The relay before the connect: no packet may reach T's own processing.
        relay(&t, &d)?;
        t.connect(dht, remote_id, addr)
            .await
            .map_err(|e| format!("tap connect ({addr}): {e}"))?;
        let u = lo.sender(Some(&t)).await?;
        stream.connect(u.id, lo.lo_addr);
        stream.keep_while_open(Relays {
            _sockets: vec![dht.clone(), lo.lo.clone()],
            _t: vec![t],
            _d: d,
            _u: u.stream,
        });
        Ok(stream)
    }

    /// Our stream with id `local_id` waiting on each of `dhts` (a DHT socket and its
    /// index) for the first packet of the peer's stream `remote_id`: `first(index,
    /// from)` decides whether the socket `index` takes it from `from` (once one has,
    /// the others refuse, and our stream answers through that one).
    pub(crate) async fn waiting(
        &self,
        dhts: &[(usize, UdxSocket)],
        local_id: u32,
        remote_id: u32,
        first: impl Fn(usize, SocketAddr) -> bool + Clone + Send + Sync + 'static,
    ) -> Result<OurStream, String> {
        let lo = self.loopback().await?;
        let lo_addr = lo.lo_addr;
        let u = lo.sender(None).await?;
        // Our stream takes its first packet from L only (T forwards it after the hook
        // below accepted the peer), and answers to U.
        let stream = lo
            .endpoint
            .stream_waiting(local_id, u.id, move |from| from == lo_addr)
            .ok_or_else(|| format!("stream id {local_id} is taken on the tap"))?;
        let d = lo.destination(local_id).await?;
        let mut ts = Vec::with_capacity(dhts.len());
        for (index, dht) in dhts {
            let t = Arc::new(lo.libudx_stream(local_id).await?);
            relay(&t, &d)?;
            let (index, first) = (*index, first.clone());
            let (weak_t, weak_u): (Weak<LibudxStream>, _) =
                (Arc::downgrade(&t), Arc::downgrade(&u.stream));
            t.set_firewall_hook(dht, remote_id, move |_, port, ip| {
                if !first(index, SocketAddr::new(ip, port)) {
                    return false;
                }
                // Runs before T forwards this first packet: our answer to it already
                // goes out through this socket.
                if let (Some(t), Some(u)) = (weak_t.upgrade(), weak_u.upgrade()) {
                    let _ = u.relay_to(&t);
                }
                true
            })
            .map_err(|e| format!("tap listen: {e}"))?;
            ts.push(t);
        }
        stream.keep_while_open(Relays {
            _sockets: dhts
                .iter()
                .map(|(_, socket)| socket.clone())
                .chain([lo.lo.clone()])
                .collect(),
            _t: ts,
            _d: d,
            _u: u.stream,
        });
        Ok(stream)
    }
}

/// U: a libudx stream on L and its id.
struct Sender {
    id: u32,
    stream: Arc<LibudxStream>,
}

impl Loopback {
    fn stream(&self, local_id: u32) -> Result<OurStream, String> {
        self.endpoint
            .stream_with_id(local_id)
            .ok_or_else(|| format!("stream id {local_id} is taken on the tap"))
    }

    async fn libudx_stream(&self, id: u32) -> Result<LibudxStream, String> {
        self.runtime
            .create_stream(id)
            .await
            .map_err(|e| format!("tap stream: {e}"))
    }

    /// An id for a D or U on L: random (module docs), not 0 (U's peer id).
    fn next_id(&self) -> u32 {
        loop {
            let id = crate::udx::socket::random_id();
            if id != 0 {
                return id;
            }
        }
    }

    /// D: on L, toward our stream `local_id` on R; silent (it relays to the idle
    /// stream, so it never sends a heartbeat of its own).
    async fn destination(&self, local_id: u32) -> Result<LibudxStream, String> {
        let d = self.libudx_stream(self.next_id()).await?;
        relay(&d, &self.idle)?;
        let r = self
            .endpoint
            .local_addr()
            .map_err(|e| format!("tap endpoint address: {e}"))?;
        d.connect(&self.lo, local_id, r)
            .await
            .map_err(|e| format!("tap destination: {e}"))?;
        Ok(d)
    }

    /// U: on L, what our stream sends it goes out through `t` (through the idle
    /// stream, i.e. nowhere, until a waiting connection's T is known).
    async fn sender(&self, t: Option<&LibudxStream>) -> Result<Sender, String> {
        let id = self.next_id();
        let u = self.libudx_stream(id).await?;
        relay(&u, t.unwrap_or(&self.idle))?;
        let r = self
            .endpoint
            .local_addr()
            .map_err(|e| format!("tap endpoint address: {e}"))?;
        u.connect(&self.lo, 0, r)
            .await
            .map_err(|e| format!("tap sender: {e}"))?;
        Ok(Sender {
            id,
            stream: Arc::new(u),
        })
    }
}

fn relay(from: &LibudxStream, to: &LibudxStream) -> Result<(), String> {
    from.relay_to(to).map_err(|e| format!("tap relay: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    //! Real libudx "DHT" sockets on loopback, a tap at each end: our streams talk
    //! through both taps (each packet crosses two relays each way), every byte compared,
    //! and the end (EOF both ways after the handles are dropped).

    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| {
                (i as u64)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(u64::from(seed)) as u8
            })
            .collect()
    }

    /// A libudx socket on loopback, as the DHT's are (its other traffic left unread).
    async fn dht_socket(rt: &UdxRuntime) -> (UdxSocket, SocketAddr) {
        let socket = rt.create_socket().await.unwrap();
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap();
        let addr = socket.local_addr().await.unwrap();
        (socket, addr)
    }

    /// Writes `bytes`, shuts down, and reads everything the other side sends until EOF.
    async fn exchange(mut stream: OurStream, bytes: Vec<u8>) -> Vec<u8> {
        let (mut reader, mut writer) = tokio::io::split(&mut stream);
        let write = async {
            for chunk in bytes.chunks(64 * 1024) {
                writer.write_all(chunk).await.unwrap();
            }
            writer.shutdown().await.unwrap();
        };
        let read = async {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).await.unwrap();
            got
        };
        let ((), got) = tokio::join!(write, read);
        got
    }

    async fn both_ways(a: OurStream, b: OurStream, len: usize) {
        let (to_b, to_a) = (data(len, 1), data(len, 2));
        let (got_a, got_b) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(exchange(a, to_b.clone()), exchange(b, to_a.clone()))
        })
        .await
        .expect("the exchange stalled");
        assert!(
            got_b == to_b,
            "B got {} of {} bytes, or others",
            got_b.len(),
            len
        );
        assert!(
            got_a == to_a,
            "A got {} of {} bytes, or others",
            got_a.len(),
            len
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_taps_dialling_each_other_carry_a_stream_both_ways() {
        // A direct handshake: each side dials the other's DHT socket at once.
        let rt = UdxRuntime::new().unwrap();
        let ((a_dht, a_addr), (b_dht, b_addr)) = (dht_socket(&rt).await, dht_socket(&rt).await);
        let (tap_a, tap_b) = (Tap::default(), Tap::default());
        let (a_id, b_id) = (0x0a0a_0a0a, 0x0b0b_0b0b);
        let a = tap_a.connect(&a_dht, a_id, b_id, b_addr).await.unwrap();
        let b = tap_b.connect(&b_dht, b_id, a_id, a_addr).await.unwrap();
        both_ways(a, b, 4 << 20).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_tap_takes_the_peer_on_whichever_dht_socket_it_comes_to() {
        // A server waits on two DHT sockets; the client's stream comes to the second.
        let rt = UdxRuntime::new().unwrap();
        let (primary, _) = dht_socket(&rt).await;
        let (listen, listen_addr) = dht_socket(&rt).await;
        let (client_dht, client_addr) = dht_socket(&rt).await;
        let (server, client) = (Tap::default(), Tap::default());
        let (s_id, c_id) = (0x5e5e_0001, 0xc1c1_0002);
        let won = Arc::new(Mutex::new(None));
        let w = won.clone();
        let s = server
            .waiting(&[(0, primary), (1, listen)], s_id, c_id, move |i, from| {
                let mut won = w.lock().unwrap();
                if won.is_some() {
                    return false;
                }
                *won = Some((i, from));
                true
            })
            .await
            .unwrap();
        let c = client
            .connect(&client_dht, c_id, s_id, listen_addr)
            .await
            .unwrap();
        both_ways(s, c, 4 << 20).await;
        assert_eq!(*won.lock().unwrap(), Some((1, client_addr)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn our_own_socket_reaches_a_tapped_waiting_stream() {
        // Our client dials from a socket of ours (a relayed handshake) to a server
        // that waits on its DHT socket (not firewalled).
        let rt = UdxRuntime::new().unwrap();
        let (dht, dht_addr) = dht_socket(&rt).await;
        let server = Tap::default();
        let (s_id, c_id) = (0x5e5e_0003, 0xc1c1_0004);
        let s = server
            .waiting(&[(0, dht)], s_id, c_id, |_, _| true)
            .await
            .unwrap();
        let (ours, _) = Endpoint::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap();
        let c = ours.stream_with_id(c_id).unwrap();
        c.connect(s_id, dht_addr);
        both_ways(s, c, 4 << 20).await;
    }
}

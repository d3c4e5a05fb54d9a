//! Protomux channel hygiene between the encrypted connection and `hypercore-protocol`.
//!
//! `hypercore-protocol` 0.7.2 decodes every decrypted frame itself and ends the whole
//! connection on anything it does not know: a protomux reject (`00 02 <id>`), any other
//! control message, a message type above the ten hypercore ones, or an open for another
//! protocol. JS peers send all of these in normal operation (a reject answers an open
//! the peer does not want; other protomux protocols share the connection). It also
//! grows a table to any channel id a peer names, so a hostile id exhausts memory.
//!
//! [`Guard`] wraps the cipher and screens each decrypted frame before the protocol
//! sees it:
//! - a reject of one of our opens is turned into a [`Rejected`] notice for the session,
//!   which closes that local channel; the connection stays;
//! - unknown control messages and unknown message types are dropped (logged);
//! - an open for a protocol other than `hypercore/alpha` is answered with a reject;
//! - an open naming a channel id above [`MAX_CHANNEL_ID`] ends the connection with a
//!   clear error.
//!
//! It also lets the session reject a peer's open for a log it does not share
//! ([`GuardHandle::reject_remote`]), as JS protomux does.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use compact_encoding::CompactEncoding;
use futures::{Sink, Stream};
use hypercore_handshake::{CipherEvent, CipherTrait, state_machine::PUBLIC_KEYLEN};
use tracing::{debug, warn};

/// The protomux protocol name hypercore channels use.
pub const HYPERCORE_PROTOCOL: &str = "hypercore/alpha";
/// Largest channel id a peer may name (JS protomux allocates ids from 1 upwards and
/// reuses freed ones, so real peers stay far below this).
pub const MAX_CHANNEL_ID: u64 = 1 << 16;
/// Hypercore message types on a channel: synchronize (0) to extension (9).
const MAX_MESSAGE_TYPE: u64 = 9;

/// A discovery key the peer refused: our open for it was answered with a reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected(pub [u8; 32]);

#[derive(Default)]
struct Shared {
    /// Our open channels: local id -> discovery key (from the opens we sent).
    local: HashMap<u64, [u8; 32]>,
    /// The peer's hypercore opens: discovery key -> its channel id.
    remote: HashMap<[u8; 32], u64>,
    /// Frames to send before anything else (rejects).
    outbox: VecDeque<Vec<u8>>,
    /// Refused opens not yet taken by the session.
    rejected: VecDeque<Rejected>,
    /// Woken when a frame is queued for sending or a reject arrives.
    writer: Option<Waker>,
    reader: Option<Waker>,
}

/// The session's side of a [`Guard`]: refused opens and rejecting the peer's opens.
#[derive(Clone, Default)]
pub struct GuardHandle {
    shared: Arc<Mutex<Shared>>,
}

impl std::fmt::Debug for GuardHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardHandle").finish_non_exhaustive()
    }
}

impl GuardHandle {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the next discovery key whose open the peer rejected, if any.
    pub fn take_rejected(&self) -> Option<Rejected> {
        self.lock().rejected.pop_front()
    }

    /// Waits until the peer rejects one of our opens.
    pub async fn rejected(&self) -> Rejected {
        std::future::poll_fn(|cx| {
            let mut s = self.lock();
            match s.rejected.pop_front() {
                Some(r) => Poll::Ready(r),
                None => {
                    s.reader = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Rejects the peer's open for `discovery_key` (a log we do not share), so its
    /// channel closes on its side. Does nothing if the peer has no such open.
    pub fn reject_remote(&self, discovery_key: &[u8; 32]) {
        let mut s = self.lock();
        if let Some(id) = s.remote.remove(discovery_key) {
            s.outbox.push_back(reject_frame(id));
            if let Some(w) = s.writer.take() {
                w.wake();
            }
        }
    }
}

/// Wraps a cipher (see the module docs). Create with [`Guard::new`].
pub struct Guard<C> {
    inner: C,
    handle: GuardHandle,
}

impl<C> std::fmt::Debug for Guard<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

impl<C: CipherTrait> Guard<C> {
    /// Wraps `inner`; the handle goes to the session.
    pub fn new(inner: C) -> (Self, GuardHandle) {
        let handle = GuardHandle::default();
        (
            Self {
                inner,
                handle: handle.clone(),
            },
            handle,
        )
    }

    fn drain_outbox(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        loop {
            let next = {
                let mut s = self.handle.lock();
                s.writer = Some(cx.waker().clone());
                s.outbox.front().cloned()
            };
            let Some(frame) = next else {
                return Poll::Ready(Ok(()));
            };
            match Pin::new(&mut self.inner).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            Pin::new(&mut self.inner).start_send(frame)?;
            self.handle.lock().outbox.pop_front();
            if let Poll::Ready(Err(e)) = Pin::new(&mut self.inner).poll_flush(cx) {
                return Poll::Ready(Err(e));
            }
        }
    }
}

fn reject_frame(id: u64) -> Vec<u8> {
    let mut frame = vec![0u8, 2];
    frame.extend_from_slice(&encode_uint(id));
    frame
}

fn encode_uint(n: u64) -> Vec<u8> {
    // A u64 always encodes; the fallback is never taken.
    n.to_encoded_bytes()
        .map(|b| b.to_vec())
        .unwrap_or_else(|_| vec![0])
}

fn uint(buf: &[u8]) -> Option<(u64, &[u8])> {
    u64::decode(buf).ok()
}

fn bytes(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = uint(buf)?;
    let len = usize::try_from(len).ok()?;
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// The fields of a protomux open we care about.
struct Open<'a> {
    id: u64,
    protocol: &'a [u8],
    /// The channel id (hypercore: the discovery key).
    key: &'a [u8],
}

fn parse_open(body: &[u8]) -> Option<Open<'_>> {
    let (id, rest) = uint(body)?;
    let (protocol, rest) = bytes(rest)?;
    let (key, _) = bytes(rest)?;
    Some(Open { id, protocol, key })
}

/// What to do with one decrypted frame from the peer.
enum Verdict {
    Pass(Vec<u8>),
    Drop(&'static str),
    Fail(String),
}

impl<C> Guard<C> {
    fn screen(&self, frame: Vec<u8>) -> Verdict {
        match frame.as_slice() {
            [0, 0, ..] => {
                self.screen_batch(frame)
                    .map_or(Verdict::Drop("malformed batch"), |kept| match kept {
                        Some(b) => Verdict::Pass(b),
                        None => Verdict::Drop("batch of unknown message types"),
                    })
            }
            [0, 1, body @ ..] => self.screen_open(body),
            [0, 2, body @ ..] => {
                let Some((id, _)) = uint(body) else {
                    return Verdict::Drop("malformed reject");
                };
                let mut s = self.handle.lock();
                if let Some(dk) = s.local.remove(&id) {
                    debug!(channel = id, "peer rejected our open");
                    s.rejected.push_back(Rejected(dk));
                    if let Some(w) = s.reader.take() {
                        w.wake();
                    }
                }
                Verdict::Drop("reject handled")
            }
            [0, 3, body @ ..] => {
                if let Some((id, _)) = uint(body) {
                    self.handle.lock().remote.retain(|_, r| *r != id);
                }
                Verdict::Pass(frame)
            }
            [0, _, ..] => Verdict::Drop("unknown control message"),
            [_, _, ..] => match uint(&frame).and_then(|(_, rest)| uint(rest)) {
                Some((typ, _)) if typ <= MAX_MESSAGE_TYPE => Verdict::Pass(frame),
                Some(_) => Verdict::Drop("unknown message type"),
                None => Verdict::Drop("malformed message"),
            },
            _ => Verdict::Drop("frame too short"),
        }
    }

    fn screen_open(&self, body: &[u8]) -> Verdict {
        let Some(open) = parse_open(body) else {
            return Verdict::Fail("malformed channel open".into());
        };
        if open.id == 0 || open.id > MAX_CHANNEL_ID {
            return Verdict::Fail(format!(
                "channel id {} outside 1..={MAX_CHANNEL_ID}",
                open.id
            ));
        }
        let mut s = self.handle.lock();
        if open.protocol != HYPERCORE_PROTOCOL.as_bytes() || open.key.len() != 32 {
            debug!(
                channel = open.id,
                protocol = %String::from_utf8_lossy(open.protocol),
                "rejecting an open for another protocol"
            );
            s.outbox.push_back(reject_frame(open.id));
            if let Some(w) = s.writer.take() {
                w.wake();
            }
            return Verdict::Drop("open for another protocol");
        }
        let mut dk = [0u8; 32];
        dk.copy_from_slice(open.key);
        s.remote.insert(dk, open.id);
        let mut frame = vec![0u8, 1];
        frame.extend_from_slice(body);
        Verdict::Pass(frame)
    }

    /// Keeps the messages of known types; `None` inside when none is left, `Err` when
    /// the batch does not parse. A batch with nothing to drop is passed on as it came
    /// (no copy: data batches are the hot path).
    fn screen_batch(&self, frame: Vec<u8>) -> Result<Option<Vec<u8>>, ()> {
        let mut groups: Vec<(u64, Vec<&[u8]>)> = Vec::new();
        let mut dropped = false;
        let (mut channel, mut rest) = uint(&frame[2..]).ok_or(())?;
        groups.push((channel, Vec::new()));
        while !rest.is_empty() {
            if rest[0] == 0 {
                (channel, rest) = uint(&rest[1..]).ok_or(())?;
                groups.push((channel, Vec::new()));
                continue;
            }
            let (message, after) = bytes(rest).ok_or(())?;
            rest = after;
            let (typ, _) = uint(message).ok_or(())?;
            if typ <= MAX_MESSAGE_TYPE {
                if let Some((_, list)) = groups.last_mut() {
                    list.push(message);
                }
            } else {
                warn!(channel, typ, "dropping a message of unknown type");
                dropped = true;
            }
        }
        if !dropped {
            drop(groups);
            return Ok(Some(frame));
        }
        groups.retain(|(_, list)| !list.is_empty());
        if groups.is_empty() {
            return Ok(None);
        }
        let mut out = vec![0u8, 0];
        for (i, (channel, list)) in groups.iter().enumerate() {
            if i > 0 {
                out.push(0);
            }
            out.extend_from_slice(&encode_uint(*channel));
            for m in list {
                out.extend_from_slice(&encode_uint(m.len() as u64));
                out.extend_from_slice(m);
            }
        }
        Ok(Some(out))
    }

    fn note_outgoing(&self, frame: &[u8]) {
        match frame {
            [0, 1, body @ ..] => {
                if let Some(open) = parse_open(body)
                    && open.key.len() == 32
                {
                    let mut dk = [0u8; 32];
                    dk.copy_from_slice(open.key);
                    self.handle.lock().local.insert(open.id, dk);
                }
            }
            [0, 3, body @ ..] => {
                if let Some((id, _)) = uint(body) {
                    self.handle.lock().local.remove(&id);
                }
            }
            _ => {}
        }
    }
}

impl<C: CipherTrait> Stream for Guard<C> {
    type Item = CipherEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<CipherEvent>> {
        loop {
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(CipherEvent::Message(frame))) => match self.screen(frame) {
                    Verdict::Pass(frame) => {
                        return Poll::Ready(Some(CipherEvent::Message(frame)));
                    }
                    Verdict::Drop(why) => {
                        debug!(why, "dropped a frame from the peer");
                        // A reject may be waiting to go out: push it now.
                        if let Poll::Ready(Err(e)) = self.drain_outbox(cx) {
                            return Poll::Ready(Some(CipherEvent::ErrStuff(e)));
                        }
                    }
                    Verdict::Fail(reason) => {
                        warn!(%reason, "ending the connection: protocol violation");
                        return Poll::Ready(Some(CipherEvent::ErrStuff(io::Error::new(
                            io::ErrorKind::InvalidData,
                            reason,
                        ))));
                    }
                },
                other => return other,
            }
        }
    }
}

impl<C: CipherTrait> Sink<Vec<u8>> for Guard<C> {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        match self.drain_outbox(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_ready(cx),
            other => other,
        }
    }

    fn start_send(mut self: Pin<&mut Self>, item: Vec<u8>) -> Result<(), io::Error> {
        self.note_outgoing(&item);
        Pin::new(&mut self.inner).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        match self.drain_outbox(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

impl<C: CipherTrait> CipherTrait for Guard<C> {
    fn remote_public_key(&self) -> Option<[u8; PUBLIC_KEYLEN]> {
        self.inner.remote_public_key()
    }

    fn local_public_key(&self) -> [u8; PUBLIC_KEYLEN] {
        self.inner.local_public_key()
    }

    fn handshake_hash(&self) -> Option<Vec<u8>> {
        self.inner.handshake_hash()
    }

    fn is_initiator(&self) -> bool {
        self.inner.is_initiator()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard<()> {
        Guard {
            inner: (),
            handle: GuardHandle::default(),
        }
    }

    fn open_frame(id: u64, protocol: &str, key: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8, 1];
        f.extend(encode_uint(id));
        f.extend(encode_uint(protocol.len() as u64));
        f.extend(protocol.as_bytes());
        f.extend(encode_uint(key.len() as u64));
        f.extend(key);
        f
    }

    #[test]
    fn reject_of_our_open_becomes_a_notice_and_is_dropped() {
        let g = guard();
        g.note_outgoing(&open_frame(3, HYPERCORE_PROTOCOL, &[7; 32]));
        assert!(matches!(g.screen(vec![0, 2, 3]), Verdict::Drop(_)));
        assert_eq!(g.handle.take_rejected(), Some(Rejected([7; 32])));
        // A reject for an id we never opened changes nothing.
        assert!(matches!(g.screen(vec![0, 2, 9]), Verdict::Drop(_)));
        assert_eq!(g.handle.take_rejected(), None);
    }

    #[test]
    fn unknown_control_messages_and_types_are_dropped() {
        let g = guard();
        assert!(matches!(g.screen(vec![0, 7, 1]), Verdict::Drop(_)));
        assert!(matches!(g.screen(vec![1, 42, 0]), Verdict::Drop(_)));
        assert!(matches!(g.screen(vec![1]), Verdict::Drop(_)));
        assert!(matches!(g.screen(vec![1, 0, 5]), Verdict::Pass(_)));
    }

    #[test]
    fn batches_keep_only_known_types() {
        let g = guard();
        // channel 1: [type 0], [type 42]; channel 2: [type 3, payload]
        let frame = vec![0, 0, 1, 1, 0, 2, 42, 9, 0, 2, 2, 3, 8];
        match g.screen(frame) {
            Verdict::Pass(b) => assert_eq!(b, vec![0, 0, 1, 1, 0, 0, 2, 2, 3, 8]),
            _ => panic!("expected a rewritten batch"),
        }
        assert!(matches!(g.screen(vec![0, 0, 1, 1, 42]), Verdict::Drop(_)));
        assert!(matches!(g.screen(vec![0, 0, 1, 9, 0]), Verdict::Drop(_)));
    }

    #[test]
    fn opens_for_other_protocols_are_rejected_and_huge_ids_fail() {
        let g = guard();
        assert!(matches!(
            g.screen(open_frame(5, "autobase/x", b"id")),
            Verdict::Drop(_)
        ));
        assert_eq!(g.handle.lock().outbox.pop_front(), Some(vec![0, 2, 5]));
        assert!(matches!(
            g.screen(open_frame(MAX_CHANNEL_ID + 1, HYPERCORE_PROTOCOL, &[1; 32])),
            Verdict::Fail(_)
        ));
        assert!(matches!(
            g.screen(open_frame(2, HYPERCORE_PROTOCOL, &[1; 32])),
            Verdict::Pass(_)
        ));
        g.handle.reject_remote(&[1; 32]);
        assert_eq!(g.handle.lock().outbox.pop_front(), Some(vec![0, 2, 2]));
    }
}

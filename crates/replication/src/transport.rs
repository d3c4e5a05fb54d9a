//! Byte streams to encrypted, message-framed connections: the Noise XX handshake and
//! uint24-LE length framing that hypercore peers speak (`@hyperswarm/secret-stream`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, TryStreamExt};
use hypercore_handshake::Cipher;
use hypercore_handshake::state_machine::SecStream;
use hypercore_handshake::state_machine::hc_specific::generate_keypair;
use nova_hypercore_serialization::HypercoreError;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Largest frame accepted from a peer (a block of the largest payload plus its proof).
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024 - 1;

fn failed(reason: String) -> HypercoreError {
    HypercoreError::ReplicationFailed {
        log: "connection".into(),
        reason,
    }
}

/// How a connection ended: `None` while open, `Some(Ok)` at a clean end of stream,
/// `Some(Err(reason))` on a transport error.
pub type Ending = Option<Result<(), String>>;

/// Watches the framed stream under the cipher for its end.
///
/// `hypercore_handshake` 0.6's `Cipher` never reports the end of its IO (a finished
/// stream just stays pending) and hits a `todo!()` panic on I/O errors other than EOF
/// and reset. This adapter records the ending for the session (which then stops) and
/// hands the cipher a plain end of stream instead of the error.
struct Watched<S> {
    inner: S,
    ending: tokio::sync::watch::Sender<Ending>,
}

impl<S> Watched<S> {
    fn end(&self, how: Result<(), String>) {
        self.ending.send_if_modified(|e| {
            if e.is_none() {
                *e = Some(how);
                true
            } else {
                false
            }
        });
    }
}

impl<S> Stream for Watched<S>
where
    S: Stream<Item = Result<Vec<u8>, io::Error>> + Unpin,
{
    type Item = Result<Vec<u8>, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(None) => {
                self.end(Ok(()));
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                let how = if matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                ) {
                    Ok(())
                } else {
                    Err(format!("read failed: {e}"))
                };
                self.end(how);
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

impl<S> Sink<Vec<u8>> for Watched<S>
where
    S: Sink<Vec<u8>, Error = io::Error> + Unpin,
{
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        let r = Pin::new(&mut self.inner).poll_ready(cx);
        if let Poll::Ready(Err(e)) = &r {
            self.end(Err(format!("write failed: {e}")));
        }
        r
    }

    fn start_send(mut self: Pin<&mut Self>, item: Vec<u8>) -> Result<(), io::Error> {
        let r = Pin::new(&mut self.inner).start_send(item);
        if let Err(e) = &r {
            self.end(Err(format!("write failed: {e}")));
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if let Poll::Ready(Err(e)) = &r {
            self.end(Err(format!("write failed: {e}")));
        }
        r
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// Wraps a duplex byte stream (TCP, an in-process pipe, ...) into the encrypted,
/// framed connection a [`hypercore_protocol::Protocol`] runs on, and a receiver that
/// says when the stream ended. `initiator` is the side that opened the connection
/// (exactly one side must be).
pub fn encrypt<S>(
    stream: S,
    initiator: bool,
) -> Result<(Cipher, tokio::sync::watch::Receiver<Ending>), HypercoreError>
where
    S: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static,
{
    // uint24 little-endian length, then the frame: the hypercore wire framing.
    let codec = LengthDelimitedCodec::builder()
        .length_field_length(3)
        .little_endian()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec();
    let framed = Framed::new(stream, codec)
        .map_ok(|frame| frame.to_vec())
        .with(|frame: Vec<u8>| futures::future::ready(Ok::<Bytes, io::Error>(Bytes::from(frame))));
    let (ending, ended) = tokio::sync::watch::channel(None);
    let framed = Watched {
        inner: framed,
        ending,
    };
    let cipher = if initiator {
        let handshake = SecStream::new_initiator_xx(&[])
            .map_err(|e| failed(format!("noise handshake setup: {e}")))?;
        Cipher::new(Some(Box::new(framed)), handshake.into())
    } else {
        let keypair =
            generate_keypair().map_err(|e| failed(format!("noise key generation: {e}")))?;
        let handshake = SecStream::new_responder_xx(&keypair, &[])
            .map_err(|e| failed(format!("noise handshake setup: {e}")))?;
        Cipher::new(Some(Box::new(framed)), handshake.into())
    };
    Ok((cipher, ended))
}

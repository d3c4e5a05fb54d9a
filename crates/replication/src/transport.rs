//! Byte streams to encrypted, message-framed connections: the Noise XX handshake and
//! uint24-LE length framing that hypercore peers speak (`@hyperswarm/secret-stream`).

use std::io;

use bytes::Bytes;
use futures::{SinkExt, TryStreamExt};
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

/// Wraps a duplex byte stream (TCP, an in-process pipe, ...) into the encrypted,
/// framed connection a [`hypercore_protocol::Protocol`] runs on. `initiator` is the side
/// that opened the connection (exactly one side must be).
pub fn encrypt<S>(stream: S, initiator: bool) -> Result<Cipher, HypercoreError>
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
    Ok(cipher)
}

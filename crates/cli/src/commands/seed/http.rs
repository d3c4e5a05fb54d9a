//! `seed --status-addr ADDR`: a minimal HTTP/1.1 endpoint, `GET /status` answered with
//! the seeder's status as JSON; anything else is 404. One request per connection,
//! bounded in size and time.
//!
//! Owns: the listener and the request parsing. Must not: change anything (read only).
//! Used by: `seed`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::report::SeedState;
use crate::error::{CliError, CliResult};

/// Largest request head read.
const MAX_REQUEST: usize = 8192;
/// A client gets this long to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr`; returns the bound address and the serving task.
pub async fn serve(
    addr: SocketAddr,
    state: Arc<SeedState>,
) -> CliResult<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        CliError::Store(nova_hypercore_serialization::HypercoreError::Io {
            log: "seed".into(),
            operation: format!("binding the status endpoint on {addr}"),
            source: e,
        })
    })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((socket, _)) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(socket, &state).await {
                            tracing::debug!("status request: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("status endpoint accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok((bound, task))
}

async fn answer(mut socket: TcpStream, state: &SeedState) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
            let n = socket.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = if method == "GET" && (path == "/status" || path == "/status/") {
        ("200 OK", state.report().await.to_string())
    } else {
        (
            "404 Not Found",
            "{\"error\":\"not found: GET /status\"}".to_owned(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await
}

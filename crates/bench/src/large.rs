//! Large blocks on a multi-thread runtime (issue 21: blocking file I/O and the runtime):
//! `large_append` appends 1 MiB blocks one at a time through the manager, `large_read`
//! reads them back, each on a 2-worker tokio runtime (as an app's, e.g. Tauri's) while a
//! probe task asks to wake every millisecond. Besides ops/s and MB/s, each reports
//! `worst_stall_ms` and `p99_stall_ms`: how late the probe woke, i.e. how long file I/O
//! kept the runtime's other tasks waiting. No JS counterpart: informational.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nova_hypercore_managed_core::Durability;
use serde_json::{Value, json};

use crate::{BoxError, open_manager, result};

/// Blocks per run, of [`BLOCK`] bytes: 512 MiB written, more than the page cache lets
/// stay dirty on the 2-core VM, so writeback shows.
const COUNT: usize = 512;
/// 1 MiB: the manager's default payload limit.
const BLOCK: usize = 1 << 20;
const LOG: &str = "large";

/// One run of `large_append` (`read: false`) or `large_read`.
pub(crate) fn run(dir: &Path, durability: Durability, read: bool) -> Result<Value, BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let manager = open_manager(dir, durability, false).await?;
        manager.get_log(LOG).await?;
        let block = pseudo_random(BLOCK);
        if read {
            for _ in 0..COUNT {
                manager.append(LOG, &block).await?;
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let probe = tokio::spawn(probe(stop.clone()));
        let t0 = Instant::now();
        for seq in 0..COUNT {
            if read {
                let got = manager.read(LOG, seq as u64).await?;
                if got.len() != BLOCK {
                    return Err(format!("block {seq}: {} bytes", got.len()).into());
                }
            } else {
                manager.append(LOG, &block).await?;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Release);
        let mut lates = probe.await?;
        manager.close().await?;
        lates.sort();
        let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
        let p99 = lates.get(lates.len() * 99 / 100);
        Ok(result(
            if read { "large_read" } else { "large_append" },
            COUNT,
            COUNT * BLOCK,
            secs,
            json!({
                "block_bytes": BLOCK,
                "worst_stall_ms": ms(lates.last()),
                "p99_stall_ms": ms(p99),
                "probe_wakes": lates.len(),
            }),
        ))
    })
}

/// Wakes every millisecond until `stop`; returns how late each wake was.
async fn probe(stop: Arc<AtomicBool>) -> Vec<Duration> {
    let mut lates = Vec::new();
    while !stop.load(Ordering::Acquire) {
        let asked = Instant::now() + Duration::from_millis(1);
        tokio::time::sleep_until(asked.into()).await;
        lates.push(Instant::now().saturating_duration_since(asked));
    }
    lates
}

fn pseudo_random(n: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(n);
    out
}

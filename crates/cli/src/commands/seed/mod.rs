//! `seed`: the always-on peer. Keeps the listed logs (names, keys, `NAME=KEY`, or every
//! log of the store with `--all`) replicated and announced until stopped, remembers them
//! in `seeds.json` so a restart resumes them, reports status on SIGUSR1 (a log line)
//! and on `--status-addr` (`GET /status`), stays under `--max-peers` and pauses
//! downloads into replicas while the store is over `--max-storage`.
//!
//! Owns: choosing what is seeded, the storage bound, the status triggers.
//! Must not: hold replication logic (the manager) or print progress bars (it logs).
//! Used by: `commands::run`.

mod http;
mod report;
mod seeds;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nova_hypercore_manager::ManagedLog;
use serde_json::json;

use self::report::SeedState;
use self::seeds::{Seed, Seeds};
use super::{Ctx, finish};
use crate::cli::{SeedArgs, hex, parse_key};
use crate::error::{CliError, CliResult};
use crate::net::{Network, bootstrap_list};
use crate::shutdown::stop_signal;
use crate::store::{Create, Store};

/// How often disk usage is checked against `--max-storage`, and sync shown.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Downloads resume when usage falls below this share of `--max-storage`.
const RESUME_BELOW: f64 = 0.95;

/// Runs `seed`.
pub async fn run(ctx: &Ctx, args: SeedArgs) -> CliResult<()> {
    let dir = ctx.dir()?;
    let max_peers = args.net.max_peers.max(1);
    let mut store = Store::open(&dir, Create::Yes, |c| c.max_connections = max_peers).await?;
    let result = seed(ctx, &mut store, &args).await;
    finish(store, result).await
}

async fn seed(ctx: &Ctx, store: &mut Store, args: &SeedArgs) -> CliResult<()> {
    let mut seeds = Seeds::load(&store.dir)?;
    let mut changed = false;
    for target in &args.targets {
        let (name, seed) = resolve(store, target, args.sparse).await?;
        changed |= seeds.insert(&name, seed);
    }
    if args.all {
        for name in store.log_names().await? {
            if !seeds.seeds.contains_key(&name) {
                let log = store.log(&name).await?;
                let seed = Seed {
                    key: hex(&log.public_key()),
                    sparse: log.is_sparse(),
                    own: log.is_writable(),
                };
                changed |= seeds.insert(&name, seed);
            }
        }
    }
    if changed {
        seeds.save().await?;
    }
    if seeds.seeds.is_empty() {
        return Err(CliError::Usage(
            "nothing to seed: name logs or keys, or pass --all (seeds.json in the store is empty)"
                .into(),
        ));
    }
    let mut logs = Vec::new();
    for (name, seed) in &seeds.seeds {
        let log = if seed.own {
            store.log(name).await?
        } else {
            let key = parse_key(&seed.key).map_err(|reason| CliError::BadFile {
                path: store.dir.join(seeds::SEEDS_FILE),
                reason: format!("seed {name}: {reason}"),
            })?;
            store.open_replica(name, key, seed.sparse).await?
        };
        store.manager.enable_replication(name).await?;
        ctx.out.line(
            format!("seeding {name} {} ({})", hex(&log.public_key()), if log.is_writable() { "own" } else { "replica" }),
            json!({ "event": "seeding", "log": name, "publicKey": hex(&log.public_key()), "own": log.is_writable() }),
        );
        tracing::info!(log = %name, key = %hex(&log.public_key()), "seeding");
        logs.push(log);
    }
    let bootstrap = bootstrap_list(&ctx.global.bootstrap, &store.dir).await?;
    let network = Network::start(&store.manager, &args.net, bootstrap, true, ctx.out).await?;
    let listen = match &network.listener {
        Some(l) => Some(l.local_addr()),
        None => store.manager.direct_listen_addr().await,
    };
    let state = Arc::new(SeedState {
        manager: store.manager.clone(),
        logs: Mutex::new(logs),
        paused: Mutex::new(Default::default()),
        started: Instant::now(),
        listen,
        dht: network.dht,
        max_storage: args.max_storage,
        max_peers: args.net.max_peers,
    });
    let _http = match args.status_addr {
        Some(addr) => {
            let (bound, task) = http::serve(addr, state.clone()).await?;
            ctx.out.line(
                format!("status on http://{bound}/status"),
                json!({ "event": "status-endpoint", "addr": bound.to_string() }),
            );
            Some(AbortOnDrop(task))
        }
        None => None,
    };
    let mut usr1 = usr1_signal();
    let mut tick = tokio::time::interval(CHECK_EVERY);
    let mut shown: std::collections::HashMap<String, (u64, u64)> = Default::default();
    // One stop future for the whole loop: a signal between two turns is not lost.
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = recv(&mut usr1) => log_status(&state).await,
            _ = tick.tick() => {
                enforce_storage(&state).await;
                show_synced(ctx, &state, &mut shown).await;
            }
        }
    }
    tracing::info!("stopping: closing the store");
    Ok(())
}

/// A seed target: `NAME=KEY`, a 64-hex key, or a log name of this store.
async fn resolve(store: &Store, target: &str, sparse: bool) -> CliResult<(String, Seed)> {
    let replica = |key: [u8; 32]| Seed {
        key: hex(&key),
        sparse,
        own: false,
    };
    if let Some((name, key)) = target.split_once('=') {
        let key = parse_key(key).map_err(|e| CliError::Usage(format!("seed {target}: {e}")))?;
        return Ok((name.to_owned(), replica(key)));
    }
    if let Ok(key) = parse_key(target) {
        // A replica we already have under some name keeps that name.
        let known = store
            .replicas()
            .find(|(_, entry)| entry.key == hex(&key))
            .map(|(name, _)| name.to_owned());
        let name = known.unwrap_or_else(|| format!("seed-{}", &hex(&key)[..16]));
        return Ok((name, replica(key)));
    }
    let log = store.log(target).await?;
    Ok((
        target.to_owned(),
        Seed {
            key: hex(&log.public_key()),
            sparse: log.is_sparse(),
            own: log.is_writable(),
        },
    ))
}

/// Pauses replicas still downloading while the store is over `--max-storage`; resumes
/// them once it is back under 95% of it.
async fn enforce_storage(state: &SeedState) {
    let Some(max) = state.max_storage else {
        return;
    };
    let Some(used) = state.manager.status().await.disk_usage_bytes else {
        return;
    };
    let over = used > max;
    let under = (used as f64) < (max as f64) * RESUME_BELOW;
    for log in state.logs() {
        if log.is_writable() {
            continue;
        }
        let name = log.name().to_string();
        let progress = match log.watch_progress().await {
            Ok(p) => *p.borrow(),
            Err(_) => continue,
        };
        let downloading = progress.contiguous_length < progress.length;
        if over && downloading && state.set_paused(&name, true) {
            tracing::warn!(log = %name, used, max, "store over --max-storage: replication of this replica paused");
            let _ = state.manager.disable_replication(&name).await;
        } else if under && state.set_paused(&name, false) {
            tracing::info!(log = %name, used, max, "store back under --max-storage: replication resumed");
            let _ = state.manager.enable_replication(&name).await;
        }
    }
}

/// Prints a line when a log's held/total changes to complete.
async fn show_synced(
    ctx: &Ctx,
    state: &SeedState,
    shown: &mut std::collections::HashMap<String, (u64, u64)>,
) {
    for log in state.logs() {
        let Some((have, length)) = held(&log).await else {
            continue;
        };
        let name = log.name().to_string();
        if shown.get(&name) == Some(&(have, length)) {
            continue;
        }
        shown.insert(name.clone(), (have, length));
        // An empty replica has not heard from a peer yet: nothing to report.
        if have == length && (length > 0 || log.is_writable()) {
            ctx.out.line(
                format!("{name}: {have}/{length} blocks held"),
                json!({ "event": "synced", "log": name, "length": length }),
            );
            tracing::info!(log = %name, length, "holding every block");
        }
    }
}

async fn held(log: &ManagedLog) -> Option<(u64, u64)> {
    let progress = *log.watch_progress().await.ok()?.borrow();
    Some((progress.contiguous_length, progress.length))
}

/// Logs the status report (SIGUSR1): one line, JSON, for journald.
async fn log_status(state: &SeedState) {
    tracing::info!(status = %state.report().await, "status");
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(unix)]
type Usr1 = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Usr1 = Option<()>;

fn usr1_signal() -> Usr1 {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Resolves on the next SIGUSR1 (never without a handler).
async fn recv(signal: &mut Usr1) {
    #[cfg(unix)]
    if let Some(signal) = signal
        && signal.recv().await.is_some()
    {
        return;
    }
    let _ = signal;
    std::future::pending::<()>().await
}

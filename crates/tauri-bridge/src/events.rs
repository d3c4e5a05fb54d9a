//! Manager events for the page (`subscribe` / `unsubscribe`): the ones about a log, for
//! the logs the window's scope allows, over a `tauri::ipc::Channel` (not global events:
//! those bypass the capability system and would show a window logs it may not see).
//!
//! Forwarded: `truncate` (a log's writer retracted entries: issue 23), `peer-connect`,
//! `peer-disconnect`, `health-warning`, `error` and `log-deleted`; `progress` (a
//! replica's download: have/total/rate), at most one per log every
//! [`PROGRESS_INTERVAL`] while blocks arrive, and one after the last; `refused` (a call
//! of this window the plugin refused, whatever log it named). Not forwarded: `append`
//! and `replicate` (one per block: a page that wants entries tails them) and
//! `crdt-update` (the CRDT bridge's). A page that fell behind gets one `lagged` event
//! with how many it missed.

use std::collections::BTreeSet;
use std::time::Duration;

use nova_hypercore_manager::HypercoreManager;
use nova_hypercore_manager::ManagerEvent;
use nova_hypercore_nanoclaw::NanoClawScope;
use nova_hypercore_serialization::{Direction, ErrorCode, ErrorPayload, LogName};
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};

/// Shortest time between two `progress` events of one log.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// One event as the page receives it: `{ event: "<name>", ...fields }`, camelCase.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum PageEvent {
    /// The log moved to a new fork: entries `kept..` of the old one are gone.
    #[serde(rename_all = "camelCase")]
    Truncate {
        /// The log.
        log_name: String,
        /// Entries kept from before.
        kept: u64,
        /// The length after.
        length: u64,
        /// The new fork id.
        fork: u64,
    },
    /// A peer connected for the log.
    #[serde(rename_all = "camelCase")]
    PeerConnect {
        /// The log.
        log_name: String,
        /// The peer (hex public key).
        peer_id: String,
    },
    /// That peer went away.
    #[serde(rename_all = "camelCase")]
    PeerDisconnect {
        /// The log.
        log_name: String,
        /// The peer.
        peer_id: String,
    },
    /// The log had more errors than the threshold within the health window.
    #[serde(rename_all = "camelCase")]
    HealthWarning {
        /// The log.
        log_name: String,
        /// Errors within the window.
        error_count: u32,
    },
    /// An operation on the log failed (the spec's error shape).
    #[serde(rename_all = "camelCase")]
    Error {
        /// The log, as the caller named it.
        log_name: String,
        /// The error.
        error: ErrorPayload,
    },
    /// The log, its files and key were deleted.
    #[serde(rename_all = "camelCase")]
    LogDeleted {
        /// The log.
        log_name: String,
    },
    /// How far a download of the log is (sent while blocks arrive).
    #[serde(rename_all = "camelCase")]
    Progress {
        /// The log.
        log_name: String,
        /// Blocks `0..have` are here.
        have: u64,
        /// Blocks the signed log has, as far as this replica knows.
        total: u64,
        /// Verified blocks this process received for it.
        blocks_received: u64,
        /// Receive rate in payload bytes per second, once measurable.
        bytes_per_second: Option<f64>,
    },
    /// The plugin refused a call of this window (sent to that window only).
    #[serde(rename_all = "camelCase")]
    Refused {
        /// The log the call named (cut to 128 characters).
        log_name: String,
        /// Why (`UNAUTHORIZED` with the caller and the log).
        error: ErrorPayload,
    },
    /// The page fell behind and `missed` events were dropped (re-read what it shows).
    Lagged {
        /// Events dropped.
        missed: u64,
    },
}

impl PageEvent {
    /// The log an event is about (`None` for `lagged`).
    pub fn log_name(&self) -> Option<&str> {
        match self {
            PageEvent::Truncate { log_name, .. }
            | PageEvent::PeerConnect { log_name, .. }
            | PageEvent::PeerDisconnect { log_name, .. }
            | PageEvent::HealthWarning { log_name, .. }
            | PageEvent::Error { log_name, .. }
            | PageEvent::LogDeleted { log_name }
            | PageEvent::Progress { log_name, .. }
            | PageEvent::Refused { log_name, .. } => Some(log_name),
            PageEvent::Lagged { .. } => None,
        }
    }
}

/// The page's form of a manager event, `None` for those the page does not get.
pub fn page_event(event: &ManagerEvent) -> Option<PageEvent> {
    Some(match event {
        ManagerEvent::Truncate {
            log_name,
            kept,
            length,
            fork,
        } => PageEvent::Truncate {
            log_name: log_name.to_string(),
            kept: *kept,
            length: *length,
            fork: *fork,
        },
        ManagerEvent::PeerConnect { log_name, peer_id } => PageEvent::PeerConnect {
            log_name: log_name.to_string(),
            peer_id: peer_id.clone(),
        },
        ManagerEvent::PeerDisconnect { log_name, peer_id } => PageEvent::PeerDisconnect {
            log_name: log_name.to_string(),
            peer_id: peer_id.clone(),
        },
        ManagerEvent::HealthWarning {
            log_name,
            error_count,
        } => PageEvent::HealthWarning {
            log_name: log_name.clone(),
            error_count: *error_count,
        },
        // A refusal goes to the refused window only (`refused`), never to every window
        // that may see the log it named.
        ManagerEvent::Error { error, .. } if error.code == ErrorCode::Unauthorized => {
            return None;
        }
        ManagerEvent::Error { log_name, error } => PageEvent::Error {
            log_name: log_name.clone(),
            error: error.clone(),
        },
        ManagerEvent::LogDeleted { log_name } => PageEvent::LogDeleted {
            log_name: log_name.to_string(),
        },
        ManagerEvent::Ready(_)
        | ManagerEvent::Append { .. }
        | ManagerEvent::Replicate { .. }
        | ManagerEvent::CrdtUpdate { .. } => return None,
    })
}

/// The page's form of `event` if it is about a log `scope` allows (deny by default).
pub fn for_page(event: &ManagerEvent, scope: &NanoClawScope) -> Option<PageEvent> {
    page_event(event).filter(|e| {
        e.log_name()
            .is_some_and(|name| scope.check_name(name).is_ok())
    })
}

/// A call the plugin refused, for the `refused` event of the calling window.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    /// The window's label.
    pub caller: String,
    /// The log named.
    pub log_name: String,
    /// The refusal.
    pub error: ErrorPayload,
}

/// Sends `manager`'s events for the page with scope `scope` (window `scope.caller()`),
/// its own refusals and throttled download progress to `send` until `send` returns
/// `false` or the manager's events end.
pub(crate) async fn forward(
    manager: HypercoreManager,
    scope: NanoClawScope,
    mut refusals: broadcast::Receiver<Refusal>,
    mut send: impl FnMut(PageEvent) -> bool,
) {
    let mut events = manager.subscribe();
    // Logs whose blocks arrived since their last `progress`.
    let mut pending: BTreeSet<LogName> = BTreeSet::new();
    let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            event = events.recv() => match event {
                Ok(ManagerEvent::Replicate { log_name, direction: Direction::Receive, .. }) => {
                    if scope.allows(&log_name) {
                        pending.insert(log_name);
                    }
                    continue;
                }
                Ok(event) => match for_page(&event, &scope) {
                    Some(e) => e,
                    None => continue,
                },
                Err(RecvError::Lagged(missed)) => {
                    // Block events may be among those missed: every replica in scope
                    // gets a progress event, so the last one is never lost.
                    for log in manager.open_logs().await {
                        if !log.is_writable() && scope.allows(log.name()) {
                            pending.insert(log.name().clone());
                        }
                    }
                    PageEvent::Lagged { missed }
                }
                Err(RecvError::Closed) => return,
            },
            refusal = refusals.recv() => match refusal {
                Ok(r) if r.caller == scope.caller() => PageEvent::Refused {
                    log_name: r.log_name,
                    error: r.error,
                },
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick(), if !pending.is_empty() => {
                for log_name in std::mem::take(&mut pending) {
                    // Only a log that is still there (a deleted replica's name must not
                    // become a new log of ours through a lookup).
                    if manager.existing_log(log_name.as_str()).await.is_err() {
                        continue;
                    }
                    let Ok(p) = manager.download_progress(log_name.as_str()).await else {
                        continue;
                    };
                    if !send(PageEvent::Progress {
                        log_name: log_name.to_string(),
                        have: p.have,
                        total: p.total,
                        blocks_received: p.blocks_received,
                        bytes_per_second: p.bytes_per_second,
                    }) {
                        return;
                    }
                }
                continue;
            }
        };
        if !send(event) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nova_hypercore_serialization::LogName;

    #[test]
    fn only_events_of_logs_in_scope_reach_the_page() {
        let scope = NanoClawScope::new("main", ["e2e-*"])
            .unwrap()
            .with_denied(["e2e-private"])
            .unwrap();
        let truncate = |name: &str| ManagerEvent::Truncate {
            log_name: LogName::parse(name).unwrap(),
            kept: 0,
            length: 0,
            fork: 1,
        };
        assert!(for_page(&truncate("e2e-notes"), &scope).is_some());
        assert!(for_page(&truncate("secret-log"), &scope).is_none());
        assert!(for_page(&truncate("e2e-private"), &scope).is_none());
        let error = ManagerEvent::Error {
            log_name: "../not a log name".into(),
            error: nova_hypercore_serialization::HypercoreError::Closed { log: "x".into() }
                .to_payload(),
        };
        assert!(
            for_page(&error, &scope).is_none(),
            "an invalid name is no log in scope"
        );
        let refusal = ManagerEvent::Error {
            log_name: "e2e-notes".into(),
            error: nova_hypercore_serialization::HypercoreError::Unauthorized {
                log: Some("e2e-notes".into()),
                reason: "caller \"other-window\" may not".into(),
            }
            .to_payload(),
        };
        assert!(
            for_page(&refusal, &scope).is_none(),
            "another window's refusal is not this window's business"
        );
        let empty = NanoClawScope::new("main", Vec::<String>::new()).unwrap();
        assert!(
            for_page(&truncate("e2e-notes"), &empty).is_none(),
            "deny by default"
        );
    }

    #[test]
    fn a_truncate_reaches_the_page_in_its_shape_and_appends_do_not() {
        let log_name = LogName::parse("agent-state").unwrap();
        let event = page_event(&ManagerEvent::Truncate {
            log_name: log_name.clone(),
            kept: 3,
            length: 5,
            fork: 2,
        })
        .unwrap();
        assert_eq!(event.log_name(), Some("agent-state"));
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({
                "event": "truncate", "logName": "agent-state", "kept": 3, "length": 5, "fork": 2
            })
        );
        assert!(
            page_event(&ManagerEvent::Append {
                log_name,
                seq: 0,
                byte_length: 1
            })
            .is_none()
        );
        assert_eq!(
            serde_json::to_value(PageEvent::Lagged { missed: 4 }).unwrap(),
            serde_json::json!({ "event": "lagged", "missed": 4 })
        );
    }

    async fn manager(dir: &std::path::Path) -> HypercoreManager {
        let config = nova_hypercore_manager::ManagerConfig::builder()
            .storage_path(dir)
            .build()
            .unwrap();
        let m = HypercoreManager::new(config).unwrap();
        m.initialize().await.unwrap();
        m
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_window_gets_its_own_refusals_and_throttled_progress_up_to_the_end() {
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (manager(dirs.0.path()).await, manager(dirs.1.path()).await);
        let entries: Vec<Vec<u8>> = (0..500u32).map(|i| vec![i as u8; 1000]).collect();
        a.append_batch("notes", &entries).await.unwrap();
        a.enable_replication("notes").await.unwrap();
        let key = a.get_log("notes").await.unwrap().public_key();
        b.open_replica("e2e-theirs", key).await.unwrap();
        b.enable_replication("e2e-theirs").await.unwrap();

        let scope = NanoClawScope::new("main", ["e2e-*"]).unwrap();
        let (refusals, refusals_rx) = broadcast::channel(8);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let task = tokio::spawn(forward(b.clone(), scope, refusals_rx, move |e| {
            sink.lock().unwrap().push(e);
            true
        }));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let refusal = |caller: &str| Refusal {
            caller: caller.to_owned(),
            log_name: "secret".to_owned(),
            error: nova_hypercore_serialization::HypercoreError::Unauthorized {
                log: Some("secret".into()),
                reason: format!("caller {caller:?} may not"),
            }
            .to_payload(),
        };
        refusals.send(refusal("other-window")).unwrap();
        refusals.send(refusal("main")).unwrap();

        let (x, y) = tokio::io::duplex(1 << 20);
        let (a2, b2) = (a.clone(), b.clone());
        tokio::spawn(async move { a2.replicate(x, true).await });
        tokio::spawn(async move { b2.replicate(y, false).await });
        let done = |events: &[PageEvent]| {
            events.iter().any(|e| {
                matches!(e, PageEvent::Progress { log_name, have: 500, total: 500, .. }
                    if log_name == "e2e-theirs")
            })
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while !done(&seen.lock().unwrap()) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the last progress event says the download is complete");
        task.abort();
        let seen = seen.lock().unwrap().clone();
        let refused: Vec<_> = seen
            .iter()
            .filter_map(|e| match e {
                PageEvent::Refused { error, .. } => Some(error.message.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].contains("\"main\""), "{refused:?}");
        let progress = seen
            .iter()
            .filter(|e| matches!(e, PageEvent::Progress { .. }))
            .count();
        assert!(
            progress < 100,
            "at most one progress event per {PROGRESS_INTERVAL:?} ({progress} for 500 blocks)"
        );
        assert!(
            seen.iter().all(|e| e.log_name() != Some("notes")),
            "nothing about logs outside the scope"
        );
        a.close().await.unwrap();
        b.close().await.unwrap();
    }
}

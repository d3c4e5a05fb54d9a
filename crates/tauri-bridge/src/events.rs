//! Manager events for the page (`subscribe` / `unsubscribe`): the ones about a log, for
//! the logs the window's scope allows, over a `tauri::ipc::Channel` (not global events:
//! those bypass the capability system and would show a window logs it may not see).
//!
//! Forwarded: `truncate` (a log's writer retracted entries: issue 23), `peer-connect`,
//! `peer-disconnect`, `health-warning`, `error` and `log-deleted`. Not forwarded: `append`
//! and `replicate` (one per block: a page that wants entries reads or tails them) and
//! `crdt-update` (the CRDT bridge's). A page that fell behind gets one `lagged` event with
//! how many it missed.

use nova_hypercore_manager::ManagerEvent;
use nova_hypercore_nanoclaw::NanoClawScope;
use nova_hypercore_serialization::ErrorPayload;
use serde::Serialize;

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
            | PageEvent::LogDeleted { log_name } => Some(log_name),
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
}

//! ATLAS memory from the page (spec: ATLASMemoryAdapter): `atlas_store` and
//! `atlas_query`, on one [`AtlasMemoryAdapter`] per log, opened the first time an
//! allowed caller names that log.
//!
//! Thin as `commands.rs` is: parse the JSON body (a bad one is
//! `DESERIALIZATION_FAILED`), check the caller's NanoClaw scope on the log name (a
//! refusal opens and writes nothing), call the adapter. The log defaults to the
//! adapter's [`DEFAULT_LOG`] (`atlas-memory`).
//!
//! Paging: `atlas_query` answers at most [`MAX_PAGE`] nodes per call; a larger `limit`
//! is clamped to it (and a `limit` of 0 to 1), and `next` is the offset of the next page
//! (`null` when the answer is complete), so a caller that follows `next` gets every
//! node whatever limit it asked for.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use nova_hypercore_atlas_adapter::{AtlasMemoryAdapter, DEFAULT_LOG, SparseQueryOptions};
use nova_hypercore_serialization::{HypercoreError, LogName, MemoryNodeEntry, serialize};
use serde::{Deserialize, Serialize};
use tauri::ipc::{CommandScope, GlobalScope, InvokeBody, Request};
use tauri::{Runtime, State, Webview};
use tokio::sync::OnceCell;

use crate::NovaHypercore;
use crate::commands::{authorize, schema_error};
use crate::error::Result;
use crate::models::ScopeEntry;

/// The most nodes one `atlas_query` call returns (a larger `limit` is clamped to it).
pub const MAX_PAGE: usize = 500;

/// One value per log name, created on first use (concurrent first uses create it once;
/// a failed creation is tried again by the next use).
#[derive(Debug)]
pub(crate) struct PerLog<T> {
    cells: Mutex<HashMap<LogName, Arc<OnceCell<T>>>>,
}

impl<T> Default for PerLog<T> {
    fn default() -> Self {
        PerLog {
            cells: Mutex::default(),
        }
    }
}

impl<T: Clone> PerLog<T> {
    /// The value for `log`, opened with `open` if there is none yet.
    pub(crate) async fn get_or_open<F, Fut>(&self, log: &LogName, open: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, HypercoreError>>,
    {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(cells.entry(log.clone()).or_default())
        };
        Ok(cell.get_or_try_init(open).await?.clone())
    }

    /// Every value opened so far, removed from the map (for closing them).
    pub(crate) fn take_all(&self) -> Vec<T> {
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        cells
            .drain()
            .filter_map(|(_, cell)| cell.get().cloned())
            .collect()
    }
}

/// The plugin's ATLAS adapters, one per log name (managed state beside
/// [`NovaHypercore`]).
#[derive(Debug, Default)]
pub struct AtlasState {
    adapters: PerLog<AtlasMemoryAdapter>,
}

/// `atlas_store`'s body: `{ logName?, node }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreArgs {
    /// The ATLAS log; [`DEFAULT_LOG`] when absent.
    #[serde(default)]
    pub log_name: Option<String>,
    /// The node (the spec's `MemoryNodeEntry`, camelCase).
    pub node: MemoryNodeEntry,
}

/// What an `atlas_query` asks for, tagged by `by`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "by", rename_all = "lowercase", rename_all_fields = "camelCase")]
pub enum MemoryQuery {
    /// Nodes with `start <= timestamp <= end`, by timestamp (ties in log order).
    Time {
        /// First millisecond (inclusive).
        start: u64,
        /// Last millisecond (inclusive).
        end: u64,
    },
    /// Nodes of `agentSource`: in log order; with `start` and/or `end`, only those in
    /// that time range (inclusive, an absent bound is open), by timestamp.
    Agent {
        /// The agent.
        agent_source: String,
        /// First millisecond (inclusive), or none.
        #[serde(default)]
        start: Option<u64>,
        /// Last millisecond (inclusive), or none.
        #[serde(default)]
        end: Option<u64>,
    },
    /// Nodes of `category`, in log order.
    Category {
        /// The category.
        category: String,
    },
}

/// `atlas_query`'s body: `{ logName?, by, ...fields of `by`, offset?, limit? }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryArgs {
    /// The ATLAS log; [`DEFAULT_LOG`] when absent.
    #[serde(default)]
    pub log_name: Option<String>,
    /// The query.
    #[serde(flatten)]
    pub query: MemoryQuery,
    /// Nodes of the answer to skip (0 when absent).
    #[serde(default)]
    pub offset: u64,
    /// Nodes to return at most: clamped into `1..=`[`MAX_PAGE`]; [`MAX_PAGE`] when absent.
    #[serde(default)]
    pub limit: Option<u64>,
}

/// One page of an `atlas_query` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryPage {
    /// The nodes `offset..offset + nodes.length` of the answer.
    pub nodes: Vec<MemoryNodeEntry>,
    /// The `offset` of the next page, `None` (`null`) when this page ends the answer.
    pub next: Option<u64>,
}

/// The page size a `limit` asks for: clamped into `1..=MAX_PAGE`.
pub fn page_size(limit: Option<u64>) -> usize {
    limit.map_or(MAX_PAGE, |l| {
        usize::try_from(l).unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE)
    })
}

/// The page `offset..offset + size` of a whole answer of `total` nodes, given the
/// page's nodes: `next` is set when nodes remain after it.
fn page_of(nodes: Vec<MemoryNodeEntry>, offset: usize, total: usize) -> MemoryPage {
    let end = offset.saturating_add(nodes.len());
    MemoryPage {
        next: (end < total).then_some(end as u64),
        nodes,
    }
}

/// A whole answer cut to its page.
fn slice_page(all: Vec<MemoryNodeEntry>, offset: usize, size: usize) -> MemoryPage {
    let total = all.len();
    let nodes = all.into_iter().skip(offset).take(size).collect();
    page_of(nodes, offset.min(total), total)
}

/// Parses a JSON body (a raw one, or one of the wrong shape, is `DESERIALIZATION_FAILED`).
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    request: &Request<'_>,
    shape: &str,
) -> Result<T> {
    match request.body() {
        InvokeBody::Json(value) => T::deserialize(value)
            .map_err(|e| schema_error(".", format!("expected {shape}: {e}")).into()),
        InvokeBody::Raw(_) => {
            Err(schema_error(".", format!("expected a JSON body {shape}")).into())
        }
    }
}

impl AtlasState {
    /// The adapter on `log` (opened on first use).
    async fn adapter(&self, state: &NovaHypercore, log: &LogName) -> Result<AtlasMemoryAdapter> {
        let manager = state.manager().clone();
        let name = log.clone();
        self.adapters
            .get_or_open(log, || async move {
                AtlasMemoryAdapter::open_log(&manager, name.as_str()).await
            })
            .await
    }
}

/// `atlas_store`: `{ logName?, node }` -> the node's seq. The node is validated (the
/// spec's schema: `importance` in `[0, 1]`, integers up to 2^53 - 1) before anything is
/// opened or written.
#[tauri::command]
pub(crate) async fn atlas_store<R: Runtime>(
    request: Request<'_>,
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    atlas: State<'_, AtlasState>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
) -> Result<u64> {
    let args: StoreArgs = json_body(&request, "{ logName?, node: MemoryNodeEntry }")?;
    let name = args.log_name.as_deref().unwrap_or(DEFAULT_LOG);
    let log = authorize(&state, &webview, &command_scope, &global_scope, name)?;
    serialize(&args.node)?; // validation: an invalid node opens nothing
    let adapter = atlas.adapter(&state, &log).await?;
    Ok(adapter.store_node(&args.node).await?)
}

/// `atlas_query`: `{ logName?, by: "time" | "agent" | "category", ..., offset?, limit? }`
/// -> `{ nodes, next }` (see the module documentation for paging).
#[tauri::command]
pub(crate) async fn atlas_query<R: Runtime>(
    request: Request<'_>,
    webview: Webview<R>,
    state: State<'_, NovaHypercore>,
    atlas: State<'_, AtlasState>,
    command_scope: CommandScope<ScopeEntry>,
    global_scope: GlobalScope<ScopeEntry>,
) -> Result<MemoryPage> {
    let args: QueryArgs = json_body(
        &request,
        "{ logName?, by: \"time\" | \"agent\" | \"category\", ..., offset?, limit? }",
    )?;
    let name = args.log_name.as_deref().unwrap_or(DEFAULT_LOG);
    let log = authorize(&state, &webview, &command_scope, &global_scope, name)?;
    let adapter = atlas.adapter(&state, &log).await?;
    let offset = usize::try_from(args.offset).unwrap_or(usize::MAX);
    let size = page_size(args.limit);
    Ok(match args.query {
        MemoryQuery::Time { start, end } => {
            slice_page(adapter.query_by_time_range(start, end).await?, offset, size)
        }
        MemoryQuery::Agent {
            agent_source,
            start: None,
            end: None,
        } => {
            let (nodes, total) = adapter
                .query_by_agent_page(&agent_source, offset, size)
                .await?;
            page_of(nodes, offset.min(total), total)
        }
        MemoryQuery::Agent {
            agent_source,
            start,
            end,
        } => {
            let (start, end) = (start.unwrap_or(0), end.unwrap_or(u64::MAX));
            let all = adapter
                .query_by_agent_in_time_range(
                    &agent_source,
                    start,
                    end,
                    SparseQueryOptions::default(),
                )
                .await?;
            slice_page(all, offset, size)
        }
        MemoryQuery::Category { category } => {
            let (nodes, total) = adapter
                .query_by_category_page(&category, offset, size)
                .await?;
            page_of(nodes, offset.min(total), total)
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn node(i: u64) -> MemoryNodeEntry {
        MemoryNodeEntry {
            id: format!("n-{i}"),
            agent_source: "atlas".into(),
            category: "fact".into(),
            content: String::new(),
            tags: vec![],
            importance: 0.5,
            timestamp: i,
        }
    }

    #[test]
    fn a_query_body_is_flat_and_tagged_by_by() {
        let args: QueryArgs = serde_json::from_value(json!({
            "by": "agent", "agentSource": "planner", "end": 9, "offset": 4, "limit": 10
        }))
        .unwrap();
        assert_eq!(args.log_name, None);
        assert_eq!(
            args.query,
            MemoryQuery::Agent {
                agent_source: "planner".into(),
                start: None,
                end: Some(9)
            }
        );
        assert_eq!((args.offset, args.limit), (4, Some(10)));
        let args: QueryArgs = serde_json::from_value(json!({
            "logName": "atlas-b", "by": "time", "start": 1, "end": 2
        }))
        .unwrap();
        assert_eq!(args.query, MemoryQuery::Time { start: 1, end: 2 });
        assert_eq!(args.log_name.as_deref(), Some("atlas-b"));
        for bad in [
            json!({ "by": "colour", "colour": "red" }),
            json!({ "by": "time", "start": 1 }),
            json!({ "by": "category" }),
            json!({ "category": "fact" }),
            json!({ "by": "time", "start": -1, "end": 2 }),
        ] {
            assert!(
                serde_json::from_value::<QueryArgs>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_page_size_is_clamped_into_one_to_max_page() {
        assert_eq!(page_size(None), MAX_PAGE);
        assert_eq!(page_size(Some(0)), 1);
        assert_eq!(page_size(Some(7)), 7);
        assert_eq!(page_size(Some(501)), MAX_PAGE);
        assert_eq!(page_size(Some(u64::MAX)), MAX_PAGE);
    }

    #[test]
    fn pages_follow_next_to_the_end() {
        let all: Vec<MemoryNodeEntry> = (0..5).map(node).collect();
        let mut got = Vec::new();
        let mut offset = 0;
        let mut calls = 0;
        loop {
            let page = slice_page(all.clone(), offset, 2);
            got.extend(page.nodes);
            calls += 1;
            match page.next {
                Some(next) => offset = next as usize,
                None => break,
            }
        }
        assert_eq!((got, calls), (all.clone(), 3));
        let past = slice_page(all.clone(), 9, 2);
        assert_eq!((past.nodes.len(), past.next), (0, None));
        let exact = slice_page(all, 3, 2);
        assert_eq!((exact.nodes.len(), exact.next), (2, None));
        assert_eq!(
            serde_json::to_value(page_of(vec![], 0, 0)).unwrap(),
            json!({ "nodes": [], "next": null })
        );
    }

    #[test]
    fn a_store_body_is_log_name_and_node() {
        let args: StoreArgs = serde_json::from_value(json!({
            "node": { "id": "n", "agentSource": "a", "category": "c", "content": "",
                      "tags": [], "importance": 1, "timestamp": 3 }
        }))
        .unwrap();
        assert_eq!(args.log_name, None);
        assert_eq!(args.node.timestamp, 3);
        assert!(serde_json::from_value::<StoreArgs>(json!({ "node": {}, "x": 1 })).is_err());
    }
}

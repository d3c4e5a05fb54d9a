// ATLAS memory from the page: the spec's `MemoryNodeEntry`, `atlas_store` and `atlas_query`
// (paginated, at most `MAX_MEMORY_PAGE` nodes per call; see the plugin's CONTRACT.md).
//
// Owns: the ATLAS command names and argument shapes, and the page iterator over a query.
// Does not: validate nodes (the plugin checks the spec's schema and rejects with
// DESERIALIZATION_FAILED naming the field) or check log names (the plugin's scope does).

import { HypercoreError } from './error.js'
import { call, withLog } from './ipc.js'

/** The ATLAS log the plugin uses when no `logName` is given. */
export const DEFAULT_ATLAS_LOG = 'atlas-memory'

/** The most nodes one `queryMemory` call returns (a larger `limit` is clamped to it). */
export const MAX_MEMORY_PAGE = 500

/** An ATLAS memory node: the spec's `MemoryNodeEntry`. */
export interface MemoryNodeEntry {
  id: string
  agentSource: string
  category: string
  content: string
  tags: string[]
  /** In `[0, 1]`. */
  importance: number
  /** Milliseconds since the Unix epoch (an integer). */
  timestamp: number
}

/** What a query asks for, tagged by `by`. Bounds are inclusive milliseconds. */
export type MemoryQuery =
  /** Nodes with `start <= timestamp <= end`, by timestamp. */
  | { by: 'time'; start: number; end: number }
  /** Nodes of one agent: in log order, or by timestamp when `start` or `end` is given. */
  | { by: 'agent'; agentSource: string; start?: number; end?: number }
  /** Nodes of one category, in log order. */
  | { by: 'category'; category: string }

/** Where a query reads and which page of it. */
export interface MemoryQueryOptions {
  /** The ATLAS log (default `atlas-memory`). */
  logName?: string
  /** Nodes of the answer to skip (default 0). */
  offset?: number
  /** Nodes per page, clamped by the plugin into `1..=500` (default 500). */
  limit?: number
}

/** One page of a query's answer. */
export interface MemoryPage {
  nodes: MemoryNodeEntry[]
  /** The `offset` of the next page, `null` when this page ends the answer. */
  next: number | null
}



/**
 * Stores `node` in the ATLAS log (default `atlas-memory`); resolves to its seq. A node that
 * fails the spec's schema rejects with `DESERIALIZATION_FAILED` and nothing is written.
 */
export async function storeMemoryNode(
  node: MemoryNodeEntry,
  options: { logName?: string } = {}
): Promise<number> {
  const seq = await call<unknown>('atlas_store', withLog({ node }, options.logName))
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
    throw new HypercoreError('DESERIALIZATION_FAILED', `atlas_store: expected a seq, got ${JSON.stringify(seq)}`)
  }
  return seq
}

/** One page of `query`'s answer (`next` leads to the following page). */
export async function queryMemory(
  query: MemoryQuery,
  options: MemoryQueryOptions = {}
): Promise<MemoryPage> {
  const args: Record<string, unknown> = withLog({ ...query }, options.logName)
  if (options.offset !== undefined) args['offset'] = options.offset
  if (options.limit !== undefined) args['limit'] = options.limit
  const page = await call<unknown>('atlas_query', args)
  if (
    typeof page !== 'object' ||
    page === null ||
    !Array.isArray((page as MemoryPage).nodes) ||
    !((page as MemoryPage).next === null || typeof (page as MemoryPage).next === 'number')
  ) {
    throw new HypercoreError('DESERIALIZATION_FAILED', 'atlas_query: expected { nodes, next }')
  }
  return page as MemoryPage
}

/**
 * Every page of `query`'s answer, in order, following `next` from `options.offset` (one
 * `atlas_query` call per page): `for await (const nodes of queryMemoryPages(q)) ...`.
 */
export async function* queryMemoryPages(
  query: MemoryQuery,
  options: MemoryQueryOptions = {}
): AsyncGenerator<MemoryNodeEntry[], void, undefined> {
  let offset = options.offset ?? 0
  for (;;) {
    const page = await queryMemory(query, { ...options, offset })
    yield page.nodes
    if (page.next === null) return
    if (page.next <= offset) {
      throw new HypercoreError('DESERIALIZATION_FAILED', `atlas_query: next ${page.next} does not advance past ${offset}`)
    }
    offset = page.next
  }
}

/** Every node of `query`'s answer (all pages), in the answer's order. */
export async function queryAllMemory(
  query: MemoryQuery,
  options: MemoryQueryOptions = {}
): Promise<MemoryNodeEntry[]> {
  const all: MemoryNodeEntry[] = []
  for await (const nodes of queryMemoryPages(query, options)) all.push(...nodes)
  return all
}

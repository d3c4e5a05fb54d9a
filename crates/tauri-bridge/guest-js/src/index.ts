// Typed bindings for the nova-hypercore Tauri plugin (runtime name `nova-hypercore`).
//
// Owns: the command names (`plugin:nova-hypercore|<command>`), the argument names (camelCase),
// the byte encodings of `append` (raw body + `x-log-name` header), `read` (raw bytes),
// `readRange` (u32 big-endian length + bytes per entry, one bounded page per call) and `tail`
// (u64 big-endian first seq + frames per message), and `HypercoreError`, the one error
// type every call rejects with (the plugin's `{ code, message, logName?, seq? }` objects and
// Tauri's own ACL denials, which arrive as strings containing "not allowed").
//
// Does not: hold state, retry, or check log names (the plugin and its scope do that).

import { Channel, type InvokeArgs } from '@tauri-apps/api/core'

import { HypercoreError, LOG_NAME_HEADER, type HypercoreErrorPayload } from './error.js'
import { call, toCount } from './ipc.js'

export * from './error.js'

/** One log in {@link HypercoreStatus}. */
export interface LogStatus {
  logName: string
  /** Entries. */
  length: number
  /** Bytes of all entries. */
  byteLength: number
}

/**
 * The store's status as the plugin reports it to this window (`StatusView` in the plugin's
 * CONTRACT.md): the manager's status restricted to the logs the caller's scope allows and
 * that the manager has opened in this process.
 */
export interface HypercoreStatus {
  /** The store is initialized and not closed. */
  initialized: boolean
  replicationEnabled: boolean
  activePeers: number
  /** The number of `logs`. */
  logCount: number
  /** The sum of their `byteLength`. */
  totalByteSize: number
  /** Sorted by `logName`. */
  logs: LogStatus[]
}


/** Bytes from a raw IPC response (ArrayBuffer; typed arrays and number arrays accepted too). */
function toBytes(value: unknown, what: string): Uint8Array {
  if (value instanceof ArrayBuffer) return new Uint8Array(value)
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
  }
  if (Array.isArray(value) && value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
    return Uint8Array.from(value as number[])
  }
  throw new HypercoreError('DESERIALIZATION_FAILED', `${what}: expected bytes, got ${typeof value}`)
}


/**
 * Appends `data` to the log `logName` (created on first use); resolves to its seq.
 *
 * The bytes travel as the raw IPC body, the log name in the `x-log-name` header (no JSON
 * number array, so a 1 MiB entry is one copy).
 */
export async function append(logName: string, data: Uint8Array): Promise<number> {
  const seq = await call<unknown>('append', data, { headers: { [LOG_NAME_HEADER]: logName } })
  return toCount(seq, 'append')
}

/** The verified bytes of entry `seq` of `logName` (`OUT_OF_RANGE` past its length). */
export async function read(logName: string, seq: number): Promise<Uint8Array> {
  return toBytes(await call<unknown>('read', { logName, seq }), 'read')
}

/**
 * The number of entries in `logName`. A log that does not exist (never appended to, not
 * followed) is `STORAGE_INACCESSIBLE`: reads never create a log.
 */
export async function length(logName: string): Promise<number> {
  return toCount(await call<unknown>('length', { logName }), 'length')
}

/** Most entries one `read_range` call answers (the plugin's `MAX_RANGE_ENTRIES`). */
export const MAX_RANGE_ENTRIES = 1024

/**
 * One page of entries from `start` towards `end` (exclusive) of `logName`: at most
 * {@link MAX_RANGE_ENTRIES} entries and about 8 MiB, at least one entry when `start < end`.
 * The next page starts at `start + entries.length`.
 */
export async function readRangePage(
  logName: string,
  start: number,
  end: number
): Promise<Uint8Array[]> {
  const bytes = toBytes(await call<unknown>('read_range', { logName, start, end }), 'readRange')
  return decodeFrames(bytes)
}

/**
 * Entries `start` (inclusive) to `end` (exclusive) of `logName`, verified, in order, page
 * by page ({@link readRangePage}): yields each page's entries.
 */
export async function* readRangePages(
  logName: string,
  start: number,
  end: number
): AsyncGenerator<Uint8Array[], void, undefined> {
  let next = start
  while (next < end) {
    const page = await readRangePage(logName, next, end)
    if (page.length === 0) {
      throw new HypercoreError('DESERIALIZATION_FAILED', `readRange: empty page at ${next}`, {
        logName
      })
    }
    next += page.length
    yield page
  }
}

/**
 * Entries `start` (inclusive) to `end` (exclusive) of `logName`, verified, in order (as many
 * calls as it takes: see {@link readRangePage}). The returned arrays are views into the
 * response buffers.
 */
export async function readRange(logName: string, start: number, end: number): Promise<Uint8Array[]> {
  if (start >= end) return readRangePage(logName, start, end)
  const out: Uint8Array[] = []
  for await (const page of readRangePages(logName, start, end)) out.push(...page)
  return out
}

/** What a {@link tail} reports besides entries. */
export interface TailHandlers {
  /**
   * The log moved to a new fork: entries from `kept` on that were delivered are retracted;
   * the entries from `kept` on come next, as they are now.
   */
  onTruncate?: (truncate: { kept: number; length: number; fork: number }) => void
  /** A read failed; the tail tries again when the log next changes. */
  onError?: (error: HypercoreError) => void
  /** Nothing more comes: the log was deleted, or the store closed. */
  onEnd?: (reason: 'deleted' | 'closed') => void
  /**
   * Resuming: the fork the entries before `fromSeq` you hold are of (from the last
   * `onTruncate`, or 0). If the log moved to another fork since, `onTruncate` comes first
   * and says which of them are gone.
   */
  fork?: number
}

/** A running {@link tail}. */
export interface Tail {
  /** The stream's id (ended by `unsubscribe`). */
  readonly id: number
  /** Stops the tail. */
  stop(): Promise<void>
}

/**
 * Streams `logName` from `fromSeq`: every entry already there, then each new one (appended in
 * this app or replicated from a peer), in order and without gaps, to `onEntry(seq, data)`.
 * The window's scope is checked when it starts; a log that does not exist is
 * `STORAGE_INACCESSIBLE`. A sparse replica fetches the entries from `fromSeq` on (and nothing
 * before). The tail ends with the page (reload or window closed), `stop()`, the log's
 * deletion or the store's close.
 */
export async function tail(
  logName: string,
  fromSeq: number,
  onEntry: (seq: number, data: Uint8Array) => void,
  handlers: TailHandlers = {}
): Promise<Tail> {
  const channel = new Channel<unknown>()
  channel.onmessage = (message) => {
    if (message instanceof ArrayBuffer || ArrayBuffer.isView(message) || Array.isArray(message)) {
      const { first, entries } = decodeTailBatch(toBytes(message, 'tail'))
      entries.forEach((entry, i) => onEntry(first + i, entry))
      return
    }
    const m = message as Record<string, unknown>
    if (m['event'] === 'truncate') {
      handlers.onTruncate?.({
        kept: toCount(m['kept'], 'tail kept'),
        length: toCount(m['length'], 'tail length'),
        fork: toCount(m['fork'], 'tail fork')
      })
    } else if (m['event'] === 'error') {
      handlers.onError?.(HypercoreError.from(m['error']))
    } else if (m['event'] === 'end') {
      handlers.onEnd?.(m['reason'] === 'deleted' ? 'deleted' : 'closed')
    }
  }
  const args: InvokeArgs = { logName, fromSeq, onEntry: channel }
  if (handlers.fork !== undefined) args['fork'] = handlers.fork
  const id = toCount(await call<unknown>('tail', args), 'tail')
  return {
    id,
    stop: async () => {
      await call<unknown>('unsubscribe', { id })
    }
  }
}

/**
 * Splits one `tail` message: a u64 big-endian seq of the first entry, then frames as
 * {@link decodeFrames}.
 */
export function decodeTailBatch(bytes: Uint8Array): { first: number; entries: Uint8Array[] } {
  if (bytes.byteLength < 8) {
    throw new HypercoreError('DESERIALIZATION_FAILED', `tail: ${bytes.byteLength}-byte message`)
  }
  const first = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, false)
  if (first > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new HypercoreError('DESERIALIZATION_FAILED', `tail: seq ${first} is not a safe integer`)
  }
  return { first: Number(first), entries: decodeFrames(bytes.subarray(8)) }
}

/** A log's keys (`share`, `follow`, `logKeys`). */
export interface LogKeys {
  logName: string
  /** The core key (64 hex characters): what another peer passes to {@link follow}. */
  publicKey: string
  /** The DHT topic (hex); it does not reveal the key. */
  discoveryKey: string
  /** Whether this store can append to it. */
  writable: boolean
  /** Whether it is a sparse replica. */
  sparse: boolean
}

/** The spec's `ReplicationStatus`. */
export interface ReplicationStatus {
  logName: string
  localLength: number
  /** Peer id (hex) to the length that peer reported. */
  remoteLengths: Record<string, number>
  activePeers: number
  bytesTransferred: number
}

/** How far a replica's download is. */
export interface DownloadProgress {
  logName: string
  /** Entries `0..have` are here. */
  have: number
  /** Entries the signed log has, as far as this store knows. */
  total: number
  /** Verified blocks this app received for it. */
  blocksReceived: number
  /** Receive rate in bytes per second, once measurable. */
  bytesPerSecond: number | null
}

function toObject<T>(value: unknown, what: string): T {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HypercoreError('DESERIALIZATION_FAILED', `${what}: expected an object`)
  }
  return value as T
}

/**
 * Replicates the log `logName` of this store (created if new) with every peer the plugin
 * connects to; resolves to its keys for the other side's {@link follow}. Needs the
 * `nova-hypercore:allow-share` permission (or the `replicate` set).
 */
export async function share(logName: string): Promise<LogKeys> {
  return toObject<LogKeys>(await call<unknown>('share', { logName }), 'share')
}

/** Stops replicating `logName` (it stays in the store). Needs `allow-unshare`. */
export async function unshare(logName: string): Promise<void> {
  await call<unknown>('unshare', { logName })
}

/**
 * Follows a peer's log by its core key (hex), stored here as `logName`: full (every entry) or
 * `sparse` (only what is read). Needs `allow-follow`.
 */
export async function follow(
  logName: string,
  publicKey: string,
  options: { sparse?: boolean } = {}
): Promise<LogKeys> {
  const args: InvokeArgs = { logName, publicKey }
  if (options.sparse !== undefined) args['sparse'] = options.sparse
  return toObject<LogKeys>(await call<unknown>('follow', args), 'follow')
}

/** The log's replication: local length, peers' lengths, bytes moved. */
export async function replicationStatus(logName: string): Promise<ReplicationStatus> {
  return toObject(await call<unknown>('replication_status', { logName }), 'replicationStatus')
}

/** How far the log's download is. */
export async function downloadProgress(logName: string): Promise<DownloadProgress> {
  return toObject(await call<unknown>('download_progress', { logName }), 'downloadProgress')
}

/** The keys of an existing log. */
export async function logKeys(logName: string): Promise<LogKeys> {
  return toObject(await call<unknown>('log_keys', { logName }), 'logKeys')
}

/** A manager event about a log this window may see (`subscribe`), `event` names it. */
export type HypercoreEvent =
  /** The log's writer retracted entries `kept..` of the old fork; the log is now `length` long at `fork`. */
  | { event: 'truncate'; logName: string; kept: number; length: number; fork: number }
  | { event: 'peer-connect'; logName: string; peerId: string }
  | { event: 'peer-disconnect'; logName: string; peerId: string }
  | { event: 'health-warning'; logName: string; errorCount: number }
  | { event: 'error'; logName: string; error: HypercoreErrorPayload }
  | { event: 'log-deleted'; logName: string }
  /** A replica's download (at most one per log every 250 ms while blocks arrive, and one after the last). */
  | {
      event: 'progress'
      logName: string
      have: number
      total: number
      blocksReceived: number
      bytesPerSecond: number | null
    }
  /** The plugin refused a call of this window (whatever log it named). */
  | { event: 'refused'; logName: string; error: HypercoreErrorPayload }
  /** This subscription fell behind: `missed` events were dropped (re-read what you show). */
  | { event: 'lagged'; missed: number }

/**
 * Calls `onEvent` with every manager event about a log this window's scope allows
 * (truncations, peers, download progress, health warnings, errors, deleted logs) and the
 * refusals of this window's own calls, over a Tauri `Channel`.
 * Resolves to a function that ends the subscription.
 */
export async function subscribe(
  onEvent: (event: HypercoreEvent) => void
): Promise<() => Promise<void>> {
  const channel = new Channel<HypercoreEvent>()
  channel.onmessage = onEvent
  const id = toCount(await call<unknown>('subscribe', { onEvent: channel }), 'subscribe')
  return async () => {
    await call<unknown>('unsubscribe', { id })
  }
}

/** The store's status, restricted to the logs this window may see. */
export async function status(): Promise<HypercoreStatus> {
  const value = await call<unknown>('status', {})
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HypercoreError('DESERIALIZATION_FAILED', 'status: expected an object')
  }
  return value as HypercoreStatus
}

/**
 * Splits `readRange`'s body: each entry is a u32 big-endian length and that many bytes.
 * A truncated frame is `DESERIALIZATION_FAILED`.
 */
export function decodeFrames(bytes: Uint8Array): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const entries: Uint8Array[] = []
  let at = 0
  while (at < bytes.byteLength) {
    if (bytes.byteLength - at < 4) {
      throw new HypercoreError(
        'DESERIALIZATION_FAILED',
        `readRange: ${bytes.byteLength - at} trailing bytes where a 4-byte length was expected`
      )
    }
    const size = view.getUint32(at, false)
    at += 4
    if (bytes.byteLength - at < size) {
      throw new HypercoreError(
        'DESERIALIZATION_FAILED',
        `readRange: entry ${entries.length} claims ${size} bytes, ${bytes.byteLength - at} left`
      )
    }
    entries.push(bytes.subarray(at, at + size))
    at += size
  }
  return entries
}

export * from './atlas.js'
export * from './crdt.js'

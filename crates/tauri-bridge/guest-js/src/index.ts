// Typed bindings for the nova-hypercore Tauri plugin (runtime name `nova-hypercore`).
//
// Owns: the command names (`plugin:nova-hypercore|<command>`), the argument names (camelCase),
// the byte encodings of `append` (raw body + `x-log-name` header), `read` (raw bytes) and
// `readRange` (u32 big-endian length + bytes per entry), and `HypercoreError`, the one error
// type every call rejects with (the plugin's `{ code, message, logName?, seq? }` objects and
// Tauri's own ACL denials, which arrive as strings containing "not allowed").
//
// Does not: hold state, retry, or check log names (the plugin and its scope do that).

import { Channel, invoke, type InvokeArgs, type InvokeOptions } from '@tauri-apps/api/core'

/** The plugin's runtime name, as in `invoke('plugin:nova-hypercore|append')`. */
export const PLUGIN_NAME = 'nova-hypercore'

/** The header that names the log of a raw-body `append`. */
export const LOG_NAME_HEADER = 'x-log-name'

/** The nine error codes of the spec (`HypercoreError.code`). */
export const ERROR_CODES = [
  'OUT_OF_RANGE',
  'PAYLOAD_TOO_LARGE',
  'STORAGE_INACCESSIBLE',
  'SIGNATURE_INVALID',
  'REPLICATION_FAILED',
  'DESERIALIZATION_FAILED',
  'UNAUTHORIZED',
  'STORAGE_CORRUPTED',
  'IO_ERROR'
] as const

/** One of the nine error codes. */
export type ErrorCode = (typeof ERROR_CODES)[number]

/** Whether `value` is one of the nine error codes. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value)
}

/** What the plugin rejects with: the spec's error shape, camelCase. */
export interface HypercoreErrorPayload {
  code: ErrorCode
  message: string
  logName?: string
  seq?: number
}

/** Extra fields of a {@link HypercoreError}. */
export interface HypercoreErrorDetails {
  logName?: string | undefined
  seq?: number | undefined
  /** The value the call rejected with, when it was not already a `HypercoreError`. */
  cause?: unknown
}

/**
 * The error every function of this package rejects with.
 *
 * `code` is one of the nine codes. Tauri's own ACL denial (a command or plugin not granted to
 * the window) arrives as a string containing "not allowed" and becomes `UNAUTHORIZED`, the same
 * code the plugin uses for a log outside the caller's scope, so callers test one field.
 */
export class HypercoreError extends Error {
  override readonly name = 'HypercoreError'
  readonly code: ErrorCode
  readonly logName?: string
  readonly seq?: number

  constructor(code: ErrorCode, message: string, details: HypercoreErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.code = code
    if (details.logName !== undefined) this.logName = details.logName
    if (details.seq !== undefined) this.seq = details.seq
  }

  /**
   * Maps whatever an `invoke` rejected with to a `HypercoreError`:
   * - a `HypercoreError`: itself;
   * - the plugin's `{ code, message, logName?, seq? }`: the same fields;
   * - a string containing "not allowed" (Tauri's ACL): `UNAUTHORIZED`;
   * - a string about the command's arguments ("invalid args", "missing required key"):
   *   `DESERIALIZATION_FAILED`;
   * - anything else (another string, an object with an unknown code, an `Error`): `IO_ERROR`,
   *   with the original value as `cause`.
   */
  static from(raw: unknown): HypercoreError {
    if (raw instanceof HypercoreError) return raw
    if (typeof raw === 'string') {
      if (raw.includes('not allowed')) {
        return new HypercoreError('UNAUTHORIZED', raw, { cause: raw })
      }
      if (raw.includes('invalid args') || raw.includes('missing required key')) {
        return new HypercoreError('DESERIALIZATION_FAILED', raw, { cause: raw })
      }
      return new HypercoreError('IO_ERROR', raw, { cause: raw })
    }
    if (typeof raw === 'object' && raw !== null) {
      const fields = raw as Record<string, unknown>
      const message =
        typeof fields['message'] === 'string' ? fields['message'] : JSON.stringify(raw)
      const logName = typeof fields['logName'] === 'string' ? fields['logName'] : undefined
      const seq = typeof fields['seq'] === 'number' ? fields['seq'] : undefined
      if (isErrorCode(fields['code'])) {
        return new HypercoreError(fields['code'], message, { logName, seq, cause: raw })
      }
      return new HypercoreError('IO_ERROR', message, { logName, seq, cause: raw })
    }
    return new HypercoreError('IO_ERROR', String(raw), { cause: raw })
  }

  /** The plugin's wire shape of this error. */
  toJSON(): HypercoreErrorPayload {
    const out: HypercoreErrorPayload = { code: this.code, message: this.message }
    if (this.logName !== undefined) out.logName = this.logName
    if (this.seq !== undefined) out.seq = this.seq
    return out
  }
}

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

async function call<T>(command: string, args?: InvokeArgs, options?: InvokeOptions): Promise<T> {
  try {
    return await invoke<T>(`plugin:${PLUGIN_NAME}|${command}`, args, options)
  } catch (e) {
    throw HypercoreError.from(e)
  }
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

function toCount(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value
  throw new HypercoreError(
    'DESERIALIZATION_FAILED',
    `${what}: expected a non-negative integer, got ${JSON.stringify(value)}`
  )
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

/** The number of entries in `logName` (0 for a log never appended to). */
export async function length(logName: string): Promise<number> {
  return toCount(await call<unknown>('length', { logName }), 'length')
}

/**
 * Entries `start` (inclusive) to `end` (exclusive) of `logName`, verified, in order.
 * The returned arrays are views into the one response buffer.
 */
export async function readRange(logName: string, start: number, end: number): Promise<Uint8Array[]> {
  const bytes = toBytes(await call<unknown>('read_range', { logName, start, end }), 'readRange')
  return decodeFrames(bytes)
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
  /** This subscription fell behind: `missed` events were dropped (re-read what you show). */
  | { event: 'lagged'; missed: number }

/**
 * Calls `onEvent` with every manager event about a log this window's scope allows
 * (truncations, peers, health warnings, errors, deleted logs), over a Tauri `Channel`.
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

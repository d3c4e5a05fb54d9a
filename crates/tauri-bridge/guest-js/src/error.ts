// The names every module of the bindings shares, and `HypercoreError`, the one error type
// every call rejects with. Re-exported by index.ts; its own module so that index.ts, atlas.ts
// and crdt.ts import it without an import cycle.

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

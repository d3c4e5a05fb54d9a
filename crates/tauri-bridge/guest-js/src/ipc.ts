// The one way the bindings call the plugin, and the checks of what comes back. Internal:
// index.ts does not re-export it (atlas.ts, crdt.ts and index.ts import it).

import { invoke, type InvokeArgs, type InvokeOptions } from '@tauri-apps/api/core'

import { HypercoreError, PLUGIN_NAME } from './error.js'

/** Invokes `plugin:nova-hypercore|<command>`; any rejection becomes a `HypercoreError`. */
export async function call<T>(command: string, args?: InvokeArgs, options?: InvokeOptions): Promise<T> {
  try {
    return await invoke<T>(`plugin:${PLUGIN_NAME}|${command}`, args, options)
  } catch (e) {
    throw HypercoreError.from(e)
  }
}

/** `{ ...args, logName }`, or `args` when no log is named (the plugin's default log). */
export function withLog(args: Record<string, unknown>, logName: string | undefined): Record<string, unknown> {
  return logName === undefined ? args : { ...args, logName }
}

/** A non-negative safe integer (a seq, a length, an id), or `DESERIALIZATION_FAILED`. */
export function toCount(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value
  throw new HypercoreError(
    'DESERIALIZATION_FAILED',
    `${what}: expected a non-negative integer, got ${JSON.stringify(value)}`
  )
}

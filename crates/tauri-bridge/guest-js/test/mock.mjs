// Test harness: `@tauri-apps/api/mocks` (mockIPC) on Node, plus a record of every call with
// its invoke options (mockIPC's handler does not receive them; headers travel there).
globalThis.window ??= globalThis

const { mockIPC, clearMocks } = await import('@tauri-apps/api/mocks')

/**
 * Installs `handler(cmd, payload)` as the IPC backend; returns the list the calls are pushed to
 * as `{ cmd, payload, options }`.
 */
export function mock(handler) {
  const calls = []
  mockIPC((cmd, payload) => handler(cmd, payload))
  const internals = globalThis.window.__TAURI_INTERNALS__
  const mocked = internals.invoke
  internals.invoke = (cmd, payload, options) => {
    calls.push({ cmd, payload, options })
    return mocked(cmd, payload, options)
  }
  return calls
}

export { clearMocks }

/** `readRange`'s wire format: u32 big-endian length + bytes per entry. */
export function frames(entries) {
  const total = entries.reduce((n, e) => n + 4 + e.byteLength, 0)
  const out = new Uint8Array(total)
  const view = new DataView(out.buffer)
  let at = 0
  for (const e of entries) {
    view.setUint32(at, e.byteLength, false)
    out.set(e, at + 4)
    at += 4 + e.byteLength
  }
  return out
}

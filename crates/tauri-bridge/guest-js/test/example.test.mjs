// The README's TypeScript example: it is examples/usage.ts verbatim (type-checked by
// `npm run check-examples`, compiled to dist-examples/), and it works against a mocked plugin.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { afterEach, test } from 'node:test'

import { clearMocks, frames, mock } from './mock.mjs'

afterEach(() => clearMocks())

const here = new URL('.', import.meta.url)

test('the README shows examples/usage.ts verbatim', () => {
  const example = readFileSync(new URL('../examples/usage.ts', here), 'utf8')
  const readme = readFileSync(new URL('../../../../README.md', here), 'utf8')
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1])
  assert.ok(
    blocks.includes(example),
    'README.md has a ```ts block identical to crates/tauri-bridge/guest-js/examples/usage.ts'
  )
})

test('the example runs against a mocked plugin', async () => {
  const { allNotes, mayRead, saveNote, showNotes } = await import('../dist-examples/usage.js')
  const log = []
  mock((cmd, payload) => {
    switch (cmd) {
      case 'plugin:nova-hypercore|append':
        log.push(new Uint8Array(payload))
        return log.length - 1
      case 'plugin:nova-hypercore|read':
        return log[payload.seq].buffer
      case 'plugin:nova-hypercore|length':
        if (payload.logName !== 'e2e-notes') {
          throw 'nova-hypercore.length not allowed. Permissions associated with this command: ...'
        }
        return log.length
      case 'plugin:nova-hypercore|read_range':
        return frames(log.slice(payload.start, payload.end)).buffer
      case 'plugin:nova-hypercore|tail': {
        // The backlog as one batch: u64 big-endian first seq, then frames.
        const body = frames(log.slice(payload.fromSeq))
        const message = new Uint8Array(8 + body.byteLength)
        new DataView(message.buffer).setBigUint64(0, BigInt(payload.fromSeq), false)
        message.set(body, 8)
        queueMicrotask(() =>
          globalThis.window.__TAURI_INTERNALS__.runCallback(payload.onEntry.id, {
            index: 0,
            message: message.buffer
          })
        )
        return 3
      }
      case 'plugin:nova-hypercore|unsubscribe':
        return true
      default:
        throw { code: 'IO_ERROR', message: `unexpected ${cmd}` }
    }
  })
  assert.equal(await saveNote('first'), 'first')
  assert.equal(await saveNote('second'), 'second')
  assert.deepEqual(await allNotes(), ['first', 'second'])
  const shown = []
  const stop = await showNotes((seq, text) => shown.push(`${seq}:${text}`))
  await new Promise((resolve) => setTimeout(resolve, 10))
  assert.deepEqual(shown, ['0:first', '1:second'])
  await stop()
  assert.equal(await mayRead('e2e-notes'), true)
  assert.equal(await mayRead('secret-log'), false)
})

test("the README's Rust setup line and capability are the e2e app's", () => {
  const readme = readFileSync(new URL('../../../../README.md', here), 'utf8')
  const main = readFileSync(new URL('../../e2e-app/src/main.rs', here), 'utf8')
  const plugin = '.plugin(tauri_plugin_nova_hypercore::init(config))'
  assert.ok(readme.includes(plugin) && main.includes(plugin), plugin)
  const json = [...readme.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]))
  const capability = JSON.parse(
    readFileSync(new URL('../../e2e-app/capabilities/default.json', here), 'utf8')
  )
  assert.ok(
    json.some((c) => JSON.stringify(c.permissions) === JSON.stringify(capability.permissions)),
    "README.md shows the e2e app's capability permissions"
  )
})

// The page-side commands of issue 24 against mockIPC: `tail` (its channel's raw batches and
// JSON messages, in order, and its stop), `readRange` asking page after page, the replication
// commands' names and arguments, and `subscribe`'s progress and refused events.
import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'

import { clearMocks, frames, mock } from './mock.mjs'
import {
  HypercoreError,
  MAX_RANGE_ENTRIES,
  decodeTailBatch,
  downloadProgress,
  follow,
  logKeys,
  readRange,
  readRangePage,
  replicationStatus,
  share,
  subscribe,
  tail,
  unshare
} from '../dist/index.js'

afterEach(() => clearMocks())

const PLUGIN = 'plugin:nova-hypercore|'
const bytes = (...xs) => new Uint8Array(xs)

/** A tail message: u64 big-endian first seq, then frames. */
function batch(first, entries) {
  const body = frames(entries)
  const out = new Uint8Array(8 + body.byteLength)
  new DataView(out.buffer).setBigUint64(0, BigInt(first), false)
  out.set(body, 8)
  return out.buffer
}

/** Delivers `message` on the page's channel as Tauri does (`{ index, message }`). */
function deliver(channel, index, message) {
  globalThis.window.__TAURI_INTERNALS__.runCallback(channel.id, { index, message })
}

test('tail delivers batches, truncations, errors and the end in order, and stop unsubscribes', async () => {
  let channel
  const calls = mock((cmd, payload) => {
    if (cmd === PLUGIN + 'tail') {
      channel = payload.onEntry
      return 5
    }
    if (cmd === PLUGIN + 'unsubscribe') return true
  })
  const seen = []
  const handle = await tail('e2e-notes', 2, (seq, data) => seen.push(['entry', seq, [...data]]), {
    onTruncate: (t) => seen.push(['truncate', t]),
    onError: (e) => seen.push(['error', e.code, e.logName]),
    onEnd: (reason) => seen.push(['end', reason])
  })
  assert.equal(handle.id, 5)
  assert.deepEqual(calls[0].payload.logName, 'e2e-notes')
  assert.equal(calls[0].payload.fromSeq, 2)
  assert.equal('fork' in calls[0].payload, false, 'no fork unless resuming')
  // Out of order on the wire: the channel's index puts them back in order.
  deliver(channel, 1, { event: 'truncate', kept: 3, length: 3, fork: 1 })
  deliver(channel, 0, batch(2, [bytes(7), bytes(8, 9)]))
  deliver(channel, 2, batch(3, [bytes(1)]))
  deliver(channel, 3, {
    event: 'error',
    error: { code: 'REPLICATION_FAILED', message: 'no peer', logName: 'e2e-notes', seq: 4 }
  })
  deliver(channel, 4, { event: 'end', reason: 'deleted' })
  assert.deepEqual(seen, [
    ['entry', 2, [7]],
    ['entry', 3, [8, 9]],
    ['truncate', { kept: 3, length: 3, fork: 1 }],
    ['entry', 3, [1]],
    ['error', 'REPLICATION_FAILED', 'e2e-notes'],
    ['end', 'deleted']
  ])
  await handle.stop()
  assert.equal(calls[1].cmd, PLUGIN + 'unsubscribe')
  assert.deepEqual(calls[1].payload, { id: 5 })
})

test('a resumed tail sends the fork its entries are of', async () => {
  const calls = mock((cmd) => (cmd === PLUGIN + 'tail' ? 1 : undefined))
  await tail('e2e-notes', 40, () => {}, { fork: 2 })
  assert.equal(calls[0].payload.fork, 2)
  assert.equal(calls[0].payload.fromSeq, 40)
})

test('a tail refused by the plugin rejects with its code', async () => {
  mock(() => {
    throw { code: 'STORAGE_INACCESSIBLE', message: 'log e2e-x does not exist', logName: 'e2e-x' }
  })
  await assert.rejects(tail('e2e-x', 0, () => {}), {
    name: 'HypercoreError',
    code: 'STORAGE_INACCESSIBLE',
    logName: 'e2e-x'
  })
})

test('decodeTailBatch refuses short and unsafe messages', () => {
  assert.throws(() => decodeTailBatch(new Uint8Array(3)), { code: 'DESERIALIZATION_FAILED' })
  const huge = new Uint8Array(8).fill(0xff)
  assert.throws(() => decodeTailBatch(huge), { code: 'DESERIALIZATION_FAILED' })
  assert.deepEqual(decodeTailBatch(new Uint8Array(batch(9, []))), { first: 9, entries: [] })
})

test('readRange asks page after page until end', async () => {
  const total = MAX_RANGE_ENTRIES + 10
  const calls = mock((cmd, { start, end }) => {
    const stop = Math.min(end, start + MAX_RANGE_ENTRIES)
    const entries = []
    for (let i = start; i < stop; i++) entries.push(bytes(i % 256))
    return frames(entries).buffer
  })
  const got = await readRange('e2e-many', 0, total)
  assert.equal(got.length, total)
  assert.deepEqual([...got[MAX_RANGE_ENTRIES + 3]], [(MAX_RANGE_ENTRIES + 3) % 256])
  assert.deepEqual(
    calls.map((c) => [c.payload.start, c.payload.end]),
    [
      [0, total],
      [MAX_RANGE_ENTRIES, total]
    ]
  )
  const page = await readRangePage('e2e-many', 5, 7)
  assert.equal(page.length, 2)
})

test('readRange refuses an empty page before end (no endless loop)', async () => {
  mock(() => new ArrayBuffer(0))
  await assert.rejects(readRange('e2e-many', 0, 3), { code: 'DESERIALIZATION_FAILED' })
})

test('the replication commands send their names and camelCase arguments', async () => {
  const keys = {
    logName: 'e2e-notes',
    publicKey: 'ab'.repeat(32),
    discoveryKey: 'cd'.repeat(32),
    writable: true,
    sparse: false
  }
  const calls = mock((cmd) => {
    switch (cmd) {
      case PLUGIN + 'share':
      case PLUGIN + 'follow':
      case PLUGIN + 'log_keys':
        return keys
      case PLUGIN + 'unshare':
        return null
      case PLUGIN + 'replication_status':
        return { logName: 'e2e-notes', localLength: 3, remoteLengths: {}, activePeers: 0, bytesTransferred: 0 }
      case PLUGIN + 'download_progress':
        return { logName: 'e2e-notes', have: 1, total: 3, blocksReceived: 1, bytesPerSecond: null }
    }
  })
  assert.deepEqual(await share('e2e-notes'), keys)
  await unshare('e2e-notes')
  assert.deepEqual(await follow('e2e-theirs', keys.publicKey, { sparse: true }), keys)
  await follow('e2e-theirs', keys.publicKey)
  assert.equal((await replicationStatus('e2e-notes')).localLength, 3)
  assert.equal((await downloadProgress('e2e-notes')).total, 3)
  assert.deepEqual(await logKeys('e2e-notes'), keys)
  assert.deepEqual(
    calls.map((c) => [c.cmd.slice(PLUGIN.length), c.payload]),
    [
      ['share', { logName: 'e2e-notes' }],
      ['unshare', { logName: 'e2e-notes' }],
      ['follow', { logName: 'e2e-theirs', publicKey: keys.publicKey, sparse: true }],
      ['follow', { logName: 'e2e-theirs', publicKey: keys.publicKey }],
      ['replication_status', { logName: 'e2e-notes' }],
      ['download_progress', { logName: 'e2e-notes' }],
      ['log_keys', { logName: 'e2e-notes' }]
    ]
  )
})

test('Tauri refusing share (no permission) is UNAUTHORIZED', async () => {
  mock(() => {
    throw 'nova-hypercore.share not allowed. Permissions associated with this command: nova-hypercore:allow-share'
  })
  await assert.rejects(share('e2e-notes'), (e) => e instanceof HypercoreError && e.code === 'UNAUTHORIZED')
})

test('subscribe passes progress and refused events through', async () => {
  let channel
  mock((cmd, payload) => {
    if (cmd === PLUGIN + 'subscribe') {
      channel = payload.onEvent
      return 1
    }
  })
  const seen = []
  await subscribe((e) => seen.push(e))
  const progress = {
    event: 'progress',
    logName: 'e2e-theirs',
    have: 10,
    total: 20,
    blocksReceived: 10,
    bytesPerSecond: 1000
  }
  const refused = {
    event: 'refused',
    logName: 'secret',
    error: { code: 'UNAUTHORIZED', message: 'caller "main" may not', logName: 'secret' }
  }
  deliver(channel, 0, progress)
  deliver(channel, 1, refused)
  assert.deepEqual(seen, [progress, refused])
})

// What the bindings send: command names, camelCase argument names, the raw body and header of
// append, and how the byte responses of read and readRange are decoded.
import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'

import { clearMocks, frames, mock } from './mock.mjs'
import {
  HypercoreError,
  LOG_NAME_HEADER,
  append,
  decodeFrames,
  length,
  read,
  readRange,
  status
} from '../dist/index.js'

afterEach(() => clearMocks())

test('append sends the bytes as the raw body and the log name in x-log-name', async () => {
  const data = new Uint8Array([1, 2, 3, 250])
  const calls = mock((cmd) => (cmd === 'plugin:nova-hypercore|append' ? 7 : undefined))
  assert.equal(await append('e2e-notes', data), 7)
  assert.equal(calls.length, 1)
  const [{ cmd, payload, options }] = calls
  assert.equal(cmd, 'plugin:nova-hypercore|append')
  assert.ok(payload instanceof Uint8Array, 'the payload is the Uint8Array itself, not JSON')
  assert.deepEqual([...payload], [1, 2, 3, 250])
  assert.equal(LOG_NAME_HEADER, 'x-log-name')
  assert.deepEqual(options, { headers: { 'x-log-name': 'e2e-notes' } })
})

test('append rejects a reply that is not a seq', async () => {
  mock(() => 'seven')
  await assert.rejects(append('e2e-notes', new Uint8Array(1)), {
    name: 'HypercoreError',
    code: 'DESERIALIZATION_FAILED'
  })
})

test('read sends { logName, seq } and returns the ArrayBuffer as a Uint8Array', async () => {
  const calls = mock(() => new Uint8Array([104, 105]).buffer)
  const bytes = await read('e2e-notes', 3)
  assert.ok(bytes instanceof Uint8Array)
  assert.deepEqual([...bytes], [104, 105])
  assert.equal(calls[0].cmd, 'plugin:nova-hypercore|read')
  assert.deepEqual(calls[0].payload, { logName: 'e2e-notes', seq: 3 })
})

test('read accepts the number-array form of a raw response', async () => {
  mock(() => [0, 255, 7])
  assert.deepEqual([...(await read('e2e-notes', 0))], [0, 255, 7])
})

test('read rejects a reply that is not bytes', async () => {
  mock(() => ({ not: 'bytes' }))
  await assert.rejects(read('e2e-notes', 0), { code: 'DESERIALIZATION_FAILED' })
})

test('length sends { logName } and returns the number', async () => {
  const calls = mock(() => 42)
  assert.equal(await length('e2e-notes'), 42)
  assert.equal(calls[0].cmd, 'plugin:nova-hypercore|length')
  assert.deepEqual(calls[0].payload, { logName: 'e2e-notes' })
})

test('readRange sends { logName, start, end } to read_range and splits the frames', async () => {
  const entries = [new Uint8Array([1]), new Uint8Array([]), new Uint8Array(300).fill(9)]
  const calls = mock(() => frames(entries).buffer)
  const got = await readRange('e2e-notes', 2, 5)
  assert.equal(calls[0].cmd, 'plugin:nova-hypercore|read_range')
  assert.deepEqual(calls[0].payload, { logName: 'e2e-notes', start: 2, end: 5 })
  assert.equal(got.length, 3)
  got.forEach((e, i) => assert.deepEqual([...e], [...entries[i]]))
})

test('readRange of nothing is no entries', async () => {
  mock(() => new ArrayBuffer(0))
  assert.deepEqual(await readRange('e2e-notes', 0, 0), [])
})

test('decodeFrames refuses a truncated length or entry', () => {
  const whole = frames([new Uint8Array([1, 2, 3])])
  for (const cut of [1, 2, 3, 4, 5, 6]) {
    assert.throws(() => decodeFrames(whole.subarray(0, cut)), (e) => {
      assert.ok(e instanceof HypercoreError)
      assert.equal(e.code, 'DESERIALIZATION_FAILED')
      return true
    })
  }
  assert.equal(decodeFrames(whole).length, 1)
})

test('decodeFrames reads frames from a view with an offset', () => {
  const padded = new Uint8Array(3 + 6)
  padded.set(frames([new Uint8Array([5, 6])]), 3)
  const [entry] = decodeFrames(padded.subarray(3))
  assert.deepEqual([...entry], [5, 6])
})

test('status sends {} and returns the object', async () => {
  const reply = {
    initialized: true,
    logCount: 1,
    totalByteSize: 10,
    replicationEnabled: false,
    activePeers: 0,
    logs: [{ logName: 'e2e-notes', length: 2, byteLength: 10 }]
  }
  const calls = mock(() => reply)
  assert.deepEqual(await status(), reply)
  assert.equal(calls[0].cmd, 'plugin:nova-hypercore|status')
  assert.deepEqual(calls[0].payload, {})
})

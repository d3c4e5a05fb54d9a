// CRDT bindings: what broadcastCrdtUpdate, subscribeCrdt, followCrdtWriter and crdtInfo send,
// how deliveries arrive over a Tauri Channel (through the real Channel class and mockIPC's
// callback registry), and Yjs documents kept in sync by bindYDoc through a fake bridge that
// behaves like the plugin's (clock per source id, asynchronous delivery to every
// subscription, history with fromStart).
import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'

import * as Y from 'yjs'

import { clearMocks, mock } from './mock.mjs'
import {
  HypercoreError,
  SOURCE_ID_HEADER,
  bindYDoc,
  broadcastCrdtUpdate,
  crdtInfo,
  decodeDelivery,
  followCrdtWriter,
  subscribeCrdt
} from '../dist/index.js'

const { mockIPC } = await import('@tauri-apps/api/mocks')

afterEach(() => clearMocks())

const WRITER = 'ab'.repeat(32)
const tick = () => new Promise((resolve) => setTimeout(resolve, 0))

/** Waits (bounded) until `condition()` holds. */
async function until(condition, what) {
  for (let i = 0; i < 1000; i++) {
    if (condition()) return
    await tick()
  }
  assert.fail(`not reached: ${what}`)
}

/** Sends `message` on the page's channel the way Tauri does: runCallback(id, { message, index }). */
function sendOn(sub, message) {
  window.__TAURI_INTERNALS__.runCallback(sub.channel.id, { message, index: sub.index++ })
}

/** A fake plugin CRDT bridge: one writer log, subscriptions over Channels. */
function fakeBridge() {
  const entries = []
  const clock = {}
  const subs = new Map()
  const calls = []
  let nextId = 1
  const handle = (cmd, args, options) => {
    calls.push({ cmd, args, options })
    switch (cmd) {
      case 'plugin:nova-hypercore|crdt_broadcast': {
        assert.ok(args instanceof Uint8Array, 'the update is the raw body')
        const sourceId = decodeURIComponent(options.headers[SOURCE_ID_HEADER])
        clock[sourceId] = (clock[sourceId] ?? 0) + 1
        const entry = {
          sourceId,
          timestamp: Date.now(),
          causalClock: { ...clock },
          payload: Buffer.from(args).toString('base64'),
          writer: WRITER,
          seq: entries.length
        }
        entries.push(entry)
        setTimeout(() => subs.forEach((sub) => sendOn(sub, entry)), 0)
        return entry.seq
      }
      case 'plugin:nova-hypercore|crdt_subscribe': {
        const id = nextId++
        const sub = { channel: args.onUpdate, index: 0 }
        subs.set(id, sub)
        if (args.fromStart) {
          const history = [...entries]
          setTimeout(() => history.forEach((e) => sendOn(sub, e)), 0)
        }
        return id
      }
      case 'plugin:nova-hypercore|crdt_unsubscribe':
        return subs.delete(args.id)
      case 'plugin:nova-hypercore|crdt_info':
        return {
          logName: args.logName ?? 'crdt-collab',
          writer: WRITER,
          writers: [{ writer: WRITER, logName: 'crdt-collab', delivered: entries.length }],
          clock: { ...clock }
        }
      default:
        throw `unknown command ${cmd}`
    }
  }
  mockIPC(() => assert.fail('replaced below'))
  // mockIPC's handler does not receive the invoke options (the headers): take over invoke,
  // keeping mockIPC's callback registry (transformCallback / runCallback) that Channel uses.
  window.__TAURI_INTERNALS__.invoke = async (cmd, args, options) => handle(cmd, args, options)
  return { entries, subs, calls }
}

test('broadcastCrdtUpdate sends the update as the raw body, the source id percent-encoded', async () => {
  const calls = mock(() => 4)
  const update = new Uint8Array([1, 2, 255])
  assert.equal(await broadcastCrdtUpdate(update, 'client é/1'), 4)
  assert.equal(await broadcastCrdtUpdate(update, '7', { logName: 'crdt-doc' }), 4)
  assert.equal(calls[0].cmd, 'plugin:nova-hypercore|crdt_broadcast')
  assert.equal(calls[0].payload, update)
  assert.deepEqual(calls[0].options, { headers: { 'x-crdt-source-id': 'client%20%C3%A9%2F1' } })
  assert.deepEqual(calls[1].options, {
    headers: { 'x-crdt-source-id': '7', 'x-log-name': 'crdt-doc' }
  })
})

test('broadcastCrdtUpdate rejects with HypercoreError', async () => {
  mock(() => {
    throw { code: 'UNAUTHORIZED', message: 'unauthorized', logName: 'crdt-collab' }
  })
  await assert.rejects(broadcastCrdtUpdate(new Uint8Array(1), 's'), (e) => {
    assert.ok(e instanceof HypercoreError)
    assert.equal(e.code, 'UNAUTHORIZED')
    assert.equal(e.logName, 'crdt-collab')
    return true
  })
})

test('subscribeCrdt delivers CRDTUpdateEntry + writer + seq with the payload decoded; unsubscribe ends it', async () => {
  const bridge = fakeBridge()
  const got = []
  const unsubscribe = await subscribeCrdt((d) => got.push(d), { logName: 'crdt-doc', fromStart: true })
  const sub = bridge.calls.find((c) => c.cmd === 'plugin:nova-hypercore|crdt_subscribe')
  assert.equal(sub.args.logName, 'crdt-doc')
  assert.equal(sub.args.fromStart, true)
  await broadcastCrdtUpdate(new Uint8Array([0, 1, 254]), 'alice')
  await broadcastCrdtUpdate(new Uint8Array([]), 'alice')
  await until(() => got.length === 2, 'two deliveries')
  const [first, second] = got
  assert.ok(first.payload instanceof Uint8Array)
  assert.deepEqual([...first.payload], [0, 1, 254])
  assert.deepEqual(
    { sourceId: first.sourceId, causalClock: first.causalClock, writer: first.writer, seq: first.seq },
    { sourceId: 'alice', causalClock: { alice: 1 }, writer: WRITER, seq: 0 }
  )
  assert.equal(typeof first.timestamp, 'number')
  assert.deepEqual([second.payload.length, second.seq, second.causalClock.alice], [0, 1, 2])

  await unsubscribe()
  const unsub = bridge.calls.find((c) => c.cmd === 'plugin:nova-hypercore|crdt_unsubscribe')
  assert.equal(typeof unsub.args.id, 'number')
  assert.equal(bridge.subs.size, 0)
  await broadcastCrdtUpdate(new Uint8Array([9]), 'alice')
  await tick()
  await tick()
  assert.equal(got.length, 2, 'nothing after unsubscribe')
})

test('a delivery that does not decode goes to onError, the next one still arrives', async () => {
  const bridge = fakeBridge()
  const got = []
  const errors = []
  await subscribeCrdt((d) => got.push(d), { onError: (e) => errors.push(e) })
  const [sub] = bridge.subs.values()
  sendOn(sub, { not: 'a delivery' })
  sendOn(sub, { sourceId: 's', timestamp: 1, causalClock: { s: 1 }, payload: 'AQI=', writer: WRITER, seq: 5 })
  await until(() => got.length === 1, 'the good delivery')
  assert.equal(errors.length, 1)
  assert.equal(errors[0].code, 'DESERIALIZATION_FAILED')
  assert.deepEqual([...got[0].payload], [1, 2])
  assert.throws(() => decodeDelivery(null), { code: 'DESERIALIZATION_FAILED' })
})

test('followCrdtWriter and crdtInfo send their arguments and return the plugin answer', async () => {
  const calls = mock((cmd) =>
    cmd.endsWith('crdt_follow')
      ? 'crdt-collab-abababababababab'
      : { logName: 'crdt-collab', writer: WRITER, writers: [], clock: { a: 2 } }
  )
  assert.equal(await followCrdtWriter(WRITER), 'crdt-collab-abababababababab')
  await followCrdtWriter(WRITER, { logName: 'crdt-doc' })
  assert.deepEqual((await crdtInfo()).clock, { a: 2 })
  await crdtInfo({ logName: 'crdt-doc' })
  assert.deepEqual(
    calls.map((c) => [c.cmd, c.payload]),
    [
      ['plugin:nova-hypercore|crdt_follow', { publicKey: WRITER }],
      ['plugin:nova-hypercore|crdt_follow', { publicKey: WRITER, logName: 'crdt-doc' }],
      ['plugin:nova-hypercore|crdt_info', {}],
      ['plugin:nova-hypercore|crdt_info', { logName: 'crdt-doc' }]
    ]
  )
  clearMocks()
  mock(() => 42)
  await assert.rejects(followCrdtWriter(WRITER), { code: 'DESERIALIZATION_FAILED' })
  await assert.rejects(crdtInfo(), { code: 'DESERIALIZATION_FAILED' })
})

test('two Y.Docs converge through the bridge; remote updates are not broadcast again', async () => {
  const bridge = fakeBridge()
  const [a, b] = [new Y.Doc(), new Y.Doc()]
  const ba = await bindYDoc(a, { applyUpdate: Y.applyUpdate })
  const bb = await bindYDoc(b, { applyUpdate: Y.applyUpdate, sourceId: 'page-b' })
  // Concurrent edits, before either has seen the other's.
  a.getText('notes').insert(0, 'hello from a. ')
  b.getText('notes').insert(0, 'hello from b. ')
  b.getMap('meta').set('title', 'shared')
  await Promise.all([ba.flushed(), bb.flushed()])
  await until(
    () => a.getText('notes').toString() === b.getText('notes').toString() && a.getMap('meta').get('title') === 'shared',
    'the documents converge'
  )
  const text = a.getText('notes').toString()
  assert.match(text, /hello from a\. /)
  assert.match(text, /hello from b\. /)
  assert.equal(bridge.entries.length, 3, 'one entry per local change, no echo of remote ones')
  assert.deepEqual(
    bridge.entries.map((e) => e.sourceId),
    [String(a.clientID), 'page-b', 'page-b']
  )

  // A document bound later gets the whole state (fromStart by default).
  const c = new Y.Doc()
  const bc = await bindYDoc(c, { applyUpdate: Y.applyUpdate })
  await until(() => c.getText('notes').toString() === text, 'the late document catches up')
  assert.equal(c.getMap('meta').get('title'), 'shared')
  assert.equal(bridge.entries.length, 3, 'catching up broadcasts nothing')

  // An unbound document neither sends nor receives.
  await bb.unbind()
  a.getText('notes').insert(0, '>> ')
  await ba.flushed()
  await until(() => c.getText('notes').toString().startsWith('>> '), 'c gets the edit')
  assert.ok(!b.getText('notes').toString().startsWith('>> '))
  b.getText('notes').insert(0, 'offline ')
  await tick()
  assert.equal(bridge.entries.length, 4, 'b broadcasts nothing after unbind')
  assert.ok(!a.getText('notes').toString().includes('offline'))
  await ba.unbind()
  await bc.unbind()
  assert.equal(bridge.subs.size, 0)
})

test('a failed broadcast goes to onError and later updates still go out', async () => {
  const bridge = fakeBridge()
  const internals = window.__TAURI_INTERNALS__
  const real = internals.invoke
  let fail = true
  internals.invoke = async (cmd, args, options) => {
    if (cmd.endsWith('crdt_broadcast') && fail) {
      fail = false
      throw { code: 'PAYLOAD_TOO_LARGE', message: 'too large', logName: 'crdt-collab' }
    }
    return real(cmd, args, options)
  }
  const errors = []
  const doc = new Y.Doc()
  const binding = await bindYDoc(doc, { applyUpdate: Y.applyUpdate, onError: (e) => errors.push(e) })
  doc.getText('t').insert(0, 'lost')
  doc.getText('t').insert(0, 'kept')
  await binding.flushed()
  assert.equal(errors.length, 1)
  assert.equal(errors[0].code, 'PAYLOAD_TOO_LARGE')
  assert.equal(bridge.entries.length, 1)
  await binding.unbind()
})

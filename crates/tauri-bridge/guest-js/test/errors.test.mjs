// HypercoreError: the plugin's error objects and Tauri's ACL strings become one type.
import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'

import { clearMocks, mock } from './mock.mjs'
import { ERROR_CODES, HypercoreError, append, length, read, readRange, status } from '../dist/index.js'

afterEach(() => clearMocks())

const rejectWith = (value) =>
  mock(() => {
    throw value
  })

test('every one of the nine codes comes through with logName and seq', async () => {
  assert.equal(ERROR_CODES.length, 9)
  for (const code of ERROR_CODES) {
    rejectWith({ code, message: `m-${code}`, logName: 'e2e-notes', seq: 4 })
    const e = await read('e2e-notes', 4).catch((x) => x)
    assert.ok(e instanceof HypercoreError, code)
    assert.ok(e instanceof Error, code)
    assert.equal(e.name, 'HypercoreError')
    assert.equal(e.code, code)
    assert.equal(e.message, `m-${code}`)
    assert.equal(e.logName, 'e2e-notes')
    assert.equal(e.seq, 4)
    assert.deepEqual(e.toJSON(), { code, message: `m-${code}`, logName: 'e2e-notes', seq: 4 })
    clearMocks()
  }
})

test('a plugin error without logName and seq leaves them undefined', async () => {
  rejectWith({ code: 'IO_ERROR', message: 'disk' })
  const e = await length('e2e-notes').catch((x) => x)
  assert.equal(e.code, 'IO_ERROR')
  assert.equal(e.logName, undefined)
  assert.equal(e.seq, undefined)
  assert.ok(!('logName' in e.toJSON()))
})

test("Tauri's ACL denial (debug and release wording) is UNAUTHORIZED", async () => {
  const denials = [
    'nova-hypercore.read not allowed. Permissions associated with this command: nova-hypercore:allow-read, nova-hypercore:default',
    'Command plugin:nova-hypercore|read not allowed by ACL'
  ]
  for (const text of denials) {
    rejectWith(text)
    const e = await read('secret-log', 0).catch((x) => x)
    assert.ok(e instanceof HypercoreError)
    assert.equal(e.code, 'UNAUTHORIZED')
    assert.equal(e.message, text)
    assert.equal(e.cause, text)
    clearMocks()
  }
})

test("the plugin's own scope denial is the same code", async () => {
  rejectWith({ code: 'UNAUTHORIZED', message: 'log secret-log is outside the scope', logName: 'secret-log' })
  const e = await append('secret-log', new Uint8Array([1])).catch((x) => x)
  assert.equal(e.code, 'UNAUTHORIZED')
  assert.equal(e.logName, 'secret-log')
})

test('an argument error string is DESERIALIZATION_FAILED', async () => {
  rejectWith('invalid args `logName` for command `read`: command read missing required key logName')
  assert.equal((await read('x', 0).catch((x) => x)).code, 'DESERIALIZATION_FAILED')
})

test('anything else is IO_ERROR with the original as cause', async () => {
  for (const value of ['plugin nova-hypercore not found', { code: 'NOPE', message: 'm' }, 17, null]) {
    rejectWith(value)
    const e = await status().catch((x) => x)
    assert.ok(e instanceof HypercoreError)
    assert.equal(e.code, 'IO_ERROR')
    assert.equal(e.cause, value)
    clearMocks()
  }
})

test('readRange errors are HypercoreErrors too', async () => {
  rejectWith({ code: 'OUT_OF_RANGE', message: 'end 9 > length 3', logName: 'e2e-notes', seq: 9 })
  await assert.rejects(readRange('e2e-notes', 0, 9), { code: 'OUT_OF_RANGE', seq: 9 })
})

test('HypercoreError.from keeps a HypercoreError as it is', () => {
  const e = new HypercoreError('SIGNATURE_INVALID', 'bad', { logName: 'a', seq: 1 })
  assert.equal(HypercoreError.from(e), e)
})

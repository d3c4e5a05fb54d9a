// Golden vectors for the `oplog` file (crates/managed-core/src/oplog.rs), made and checked
// with the real JS hypercore 10.31.12 (lib/oplog.js, lib/messages.js).
//
//   cd js/golden && npm ci
//   node oplog-vectors.mjs generate ../../crates/managed-core/tests/golden/oplog
//   node oplog-vectors.mjs check    ../../crates/managed-core/tests/golden/oplog
//
// generate writes:
//   js-hypercore.oplog  the oplog of a real Hypercore (fixed key pair from SEED), after
//                       7 append batches: 3 header flushes (creation, 1st and 5th append)
//                       so both slots are used, and 2 entries after the last flush.
//   js-hypercore.json   what JS decodes from it (for the record; the Rust test pins the
//                       same values by hand).
//   js-made.oplog       an oplog built with lib/oplog.js from the fixed HEADER_A, HEADER_B
//                       and ENTRIES below (the Rust test encodes the same values and
//                       asserts byte equality).
//   js-messages.txt     `name hex` lines: m.oplog.header / m.oplog.entry encodings of the
//                       fixed values, one message each.
// check decodes rust-written.oplog (written by the Rust encoder, see oplog.rs tests) with
// lib/oplog.js and asserts it equals RUST_EXPECTED; exits non-zero otherwise.
import { createRequire } from 'node:module'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import assert from 'node:assert/strict'

const require = createRequire(import.meta.url)
const Hypercore = require('hypercore')
const Oplog = require('hypercore/lib/oplog.js')
const m = require('hypercore/lib/messages.js')
const caps = require('hypercore/lib/caps.js')
const crypto = require('hypercore-crypto')
const RAF = require('random-access-file')
const c = require('compact-encoding')

const SEED = Buffer.alloc(32, 0x2a)
const fill = (n, b) => Buffer.alloc(n, b)

const HEADER_A = {
  external: null,
  key: fill(32, 0x11),
  manifest: {
    hash: 'blake2b',
    static: null,
    signer: { signature: 'ed25519', namespace: caps.DEFAULT_NAMESPACE, publicKey: fill(32, 0x11) },
    multipleSigners: null
  },
  keyPair: { publicKey: fill(32, 0x11), secretKey: fill(64, 0x22) },
  userData: [{ key: 'hello', value: Buffer.from('world') }, { key: 'empty', value: null }],
  tree: { fork: 2, length: 300, rootHash: fill(32, 0x33), signature: fill(64, 0x44) },
  hints: { reorgs: [{ from: 1, to: 2, ancestors: 250 }], contiguousLength: 70000 }
}

const HEADER_B = {
  external: null,
  key: fill(32, 0x99),
  manifest: {
    hash: 'blake2b',
    static: null,
    signer: null,
    multipleSigners: {
      allowPatched: true,
      quorum: 2,
      signers: [
        { signature: 'ed25519', namespace: fill(32, 0x01), publicKey: fill(32, 0x02) },
        { signature: 'ed25519', namespace: fill(32, 0x03), publicKey: fill(32, 0x04) }
      ]
    }
  },
  keyPair: null,
  userData: [],
  tree: { fork: 0, length: 0, rootHash: null, signature: null },
  hints: { reorgs: [], contiguousLength: 0 }
}

const HEADER_C = {
  external: null,
  key: fill(32, 0xcc),
  manifest: { hash: 'blake2b', static: fill(32, 0xdd), signer: null, multipleSigners: null },
  keyPair: null,
  userData: [{ key: 'x', value: fill(300, 0xee) }],
  tree: { fork: 70000, length: 0x1_0000_0001, rootHash: fill(32, 0x01), signature: fill(64, 0x02) },
  hints: { reorgs: [], contiguousLength: 5 }
}

const E1 = { userData: { key: 'k', value: Buffer.from([1, 2, 3]) }, treeNodes: null, treeUpgrade: null, bitfield: null }
const E2 = { userData: { key: 'gone', value: null }, treeNodes: null, treeUpgrade: null, bitfield: null }
const E3 = {
  userData: null,
  treeNodes: [{ index: 0, size: 5, hash: fill(32, 0x55) }, { index: 2, size: 300, hash: fill(32, 0x66) }],
  treeUpgrade: { fork: 2, ancestors: 1, length: 2, signature: fill(64, 0x77) },
  bitfield: { drop: false, start: 0, length: 2 }
}
const E4 = { userData: null, treeNodes: null, treeUpgrade: null, bitfield: { drop: true, start: 70000, length: 1 } }

// rust-written.oplog: HEADER_C, then batch [E1, E3] atomic, [E4] not atomic, then a torn
// atomic batch (only its first, partial, entry on disk) that open must drop.
const RUST_EXPECTED = { header: HEADER_C, entries: [E1, E3, E4] }

function hex (b) { return b ? Buffer.from(b).toString('hex') : null }

// JSON view with buffers as hex, for comparing and printing
function plain (v) {
  if (v === null || v === undefined) return null
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return hex(v)
  if (Array.isArray(v)) return v.map(plain)
  if (typeof v === 'object') {
    const o = {}
    for (const k of Object.keys(v)) o[k] = plain(v[k])
    return o
  }
  return v
}

function oplogAt (file, readonly = false) {
  return new Oplog(new RAF(file), { headerEncoding: m.oplog.header, entryEncoding: m.oplog.entry, readonly })
}

async function generate (out) {
  fs.mkdirSync(out, { recursive: true })
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'golden-oplog-'))
  try {
    // 1. a real hypercore
    const keyPair = crypto.keyPair(SEED)
    const core = new Hypercore(path.join(tmp, 'core'), { keyPair })
    await core.ready()
    const batches = [['block-0'], ['block-1', 'block-2'], ['block-3'], ['block-4', 'block-5', 'block-6'], ['block-7'], ['block-8', 'block-9'], ['block-10']]
    for (const b of batches) await core.append(b.map(s => Buffer.from(s)))
    await core.close()
    fs.copyFileSync(path.join(tmp, 'core', 'oplog'), path.join(out, 'js-hypercore.oplog'))

    const ro = oplogAt(path.join(out, 'js-hypercore.oplog'), true)
    const { header, entries } = await ro.open()
    await ro.close()
    fs.writeFileSync(path.join(out, 'js-hypercore.json'), JSON.stringify({
      hypercore: require('hypercore/package.json').version,
      seed: hex(SEED),
      publicKey: hex(keyPair.publicKey),
      batches,
      header: plain(header),
      entries: plain(entries)
    }, null, 2) + '\n')

    // 2. an oplog made by lib/oplog.js from fixed values
    const made = path.join(tmp, 'made.oplog')
    const log = oplogAt(made)
    await log.open()
    await log.flush(HEADER_A)
    await log.flush(HEADER_B)
    await log.append([E1, E2], true)
    await log.append([E3, E4], false)
    await log.close()
    fs.copyFileSync(made, path.join(out, 'js-made.oplog'))

    // 3. single messages
    const lines = []
    for (const [name, h] of [['header_a', HEADER_A], ['header_b', HEADER_B], ['header_c', HEADER_C]]) {
      lines.push(`${name} ${hex(c.encode(m.oplog.header, h))}`)
    }
    for (const [name, e] of [['entry_1', E1], ['entry_2', E2], ['entry_3', E3], ['entry_4', E4]]) {
      lines.push(`${name} ${hex(c.encode(m.oplog.entry, e))}`)
    }
    lines.push(`default_namespace ${hex(caps.DEFAULT_NAMESPACE)}`)
    lines.push(`legacy_v0 ${hex(legacyHeader())}`)
    fs.writeFileSync(path.join(out, 'js-messages.txt'), lines.join('\n') + '\n')
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

// A version-0 header, which JS can decode but no longer encode: built field by field
// (types, userData, tree, signer keyPair, hints without contiguousLength), and checked
// here against what m.oplog.header.decode makes of it. oplog.rs builds the same bytes.
function legacyHeader () {
  const parts = []
  const enc = (e, v) => parts.push(c.encode(e, v))
  enc(c.uint, 0)
  enc(c.string, 'blake2b'); enc(c.string, 'raw'); enc(c.string, 'ed25519')
  enc(c.uint, 1); enc(c.string, 'a'); enc(c.buffer, Buffer.from('1'))
  enc(c.uint, 3); enc(c.uint, 9); enc(c.buffer, fill(32, 0x33)); enc(c.buffer, fill(64, 0x44))
  enc(c.buffer, fill(32, 0x11)); enc(c.buffer, fill(64, 0x22))
  enc(c.uint, 1); enc(c.uint, 5); enc(c.uint, 6); enc(c.uint, 7)
  const bytes = Buffer.concat(parts)
  const h = c.decode(m.oplog.header, bytes)
  assert.deepEqual(plain(h), plain({
    external: null,
    key: fill(32, 0x11),
    manifest: { hash: 'blake2b', static: null, signer: { signature: 'ed25519', namespace: caps.DEFAULT_NAMESPACE, publicKey: fill(32, 0x11) }, multipleSigners: null },
    keyPair: { publicKey: fill(32, 0x11), secretKey: fill(64, 0x22) },
    userData: [{ key: 'a', value: Buffer.from('1') }],
    tree: { fork: 3, length: 9, rootHash: fill(32, 0x33), signature: fill(64, 0x44) },
    hints: { reorgs: [{ from: 5, to: 6, ancestors: 7 }], contiguousLength: 0 }
  }))
  return bytes
}

async function check (dir) {
  const file = path.join(dir, 'rust-written.oplog')
  const log = oplogAt(file, true) // readonly: never truncates the committed fixture
  const { header, entries } = await log.open()
  await log.close()
  const got = plain({ header, entries })
  console.log(JSON.stringify(got, null, 2))
  assert.deepEqual(got, plain(RUST_EXPECTED))
  assert.equal(log.length, 3)
  console.error('rust-written.oplog: JS hypercore 10.31.12 decodes the expected header and 3 entries')
}

const [mode, dir] = process.argv.slice(2)
if (mode === 'generate' && dir) await generate(dir)
else if (mode === 'check' && dir) await check(dir)
else {
  console.error('usage: node oplog-vectors.mjs generate|check <dir>')
  process.exit(2)
}

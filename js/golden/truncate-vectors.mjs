// Golden vectors for a writer's truncation (crates/managed-core/src/core/storage/truncate.rs),
// made with the real JS hypercore 10.31.12 (docs/forks.md §2.2).
//
//   cd js/golden && npm ci
//   node truncate-vectors.mjs ../../crates/managed-core/tests/golden/truncate
//
// A core with the fixed key pair from SEED: append 10 blocks (`entry 0`..`entry 9`, one
// batch), truncate(5), append 2 (`entry 5 f1`, `entry 6 f1`), truncate(0). After each
// truncation JS has flushed (tree cut, header written, oplog entries dropped); the four
// files are copied to `<out>/<step>/` and `<out>/vectors.json` records the header JS
// decodes and the oplog entry bytes of the truncation (m.oplog.entry of the values JS
// wrote), hex.
import { createRequire } from 'node:module'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const require = createRequire(import.meta.url)
const Hypercore = require('hypercore')
const m = require('hypercore/lib/messages.js')
const crypto = require('hypercore-crypto')
const c = require('compact-encoding')

const SEED = Buffer.alloc(32, 0x2a)
const hex = (b) => (b ? Buffer.from(b).toString('hex') : null)

const out = process.argv[2]
if (!out) throw new Error('usage: node truncate-vectors.mjs <out dir>')
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'truncate-vectors-'))
const core = new Hypercore(dir, { keyPair: crypto.keyPair(SEED) })
await core.ready()

const vectors = { steps: [] }
const snapshot = (name, entry) => {
  const h = core.core.header
  const to = path.join(out, name)
  fs.mkdirSync(to, { recursive: true })
  for (const f of ['oplog', 'tree', 'bitfield', 'data']) {
    fs.copyFileSync(path.join(dir, f), path.join(to, f))
  }
  vectors.steps.push({
    name,
    fork: h.tree.fork,
    length: h.tree.length,
    rootHash: hex(h.tree.rootHash),
    signature: hex(h.tree.signature),
    reorgs: h.hints.reorgs.map((r) => ({ ...r })),
    contiguousLength: h.hints.contiguousLength,
    byteLength: core.byteLength,
    entry: hex(c.encode(m.oplog.entry, entry))
  })
}
const truncation = (oldLength) => ({
  userData: null,
  treeNodes: [],
  treeUpgrade: {
    fork: core.core.tree.fork,
    ancestors: core.length,
    length: core.length,
    signature: core.core.tree.signature
  },
  bitfield: { drop: true, start: core.length, length: oldLength - core.length }
})

await core.append(Array.from({ length: 10 }, (_, i) => Buffer.from('entry ' + i)))
await core.truncate(5)
snapshot('truncate-5', truncation(10))
await core.append([Buffer.from('entry 5 f1'), Buffer.from('entry 6 f1')])
await core.truncate(0)
snapshot('truncate-0', truncation(7))
await core.close()
fs.writeFileSync(path.join(out, 'vectors.json'), JSON.stringify(vectors, null, 2) + '\n')
fs.rmSync(dir, { recursive: true, force: true })
console.log('wrote', out)

// Golden vectors for merkle proofs, computed with the real JS hypercore 10.31.12.
//
//   npm ci --prefix js/golden && node js/golden/proof-vectors.mjs > crates/managed-core/tests/golden/proof/vectors.json
//
// For each length, a compat (hypercore 10) core signed by a fixed key pair gets
// deterministic blocks, then `core.core.tree.proof(request)` runs over a matrix of
// requests (block, hash, seek, upgrade and their combinations). The Rust tests in
// crates/managed-core/src/proof.rs rebuild the same tree and must produce identical
// proofs (node indexes, sizes, hashes and signature bytes), and verify these ones.
import Hypercore from 'hypercore'
import crypto from 'hypercore-crypto'
import flat from 'flat-tree'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const seed = Buffer.alloc(32)
for (let i = 0; i < 32; i++) seed[i] = 100 + i
const keyPair = crypto.keyPair(seed)

// Must match `block_data` in proof.rs tests.
function blockData (i) {
  return Buffer.from('block-' + i + '-' + 'x'.repeat((i * 7) % 13))
}

function hex (b) { return b ? Buffer.from(b).toString('hex') : null }
// Proof nodes are listed by index; `nodes` of each tree maps index -> [size, hash] once
// (the Rust test checks that table against its own tree, so indexes pin sizes and hashes).
let table = null
function nodes (list) {
  return list.map(n => {
    const known = table[n.index]
    if (known && (known[0] !== n.size || known[1] !== hex(n.hash))) throw new Error('two nodes at ' + n.index)
    table[n.index] = [n.size, hex(n.hash)]
    return n.index
  })
}
function proofJson (p) {
  return {
    fork: p.fork,
    block: p.block && { index: p.block.index, nodes: nodes(p.block.nodes) },
    hash: p.hash && { index: p.hash.index, nodes: nodes(p.hash.nodes) },
    seek: p.seek && { bytes: p.seek.bytes, nodes: nodes(p.seek.nodes) },
    upgrade: p.upgrade && {
      start: p.upgrade.start,
      length: p.upgrade.length,
      nodes: nodes(p.upgrade.nodes),
      additionalNodes: nodes(p.upgrade.additionalNodes)
      // the signature is always the tree's (checked below), listed once per tree
    }
  }
}

// Levels a replica holding only the roots of `length` is missing on the way from block i up.
function rootDistance (i, length) {
  const roots = flat.fullRoots(2 * length)
  const ite = flat.iterator(2 * i)
  let n = 0
  while (!roots.includes(ite.index)) { ite.parent(); n++ }
  return n
}

function requestsFor (n) {
  const reqs = []
  const blocks = n <= 13 ? [...Array(n).keys()] : [0, 1, 2, 31, 32, 50, 63, 64, 97, 98, 99]
  const starts = n <= 8 ? [...Array(n).keys()] : n <= 13 ? [0, 1, 4, 7, 8, 11, 12] : [0, 1, 7, 32, 50, 64, 99]
  for (const i of blocks) {
    reqs.push({ block: { index: i, nodes: 0 } })
    reqs.push({ block: { index: i, nodes: rootDistance(i, n) } })
  }
  for (const k of starts) {
    reqs.push({ upgrade: { start: k, length: n - k } })
    if (n - k > 1) reqs.push({ upgrade: { start: k, length: 1 } })
    if (n - k > 2) reqs.push({ upgrade: { start: k, length: Math.floor((n - k) / 2) } })
    for (const i of blocks) {
      // block at or after the start: proven through the upgrade; before it: through the replica's tree
      reqs.push({ block: { index: i, nodes: 0 }, upgrade: { start: k, length: n - k } })
      if (i < k) reqs.push({ block: { index: i, nodes: rootDistance(i, k) }, upgrade: { start: k, length: n - k } })
    }
  }
  // hash requests for every node of small trees, a few for big ones
  const hashes = []
  for (let idx = 0; idx < 2 * n - 1; idx++) {
    if (flat.rightSpan(idx) < 2 * n && (n <= 13 || idx % 17 === 0)) hashes.push(idx)
  }
  for (const h of hashes) {
    reqs.push({ hash: { index: h, nodes: 0 } })
    if (n > 1) reqs.push({ hash: { index: h, nodes: 0 }, upgrade: { start: 0, length: n } })
  }
  // seeks, alone, with a block, and with an upgrade
  let total = 0
  for (let i = 0; i < n; i++) total += blockData(i).length
  const seeks = n <= 13 ? [...Array(total + 1).keys()].filter(b => b % (n <= 8 ? 4 : 9) === 0) : [0, 1, 100, 555, 1000, total - 1]
  for (const bytes of seeks) {
    reqs.push({ seek: { bytes } })
    reqs.push({ seek: { bytes }, upgrade: { start: 0, length: n } })
    if (n > 2) reqs.push({ seek: { bytes }, upgrade: { start: 1, length: n - 1 } })
    reqs.push({ block: { index: n - 1, nodes: rootDistance(n - 1, n) }, seek: { bytes } })
    reqs.push({ block: { index: 0, nodes: rootDistance(0, n) }, seek: { bytes } })
  }
  return reqs
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'golden-proof-'))
try {
  const trees = []
  for (const n of [1, 2, 3, 5, 8, 13, 100]) {
    const core = new Hypercore(path.join(dir, 'c' + n), { keyPair, compat: true })
    await core.ready()
    for (let i = 0; i < n; i++) await core.append(blockData(i))
    const tree = core.core.tree
    const cases = []
    table = {}
    for (const req of requestsFor(n)) {
      const request = { fork: 0, block: null, hash: null, seek: null, upgrade: null, ...req }
      if (request.seek) request.seek = { ...request.seek, padding: 0 }
      try {
        const proof = await tree.proof(request)
        if (proof.upgrade && !proof.upgrade.signature.equals(tree.signature)) throw new Error('signature is not the tree signature')
        cases.push({ request: req, proof: proofJson(proof) })
      } catch (err) {
        cases.push({ request: req, error: err.code || err.message })
      }
    }
    trees.push({ length: n, byteLength: core.byteLength, signature: hex(tree.signature), nodes: table, cases })
    await core.close()
  }
  const pkg = JSON.parse(fs.readFileSync(new URL('./node_modules/hypercore/package.json', import.meta.url)))
  // nulls are left out: a missing field is null
  console.log(JSON.stringify({ hypercore: pkg.version, seed: hex(seed), publicKey: hex(keyPair.publicKey), trees }, (k, v) => v === null ? undefined : v))
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}

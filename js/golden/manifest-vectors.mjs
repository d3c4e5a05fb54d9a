// Golden vectors for hypercore 11 manifest cores (crates/managed-core/src/manifest.rs,
// multisig.rs, verifier.rs), made with the real JS hypercore 11.39.5 pinned in
// js/interop/package.json (`"hypercore11": "npm:hypercore@11.39.5"`).
//
//   cd js/interop && npm ci
//   node ../golden/manifest-vectors.mjs ../../crates/managed-core/tests/golden/manifest
//
// Writes vectors.json:
//   core       a default (compat off) Hypercore 11 made with the ed25519 key pair of seed
//              00 01 .. 1f, then "a", "b", "c" appended one at a time: public key, core
//              key, encoded manifest, discovery key, and per length: tree hash, the
//              112-byte signable and the stored signature (the multisig container).
//   manifests  other manifest shapes (version 0 compat / quorum / static, version 1 with
//              prologue and patch, version 2 with linked keys and user data) encoded and
//              hashed by lib/verifier.js, so the codec is pinned beyond the default.
import { createRequire } from 'node:module'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(path.join(here, '../interop/package.json'))
const Hypercore = require('hypercore11')
const pkg = require('hypercore11/package.json')
const Verifier = require('hypercore11/lib/verifier.js')
const caps = require('hypercore11/lib/caps.js')
const crypto = require('hypercore-crypto')

assert.equal(pkg.version, '11.39.5')

const out = process.argv[2]
if (!out) {
  console.error('usage: node manifest-vectors.mjs OUT_DIR')
  process.exit(2)
}

const hex = (b) => Buffer.from(b).toString('hex')
const seed = Buffer.from(Array.from({ length: 32 }, (_, i) => i))
const keyPair = crypto.keyPair(seed)

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'manifest-vectors-'))
const core = new Hypercore(dir, { keyPair })
await core.ready()
assert.equal(core.core.compat, false)

const lengths = []
for (const entry of ['a', 'b', 'c']) {
  await core.append(Buffer.from(entry))
  const signature = core.core.state.signature
  lengths.push({
    length: core.length,
    treeHash: hex(await core.treeHash()),
    signable: hex(await core.signable()),
    signature: hex(signature)
  })
}

const fill = (n, b) => Buffer.alloc(n, b)
const signer = (pk, ns = caps.DEFAULT_NAMESPACE) => ({ signature: 'ed25519', namespace: ns, publicKey: pk })
const shapes = {
  v0_compat: { version: 0, hash: 'blake2b', allowPatch: false, quorum: 1, signers: [signer(fill(32, 1))], prologue: null, linked: null, userData: null },
  v0_quorum: { version: 0, hash: 'blake2b', allowPatch: true, quorum: 2, signers: [signer(fill(32, 1)), signer(fill(32, 2), fill(32, 3))], prologue: null, linked: null, userData: null },
  v0_static: { version: 0, hash: 'blake2b', allowPatch: false, quorum: 0, signers: [], prologue: { hash: fill(32, 9), length: 0 }, linked: null, userData: null },
  v1_prologue_patch: { version: 1, hash: 'blake2b', allowPatch: true, quorum: 1, signers: [signer(fill(32, 4))], prologue: { hash: fill(32, 5), length: 300 }, linked: null, userData: null },
  v1_no_signers: { version: 1, hash: 'blake2b', allowPatch: false, quorum: 0, signers: [], prologue: null, linked: null, userData: null },
  v2_linked_user_data: { version: 2, hash: 'blake2b', allowPatch: false, quorum: 1, signers: [signer(fill(32, 6))], prologue: null, linked: [fill(32, 7), fill(32, 8)], userData: Buffer.from('user data') }
}
const manifests = {}
for (const [name, m] of Object.entries(shapes)) {
  const encoded = Verifier.encodeManifest(m)
  manifests[name] = { encoded: hex(encoded), hash: hex(Verifier.manifestHash(m)) }
}

const vectors = {
  hypercore: pkg.version,
  seed: hex(seed),
  entries: ['a', 'b', 'c'],
  publicKey: hex(keyPair.publicKey),
  key: hex(core.key),
  discoveryKey: hex(core.discoveryKey),
  manifest: hex(core.getManifest({ raw: true })),
  manifestNamespace: hex(caps.MANIFEST),
  defaultNamespace: hex(caps.DEFAULT_NAMESPACE),
  lengths,
  manifests
}
await core.close()
fs.rmSync(dir, { recursive: true, force: true })

fs.mkdirSync(out, { recursive: true })
fs.writeFileSync(path.join(out, 'vectors.json'), JSON.stringify(vectors, null, 2) + '\n')
console.log(`wrote ${path.join(out, 'vectors.json')} (key ${vectors.key})`)

// Golden vectors for block encryption (crates/managed-core/src/encryption.rs, issue #25),
// made with the real JS packages: hypercore 10.31.12 from js/golden (its `encryptionKey`
// option, lib/block-encryption.js) and hypercore 11.39.5 from js/interop (`hypercore11`,
// its `encryption: { key }` option, lib/default-encryption.js). See
// docs/encryption-research.md for the scheme.
//
//   (cd js/golden && npm ci) && (cd js/interop && npm ci)
//   node js/golden/encryption-vectors.mjs crates/managed-core/tests/golden/encryption
//
// Three cores, each made from a fixed ed25519 key pair and the fixed encryption key
// 00 01 .. 1f, each written to `<out>/<name>.json`:
//   compat-h10       hypercore 10.31, default options: a compat core (key = public key),
//                    block key = keyed BLAKE2b-256 (key = core key, msg = encryption key).
//   manifest-v0-h10  hypercore 10.31, compat: false + manifest { signer }: key = manifest
//                    hash, namespaced block key.
//   manifest-v1-h11  hypercore 11.39.5, default options: key = hash of the default v1
//                    manifest, namespaced block key.
// Each core gets four blocks of 0, 1, 100 and 5000 bytes at fork 0, then truncate(2)
// (fork 1) and three more blocks (100, 5000 and 1 bytes, other contents) at fork 1. Every
// block is recorded as it was stored while it was in the core, so indexes 2 and 3 appear
// once at fork 0 (before the truncation) and once at fork 1.
//
// A block record is { index, fork, plaintext, stored } (hex): `stored` is what the
// data file / the tree / the wire hold (8-byte padding ‖ ciphertext), read back from
// JS's block store, and `plaintext` is what `get` returns with the key. The script
// asserts that the tree leaf covers the stored bytes and that a session without the key
// reads the stored bytes.
import { createRequire } from 'node:module'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const require10 = createRequire(path.join(here, 'package.json'))
const require11 = createRequire(path.join(here, '../interop/package.json'))
const H10 = require10('hypercore')
const H11 = require11('hypercore11')
const crypto = require10('hypercore-crypto')

assert.equal(require10('hypercore/package.json').version, '10.31.12')
assert.equal(require11('hypercore11/package.json').version, '11.39.5')

const out = process.argv[2]
if (!out) {
  console.error('usage: node encryption-vectors.mjs OUT_DIR')
  process.exit(2)
}
fs.mkdirSync(out, { recursive: true })

const hex = (b) => Buffer.from(b).toString('hex')
const ENCRYPTION_KEY = Buffer.from(Array.from({ length: 32 }, (_, i) => i))
// A block of `n` bytes whose contents depend on `salt`.
const block = (n, salt) => Buffer.from(Array.from({ length: n }, (_, j) => (j * 31 + salt * 17 + 5) & 0xff))
const FORK0 = [block(0, 0), block(1, 1), block(100, 2), block(5000, 3)]
const FORK1 = [block(100, 4), block(5000, 5), block(1, 6)]

// The stored bytes of block `i` (padding ‖ ciphertext), as the block store holds them.
async function stored (core, i, v11) {
  if (v11) return core.get(i, { raw: true })
  return core.core.blocks.get(i)
}

// Records blocks `from`.. of `core`, all written at the current fork.
async function record (core, v11, blocks, from) {
  for (let i = from; i < core.length; i++) {
    const raw = await stored(core, i, v11)
    const plain = await core.get(i)
    assert.equal(raw.length, plain.length + 8)
    if (!v11) {
      const leaf = await core.core.tree.get(2 * i)
      assert.equal(leaf.size, raw.length)
    }
    blocks.push({ index: i, fork: core.fork, plaintext: hex(plain), stored: hex(raw) })
  }
}

async function scenario (name, make, v11, notes) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'encryption-vectors-'))
  const core = make(dir)
  await core.ready()
  const blocks = []
  await core.append(FORK0)
  assert.equal(core.fork, 0)
  await record(core, v11, blocks, 0)
  await core.truncate(2)
  assert.equal(core.fork, 1)
  await core.append(FORK1)
  await record(core, v11, blocks, 2)
  assert.equal(core.padding, 8)

  const enc = core.encryption
  const vectors = {
    notes,
    library: v11 ? 'hypercore 11.39.5' : 'hypercore 10.31.12',
    compat: core.core.compat,
    publicKey: hex(keyPair.publicKey),
    coreKey: hex(core.key),
    encryptionKey: hex(ENCRYPTION_KEY),
    blockKey: hex(enc.blockKey),
    blindingKey: hex(enc.blindingKey),
    padding: core.padding,
    length: core.length,
    fork: core.fork,
    byteLength: core.byteLength,
    blocks
  }
  const key = core.key
  await core.close()

  // A session without the key reads the stored bytes (10.31: get returns them whole).
  if (!v11) {
    const plain = new H10(dir, key)
    await plain.ready()
    assert.equal(plain.padding, 0)
    for (const b of blocks.filter((b) => b.fork === 1)) {
      assert.equal(hex(await plain.get(b.index)), b.stored)
    }
    await plain.close()
  }
  fs.rmSync(dir, { recursive: true, force: true })
  fs.writeFileSync(path.join(out, name + '.json'), JSON.stringify(vectors, null, 2) + '\n')
  console.log('wrote', path.join(out, name + '.json'), blocks.length, 'blocks')
}

const keyPair = crypto.keyPair(Buffer.alloc(32, 0x01))

await scenario('compat-h10', (dir) => new H10(dir, { keyPair, encryptionKey: ENCRYPTION_KEY }), false,
  'hypercore 10.31.12 default core (compat: key = signer public key): blockKey = BLAKE2b-256(key = coreKey, msg = encryptionKey)')

await scenario('manifest-v0-h10', (dir) => new H10(dir, {
  keyPair,
  compat: false,
  manifest: { signer: { publicKey: keyPair.publicKey } },
  encryptionKey: ENCRYPTION_KEY
}), false,
'hypercore 10.31.12 non-compat core (manifest v0, key = manifest hash): blockKey = BLAKE2b-256(BLOCK_ENCRYPTION ‖ coreKey ‖ encryptionKey)')

await scenario('manifest-v1-h11', (dir) => new H11(dir, { keyPair, encryption: { key: ENCRYPTION_KEY } }), true,
  'hypercore 11.39.5 default core (manifest v1, key = manifest hash): blockKey = BLAKE2b-256(DEFAULT_ENCRYPTION ‖ coreKey ‖ encryptionKey)')

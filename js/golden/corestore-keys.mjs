// Golden vectors for corestore's key derivation, computed with the real JS corestore.
//
//   npm ci --prefix js/golden && node js/golden/corestore-keys.mjs > crates/manager/tests/golden/corestore-keys.json
//
// For a fixed primary key, each name's key pair comes from corestore itself
// (store.get({ name }) on a store opened with that primary key), so the Rust
// derivation in crates/manager/src/keys.rs must reproduce these bytes exactly.
import Corestore from 'corestore'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const primaryKey = Buffer.alloc(32)
for (let i = 0; i < 32; i++) primaryKey[i] = i
const names = ['atlas-memory', 'crdt-collab', 'agent-state', 'a', 'x-1']

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'golden-corestore-'))
try {
  const store = new Corestore(dir, { primaryKey })
  await store.ready()
  const vectors = []
  for (const name of names) {
    const core = store.get({ name })
    await core.ready()
    const keyPair = await store.createKeyPair(name)
    vectors.push({
      name,
      publicKey: core.key.toString('hex'),
      discoveryKey: core.discoveryKey.toString('hex'),
      // libsodium secret key = 32-byte seed followed by the public key
      seed: keyPair.secretKey.subarray(0, 32).toString('hex'),
      storageDir: path.relative(dir, path.dirname(core.core.oplog?.storage?.filename ?? path.join(dir, 'cores', '?', 'oplog')))
    })
  }
  const pkg = JSON.parse(fs.readFileSync(new URL('./node_modules/corestore/package.json', import.meta.url)))
  console.log(JSON.stringify({ corestore: pkg.version, primaryKey: primaryKey.toString('hex'), vectors }, null, 2))
  await store.close()
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}

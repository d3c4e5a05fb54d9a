// JS corestore 6.18.4 opens a store our manager wrote ("same storage" with corestore).
//
//   npm ci --prefix js/golden && node js/golden/open-store.mjs STORE NAME KEY UNTIL
//
// STORE is a manager's storage path. The primary key lives in STORE/keys/primary-key (not
// in STORE/corestore/, where corestore would keep it), so it is given to corestore
// explicitly: `new Corestore(STORE/corestore, { primaryKey })`. Then `store.get({ name })`
// must be our log NAME: the key corestore derives equals KEY (our public key, hex), and
// entries 0..UNTIL read back as `entry <i>` (what crates/manager/examples/peer.rs writes).
//
// corestore 6.18.4 (index.js, `_open`) writes the primary key it is given to
// `primary-key` in its directory when that file is missing or shorter than 32 bytes
// (and keeps the file as its lock file). That would put the store's secret back under
// `corestore/`, so after closing this script checks the file holds exactly the key it was
// given (corestore used ours, not a random one) and removes it. (Left in place, it would
// be removed by the manager's next `initialize`, which treats an identical
// `corestore/primary-key` as an unfinished migration; a different one is an error.)
//
// Prints: PRIMARY-KEY-FILE written|absent, KEY <hex>, VERIFIED <n>.
import Corestore from 'corestore'
import fs from 'node:fs'
import path from 'node:path'

const [store, name, key, until] = process.argv.slice(2)
if (!until) {
  console.error('usage: node open-store.mjs STORE NAME KEY UNTIL')
  process.exit(2)
}
const primaryKey = fs.readFileSync(path.join(store, 'keys', 'primary-key'))
if (primaryKey.length !== 32) throw new Error(`keys/primary-key holds ${primaryKey.length} bytes`)
const dir = path.join(store, 'corestore')
const keyFile = path.join(dir, 'primary-key')
if (fs.existsSync(keyFile)) throw new Error(`${keyFile} exists before corestore opened the store`)

const corestore = new Corestore(dir, { primaryKey })
await corestore.ready()
const core = corestore.get({ name })
await core.ready()
console.log(`KEY ${core.key.toString('hex')}`)
if (core.key.toString('hex') !== key) throw new Error(`corestore derived ${core.key.toString('hex')} for ${name}, expected ${key}`)
if (core.length < Number(until)) throw new Error(`length ${core.length} < ${until}`)
for (let i = 0; i < Number(until); i++) {
  const block = await core.get(i)
  if (block.toString() !== `entry ${i}`) throw new Error(`entry ${i} differs: ${block}`)
}
await corestore.close()

if (fs.existsSync(keyFile)) {
  if (!fs.readFileSync(keyFile).equals(primaryKey)) throw new Error(`${keyFile} differs from keys/primary-key`)
  fs.rmSync(keyFile)
  console.log('PRIMARY-KEY-FILE written')
} else {
  console.log('PRIMARY-KEY-FILE absent')
}
console.log(`VERIFIED ${until}`)

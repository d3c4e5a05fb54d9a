// Property 14's JS side: JS hypercore 10.31.12 (the pinned copy in js/interop) reading and
// appending entries in a store directory the Rust plugin wrote. One process serves many
// cases: one request per stdin line, one answer per stdout line.
//
//   read <dir> <keyhex> <seq>                         -> <payloadhex> ("-" when empty)
//   append <dir> <keyhex> <secrethex> <payloadhex|->  -> <seq>
//   length <dir> <keyhex>                             -> <length>
// Any failure answers "ERR <message>". The core is opened and closed per request, so
// the Rust side can reopen the directory between requests.
import { createRequire } from 'module'
import readline from 'readline'

const require = createRequire(new URL('../../../../js/interop/package.json', import.meta.url))
const Hypercore = require('hypercore')
const b4a = require('b4a')

const hex = (buf) => (buf.length === 0 ? '-' : b4a.toString(buf, 'hex'))
const bytes = (h) => (h === '-' ? b4a.alloc(0) : b4a.from(h, 'hex'))

async function open (dir, key, secret) {
  const publicKey = b4a.from(key, 'hex')
  const core = new Hypercore(dir, publicKey)
  await core.ready()
  // As corestore 6 does for a stored core: the key pair is given after open.
  if (secret) core.setKeyPair({ publicKey, secretKey: b4a.from(secret, 'hex') })
  return core
}

async function serve (words) {
  const [op, dir, key, ...rest] = words
  if (op === 'read') {
    const core = await open(dir, key)
    try {
      const seq = Number(rest[0])
      if (seq >= core.length) throw new Error(`seq ${seq} >= length ${core.length}`)
      return hex(await core.get(seq, { wait: false }))
    } finally { await core.close() }
  }
  if (op === 'append') {
    const core = await open(dir, key, rest[0])
    try {
      if (!core.writable) throw new Error('not writable with the given key pair')
      const { length } = await core.append(bytes(rest[1]))
      return String(length - 1)
    } finally { await core.close() }
  }
  if (op === 'length') {
    const core = await open(dir, key)
    try { return String(core.length) } finally { await core.close() }
  }
  throw new Error(`unknown request ${op}`)
}

const rl = readline.createInterface({ input: process.stdin })
for await (const line of rl) {
  const words = line.trim().split(/\s+/)
  if (words.length < 2) continue
  try {
    console.log(await serve(words))
  } catch (e) {
    console.log(`ERR ${String(e && e.message).replace(/\n/g, ' ')}`)
  }
}

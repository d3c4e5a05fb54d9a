// Golden vectors for the hypercore wire messages and protomux frames, made by the
// pinned JS packages (hypercore 11.39.5 and 10.31.12 `lib/messages.js`, protomux 3.12.1).
//
//   npm ci --prefix js/interop && node js/interop/wire-vectors.mjs > crates/replication/tests/golden/wire-vectors.json
//
// For each sample message: the bytes hypercore 11 writes (`js11`) and hypercore 10 writes
// (`js10`). The script also checks that hypercore 10 decodes hypercore 11's bytes to the
// same values for every field 10 knows (what a Rust peer sends, a JS 10 peer must read),
// and fails otherwise. crates/replication/tests/wire_golden.rs encodes the same values
// with our codec (must equal `js11`) and decodes both byte strings (must give the value).
import { createRequire } from 'node:module'
import assert from 'node:assert/strict'

const require = createRequire(import.meta.url)
const c = require('compact-encoding')
const m11 = require('hypercore11/lib/messages.js')
const m10 = require('hypercore/lib/messages.js')
const caps11 = require('hypercore11/lib/caps.js')
const Protomux = require('protomux')

const hex = (b) => Buffer.from(b).toString('hex')
const h32 = (n) => Buffer.alloc(32, n)
const node = (index, size, fill) => ({ index, size, hash: h32(fill) })

// The ten messages in protomux type order, as lib/replicator.js registers them.
const TYPES = ['sync', 'request', 'cancel', 'data', 'noData', 'want', 'unwant', 'bitfield', 'range', 'extension']

// The default manifest of a key pair (hypercore 11, compat off), 70 bytes encoded.
const manifest = {
  version: 1,
  hash: 'blake2b',
  allowPatch: false,
  quorum: 1,
  signers: [{ signature: 'ed25519', namespace: h32(4), publicKey: h32(5) }],
  prologue: null,
  linked: null,
  userData: null
}

const samples = {
  sync: [
    { fork: 0, length: 0, remoteLength: 0, canUpgrade: false, uploading: false, downloading: false, hasManifest: false, allowPush: false },
    { fork: 2, length: 5000, remoteLength: 70000, canUpgrade: true, uploading: true, downloading: true, hasManifest: false, allowPush: false },
    { fork: 0, length: 2 ** 40, remoteLength: 3, canUpgrade: true, uploading: true, downloading: false, hasManifest: true, allowPush: true }
  ],
  request: [
    { id: 1, fork: 0, block: { index: 5, nodes: 2 }, hash: null, seek: null, upgrade: null, manifest: false, priority: 0 },
    { id: 300, fork: 1, block: null, hash: null, seek: null, upgrade: { start: 10, length: 2 ** 33 }, manifest: true, priority: 0 },
    { id: 7, fork: 0, block: { index: 1, nodes: 0 }, hash: { index: 4, nodes: 1 }, seek: { bytes: 65536, padding: 3 }, upgrade: { start: 0, length: 8 }, manifest: true, priority: 2 }
  ],
  cancel: [{ request: 0 }, { request: 253 }, { request: 2 ** 32 }],
  data: [
    { request: 1, fork: 0, block: { index: 3, value: Buffer.from('hello'), nodes: [node(6, 10, 1), node(1, 5, 2)] }, hash: null, seek: null, upgrade: null, manifest: null },
    {
      request: 2,
      fork: 1,
      block: null,
      hash: null,
      seek: null,
      upgrade: { start: 0, length: 4, nodes: [node(3, 40, 3)], additionalNodes: [node(9, 12, 4)], signature: Buffer.alloc(64, 9) },
      manifest
    },
    { request: 3, fork: 0, block: { index: 0, value: Buffer.alloc(0), nodes: [] }, hash: { index: 8, nodes: [node(8, 1, 5)] }, seek: { bytes: 99, nodes: [node(2, 2, 6)] }, upgrade: null, manifest: null }
  ],
  noData: [{ request: 1, reason: 0 }, { request: 65536, reason: 3 }],
  want: [{ start: 0, length: 1024, any: false }, { start: 2048, length: 1024, any: true }],
  unwant: [{ start: 0, length: 1024, any: false }, { start: 5, length: 6, any: true }],
  bitfield: [{ start: 0, bitfield: new Uint32Array([0xffffffff, 1, 0x80000000]) }, { start: 32768, bitfield: new Uint32Array([]) }],
  range: [{ drop: false, start: 0, length: 1 }, { drop: false, start: 10, length: 5000 }, { drop: true, start: 2 ** 35, length: 0 }],
  extension: [{ name: 'nova/ping', message: Buffer.from([1, 2, 3]) }, { name: '', message: Buffer.alloc(0) }]
}

// Fields hypercore 10 does not know; everything else must decode the same.
const NEW_IN_11 = { sync: ['allowPush'], noData: ['reason'], want: ['any'], unwant: ['any'] }

function plain (v) {
  if (v === null || v === undefined) return null
  if (v instanceof Uint32Array) return Array.from(v)
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return hex(v)
  if (Array.isArray(v)) return v.map(plain)
  if (typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]))
  return v
}

const vectors = []
for (const [name, list] of Object.entries(samples)) {
  for (const value of list) {
    const js11 = c.encode(m11.wire[name], value)
    let js10 = null
    const v10 = { ...value }
    // hypercore 10 cannot encode a v1 manifest: its vector carries none.
    if (name === 'data' && value.manifest) v10.manifest = null
    js10 = c.encode(m10.wire[name], v10)
    // JS 10 reads JS 11's bytes (the v1 manifest aside, which 10 refuses by design).
    if (!(name === 'data' && value.manifest)) {
      const d10 = plain(c.decode(m10.wire[name], js11))
      const want = plain(value)
      for (const k of Object.keys(d10)) {
        if ((NEW_IN_11[name] || []).includes(k)) continue
        assert.deepEqual(d10[k], want[k], `${name}.${k}: JS 10 misreads JS 11's bytes`)
      }
    }
    vectors.push({ message: name, type: TYPES.indexOf(name), value: plain(value), js11: hex(js11), js10: hex(js10) })
  }
}

// The channel handshake and the capability it carries (caps.replicate).
const handshakeHash = Buffer.alloc(64)
for (let i = 0; i < 64; i++) handshakeHash[i] = i
const key = h32(0x42)
const capability = caps11.replicate(true, key, handshakeHash)
const handshake = {
  value: { seeks: true, capability: hex(capability) },
  js11: hex(c.encode(m11.wire.handshake, { seeks: true, capability })),
  capability: {
    handshakeHash: hex(handshakeHash),
    key: hex(key),
    initiator: hex(caps11.replicate(true, key, handshakeHash)),
    responder: hex(caps11.replicate(false, key, handshakeHash))
  }
}

// Protomux frames, captured from a real Protomux on a stream that records writes.
const written = []
const stream = {
  userData: null,
  destroyed: false,
  write (buf) { written.push(hex(buf)); return true },
  on () {},
  pause () {},
  resume () {},
  end () {},
  destroy () {}
}
const mux = new Protomux(stream)
const discoveryKey = h32(0x17)
const channel = mux.createChannel({
  protocol: 'hypercore/alpha',
  id: discoveryKey,
  handshake: m11.wire.handshake,
  messages: TYPES.map((t) => ({ encoding: m11.wire[t] }))
})
channel.open({ seeks: false, capability: h32(0x33) })
const open = written.pop()
// Pair it: the peer's open for the same id (its channel 1).
const peerOpen = Buffer.from(open, 'hex')
mux._ondata(peerOpen)
await new Promise((resolve) => setTimeout(resolve, 10))
channel.messages[0].send(samples.sync[1])
const single = written.pop()
mux.cork()
channel.messages[0].send(samples.sync[1])
channel.messages[8].send(samples.range[1])
channel.messages[4].send(samples.noData[1])
mux.uncork()
const batch = written.pop()
channel.close()
const close = written.pop()
// An open for a protocol nobody here speaks is rejected.
const other = Buffer.concat([Buffer.from([0, 1, 2]), c.encode(c.string, 'other/x'), c.encode(c.buffer, h32(1))])
mux._ondata(other)
const reject = written.pop()

const out = {
  generator: 'js/interop/wire-vectors.mjs',
  hypercore11: require('hypercore11/package.json').version,
  hypercore10: require('hypercore/package.json').version,
  protomux: require('protomux/package.json').version,
  vectors,
  handshake,
  protomux_frames: {
    open: { frame: open, id: 1, protocol: 'hypercore/alpha', key: hex(discoveryKey), handshake: { seeks: false, capability: hex(h32(0x33)) } },
    message: { frame: single, channel: 1, message: 'sync', value: plain(samples.sync[1]) },
    batch: { frame: batch, channel: 1, messages: [['sync', plain(samples.sync[1])], ['range', plain(samples.range[1])], ['noData', plain(samples.noData[1])]] },
    close: { frame: close, id: 1 },
    reject: { frame: reject, id: 2 }
  }
}
process.stdout.write(JSON.stringify(out, null, 1) + '\n')

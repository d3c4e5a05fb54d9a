// A JS Nova26-style peer for the interop suite: one hypercore, found on a HyperDHT.
//
//   node peer.mjs write VERSION DIR COUNT BOOTSTRAP        writer (server), stdin: `append K`
//   node peer.mjs read  VERSION DIR KEY UNTIL BOOTSTRAP    reader (client), exits when verified
//                                                          (UNTIL `sparse:I,J,..`: only those;
//                                                          `seek:BYTES`: core.seek, prints SEEK <i> <offset>;
//                                                          `fork:LEN:F`: follows the log live
//                                                          until it is at fork F with LEN entries)
//   node peer.mjs dump  VERSION DIR KEY UNTIL [SECRET]     checks a directory written by Rust;
//                                                          with SECRET (64-byte hex), appends one entry
//   node peer.mjs read-tcp  VERSION DIR KEY UNTIL HOST:PORT  reader dialling a TCP peer (no DHT)
//                                                          (UNTIL `probe:MS`: one `get(0)` with
//                                                          that timeout; prints PROBE ok|<code> <message>)
//   node peer.mjs write-tcp VERSION DIR COUNT                writer listening on 127.0.0.1 (no DHT)
//
// Over TCP, `socket.pipe(core.replicate(isInitiator)).pipe(socket)`: the replication
// stream's raw side is a Noise secret stream, so this is the direct mode's wire
// (handshake, framing) as JS speaks it.
//
// VERSION: `10` (hypercore 10.31.12), `11` (hypercore 11, default: manifest v1 cores,
// whose key is the manifest's hash) or `11-compat` (hypercore 11 with `compat: true`:
// manifest-less cores whose key is the ed25519 public key, as hypercore 10 makes).
//
// Entries are `entry <i>` (the Rust peer writes the same); an entry appended at fork F > 0
// (after a truncation) is `entry <i> f<F>`. Writers take `truncate N` on stdin and print
// TRUNCATED <n> <fork>; readers print TRUNCATE <ancestors> <fork> on each 'truncate' event. Lines printed: READY <key>,
// LENGTH <n>, START <held>, CONNECTED (a swarm reader's first connection), PROGRESS <contiguous> <length> (as the Rust peer prints it:
// every 500 entries and when caught up, here only when entries arrive, so the first one
// of a full sync marks the first data), VERIFIED <n>, FETCHED <n>.
//
// NOVA_ENCRYPTION_KEY (hex; the suite's is 32 bytes): block encryption, in every role
// (hypercore 10.31 `encryptionKey`, hypercore 11 `encryption: { key }`; the same bytes
// for the same core: docs/encryption-research.md). Entries are compared as plaintext,
// `BYTES <n>` (after VERIFIED, and after a `write-tcp` writer's READY) is the keyed
// `core.byteLength`: the plaintext's bytes, 8 fewer per entry than the tree's. The key is
// stored nowhere: a `dump` of an encrypted directory needs it too. Without the variable
// a reader of an encrypted core is a seeder (it gets `padding ‖ ciphertext`).
//
// NOVA_SWARM_SEED (64 hex digits, `write`): the swarm key pair comes from this seed, so
// a restarted writer keeps its identity (the NAT suite's writer restart); otherwise each
// start has a new identity. NOVA_FIREWALLED=false: the DHT is told it is reachable
// (dht-rpc's `firewalled: false`: a public host), so its handshakes say OPEN.
import readline from 'readline'
import net from 'net'
import Hyperswarm from 'hyperswarm'
import HyperDHT from 'hyperdht'
import b4a from 'b4a'

const [role, version, dir, ...rest] = process.argv.slice(2)
const Hypercore = (await import(version.startsWith('11') ? 'hypercore11' : 'hypercore')).default
// NOVA_ENCRYPTION_KEY (hex, 64 digits in the suite): block encryption with that key, as
// hypercore 10.31 takes it (`encryptionKey`) and hypercore 11 (`encryption: { key }`).
const encryptionKey = process.env.NOVA_ENCRYPTION_KEY ? b4a.from(process.env.NOVA_ENCRYPTION_KEY, 'hex') : null
const encryption = !encryptionKey
  ? {}
  : version.startsWith('11') ? { encryption: { key: encryptionKey } } : { encryptionKey }
const options = { ...(version === '11-compat' ? { compat: true } : {}), ...encryption }
const say = (line) => console.log(line)
// NOVA_ENTRY_BYTES=N: entry i is `entry <i>;` repeated and cut at N bytes (the large
// transfers); unset, it is `entry <i>`. The Rust peer writes and checks the same.
const ENTRY_BYTES = Number(process.env.NOVA_ENTRY_BYTES || 0)
const entry = (i) => {
  const base = `entry ${i}`
  if (!ENTRY_BYTES) return b4a.from(base)
  const unit = base + ';'
  return b4a.from(unit.repeat(Math.ceil(ENTRY_BYTES / unit.length)).slice(0, ENTRY_BYTES))
}
// Entry i as a writer at `fork` appends it (fork > 0: after a truncation).
const entryAt = (i, fork) => (fork ? b4a.from(`entry ${i} f${fork}`) : entry(i))
const bootstrapOf = (s) => s.split(',').map((hp) => {
  const [host, port] = hp.split(':')
  return { host, port: Number(port) }
})
// A swarm on the DHT at `bootstrap` (with NOVA_FIREWALLED=false, one that says it is
// reachable), with `extra` options.
const swarmOf = (bootstrap, extra = {}) => {
  const nodes = bootstrapOf(bootstrap)
  const dht = process.env.NOVA_FIREWALLED === 'false'
    ? { dht: new HyperDHT({ bootstrap: nodes, firewalled: false }) }
    : {}
  return new Hyperswarm({ bootstrap: nodes, ...dht, ...extra })
}

// `USAGE <peak RSS MiB> <CPU seconds>` of this process, as `write` and `read` exit (the
// bench's UDX rows).
function sayUsage () {
  const u = process.resourceUsage()
  say(`USAGE ${(u.maxRSS / 1024).toFixed(1)} ${((u.userCPUTime + u.systemCPUTime) / 1e6).toFixed(2)}`)
}

// Appends `append K` requests from stdin until it closes; prints the new length.
// `uploads` prints `UPLOADED <n>`: the blocks this writer has sent to peers so far.
async function appendFromStdin (core) {
  let uploaded = 0
  core.on('upload', () => { uploaded++ })
  const rl = readline.createInterface({ input: process.stdin })
  for await (const line of rl) {
    if (line.trim() === 'uploads') {
      say(`UPLOADED ${uploaded}`)
      continue
    }
    const t = /^truncate (\d+)$/.exec(line.trim())
    if (t) {
      await core.truncate(Number(t[1]))
      say(`TRUNCATED ${core.length} ${core.fork}`)
      continue
    }
    const m = /^append (\d+)$/.exec(line.trim())
    if (!m) continue
    const more = []
    for (let i = core.length; i < core.length + Number(m[1]); i++) more.push(entryAt(i, core.fork))
    await core.append(more)
    say(`LENGTH ${core.length}`)
  }
}

// A reader: opens the core, says what it holds, connects with `connect(core)` (which
// returns the function that disconnects), then fetches and checks entries: `0..UNTIL`
// through `download`, or with UNTIL = `sparse:I,J,...` only those, one `get` each
// (what a sparse reader does). Prints START, VERIFIED and FETCHED.
async function read (key, until, connect) {
  const core = new Hypercore(dir, b4a.from(key, 'hex'), options)
  await core.ready()
  let held = 0
  for (let i = 0; i < core.length; i++) if (await core.has(i)) held++
  say(`START ${held}`)
  let fetched = 0
  let reported = 0
  core.on('download', () => {
    fetched++
    const have = core.contiguousLength
    if (have >= reported + 500 || (have === core.length && have > reported)) {
      reported = have
      say(`PROGRESS ${have} ${core.length}`)
    }
  })
  const disconnect = connect(core)
  if (until.startsWith('probe:')) {
    // Whether this version can read the core at all (a boundary check): no throw.
    let result
    try {
      const block = await core.get(0, { timeout: Number(until.slice('probe:'.length)) })
      result = b4a.equals(block, entry(0)) ? 'ok' : 'differs'
    } catch (e) {
      result = e.code ? `${e.code} ${e.message}` : e.message
    }
    say(`PROBE ${result} length ${core.length}`)
    await disconnect()
    await core.close()
    return
  }
  if (until.startsWith('seek:')) {
    const [index, offset] = await core.seek(Number(until.slice('seek:'.length)), { timeout: 60000 })
    say(`SEEK ${index} ${offset}`)
  } else if (until.startsWith('fork:')) {
    // Live: everything the writer has, through its truncations, until it is at fork F
    // with LEN entries. Entries below the lowest cut seen are the first fork's; the
    // rest must be fork F's (one truncation per run).
    const [len, fork] = until.slice('fork:'.length).split(':').map(Number)
    let cut = Infinity
    core.on('truncate', (ancestors, forkId) => {
      cut = Math.min(cut, ancestors)
      say(`TRUNCATE ${ancestors} ${forkId}`)
    })
    core.download({ start: 0, end: -1 })
    while (!(core.fork === fork && core.length >= len && core.contiguousLength >= len)) {
      await new Promise((resolve) => {
        const done = () => { core.off('append', done); core.off('truncate', done); core.off('download', done); resolve() }
        core.on('append', done)
        core.on('truncate', done)
        core.on('download', done)
        setTimeout(done, 200)
      })
    }
    for (let i = 0; i < len; i++) {
      const block = await core.get(i)
      const want = i < cut ? entry(i) : entryAt(i, fork)
      if (!b4a.equals(block, want)) throw new Error(`entry ${i} differs at fork ${fork}: ${block}`)
    }
    say(`VERIFIED ${len}`)
  } else if (until.startsWith('sparse:')) {
    const indices = until.slice('sparse:'.length).split(',').map(Number)
    for (const i of indices) {
      const block = await core.get(i)
      if (!b4a.equals(block, entry(i))) throw new Error(`entry ${i} differs: ${block}`)
    }
    say(`VERIFIED ${indices.length}`)
  } else {
    core.download({ start: 0, end: Number(until) })
    await verify(core, Number(until))
  }
  say(`FETCHED ${fetched}`)
  await disconnect()
  await core.close()
}

async function verify (core, until) {
  for (let i = 0; i < until; i++) {
    const block = await core.get(i)
    if (!b4a.equals(block, entry(i))) throw new Error(`entry ${i} differs: ${block}`)
  }
  say(`VERIFIED ${until}`)
  say(`BYTES ${core.byteLength}`)
}

if (role === 'write') {
  const [count, bootstrap] = rest
  const core = new Hypercore(dir, options)
  await core.ready()
  while (core.length < Number(count)) {
    const batch = []
    for (let i = core.length; i < Math.min(Number(count), core.length + 1000); i++) batch.push(entry(i))
    await core.append(batch)
  }
  const seed = process.env.NOVA_SWARM_SEED
  const swarm = swarmOf(bootstrap, seed ? { seed: b4a.from(seed, 'hex') } : {})
  swarm.on('connection', (conn) => core.replicate(conn))
  await swarm.join(core.discoveryKey, { server: true, client: false }).flushed()
  say(`READY ${b4a.toString(core.key, 'hex')}`)
  sayUsage()
  await appendFromStdin(core)
  await swarm.destroy()
  await core.close()
  sayUsage()
} else if (role === 'read') {
  const [key, until, bootstrap] = rest
  await read(key, until, (core) => {
    const swarm = swarmOf(bootstrap)
    let connected = false
    swarm.on('connection', (conn) => {
      if (!connected) say('CONNECTED')
      connected = true
      core.replicate(conn)
    })
    swarm.join(core.discoveryKey, { server: false, client: true })
    return () => swarm.destroy()
  })
  sayUsage()
} else if (role === 'read-tcp') {
  const [key, until, addr] = rest
  const [host, port] = addr.split(':')
  await read(key, until, (core) => {
    const socket = net.connect(Number(port), host)
    socket.on('error', () => {})
    const stream = core.replicate(true)
    stream.on('error', () => {})
    socket.pipe(stream).pipe(socket)
    return () => socket.destroy()
  })
} else if (role === 'write-tcp') {
  const [count] = rest
  const core = new Hypercore(dir, options)
  await core.ready()
  const batch = []
  for (let i = core.length; i < Number(count); i++) batch.push(entry(i))
  if (batch.length) await core.append(batch)
  const sockets = new Set()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    const stream = core.replicate(false)
    stream.on('error', () => {})
    socket.pipe(stream).pipe(socket)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  say(`READY ${b4a.toString(core.key, 'hex')} 127.0.0.1:${server.address().port}`)
  say(`BYTES ${core.byteLength}`)
  await appendFromStdin(core)
  // Gone: peers still connected (a seeder that keeps its connection) are dropped too.
  server.close()
  for (const socket of sockets) socket.destroy()
  await core.close()
} else if (role === 'dump') {
  const [key, until, secret] = rest
  const publicKey = b4a.from(key, 'hex')
  const keyPair = secret ? { publicKey, secretKey: b4a.from(secret, 'hex') } : null
  const core = new Hypercore(dir, publicKey, options)
  await core.ready()
  // As corestore 6 does for a stored core: the key pair is given after open.
  if (keyPair) core.setKeyPair(keyPair)
  if (core.length < Number(until)) throw new Error(`length ${core.length} < ${until}`)
  await verify(core, Number(until))
  if (keyPair) {
    if (!core.writable) throw new Error('not writable with the given key pair')
    await core.append(entry(core.length))
    say(`APPENDED ${core.length}`)
  }
  await core.close()
} else {
  console.error('usage: see the header of peer.mjs')
  process.exit(2)
}

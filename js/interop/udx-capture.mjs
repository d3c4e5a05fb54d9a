// Records the UDP datagrams two real udx-native 1.21.3 streams (C libudx) exchange
// through a recording proxy on loopback, as golden vectors for our own UDX packet codec
// (crates/replication/tests/golden/udx-packets.json; test: tests/udx_golden.rs).
// The proxy drops one DATA packet once, so the receiver answers with SACK blocks.
// Run: node js/interop/udx-capture.mjs > crates/replication/tests/golden/udx-packets.json
import UDX from 'udx-native'
import dgram from 'dgram'

const udx = new UDX()
const seen = []
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function bindUdx () {
  const s = udx.createSocket()
  s.bind(0, '127.0.0.1')
  return s
}

async function bindProxy () {
  const p = dgram.createSocket('udp4')
  await new Promise((resolve) => p.bind(0, '127.0.0.1', resolve))
  return p
}

// A <-> pA <-> pB <-> B: A sends to pA, which forwards to B (from pB); B sends to pB,
// which forwards to A (from pA).
async function pair (idA, idB, scene, dropSecondData) {
  const a = await bindUdx()
  const b = await bindUdx()
  const pA = await bindProxy()
  const pB = await bindProxy()
  let dataFromB = 0
  let dropped = false
  pA.on('message', (msg) => {
    seen.push({ scene, dir: 'A->B', hex: msg.toString('hex') })
    pB.send(msg, b.address().port, '127.0.0.1')
  })
  pB.on('message', (msg) => {
    if (dropSecondData && !dropped && msg[2] & 1) {
      dataFromB++
      if (dataFromB === 2) {
        dropped = true
        seen.push({ scene, dir: 'B->A', hex: msg.toString('hex'), dropped: true })
        return
      }
    }
    seen.push({ scene, dir: 'B->A', hex: msg.toString('hex') })
    pA.send(msg, a.address().port, '127.0.0.1')
  })
  const A = udx.createStream(idA)
  const B = udx.createStream(idB)
  A.connect(a, idB, pA.address().port, '127.0.0.1')
  B.connect(b, idA, pB.address().port, '127.0.0.1')
  return { A, B, close: async () => { await Promise.all([a.close(), b.close()]); pA.close(); pB.close() } }
}

function collect (stream, n) {
  return new Promise((resolve) => {
    let got = 0
    stream.on('data', (d) => { got += d.length; if (got >= n) resolve(got) })
  })
}

// 1: data both ways, a lost packet (SACK), a message, keepalive heartbeats, END both ways.
{
  const { A, B, close } = await pair(1, 2, 'stream', true)
  const gotA = collect(A, 5000)
  const gotB = collect(B, 5)
  A.write(Buffer.from('hello'))
  await gotB
  B.write(Buffer.alloc(5000, 7))
  await gotA
  await A.send(Buffer.from('datagram'))
  await sleep(50)
  A.setKeepalive(100)
  await sleep(350)
  A.setKeepalive(0)
  const endedA = new Promise((resolve) => A.on('end', resolve))
  const endedB = new Promise((resolve) => B.on('end', resolve))
  A.resume()
  B.resume()
  A.end()
  B.end()
  await Promise.all([endedA, endedB])
  await sleep(100)
  A.destroy()
  B.destroy()
  await close()
}

// 2: an abortive close.
{
  const { A, B, close } = await pair(0xdeadbeef, 0x10203040, 'destroy', false)
  const gotB = collect(B, 3)
  B.on('error', () => {})
  A.on('error', () => {})
  A.write(Buffer.from('abc'))
  await gotB
  await sleep(50)
  A.destroy()
  await sleep(200)
  B.destroy()
  await close()
}

console.log(JSON.stringify({
  generator: 'js/interop/udx-capture.mjs',
  'udx-native': '1.21.3',
  note: 'each datagram as sent by C libudx (through udx-native), in order per scene; dropped: the proxy did not forward it',
  packets: seen
}, null, 1))

// HyperDHT nodes for the NAT suite's simulated internet (`cargo xtask test-integration
// nat`): one node per host given, each bound to its own address, as @hyperswarm/testnet
// makes them (persistent, not firewalled). JS hyperdht classifies a NAT by sampling its
// address from several nodes and needs distinct hosts among them, so one host with
// several ports (what testnet.mjs starts) is not enough across NATs.
//
//   node dht-nodes.mjs HOST [HOST...]
//
// Prints `BOOTSTRAP host:port,host:port,...` (every node); stops when stdin closes.
import DHT from 'hyperdht'

const hosts = process.argv.slice(2)
if (hosts.length === 0) {
  console.error('usage: node dht-nodes.mjs HOST [HOST...]')
  process.exit(2)
}

// The first node is a bootstrapper: it bootstraps alone (an explicit empty list, never
// the public nodes) and is told its own address, so it has a node id at once. A first
// node made like the others (as @hyperswarm/testnet does) learns its address only from
// its own requests' replies; until then it has no id, other nodes leave it out of their
// routing tables, and a peer samples its NAT from the two others only: too few for JS
// to classify the NAT (it needs three samples), so nobody holepunches.
const PORT = 49737
const first = DHT.bootstrapper(PORT, hosts[0], { host: hosts[0] })
await first.fullyBootstrapped()
const bootstrap = [{ host: hosts[0], port: PORT }]
const nodes = [first]
for (const host of hosts.slice(1)) {
  const node = new DHT({ ephemeral: false, firewalled: false, bootstrap, host, port: 0 })
  await node.fullyBootstrapped()
  nodes.push(node)
}

console.log('BOOTSTRAP ' + nodes.map((n, i) => `${hosts[i]}:${n.address().port}`).join(','))
process.stdin.resume()
process.stdin.on('end', async () => {
  for (let i = nodes.length - 1; i >= 0; i--) await nodes[i].destroy()
  process.exit(0)
})

// A local HyperDHT testnet (@hyperswarm/testnet) on 127.0.0.1.
// Prints `BOOTSTRAP host:port[,host:port...]`; stops when stdin closes.
import createTestnet from '@hyperswarm/testnet'

const testnet = await createTestnet(3, { host: '127.0.0.1' })
console.log('BOOTSTRAP ' + testnet.bootstrap.map((b) => `${b.host}:${b.port}`).join(','))
process.stdin.resume()
process.stdin.on('end', async () => {
  await testnet.destroy()
  process.exit(0)
})

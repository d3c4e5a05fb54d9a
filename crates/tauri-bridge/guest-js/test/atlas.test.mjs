// ATLAS bindings: what storeMemoryNode and queryMemory send, and how the page iterator
// follows `next` (against a fake atlas_query that pages like the plugin: at most 500, limit
// clamped into 1..=500).
import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'

import { clearMocks, mock } from './mock.mjs'
import {
  HypercoreError,
  MAX_MEMORY_PAGE,
  queryAllMemory,
  queryMemory,
  queryMemoryPages,
  storeMemoryNode
} from '../dist/index.js'

afterEach(() => clearMocks())

const node = (i, agentSource = 'atlas', category = 'fact') => ({
  id: `n-${i}`,
  agentSource,
  category,
  content: `memory ${i}`,
  tags: ['t'],
  importance: 0.5,
  timestamp: 1_764_000_000_000 + i
})

/** A fake plugin holding `nodes`, answering atlas_query by category in log order. */
function fakeAtlas(nodes) {
  return mock((cmd, args) => {
    assert.equal(cmd, 'plugin:nova-hypercore|atlas_query')
    const all = nodes.filter((n) => n.category === args.category)
    const offset = args.offset ?? 0
    const size = Math.min(Math.max(args.limit ?? MAX_MEMORY_PAGE, 1), MAX_MEMORY_PAGE)
    const page = all.slice(offset, offset + size)
    const end = Math.min(offset, all.length) + page.length
    return { nodes: page, next: end < all.length ? end : null }
  })
}

test('storeMemoryNode sends { node } (and logName when given) to atlas_store', async () => {
  const calls = mock(() => 3)
  assert.equal(await storeMemoryNode(node(1)), 3)
  assert.equal(await storeMemoryNode(node(2), { logName: 'atlas-b' }), 3)
  assert.equal(calls[0].cmd, 'plugin:nova-hypercore|atlas_store')
  assert.deepEqual(calls[0].payload, { node: node(1) })
  assert.deepEqual(calls[1].payload, { node: node(2), logName: 'atlas-b' })
})

test('storeMemoryNode passes the plugin error through as a HypercoreError', async () => {
  mock(() => {
    throw { code: 'DESERIALIZATION_FAILED', message: 'importance: greater than 1' }
  })
  await assert.rejects(storeMemoryNode({ ...node(1), importance: 2 }), (e) => {
    assert.ok(e instanceof HypercoreError)
    assert.equal(e.code, 'DESERIALIZATION_FAILED')
    assert.match(e.message, /importance/)
    return true
  })
  clearMocks()
  mock(() => {
    throw 'Command plugin:nova-hypercore|atlas_store not allowed by ACL'
  })
  await assert.rejects(storeMemoryNode(node(1)), { code: 'UNAUTHORIZED' })
  clearMocks()
  mock(() => 'seven')
  await assert.rejects(storeMemoryNode(node(1)), { code: 'DESERIALIZATION_FAILED' })
})

test('queryMemory sends the query flat, with logName, offset and limit', async () => {
  const calls = mock(() => ({ nodes: [node(1)], next: null }))
  const page = await queryMemory({ by: 'time', start: 1, end: 2 })
  assert.deepEqual(page, { nodes: [node(1)], next: null })
  await queryMemory(
    { by: 'agent', agentSource: 'planner', end: 9 },
    { logName: 'atlas-b', offset: 4, limit: 10 }
  )
  await queryMemory({ by: 'category', category: 'fact' })
  assert.equal(calls[0].cmd, 'plugin:nova-hypercore|atlas_query')
  assert.deepEqual(calls[0].payload, { by: 'time', start: 1, end: 2 })
  assert.deepEqual(calls[1].payload, {
    by: 'agent',
    agentSource: 'planner',
    end: 9,
    logName: 'atlas-b',
    offset: 4,
    limit: 10
  })
  assert.deepEqual(calls[2].payload, { by: 'category', category: 'fact' })
})

test('queryMemory rejects a reply that is not a page', async () => {
  mock(() => [node(1)])
  await assert.rejects(queryMemory({ by: 'category', category: 'fact' }), {
    code: 'DESERIALIZATION_FAILED'
  })
})

test('queryMemoryPages follows next through every page; queryAllMemory joins them', async () => {
  const nodes = Array.from({ length: 1234 }, (_, i) => node(i, 'atlas', i % 2 ? 'fact' : 'plan'))
  const calls = fakeAtlas(nodes)
  const sizes = []
  for await (const page of queryMemoryPages({ by: 'category', category: 'fact' }, { limit: 200 })) {
    sizes.push(page.length)
  }
  assert.deepEqual(sizes, [200, 200, 200, 17])
  assert.deepEqual(
    calls.map((c) => c.payload.offset),
    [0, 200, 400, 600]
  )
  calls.length = 0
  const all = await queryAllMemory({ by: 'category', category: 'fact' }, { limit: 100_000 })
  assert.deepEqual(all, nodes.filter((n) => n.category === 'fact'))
  assert.equal(calls.length, 2, '617 nodes in pages of at most 500')
})

test('queryMemoryPages of an empty answer is one empty page', async () => {
  fakeAtlas([])
  const pages = []
  for await (const page of queryMemoryPages({ by: 'category', category: 'fact' })) pages.push(page)
  assert.deepEqual(pages, [[]])
})

test('queryMemoryPages refuses a next that does not advance (no endless loop)', async () => {
  mock(() => ({ nodes: [], next: 0 }))
  await assert.rejects(queryAllMemory({ by: 'category', category: 'fact' }), {
    code: 'DESERIALIZATION_FAILED'
  })
})

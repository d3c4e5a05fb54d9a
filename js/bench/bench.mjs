#!/usr/bin/env node
// JS side of the `cargo xtask bench` rows that the shared anchor (../shared/anchors/js-bench,
// hypercore 11 on RocksDB) has no counterpart for. Corestore 6 / hypercore 10: one
// directory of files per core (oplog, tree, bitfield, data), the format our store writes,
// so bytes on disk and files per log compare like for like.
//
//   node bench.mjs --workload disk_usage   one measurement, prints one JSON line
//   node bench.mjs --workload many_logs
//   node bench.mjs --list
//
// Fields as the Rust bench binary prints them (crates/bench: disk.rs, scale.rs); the
// constants below must match those files. Everything stays on the local disk; every
// wait is an awaited call with no network.

import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'

import Corestore from 'corestore'

const require = createRequire(import.meta.url)

const DISK_SIZES = [128, 1024, 16384] // entry sizes of disk_usage (bytes)
const DISK_N = 5_000 // entries per size
const BATCH = 100 // entries per append call
const LOGS = 1_000 // logs of many_logs

const now = () => performance.now()

function mkTmp(label) {
  const base = process.env.BENCH_TMPDIR || os.tmpdir()
  return fs.mkdtempSync(path.join(base, `js-bench-${label}-`))
}

function rmrf(dir) {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
}

const peakRssMib = () => +(process.resourceUsage().maxRSS / 1024).toFixed(1)
const rssMib = () => +(process.memoryUsage().rss / 1024 / 1024).toFixed(1)

// Apparent (st_size) and allocated (st_blocks * 512) bytes of every file under dir.
function dirBytes(dir) {
  let apparent = 0
  let allocated = 0
  let files = 0
  const walk = (d) => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name)
      if (ent.isDirectory()) walk(p)
      else {
        const st = fs.statSync(p)
        apparent += st.size
        allocated += st.blocks * 512
        files++
      }
    }
  }
  walk(dir)
  return { apparent, allocated, files }
}

function version(name) {
  try {
    return JSON.parse(fs.readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version
  } catch {
    return null
  }
}

function result(workload, ops, bytes, seconds, extra) {
  return {
    workload,
    ops,
    bytes,
    seconds: +seconds.toFixed(6),
    ops_per_s: +(ops / seconds).toFixed(1),
    mb_per_s: +(bytes / 1e6 / seconds).toFixed(3),
    peak_rss_mib: peakRssMib(),
    runtime: 'js',
    hypercore: version('hypercore'),
    corestore: version('corestore'),
    ...extra
  }
}

// DISK_N entries of each size, each size in its own fresh store (one core), appended
// in batches of BATCH; the store closed, then every file under it counted.
async function diskUsage() {
  const extra = {}
  let secs = 0
  let payloadAll = 0
  let allocAll = 0
  for (const size of DISK_SIZES) {
    const dir = mkTmp(`disk-${size}`)
    try {
      const store = new Corestore(dir)
      const core = store.get({ name: 'bench' })
      await core.ready()
      const data = []
      for (let i = 0; i < DISK_N; i++) data.push(randomBytes(size))
      const t0 = now()
      for (let i = 0; i < DISK_N; i += BATCH) await core.append(data.slice(i, i + BATCH))
      secs += (now() - t0) / 1000
      if (core.length !== DISK_N) throw new Error(`length ${core.length} != ${DISK_N}`)
      await store.close()
      const du = dirBytes(dir)
      const payload = DISK_N * size
      payloadAll += payload
      allocAll += du.allocated
      extra[`payload_bytes_${size}`] = payload
      extra[`alloc_bytes_${size}`] = du.allocated
      extra[`apparent_bytes_${size}`] = du.apparent
      extra[`files_${size}`] = du.files
      extra[`alloc_ratio_${size}`] = +(du.allocated / payload).toFixed(4)
      extra[`apparent_ratio_${size}`] = +(du.apparent / payload).toFixed(4)
    } finally {
      rmrf(dir)
    }
  }
  extra.alloc_ratio = +(allocAll / payloadAll).toFixed(4)
  extra.sizes = DISK_SIZES
  extra.entries_per_size = DISK_N
  return result('disk_usage', DISK_N * DISK_SIZES.length, payloadAll, secs, extra)
}

// LOGS named cores in one corestore, each opened and given one entry; the store closed;
// a new corestore on the same directory opens all of them again.
async function manyLogs() {
  const dir = mkTmp('many-logs')
  const name = (i) => `log-${String(i).padStart(4, '0')}`
  try {
    const rss0 = rssMib()
    const t0 = now()
    const store = new Corestore(dir)
    for (let i = 0; i < LOGS; i++) {
      const core = store.get({ name: name(i) })
      await core.ready()
      await core.append(Buffer.from(`log ${i} entry 0`))
    }
    const createSecs = (now() - t0) / 1000
    const rssCreated = rssMib()
    await store.close()
    const t1 = now()
    const again = new Corestore(dir)
    const cores = []
    for (let i = 0; i < LOGS; i++) {
      const core = again.get({ name: name(i) })
      await core.ready()
      if (core.length !== 1) throw new Error(`${name(i)}: length ${core.length} after reopen`)
      cores.push(core)
    }
    const reopenSecs = (now() - t1) / 1000
    const last = (await cores[LOGS - 1].get(0)).toString()
    if (last !== `log ${LOGS - 1} entry 0`) throw new Error(`last entry differs: ${last}`)
    const rssReopened = rssMib()
    await again.close()
    const du = dirBytes(dir)
    return result('many_logs', LOGS, 0, createSecs + reopenSecs, {
      logs: LOGS,
      create_seconds: +createSecs.toFixed(6),
      reopen_seconds: +reopenSecs.toFixed(6),
      rss_base_mib: rss0,
      rss_after_create_mib: rssCreated,
      rss_after_reopen_mib: rssReopened,
      files: du.files,
      alloc_bytes: du.allocated
    })
  } finally {
    rmrf(dir)
  }
}

const WORKLOADS = { disk_usage: diskUsage, many_logs: manyLogs }

const args = process.argv.slice(2)
if (args.includes('--list')) {
  for (const w of Object.keys(WORKLOADS)) console.log(w)
} else {
  const i = args.indexOf('--workload')
  const fn = i >= 0 ? WORKLOADS[args[i + 1]] : undefined
  if (!fn) {
    console.error(`give --workload one of: ${Object.keys(WORKLOADS).join(', ')}`)
    process.exit(2)
  }
  console.log(JSON.stringify(await fn()))
}

// The two-instance e2e (issue 24): two processes of this app, two stores, connected over
// direct TCP. The writer appends to `e2e-live` and shares it; the reader follows it by key
// and shows the entries arriving through `tail`, with the download progress of its
// `subscribe` channel. Both edit one Yjs text (window.Y, bound to the CRDT log `e2e-crdt`
// with bindYDoc, each following the other's CRDT writer) until both show the same text.
// Each instance ends with one line: `E2E OK role=... ...` or `E2E FAIL ...`.
'use strict'

const LIVE_LOG = 'e2e-live'
const CRDT_LOG = 'e2e-crdt'
const CRDT_WAIT_MS = 20000
const LIVE_ENTRIES = 200
const LIVE_INTERVAL_MS = 10

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]
}

/** Polls `done()` every 20 ms until it holds or `ms` passed (then fails with `what()`). */
async function until(done, ms, what) {
  const t0 = performance.now()
  while (!done()) {
    if (performance.now() - t0 > ms) throw new Error(`${what()} (after ${ms} ms)`)
    await sleep(20)
  }
}

function show(id, text) {
  document.getElementById(id).textContent = text
}

/** FNV-1a of a string, 8 hex digits: both windows report it for their text. */
function fnv(text) {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h.toString(16).padStart(8, '0')
}

/** A Y.Doc bound to the CRDT log, its text shown in the page. */
async function sharedText(H) {
  must(window.Y, 'the Yjs bundle (yjs.iife.js) is not loaded')
  const doc = new window.Y.Doc()
  const text = doc.getText('notes')
  text.observe(() => show('crdt', text.toString()))
  const binding = await H.bindYDoc(doc, { applyUpdate: window.Y.applyUpdate, logName: CRDT_LOG })
  const info = await H.crdtInfo({ logName: CRDT_LOG })
  return { doc, text, binding, writer: info.writer }
}

/** Waits until the text has both windows' lines; returns `len-hash`. */
async function converged(H, shared) {
  await until(
    () => shared.text.toString().includes('writer was here.') && shared.text.toString().includes('reader was here.'),
    CRDT_WAIT_MS,
    () => `the shared text is ${JSON.stringify(shared.text.toString())}`
  )
  await shared.binding.flushed()
  const t = shared.text.toString()
  step(`crdt: both edits in ${JSON.stringify(t)}`)
  return `${t.length}-${fnv(t)}`
}

async function liveWriter(H, invoke) {
  document.getElementById('live').hidden = false
  document.getElementById('download').hidden = true
  show('role', 'writer')
  const enc = new TextEncoder()
  await H.append(LIVE_LOG, enc.encode(JSON.stringify({ i: 0, t: Date.now() })))
  const keys = await H.share(LIVE_LOG)
  must(keys.writable && /^[0-9a-f]{64}$/.test(keys.publicKey), `share: ${JSON.stringify(keys)}`)
  step(`share ${LIVE_LOG}: key ${keys.publicKey.slice(0, 16)}…`)
  const shared = await sharedText(H)
  await invoke('announce', { line: `E2E-SHARE key=${keys.publicKey} crdt=${shared.writer}` })
  const go = await invoke('wait_line', { timeoutMs: 40000 })
  const readerCrdt = go && /^go crdt=([0-9a-f]{64})$/.exec(go.trim())
  must(readerCrdt, `expected "go crdt=<key>" from the runner, got ${go}`)
  await H.followCrdtWriter(readerCrdt[1], { logName: CRDT_LOG })
  shared.text.insert(0, 'writer was here. ')
  for (let i = 1; i <= LIVE_ENTRIES; i++) {
    await H.append(LIVE_LOG, enc.encode(JSON.stringify({ i, t: Date.now() })))
    show('count', `${i + 1} entries appended`)
    await sleep(LIVE_INTERVAL_MS)
  }
  step(`appended ${LIVE_ENTRIES} entries, one every ${LIVE_INTERVAL_MS} ms`)
  // The runner says when the reader has them all.
  const done = await invoke('wait_line', { timeoutMs: 40000 })
  must(done !== null && done.trim() === 'done', `expected "done" from the runner, got ${done}`)
  const st = await H.replicationStatus(LIVE_LOG)
  const remote = Object.values(st.remoteLengths)
  step(`replication: ${st.activePeers} peer(s), their length ${remote.join(', ')}`)
  must(st.localLength === LIVE_ENTRIES + 1, `local length ${st.localLength}`)
  must(
    st.activePeers >= 1 && remote.includes(LIVE_ENTRIES + 1),
    `replication status: ${JSON.stringify(st)} (the reader, at ${LIVE_ENTRIES + 1})`
  )
  const crdt = await converged(H, shared)
  return `E2E OK role=writer appended=${LIVE_ENTRIES + 1} peers=${st.activePeers} crdt=${crdt}`
}

async function liveReader(H, invoke, params) {
  document.getElementById('live').hidden = false
  show('role', 'reader')
  const events = []
  const unsubscribe = await H.subscribe((e) => {
    events.push(e)
    if (e.event === 'progress' && e.logName === LIVE_LOG) {
      const bar = document.getElementById('progress')
      bar.max = Math.max(1, e.total)
      bar.value = e.have
      show('progress-text', `${e.have} / ${e.total}`)
    }
  })
  const keys = await H.follow(LIVE_LOG, params.follow, { sparse: false })
  must(!keys.writable && keys.publicKey === params.follow, `follow: ${JSON.stringify(keys)}`)
  step(`follow ${LIVE_LOG} by key ${keys.publicKey.slice(0, 16)}…`)

  const dec = new TextDecoder()
  const latencies = []
  const list = document.getElementById('entries')
  let count = 0
  let last = -1
  let gaps = 0
  const errors = []
  const tail = await H.tail(
    LIVE_LOG,
    0,
    (seq, data) => {
      const now = Date.now()
      const entry = JSON.parse(dec.decode(data))
      if (seq !== last + 1 || entry.i !== seq) gaps++
      last = seq
      count++
      if (entry.i >= 1) latencies.push(now - entry.t)
      const li = document.createElement('li')
      li.textContent = `#${seq} arrived ${entry.i >= 1 ? `${now - entry.t} ms after its append` : ''}`
      list.prepend(li)
      while (list.children.length > 5) list.lastChild.remove()
      show('count', `${count} entries shown`)
    },
    { onError: (e) => errors.push(`${e.code}: ${e.message}`) }
  )
  const shared = await sharedText(H)
  await H.followCrdtWriter(params.crdtFollow, { logName: CRDT_LOG })
  shared.text.insert(0, 'reader was here. ')
  await invoke('announce', { line: `E2E-READER-READY crdt=${shared.writer}` })
  await until(
    () => count >= LIVE_ENTRIES + 1,
    30000,
    () => `the tail showed ${count} of ${LIVE_ENTRIES + 1} entries; errors ${errors.join('; ')}`
  )
  must(gaps === 0 && count === LIVE_ENTRIES + 1, `tail: ${gaps} gaps in ${count} entries`)
  const progressOf = () => events.filter((e) => e.event === 'progress' && e.logName === LIVE_LOG)
  await until(
    () => progressOf().some((e) => e.have === LIVE_ENTRIES + 1 && e.total === LIVE_ENTRIES + 1),
    5000,
    () => `no progress event with the whole log: ${JSON.stringify(progressOf().slice(-3))}`
  )
  const peers = events.filter((e) => e.event === 'peer-connect' && e.logName === LIVE_LOG).length
  await tail.stop()
  await unsubscribe()
  const crdt = await converged(H, shared)
  const p50 = percentile(latencies, 0.5)
  const p99 = percentile(latencies, 0.99)
  step(`tail: ${count} entries in order, append in writer -> shown here p50 ${p50} ms, p99 ${p99} ms`)
  step(`subscribe: ${progressOf().length} progress events, ${peers} peer-connect`)
  return (
    `E2E OK role=reader entries=${count} gaps=${gaps} live_p50_ms=${p50} live_p99_ms=${p99} ` +
    `live_samples=${latencies.length} progress_events=${progressOf().length} peer_connects=${peers} ` +
    `crdt=${crdt}`
  )
}

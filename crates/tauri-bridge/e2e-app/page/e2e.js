// The e2e checks, run in the app's webview through the plugin's withGlobalTauri script
// (window.__TAURI__.novaHypercore, the guest-js API that Tauri injects from api-iife.js).
// Ends with one line reported to the app: `E2E OK ...` or `E2E FAIL <why>`. The app's role
// (`e2e_params`) picks the checks: `single` (below), or `writer` / `reader` (live.js).
'use strict'

const MIB = 1 << 20
const ROUNDS = 5

function step(text) {
  const li = document.createElement('li')
  li.textContent = text
  document.getElementById('steps').appendChild(li)
}

function equal(a, b) {
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}

function must(ok, what) {
  if (!ok) throw new Error(what)
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

async function checks(H) {
  // 1. Append to a log in scope and read it back.
  const note = new TextEncoder().encode(`hello from the e2e window at ${new Date().toISOString()}`)
  const seq = await H.append('e2e-notes', note)
  must(Number.isInteger(seq), `append returned ${seq}`)
  const back = await H.read('e2e-notes', seq)
  must(back instanceof Uint8Array && equal(back, note), 'read-back bytes differ')
  step(`append e2e-notes -> seq ${seq}; read back ${back.byteLength} bytes, equal`)
  const n = await H.length('e2e-notes')
  must(n === seq + 1, `length ${n} after seq ${seq}`)
  const range = await H.readRange('e2e-notes', seq, n)
  must(range.length === 1 && equal(range[0], note), 'readRange differs')
  step(`length ${n}; readRange(${seq}, ${n}) equal`)

  // 2. A log outside the window's scope (e2e-*): one error type, UNAUTHORIZED.
  let denied = 'resolved'
  try {
    await H.read('secret-log', 0)
  } catch (e) {
    denied = e instanceof H.HypercoreError ? e.code : `not a HypercoreError: ${e}`
  }
  must(denied === 'UNAUTHORIZED', `read secret-log: ${denied}`)
  let deniedAppend = 'resolved'
  try {
    await H.append('secret-log', new Uint8Array([1]))
  } catch (e) {
    deniedAppend = e instanceof H.HypercoreError ? e.code : `not a HypercoreError: ${e}`
  }
  must(deniedAppend === 'UNAUTHORIZED', `append secret-log: ${deniedAppend}`)
  step(`read/append secret-log -> HypercoreError ${denied}`)

  // 3. 1 MiB append + read round trips (raw body in, raw bytes out).
  const big = new Uint8Array(MIB)
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >>> 11)) & 0xff
  const times = []
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now()
    const s = await H.append('e2e-notes', big)
    const got = await H.read('e2e-notes', s)
    times.push(performance.now() - t0)
    must(equal(got, big), `1 MiB round ${r}: bytes differ`)
  }
  const ms = median(times)
  step(`1 MiB append + read, ${ROUNDS} rounds: median ${ms.toFixed(1)} ms (first ${times[0].toFixed(1)} ms)`)

  // 4. Status lists only logs in scope.
  const st = await H.status()
  const names = st.logs.map((l) => l.logName)
  must(names.includes('e2e-notes') && !names.includes('secret-log'), `status logs ${names}`)
  step(`status: logs [${names.join(', ')}], ${st.totalByteSize} bytes`)

  // 5. Events over a subscribe channel: a truncation of a log in scope reaches the page,
  //    one of a log outside the scope does not.
  const { invoke } = window.__TAURI__.core
  const got = []
  const stop = await H.subscribe((e) => got.push(e))
  await invoke('truncate_for_e2e', { logName: 'secret-log', length: 0 })
  const fork = await invoke('truncate_for_e2e', { logName: 'e2e-notes', length: 1 })
  const t0 = performance.now()
  let ev
  while (!(ev = got.find((e) => e.event === 'truncate' && e.logName === 'e2e-notes'))) {
    must(performance.now() - t0 < 5000, `no truncate event within 5 s: ${JSON.stringify(got)}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  must(ev.kept === 1 && ev.length === 1 && ev.fork === fork, `truncate event ${JSON.stringify(ev)}`)
  must(!got.some((e) => e.logName === 'secret-log'), `an out-of-scope event: ${JSON.stringify(got)}`)
  // This window's own refused call comes back as a `refused` event (whatever log it named).
  try {
    await H.read('secret-log', 0)
  } catch (e) {
    must(e.code === 'UNAUTHORIZED', `read secret-log: ${e.code}`)
  }
  const t1 = performance.now()
  let refused
  while (!(refused = got.find((e) => e.event === 'refused' && e.logName === 'secret-log'))) {
    must(performance.now() - t1 < 5000, `no refused event within 5 s: ${JSON.stringify(got)}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  must(refused.error.code === 'UNAUTHORIZED', `refused event ${JSON.stringify(refused)}`)
  await stop()
  must((await H.length('e2e-notes')) === 1, 'length after the truncation')
  step(`subscribe: truncate e2e-notes -> kept ${ev.kept}, fork ${ev.fork}; nothing of secret-log; refused read of secret-log`)

  return (
    `E2E OK append=seq${seq} read=equal denied=${denied} truncate_event=fork${ev.fork} ` +
    `refused_event=${refused.error.code} ` +
    `roundtrip_1mib_ms=${ms.toFixed(1)} roundtrip_1mib_first_ms=${times[0].toFixed(1)} ` +
    `rounds=${ROUNDS} status_logs=${names.join(',')}`
  )
}

async function main() {
  const { invoke } = window.__TAURI__.core
  let line
  try {
    const api = window.__TAURI__ && window.__TAURI__.novaHypercore
    must(api, 'window.__TAURI__.novaHypercore is missing (the plugin\'s api-iife.js was not injected)')
    const params = await invoke('e2e_params')
    document.title = `nova-hypercore e2e (${params.role})`
    if (params.role === 'writer') line = await liveWriter(api, invoke)
    else if (params.role === 'reader') line = await liveReader(api, invoke, params)
    else line = await checks(api)
  } catch (e) {
    const why = e && e.code ? `${e.code}: ${e.message}` : String(e && e.message ? e.message : e)
    line = `E2E FAIL ${why.replace(/\s+/g, ' ')}`
  }
  const verdict = document.getElementById('verdict')
  verdict.textContent = line.startsWith('E2E OK') ? 'E2E OK' : 'E2E FAIL'
  verdict.className = line.startsWith('E2E OK') ? 'ok' : 'fail'
  document.getElementById('line').textContent = line
  // Let the page paint, then hold the window for the runner's screenshot.
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 300)))
  await invoke('ready_for_screenshot', { summary: verdict.textContent.replace(' ', '-') })
  await new Promise((resolve) => setTimeout(resolve, 200))
  await invoke('report', { line })
}

main()

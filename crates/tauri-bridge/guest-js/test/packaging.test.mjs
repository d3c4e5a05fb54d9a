// The package as apps consume it: by its name through the exports map (ESM `import` and
// CJS `require` give the same API), and the `withGlobalTauri` script ../api-iife.js, run
// in a fresh global as a webview would run it.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { test } from 'node:test'
import vm from 'node:vm'

const here = new URL('.', import.meta.url)
const pkg = JSON.parse(readFileSync(new URL('../package.json', here), 'utf8'))

test('import and require of the package name give the same API', async () => {
  const esm = await import('@nova26/plugin-nova-hypercore')
  const cjs = createRequire(import.meta.url)('@nova26/plugin-nova-hypercore')
  const names = Object.keys(esm).sort()
  assert.ok(names.includes('append') && names.includes('HypercoreError'), names.join())
  assert.deepEqual(Object.keys(cjs).sort(), names)
  assert.equal(cjs.PLUGIN_NAME, 'nova-hypercore')
  // @tauri-apps/api stays the app's: external in both builds, a peer dependency.
  const cjsText = readFileSync(new URL('../dist/index.cjs', here), 'utf8')
  assert.match(cjsText, /require\('@tauri-apps\/api\/core'\)/)
  assert.deepEqual(Object.keys(pkg.peerDependencies), ['@tauri-apps/api'])
  assert.equal(pkg.dependencies, undefined)
})

/** Runs api-iife.js in a new global; `tauri` is what `window.__TAURI__` starts as. */
function runIife(tauri) {
  const calls = []
  const window = {
    __TAURI_INTERNALS__: {
      transformCallback: () => 0,
      invoke: async (cmd, args, options) => {
        calls.push({ cmd, args, options })
        return 3
      }
    }
  }
  if (tauri) window.__TAURI__ = tauri
  window.window = window
  const script = readFileSync(new URL('../../api-iife.js', here), 'utf8')
  vm.runInNewContext(script, window)
  return { window, calls }
}

test('api-iife.js sets window.__TAURI__.novaHypercore, which invokes the plugin', async () => {
  const esm = await import('@nova26/plugin-nova-hypercore')
  const { window, calls } = runIife({})
  const api = window.__TAURI__.novaHypercore
  assert.deepEqual(Object.keys(api).sort(), Object.keys(esm).sort())
  assert.equal(await api.length('agent-state'), 3)
  // (The objects come from the script's realm: compare their JSON.)
  assert.deepEqual(JSON.parse(JSON.stringify(calls)), [
    { cmd: 'plugin:nova-hypercore|length', args: { logName: 'agent-state' } }
  ])
})

test('api-iife.js does nothing without window.__TAURI__ (withGlobalTauri off)', () => {
  const { window } = runIife(undefined)
  assert.equal(window.__TAURI__, undefined)
})

// Bundles tsc's ESM output (dist/index.js + index.d.ts; one TypeScript compile) into:
// - dist/index.cjs (+ index.d.cts, the same declarations for `require` users), with
//   `@tauri-apps/api` left external: it is a peer dependency;
// - ../api-iife.js, the plugin's `withGlobalTauri` script (build.rs registers it with
//   `global_api_script_path`; committed, as Tauri reads it when an app is built): one IIFE,
//   `@tauri-apps/api/core` bundled in, that sets `window.__TAURI__.novaHypercore` when the
//   page has `window.__TAURI__`. The shape of plugins-workspace's `@tauri-apps/plugin-*`.
import { readFileSync } from 'node:fs'
import { nodeResolve } from '@rollup/plugin-node-resolve'

const GLOBAL = 'novaHypercore'
const IIFE_VAR = '__TAURI_PLUGIN_NOVA_HYPERCORE__'

/** A warning is a build error (an unresolved import would otherwise be left in silently). */
const onwarn = (warning) => {
  throw new Error(`rollup: ${warning.message}`)
}

/** Emits dist/index.d.cts, a copy of tsc's dist/index.d.ts. */
const ctsDeclarations = {
  name: 'cts-declarations',
  generateBundle() {
    this.emitFile({
      type: 'asset',
      fileName: 'index.d.cts',
      source: readFileSync('dist/index.d.ts', 'utf8')
    })
  }
}

export default [
  {
    input: 'dist/index.js',
    output: { file: 'dist/index.cjs', format: 'cjs' },
    external: [/^@tauri-apps\/api/],
    plugins: [ctsDeclarations],
    onwarn
  },
  {
    input: 'dist/index.js',
    output: {
      file: '../api-iife.js',
      format: 'iife',
      name: IIFE_VAR,
      banner: "if ('__TAURI__' in window) {",
      footer: `Object.defineProperty(window.__TAURI__, '${GLOBAL}', { value: ${IIFE_VAR} }) }`
    },
    plugins: [nodeResolve()],
    onwarn
  }
]

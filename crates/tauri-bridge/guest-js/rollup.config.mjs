// Bundles tsc's ESM output (dist/index.js + index.d.ts; one TypeScript compile) into:
// - dist/index.cjs (+ a .d.cts per module, the same declarations for `require` users), with
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

/** The modules tsc writes to dist/ (index.ts re-exports the others). */
const MODULES = ['index', 'error', 'ipc', 'atlas', 'crdt']

/**
 * Emits dist/<module>.d.cts for each module: tsc's declarations with their relative
 * `./x.js` imports pointing at `./x.cjs` (so `require` users' TypeScript stays in the
 * CommonJS declarations).
 */
const ctsDeclarations = {
  name: 'cts-declarations',
  generateBundle() {
    for (const module of MODULES) {
      const source = readFileSync(`dist/${module}.d.ts`, 'utf8').replace(
        /(from\s+['"]\.\/[a-z-]+)\.js(['"])/g,
        '$1.cjs$2'
      )
      this.emitFile({ type: 'asset', fileName: `${module}.d.cts`, source })
    }
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

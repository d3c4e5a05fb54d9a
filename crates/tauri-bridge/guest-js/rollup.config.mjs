// The browser bundle for pages without a bundler (the e2e app's index.html): one IIFE that
// defines `window.NovaHypercore`, with `@tauri-apps/api/core` bundled in. Built from tsc's
// ESM output in dist/, so there is one TypeScript compile.
import { nodeResolve } from '@rollup/plugin-node-resolve'

export default {
  input: 'dist/index.js',
  output: {
    file: 'dist/nova-hypercore.iife.js',
    format: 'iife',
    name: 'NovaHypercore'
  },
  plugins: [nodeResolve()]
}

// Yjs as one IIFE (`window.Y`) for the e2e app's page, which has no bundler: the two-instance
// run edits a Y.Doc in both windows through `bindYDoc`. Not part of the package (yjs is the
// app's choice: the bindings take `Y.applyUpdate` as an argument).
import { nodeResolve } from '@rollup/plugin-node-resolve'

export default {
  input: 'node_modules/yjs/dist/yjs.mjs',
  output: {
    file: 'dist-e2e/yjs.iife.js',
    format: 'iife',
    name: 'Y'
  },
  plugins: [nodeResolve()]
}

// Node entry (package.json `exports` condition "node"): loads the wasm from disk synchronously.
// Node has no global WebSocket before v22: set `globalThis.WebSocket` (e.g. from the `ws` package)
// before creating a Chorus.
import { readFileSync } from 'node:fs';
import { init } from './dist/chorus.js';

init(readFileSync(new URL('./dist/chorus_sdk_bg.wasm', import.meta.url)));

export * from './dist/chorus.js';
export { default } from './dist/chorus.js';

// Renames the JS glue's side of the names the wasm and its wasm-bindgen glue share, after
// `wasm-opt --minify-imports-and-exports-and-modules` shortened them in the wasm (called by
// scripts/build-sdk.sh). wasm-bindgen's import names carry a 16-hex-digit hash each
// (`__wbg_setTimeout_9051d6fdfae54eae`), which appear in both files and hardly compress: shortening
// them to one or two letters saves about 1 KB of the gzipped download.
//
//   node sdk-wasm/minify-glue.mjs MAP.json MINIFIED.wasm GLUE.js
//
// MAP.json is what wasm-opt printed: `{ "imports": [[module, name, new]], "exports": [[name, new]] }`.
// GLUE.js is rewritten in place: the import object's keys and module name, and every `wasm.NAME`
// (the glue reaches exports only as `wasm.NAME`). Anything unexpected fails the build.
import { readFileSync, writeFileSync } from 'node:fs';

const [mapFile, wasmFile, glueFile] = process.argv.slice(2);
const fail = (msg) => {
  console.error(`minify-glue: ${msg}`);
  process.exit(1);
};
if (!glueFile) fail('usage: node minify-glue.mjs MAP.json MINIFIED.wasm GLUE.js');

const map = JSON.parse(readFileSync(mapFile, 'utf8'));
const wasmModule = new WebAssembly.Module(readFileSync(wasmFile));
const wasmImports = WebAssembly.Module.imports(wasmModule);
const wasmExports = new Set(WebAssembly.Module.exports(wasmModule).map((e) => e.name));
let glue = readFileSync(glueFile, 'utf8');
const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Replaces every match of `re` (global) by `to`; fails unless there are `min`..`max` matches. */
function replace(re, to, what, min = 1, max = 1) {
  const n = (glue.match(re) || []).length;
  if (n < min || n > max) fail(`${what}: ${n} occurrences in the glue (expected ${min}..${max})`);
  glue = glue.replace(re, to);
}

// Imports: the keys of the glue's import object (`NAME: function(...)`), one each.
const modules = new Set();
for (const [module, name, to] of map.imports) {
  const imp = wasmImports.find((i) => i.name === to);
  if (!imp) fail(`import ${name} -> ${to} missing from the wasm`);
  modules.add(`${module}\0${imp.module}`);
  replace(new RegExp(`(?<=[\\s{,])${esc(name)}(?=\\s*:)`, 'g'), to, `import ${name}`);
}
// The module name(s): `"./chorus_sdk_bg.js": import0`.
for (const pair of modules) {
  const [from, to] = pair.split('\0');
  replace(new RegExp(`(["'])${esc(from)}\\1(?=\\s*:)`, 'g'), JSON.stringify(to), `module ${from}`);
}
// Exports: `wasm.NAME` wherever the glue uses them (some, like `__abort_handler`, it does not).
for (const [name, to] of map.exports) {
  if (!wasmExports.has(to)) fail(`export ${name} -> ${to} missing from the wasm`);
  replace(new RegExp(`(?<=\\bwasm\\.)${esc(name)}\\b`, 'g'), to, `export ${name}`, 0, Infinity);
}

// Nothing the wasm no longer has may be left.
const left = glue.match(/\b__wbg_\w*_[0-9a-f]{16}\b|\bwasm\.(?:__wbg|__wbindgen|client_)\w*/g);
if (left) fail(`names left unrenamed: ${[...new Set(left)].join(', ')}`);
for (const imp of wasmImports) {
  if (!new RegExp(`(?<=[\\s{,])${esc(imp.name)}(?=\\s*:)`).test(glue)) fail(`the glue lacks import ${imp.name}`);
}
writeFileSync(glueFile, glue);
console.log(`minify-glue: ${map.imports.length} imports, ${map.exports.length} exports renamed`);

#!/usr/bin/env bash
# Builds the browser SDK: sdk-wasm/ (Rust) -> wasm-pack (release, profile wasm-release) -> wasm-opt -Oz
# -> short import/export names (wasm-opt + sdk-wasm/minify-glue.mjs) -> esbuild -> npm/dist/, then
# prints what a page downloads (raw and gzip bytes; tests/sdk compares it with pusher-js + Echo).
# Needs scripts/install-wasm-toolchain.sh to have run. `--js`: only the JS steps, reusing the wasm
# and its glue of the last full build (sdk-wasm/pkg): for work on npm/src.
set -euo pipefail
JS_ONLY=0
[ "${1:-}" = "--js" ] && JS_ONLY=1

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$ROOT/sdk-wasm/.tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
cd "$ROOT"

# The normal route is rustup's wasm32 target; the fallback installer registers `debian-wasm`.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown &&
  rustup toolchain list 2>/dev/null | grep -q '^debian-wasm'; then
  export RUSTUP_TOOLCHAIN=debian-wasm
fi

if [ "$JS_ONLY" = 0 ]; then
command -v wasm-opt >/dev/null || { echo "wasm-opt missing: run scripts/install-wasm-toolchain.sh" >&2; exit 1; }

# --no-opt: wasm-opt runs below with the npm binaryen (wasm-pack would try to download one).
# --no-pack/--no-gitignore: npm/ has its own package.json; no `*` .gitignore that would empty `npm pack`.
wasm-pack --log-level warn build sdk-wasm --target web --profile wasm-release \
  --out-dir pkg --out-name chorus_sdk --no-opt --no-pack --no-gitignore

mkdir -p npm/dist
rm -f npm/dist/*
# The features rustc's wasm32 output uses; both wasm-opt passes must accept them.
FEATURES=(--enable-bulk-memory --enable-bulk-memory-opt --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-reference-types --enable-multivalue)
wasm-opt -Oz --converge --zero-filled-memory --strip-debug --strip-producers --strip-target-features \
  "${FEATURES[@]}" sdk-wasm/pkg/chorus_sdk_bg.wasm -o npm/dist/chorus_sdk_bg.wasm
# Shorter names for what the wasm and the glue share (wasm-bindgen's imports carry a 16-hex-digit
# hash each, in both files): wasm-opt renames them in the wasm and prints the map, minify-glue.mjs
# applies it to the glue (and fails the build on anything it does not recognize).
wasm-opt --minify-imports-and-exports-and-modules "${FEATURES[@]}" \
  npm/dist/chorus_sdk_bg.wasm -o npm/dist/chorus_sdk_bg.wasm >sdk-wasm/pkg/names.json
cp npm/dist/chorus_sdk_bg.wasm sdk-wasm/pkg/chorus_sdk_bg.min.wasm
else
  mkdir -p npm/dist
  rm -f npm/dist/*.js
  cp sdk-wasm/pkg/chorus_sdk_bg.min.wasm npm/dist/chorus_sdk_bg.wasm
fi
cp sdk-wasm/pkg/chorus_sdk.js npm/dist/chorus_sdk.js
node sdk-wasm/minify-glue.mjs sdk-wasm/pkg/names.json npm/dist/chorus_sdk_bg.wasm npm/dist/chorus_sdk.js
# The JS: npm/src/ -> npm/dist/, minified ESM. The wrapper (npm/src/index.js) with the
# wasm-bindgen glue is dist/chorus.js; the wasm is found next to it through
# `new URL('chorus_sdk_bg.wasm', import.meta.url)`. Encrypted channels' crypto (npm/src/crypto.js,
# @noble/ciphers) is its own file, which chorus.js imports dynamically on first use (kept external
# so that chorus.js imports nothing else). The subpath entries (echo, vue, react) import the package
# by name, so an app gets one engine whichever entries it uses.
[ -d npm/node_modules/@noble/ciphers ] || (cd npm && npm ci --no-audit --no-fund --loglevel=error)
COMMON=(--bundle --format=esm --minify --target=es2020 --log-level=warning --legal-comments=none --outdir=npm/dist)
esbuild chorus=npm/src/index.js --external:./crypto.js "${COMMON[@]}"
esbuild crypto=npm/src/crypto.js echo=npm/src/echo.js vue=npm/src/vue.js react=npm/src/react.js "${COMMON[@]}" \
  --external:chorus-sdk --external:'chorus-sdk/*' --external:vue --external:react
rm npm/dist/chorus_sdk.js

size() { wc -c <"$1" | tr -d ' '; }
gz() { gzip -9 -c "$1" | wc -c | tr -d ' '; }
total_raw=0
total_gz=0
echo "what a page downloads (bytes; gzip -9):"
printf '  %-28s %8s %8s\n' file raw gzip
for f in npm/dist/chorus_sdk_bg.wasm npm/dist/chorus.js; do
  r=$(size "$f")
  g=$(gz "$f")
  total_raw=$((total_raw + r))
  total_gz=$((total_gz + g))
  printf '  %-28s %8d %8d\n' "${f#npm/}" "$r" "$g"
done
printf '  %-28s %8d %8d\n' total "$total_raw" "$total_gz"
echo "loaded only by apps that use them (bytes; gzip -9):"
for f in npm/dist/crypto.js npm/dist/echo.js npm/dist/vue.js npm/dist/react.js; do
  printf '  %-28s %8d %8d\n' "${f#npm/}" "$(size "$f")" "$(gz "$f")"
done

#!/usr/bin/env bash
# Installs what building and testing the browser SDK (sdk-wasm/, npm/) needs, skipping whatever is
# already present, so a rerun takes seconds:
#   - rustup target wasm32-unknown-unknown
#   - wasm-bindgen-cli 0.2.130 (must equal the `wasm-bindgen = "=0.2.130"` pin in sdk-wasm/Cargo.toml)
#   - wasm-pack 0.15.1
#   - wasm-opt from the npm package binaryen@132.0.0, in sdk-wasm/.tools (Debian's binaryen is too old
#     to read current wasm-bindgen output); scripts/build-sdk.sh puts it on PATH
#   - esbuild 0.28.2 (npm), same place: minifies the JS glue and wrapper for npm/dist
#   - Debian's chromium, for the headless browser tests (tests/sdk)
# If `rustup target add` fails (no route to rustup's server), falls back to
# ../shared/notes/install-wasm-toolchain-debian.sh when it exists (a wasm32 std built from Debian's
# rustc-web, registered as the rustup toolchain `debian-wasm`; build-sdk.sh then uses it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WASM_BINDGEN_VERSION=0.2.130
WASM_PACK_VERSION=0.15.1
BINARYEN_VERSION=132.0.0
ESBUILD_VERSION=0.28.2
TOOLS="$ROOT/sdk-wasm/.tools"
export PATH="$HOME/.cargo/bin:$PATH"

log() { echo "[install-wasm-toolchain] $*"; }

# 1. The wasm32 target.
if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "rustup target wasm32-unknown-unknown: present"
elif timeout 120 rustup target add wasm32-unknown-unknown; then
  log "rustup target wasm32-unknown-unknown: installed"
else
  fallback="$ROOT/../shared/notes/install-wasm-toolchain-debian.sh"
  if [ -f "$fallback" ]; then
    log "rustup target add failed; falling back to $fallback (toolchain debian-wasm)"
    bash "$fallback"
  else
    log "rustup target add failed and $fallback is missing" >&2
    exit 1
  fi
fi

# 2. wasm-bindgen-cli, the exact version of the crate (no --locked: its lockfile wants a crate
#    version this registry lacks).
if command -v wasm-bindgen >/dev/null && [ "$(wasm-bindgen --version | awk '{print $2}')" = "$WASM_BINDGEN_VERSION" ]; then
  log "wasm-bindgen $WASM_BINDGEN_VERSION: present"
else
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# 3. wasm-pack.
if command -v wasm-pack >/dev/null && [ "$(wasm-pack --version | awk '{print $2}')" = "$WASM_PACK_VERSION" ]; then
  log "wasm-pack $WASM_PACK_VERSION: present"
else
  log "installing wasm-pack $WASM_PACK_VERSION (a few minutes)"
  cargo install wasm-pack --version "$WASM_PACK_VERSION" --locked --force
fi

# 4. wasm-opt (binaryen's JS/wasm build, runs on node) and esbuild (minifies the JS the page loads).
tool_version() { node -p "require('$TOOLS/node_modules/$1/package.json').version" 2>/dev/null || true; }
if [ -x "$TOOLS/node_modules/.bin/wasm-opt" ] && [ -x "$TOOLS/node_modules/.bin/esbuild" ] &&
  [ "$(tool_version binaryen)" = "$BINARYEN_VERSION" ] && [ "$(tool_version esbuild)" = "$ESBUILD_VERSION" ]; then
  log "wasm-opt (npm binaryen $BINARYEN_VERSION), esbuild $ESBUILD_VERSION: present"
else
  log "installing npm binaryen@$BINARYEN_VERSION esbuild@$ESBUILD_VERSION into $TOOLS"
  mkdir -p "$TOOLS"
  [ -f "$TOOLS/package.json" ] || echo '{"name":"chorus-sdk-tools","private":true}' >"$TOOLS/package.json"
  npm install --prefix "$TOOLS" --no-audit --no-fund --save-exact \
    "binaryen@$BINARYEN_VERSION" "esbuild@$ESBUILD_VERSION"
fi

# 5. Chromium for the browser tests.
if [ -x /usr/bin/chromium ]; then
  log "chromium: present"
else
  log "installing chromium"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium
fi

log "done"

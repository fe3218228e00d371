#!/usr/bin/env bash
# Browser tests of the chat examples (examples/vue, examples/react): for each app, two users in
# headless Chromium against a real chorus, the example backend and the app, both as built for
# production (vite build + vite preview) and as `npm run dev` serves it.
# Needs the SDK built (npm/dist: scripts/build-sdk.sh) and the server (target/debug/chorus:
# cargo build -p chorus-server). CHORUS_BIN and CHROMIUM override the binaries' paths.
# Screenshots of both windows go to examples/tests/screenshots/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export CHORUS_BIN="${CHORUS_BIN:-$ROOT/target/debug/chorus}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

[[ -f "$ROOT/npm/dist/chorus.js" ]] || { echo "npm/dist/chorus.js missing: run scripts/build-sdk.sh first" >&2; exit 1; }
[[ -x "$CHORUS_BIN" ]] || { echo "$CHORUS_BIN missing: cargo build -p chorus-server" >&2; exit 1; }
[[ -x "$CHROMIUM" ]] || { echo "$CHROMIUM missing: apt-get install chromium" >&2; exit 1; }

# The backend is a standalone crate; it shares the workspace's target directory so that the
# dependencies it has in common with the server are compiled once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --locked --quiet --manifest-path "$ROOT/examples/backend/Cargo.toml"
export BACKEND_BIN="$CARGO_TARGET_DIR/debug/chorus-chat-backend"

for dir in tests vue react; do
  (cd "$ROOT/examples/$dir" && npm ci --no-audit --no-fund --loglevel=error)
done

cd "$HERE"
node --test --test-concurrency=1 chat.test.mjs

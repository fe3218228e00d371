#!/usr/bin/env bash
# Browser tests of the chat examples (examples/vue, examples/react): for each app, two users in
# headless Chromium against a real chorus, the example backend and the app, both as built for
# production (vite build + vite preview) and as `npm run dev` serves it (chat.test.mjs); then each
# app against two chorus nodes on Redis behind a proxy, nodes killed and restarted, with no message
# lost (recovery.test.mjs).
# Needs the SDK built (npm/dist: scripts/build-sdk.sh), the server (target/debug/chorus:
# cargo build -p chorus-server) and redis-server (apt-get install redis-server). CHORUS_BIN,
# CHROMIUM and REDIS_SERVER override the binaries' paths.
# Screenshots of both windows go to examples/tests/screenshots/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export CHORUS_BIN="${CHORUS_BIN:-$ROOT/target/debug/chorus}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export REDIS_SERVER="${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}"

[[ -f "$ROOT/npm/dist/chorus.js" ]] || { echo "npm/dist/chorus.js missing: run scripts/build-sdk.sh first" >&2; exit 1; }
[[ -x "$CHORUS_BIN" ]] || { echo "$CHORUS_BIN missing: cargo build -p chorus-server" >&2; exit 1; }
[[ -x "$CHROMIUM" ]] || { echo "$CHROMIUM missing: apt-get install chromium" >&2; exit 1; }
[[ -x "$REDIS_SERVER" ]] || { echo "$REDIS_SERVER missing: apt-get install redis-server" >&2; exit 1; }

# The backend is a standalone crate; it shares the workspace's target directory so that the
# dependencies it has in common with the server are compiled once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --locked --quiet --manifest-path "$ROOT/examples/backend/Cargo.toml"
cargo test --locked --quiet --manifest-path "$ROOT/examples/backend/Cargo.toml"
export BACKEND_BIN="$CARGO_TARGET_DIR/debug/chorus-chat-backend"

for dir in tests vue react; do
  (cd "$ROOT/examples/$dir" && npm ci --no-audit --no-fund --loglevel=error)
done

cd "$HERE"
node --test --test-concurrency=1 chat.test.mjs recovery.test.mjs

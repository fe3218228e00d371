#!/usr/bin/env bash
# Runs every test of the project, installing what they need first (idempotent: seconds when present).
#   1. Rust: cargo fmt --check, clippy -D warnings, unit + integration tests (the SDK's pure parts
#      natively; real listener, real clients, several chorus processes on a real redis-server, then
#      on a Sentinel and on a Redis Cluster)
#   1b. Fuzz: every cargo fuzz target briefly (scripts/fuzz.sh runs them longer)
#   2. Bench smoke: each load scenario of bench/ for a second or two (no message lost, no error)
#   3. JS: the real pusher-js, laravel-echo and pusher npm packages against the built chorus binary
#      (over TLS, and through nginx with deploy/nginx/chorus.conf); deploy/test.sh: the other
#      deployment files with systemd-analyze and a real supervisord
#   4. SDK: the wasm toolchain, then the browser SDK built and tested in Node and headless Chromium
#   5. Examples: the Vue and React chat apps with their backend, two users in headless Chromium
# Called by .ci/run. Each stage is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_rust
need_node
need_apt redis-server redis-server   # cluster tests start their own redis-server on a free loopback port
need_apt openssl openssl             # the SDK and TLS tests make certificates for wss:// servers
need_apt nginx nginx                 # tests/js/nginx.test.mjs: deploy/nginx in front of two nodes
need_apt supervisord supervisor      # deploy/test.sh: the supervisor program section, run for real

log "rust: format and lints"
cargo fmt --all -- --check
timeout 900 cargo clippy --locked --all-targets -- -D warnings
timeout 600 cargo clippy --locked -p chorus-sdk --all-targets -- -D warnings   # the SDK on the host (its unit tests)

log "rust: unit and integration tests"
timeout 1200 cargo test --locked
timeout 600 cargo test --locked -p chorus-sdk   # the SDK's pure parts (backoff, channels, auth), natively
for mode in sentinel cluster; do   # the cluster tests again, through a Sentinel and on a Redis Cluster
  CHORUS_TEST_REDIS=$mode timeout 600 cargo test --locked -p chorus-server --test cluster --test routing --test history
done

log "fuzz: each cargo fuzz target of fuzz/ for a few seconds (seed corpus in fuzz/corpus/)"
timeout 1200 bash scripts/fuzz.sh --seconds 15

timeout 300 cargo build --locked -p chorus-server
export CHORUS_BIN="$PWD/target/debug/chorus"

log "bench: smoke run of every load scenario against chorus (correctness only, no timing thresholds)"
timeout 300 cargo build --locked -p chorus-bench
timeout 300 target/debug/chorus-bench smoke --server-bin "$CHORUS_BIN"

log "js: pusher-js, laravel-echo and pusher SDK against chorus"
(cd tests/js && timeout 300 npm ci --no-audit --no-fund --loglevel=error && timeout 600 npm test)

log "deploy: the example config, the systemd unit (systemd-analyze verify), supervisor for real"
timeout 120 bash deploy/test.sh

log "sdk: wasm toolchain (skips what is installed)"
timeout 1800 bash scripts/install-wasm-toolchain.sh
export PATH="$HOME/.cargo/bin:$PATH"
timeout 600 cargo clippy --locked -p chorus-sdk --target wasm32-unknown-unknown -- -D warnings

log "sdk: build, then Node and headless Chromium tests against chorus"
timeout 900 bash tests/sdk/run.sh

log "examples: Vue and React chat apps, two users each, in headless Chromium"
timeout 900 bash examples/tests/run.sh

log "all tests passed"

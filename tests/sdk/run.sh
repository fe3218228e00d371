#!/usr/bin/env bash
# The browser SDK's test suite: builds the SDK (scripts/build-sdk.sh -> npm/dist), installs the
# test dependencies (npm ci) and runs the Node and headless-Chromium tests against a real chorus.
# Assumes scripts/install-wasm-toolchain.sh ran and target/debug/chorus is built
# (cargo build -p chorus-server); CHORUS_BIN and CHROMIUM override the binaries' paths.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

bash "$ROOT/scripts/build-sdk.sh"

cd "$HERE"
npm ci --no-audit --no-fund --loglevel=error
node --test --test-concurrency=1 --test-timeout=120000 node.test.mjs echo.test.mjs parity.test.mjs browser.test.mjs dashboard.test.mjs frameworks.test.mjs

#!/usr/bin/env bash
# Builds (release) and runs the chorus server. Arguments go to chorus, e.g.
#   scripts/server.sh --config chorus.toml --port 6001
# With no config it serves the built-in development app on 0.0.0.0:6001.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_rust
cargo build --release --locked -p chorus-server
exec target/release/chorus "$@"

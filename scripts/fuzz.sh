#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo fuzz, libFuzzer with AddressSanitizer) for a while each:
#   scripts/fuzz.sh [--seconds N]     (default 60 per target; CI runs a short pass)
# Seeds come from fuzz/corpus/<target>/ (committed); what the fuzzer adds goes to a scratch copy,
# and a crash leaves its input in fuzz/artifacts/<target>/ and fails the script.
# Needs cargo-fuzz (installed here if missing). On stable Rust, RUSTC_BOOTSTRAP=1 lets cargo fuzz
# pass the sanitizer flags it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=60
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
cd fuzz
TARGETS=$(cargo fuzz list)
cargo fuzz build --release
for t in $TARGETS; do
  mkdir -p "$SCRATCH/$t"
  cp corpus/"$t"/* "$SCRATCH/$t/"
  echo "fuzz: $t for ${SECONDS_EACH}s"
  set +e
  cargo fuzz run --release "$t" "$SCRATCH/$t" -- -max_total_time="$SECONDS_EACH" -max_len=65536 \
    -print_final_stats=1 >"$SCRATCH/$t.log" 2>&1
  rc=$?
  set -e
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$SCRATCH/$t.log" | sed 's/^/  /' || true
  if [ "$rc" -ne 0 ]; then
    # libFuzzer exits non-zero on a crash and leaves the input under artifacts/<target>/.
    tail -40 "$SCRATCH/$t.log" >&2
    echo "fuzz: $t failed (exit $rc); inputs: $(ls artifacts/"$t" 2>/dev/null | tr '\n' ' ')" >&2
    exit 1
  fi
done
echo "fuzz: every target ran ${SECONDS_EACH}s without a crash"

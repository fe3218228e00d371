#!/usr/bin/env bash
# Side-by-side benchmark of Chorus and Sockudo on this machine (127.0.0.1 only).
#
#   bench/run.sh [--rounds N] [--quick] [--only chorus|sockudo] [--cases "case ..."] [--no-plots]
#                [--baseline BIN]
#
# --baseline BIN adds a third server, `baseline`: another chorus binary (e.g. built from the previous
# commit) run with the same flags, so a change is measured before/after in the same run.
#
# Builds chorus and chorus-bench in release, installs Sockudo if it is missing (cargo install, log in
# /tmp/sockudo-install.log), then runs every scenario against each server in A B A B order (a fresh
# server process per case, on a free loopback port). Raw results: bench/results/<UTC stamp>/results.jsonl;
# summary table: summary.md beside it; plots: plots/ beside it (and bench/plots/ for a full run).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=2 QUICK=0 ONLY="" PLOTS=1 CASES="" BASELINE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --only) ONLY="$2"; shift 2 ;;
    --cases) CASES="$2"; shift 2 ;;   # run only these cases (names as in suite below)
    --no-plots) PLOTS=0; shift ;;
    --baseline) BASELINE="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

# Many sockets: the tool raises its own soft limit to the hard limit too.
# Many sockets: soft limit up to the hard limit (20000 in this sandbox, which caps the largest idle
# case at 19k connections: the server holds one descriptor per connection).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

FEATURES=""
[ "$PLOTS" = 1 ] && FEATURES="--features chorus-bench/plot"
# shellcheck disable=SC2086
cargo build --release -p chorus-server -p chorus-bench $FEATURES
CHORUS=target/release/chorus
BENCH=target/release/chorus-bench

install_sockudo() {
  echo "installing Sockudo (log: /tmp/sockudo-install.log); this takes long on 2 cores"
  {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q cmake clang protobuf-compiler
    if ! cargo install sockudo --locked --no-default-features --features local,redis; then
      echo "cargo install --locked failed; retrying without --locked"
      cargo install sockudo --no-default-features --features local,redis
    fi
  } >>/tmp/sockudo-install.log 2>&1
}

SOCKUDO="${SOCKUDO_BIN:-$(command -v sockudo || echo "$HOME/.cargo/bin/sockudo")}"
SERVERS="chorus sockudo"
[ -n "$ONLY" ] && SERVERS="$ONLY"
if [ -n "$BASELINE" ]; then
  [ -x "$BASELINE" ] || { echo "--baseline $BASELINE: not an executable" >&2; exit 2; }
  SERVERS="$SERVERS baseline"
fi
if [[ " $SERVERS " == *" sockudo "* ]] && [ ! -x "$SOCKUDO" ]; then
  install_sockudo
  SOCKUDO="$HOME/.cargo/bin/sockudo"
fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="bench/results/$STAMP"
mkdir -p "$OUT"
RES="$OUT/results.jsonl"
APP_ID=bench-app KEY=bench-key SECRET=bench-secret

{
  echo "date: $(date -u)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "memory: $(free -h | awk '/Mem:/ {print $2}')"
  echo "kernel: $(uname -r)"
  echo "chorus: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo '+local changes')"
  [ -n "$BASELINE" ] && echo "baseline: $BASELINE"
  [ -x "$SOCKUDO" ] && echo "sockudo: $("$SOCKUDO" --version 2>/dev/null | head -1)"
  echo "rounds: $ROUNDS quick: $QUICK"
  echo "open files limit: $(ulimit -n)"
} | tee "$OUT/machine.txt"

SERVER_PID="" PORT=""
start_server() { # name
  PORT=$("$BENCH" free-port)
  case "$1" in
    chorus|baseline)
      local bin="$CHORUS"
      [ "$1" = baseline ] && bin="$BASELINE"
      # The app's API rate limit lifted, as Sockudo's rate limiter is below (the rest: defaults);
      # a build from before the setting (a baseline) has no such key, and refuses unknown ones.
      printf '[[apps]]\nid = "%s"\nkey = "%s"\nsecret = "%s"\n' "$APP_ID" "$KEY" "$SECRET" >"$OUT/chorus.toml"
      if grep -q max_api_requests_per_second "$bin"; then
        echo 'max_api_requests_per_second = 0' >>"$OUT/chorus.toml"
      fi
      # Builds with the admin listener get a free port for it; older ones do not know the flag.
      local admin=()
      grep -q admin_port "$bin" && admin=(--admin-port 0)
      $SERVER_PIN "$bin" --config "$OUT/chorus.toml" --host 127.0.0.1 --port "$PORT" "${admin[@]}" \
        --log warn >>"$OUT/$1.log" 2>&1 &
      SERVER_PID=$! ;;
    sockudo)
      mkdir -p "$OUT/sockudo-cwd"
      # Same app, limits lifted to match Chorus's defaults (unlimited connections and API
      # events); per-connection queue left at Sockudo's default (1000 messages, then disconnect),
      # like Chorus's outbound_queue of 1024.
      (cd "$OUT/sockudo-cwd" && exec env HOST=127.0.0.1 PORT="$PORT" \
        SOCKUDO_DEFAULT_APP_ID="$APP_ID" SOCKUDO_DEFAULT_APP_KEY="$KEY" SOCKUDO_DEFAULT_APP_SECRET="$SECRET" \
        SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES=true SOCKUDO_DEFAULT_APP_ENABLE_USER_AUTHENTICATION=true \
        SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS=10000000 SOCKUDO_MAX_CONNECTIONS=0 \
        SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND=100000000 \
        SOCKUDO_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SECOND=100000000 \
        SOCKUDO_DEFAULT_APP_MAX_READ_REQUESTS_PER_SECOND=100000000 \
        SOCKUDO_DEFAULT_APP_MAX_PRESENCE_MEMBERS_PER_CHANNEL=100000 \
        RATE_LIMITER_ENABLED=false METRICS_ENABLED=false \
        ADAPTER_DRIVER=local CACHE_DRIVER=memory QUEUE_DRIVER=memory APP_MANAGER_DRIVER=memory \
        DEBUG=false SOCKUDO_LOG_PROD=warn RUST_LOG=warn \
        $SERVER_PIN "$SOCKUDO") >>"$OUT/sockudo.log" 2>&1 &
      SERVER_PID=$! ;;
  esac
  for _ in $(seq 1 300); do
    if (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then sleep 0.5; return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "$1 exited at start; see $OUT/$1.log" >&2; return 1; }
    sleep 0.1
  done
  echo "$1 did not listen on $PORT within 30 s" >&2
  return 1
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}

run_case() { # server case args...
  local server="$1" case="$2"; shift 2
  if [ -n "$CASES" ] && [[ " $CASES " != *" $case "* ]]; then return 0; fi
  # "-pin" cases: the server on core 0 and the tool on core 1, so neither takes the other's CPU
  # (the server's own capacity on one core, as with the tool on another machine).
  SERVER_PIN="" TOOL_PIN=""
  if [[ "$case" == *-pin ]]; then SERVER_PIN="taskset -c 0" TOOL_PIN="taskset -c 1"; fi
  if ! start_server "$server"; then
    echo "!! $server $case: server did not start" | tee -a "$OUT/run.log"
    stop_server
    return 0
  fi
  echo "== $server $case (load average: $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$OUT/run.log"
  timeout 900 $TOOL_PIN "$BENCH" --port "$PORT" --app-id "$APP_ID" --key "$KEY" --secret "$SECRET" \
    --server-pid "$SERVER_PID" --label "$server" --case "$case" --out "$RES" "$@" 2>&1 \
    | tee -a "$OUT/run.log" || echo "!! $server $case failed" | tee -a "$OUT/run.log"
  stop_server
}

suite() { # server
  local s="$1"
  if [ "$QUICK" = 1 ]; then
    run_case "$s" idle-1k idle --connections 1000 --hold 2
    run_case "$s" fanout-100 fanout --subscribers 200 --rate 100 --duration 3
    run_case "$s" max-fanout max-fanout --subscribers 200 --start-rate 100 --factor 2 --steps 4 --duration 2
    run_case "$s" chat-batch chat --rooms 200 --rate 0 --batch 10 --http-connections 16 --duration 3
    run_case "$s" presence presence --channels 4 --watchers 5 --churners 8 --rate 40 --duration 3
    return
  fi
  run_case "$s" idle-1k idle --connections 1000 --hold 3
  run_case "$s" idle-10k idle --connections 10000 --hold 5
  run_case "$s" idle-19k idle --connections 19000 --concurrency 128 --hold 5
  run_case "$s" fanout-100 fanout --subscribers 1000 --rate 100 --duration 15
  run_case "$s" fanout-200 fanout --subscribers 1000 --rate 200 --duration 10
  # The same with two tool threads: subscribers' frames are read in parallel, so less of the
  # tool's own queueing is in the latency (and the tool competes harder for the 2 cores).
  run_case "$s" fanout-100-t2 --threads 2 fanout --subscribers 1000 --rate 100 --duration 15
  run_case "$s" fanout-200-t2 --threads 2 fanout --subscribers 1000 --rate 200 --duration 10
  run_case "$s" max-fanout max-fanout --subscribers 1000 --start-rate 50 --factor 1.5 --steps 10 --duration 5
  run_case "$s" chat-http chat --rooms 1000 --rate 0 --batch 1 --http-connections 16 --duration 10
  run_case "$s" chat-batch chat --rooms 1000 --rate 0 --batch 10 --http-connections 16 --duration 10
  # The same with two tool threads and twice the HTTP connections: is the tool the limit?
  run_case "$s" chat-batch-t2 --threads 2 chat --rooms 1000 --rate 0 --batch 10 --http-connections 32 --duration 10
  # Server and tool on a core each: the server's capacity on one core, the tool never its limit.
  run_case "$s" chat-http-pin chat --rooms 1000 --rate 0 --batch 1 --http-connections 16 --duration 10
  run_case "$s" chat-batch-pin chat --rooms 1000 --rate 0 --batch 10 --http-connections 16 --duration 10
  run_case "$s" fanout-100-pin fanout --subscribers 1000 --rate 100 --duration 15
  run_case "$s" chat-2k chat --rooms 1000 --rate 2000 --duration 10
  run_case "$s" presence presence --channels 10 --watchers 10 --churners 20 --rate 100 --duration 10
  # Silent sockets and clients that never read, with a bystander (server RSS before/peak/after).
  run_case "$s" abuse abuse
}

# The kernel's floor: CPU of one small loopback write per subscriber, no server involved.
if [ -z "$CASES" ] || [[ " $CASES " == *" floor "* ]]; then
  for rate in 100 200; do
    "$BENCH" --label kernel --case "floor-$rate" --out "$OUT/floor.jsonl" \
      floor --sockets 1000 --rate "$rate" --bytes 150 --duration 10 | tee -a "$OUT/run.log"
  done
fi

for round in $(seq 1 "$ROUNDS"); do
  for s in $SERVERS; do
    echo "=== round $round: $s" | tee -a "$OUT/run.log"
    suite "$s"
  done
done

"$BENCH" report --results "$RES" ${BASELINE:+--baseline baseline} | tee "$OUT/summary.md"
if [ "$PLOTS" = 1 ]; then
  "$BENCH" plot --results "$RES" --out-dir "$OUT/plots"
  if [ "$QUICK" = 0 ] && [ -z "$ONLY" ] && [ -z "$BASELINE" ]; then
    mkdir -p bench/plots && cp "$OUT"/plots/*.png bench/plots/
  fi
fi
echo "results in $OUT"

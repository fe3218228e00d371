#!/usr/bin/env bash
# Tests the deployment files with the real tools, on 127.0.0.1 and free ports only:
#   1. deploy/chorus.toml starts chorus (as a systemd or supervisor service would run it) and a
#      SIGTERM stops it cleanly (exit 0);
#   2. deploy/systemd/chorus.service passes `systemd-analyze verify` (ExecStart pointed at the
#      built binary);
#   3. deploy/supervisor/chorus.conf runs chorus under a real supervisord: started, up, stopped
#      by `supervisorctl stop` with SIGTERM and exit status 0.
# (deploy/nginx/chorus.conf is run in front of two nodes with TLS by tests/js/nginx.test.mjs.)
# Needs CHORUS_BIN (default target/debug/chorus), node, systemd-analyze, supervisord (apt: supervisor).
set -euo pipefail
cd "$(dirname "$0")/.."
CHORUS_BIN="${CHORUS_BIN:-$PWD/target/debug/chorus}"
[ -x "$CHORUS_BIN" ] || { echo "$CHORUS_BIN missing: cargo build -p chorus-server" >&2; exit 1; }
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}
up() { # up PORT: GET /up answers ok (bash's /dev/tcp: no curl needed)
  { exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /up HTTP/1.0\r\n\r\n' >&3 && grep -q '"status":"ok"' <&3; } 2>/dev/null
  local ok=$?
  exec 3<&- 3>&- 2>/dev/null || true
  return $ok
}
wait_up() { # wait_up PORT SECONDS
  for _ in $(seq 1 $(($2 * 10))); do
    up "$1" && return 0
    sleep 0.1
  done
  return 1
}
fail() { echo "deploy test FAILED: $*" >&2; exit 1; }

# 1. The example config.
PORT=$(free_port)
"$CHORUS_BIN" --config deploy/chorus.toml --host 127.0.0.1 --port "$PORT" --admin-port 0 >"$TMP/example.log" 2>&1 &
PID=$!
PIDS+=("$PID")
wait_up "$PORT" 10 || { cat "$TMP/example.log"; fail "deploy/chorus.toml did not start"; }
kill -TERM "$PID"
STATUS=0
wait "$PID" || STATUS=$?
[ "$STATUS" = 0 ] || { cat "$TMP/example.log"; fail "SIGTERM exit status $STATUS, not 0"; }
echo "deploy: chorus.toml serves, SIGTERM exits 0"

# 2. The systemd unit (verify needs ExecStart to exist: the built binary stands in).
sed "s#/usr/local/bin/chorus#$CHORUS_BIN#" deploy/systemd/chorus.service >"$TMP/chorus.service"
if ! systemd-analyze verify "$TMP/chorus.service" 2>"$TMP/verify.log"; then
  cat "$TMP/verify.log"
  fail "systemd-analyze verify"
fi
# Only warnings about this machine (no such user here, no running systemd) are accepted.
if grep -v -E "chorus.service: (Failed to resolve|User|Group)|Failed to connect|System has not been booted|No such file or directory|^$" "$TMP/verify.log" | grep -q .; then
  cat "$TMP/verify.log"
  fail "systemd-analyze verify printed warnings about the unit"
fi
echo "deploy: chorus.service verifies"

# 3. Under supervisord: the program section as shipped, with this machine's paths.
PORT=$(free_port)
printf 'host = "127.0.0.1"\nport = %s\nadmin_port = 0\nshutdown_timeout = 2\n' "$PORT" >"$TMP/chorus.toml"
cat >"$TMP/supervisord.conf" <<EOF
[supervisord]
nodaemon=true
logfile=$TMP/supervisord.log
pidfile=$TMP/supervisord.pid
childlogdir=$TMP
minfds=4096
[unix_http_server]
file=$TMP/supervisor.sock
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$TMP/supervisor.sock
EOF
sed -e "s#/usr/local/bin/chorus#$CHORUS_BIN#" -e "s#/etc/chorus/chorus.toml#$TMP/chorus.toml#" \
  -e "s#/var/log/chorus.log#$TMP/chorus.log#" -e '/^user=/d' deploy/supervisor/chorus.conf >>"$TMP/supervisord.conf"
supervisord -c "$TMP/supervisord.conf" >"$TMP/supervisord.out" 2>&1 &
PIDS+=("$!")
wait_up "$PORT" 15 || { cat "$TMP/supervisord.log" "$TMP/chorus.log" 2>/dev/null; fail "chorus not up under supervisord"; }
# RUNNING once it has stayed up for startsecs.
for _ in $(seq 1 50); do
  supervisorctl -c "$TMP/supervisord.conf" status chorus | grep -q RUNNING && break
  sleep 0.1
done
supervisorctl -c "$TMP/supervisord.conf" status chorus | grep -q RUNNING || fail "supervisorctl does not show RUNNING"
supervisorctl -c "$TMP/supervisord.conf" stop chorus >/dev/null
grep -q "stopped: chorus (exit status 0)" "$TMP/supervisord.log" || { cat "$TMP/supervisord.log"; fail "chorus did not stop with exit status 0"; }
supervisorctl -c "$TMP/supervisord.conf" shutdown >/dev/null
echo "deploy: under supervisord, started, and stopped by SIGTERM with exit status 0"

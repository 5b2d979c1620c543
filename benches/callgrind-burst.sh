#!/usr/bin/env bash
# Instructions per delivery, `serve` against bare socketioxide (benches/bare_socketioxide.rs),
# counted by valgrind's callgrind: repeatable on a shared, noisy machine where CPU time is not.
# Each server runs under callgrind in turn and gets the same small burst
# (benches/callgrind-burst.yaml: 400 sessions in 4 rooms of 100, 800 posts, 80,000 deliveries)
# from a native `load-test`. Counting starts once the server answers /healthz (start-up and the
# demo data left out) and ends when the load test has finished, so it covers what
# benches/three-way.sh's CPU figure covers: dev logins, sessions opening, joins, posts, fan-out.
#
#   cargo build --release && cargo bench --bench bare_socketioxide --no-run
#   benches/callgrind-burst.sh                 # SERVERS="bare serve" by default
#   callgrind_annotate --inclusive=yes /tmp/callgrind-burst/serve.callgrind | head -60
#
# Prints, per server: instructions (Ir) counted / deliveries received. SERVE_BIN, BARE_BIN,
# LOADTEST, SERVE_FLAGS, SERVERS, OUT and PORT can be set as in three-way.sh. The profiles stay
# in OUT (NAME.callgrind) for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-7310}
OUT=${OUT:-/tmp/callgrind-burst}
SERVE_BIN=${SERVE_BIN:-$PWD/target/release/scmarket-ws}
LOADTEST=${LOADTEST:-$PWD/target/release/scmarket-ws}
SERVERS=${SERVERS:-bare serve}
mkdir -p "$OUT"
if [[ -z ${BARE_BIN:-} ]]; then
  BARE_BIN=$(cargo bench --bench bare_socketioxide --no-run 2>&1 |
    sed -nE 's/.*Executable .*\((.*bare_socketioxide-[0-9a-f]+)\).*/\1/p' | tail -1)
fi
[[ -x $BARE_BIN ]] || { echo "cannot build benches/bare_socketioxide.rs" >&2; exit 1; }

SERVER=
stop_server() {
  if [[ -n $SERVER ]]; then
    kill "$SERVER" 2> /dev/null || true
    wait "$SERVER" 2> /dev/null || true
    SERVER=
  fi
}
trap stop_server EXIT

run() { # NAME
  local name=$1 log="$OUT/$1"
  rm -f "$log".callgrind "$log".callgrind.*
  local valgrind=(valgrind --tool=callgrind --callgrind-out-file="$log.callgrind")
  case $name in
    bare) "${valgrind[@]}" "$BARE_BIN" --listen "127.0.0.1:$PORT" > "$log.server" 2>&1 & ;;
    # shellcheck disable=SC2086 # SERVE_FLAGS is a list of flags
    serve) "${valgrind[@]}" "$SERVE_BIN" -q serve --dev --database sqlite::memory: \
      --listen "127.0.0.1:$PORT" --handshake-rate 0 --max-connections-per-ip 0 ${SERVE_FLAGS:-} \
      > "$log.server" 2>&1 & ;;
  esac
  SERVER=$!
  local up=
  for _ in $(seq 600); do
    curl -sf "127.0.0.1:$PORT/healthz" > /dev/null && { up=1; break; }
    sleep 0.2
  done
  [[ -n $up ]] || { echo "$name did not start: $(cat "$log.server")" >&2; exit 1; }
  # Counts so far (start-up) zeroed; the dump after the load test is NAME.callgrind.1.
  callgrind_control -z "$SERVER" > /dev/null
  "$LOADTEST" load-test benches/callgrind-burst.yaml -q --target "http://127.0.0.1:$PORT" \
    -o "$log.json" > "$log.out" 2>&1 || echo "$name: load-test exited $? (see $log.out)" >&2
  callgrind_control -d "$SERVER" > /dev/null
  stop_server
  mv "$log.callgrind.1" "$log.callgrind"
  local ir
  ir=$(sed -nE 's/^(summary|totals): ([0-9]+).*/\2/p' "$log.callgrind" | head -1)
  jq -r --arg name "$name" --argjson ir "$ir" '
    "\($name) ir_per_delivery \($ir / .delivery.received | round) ir \($ir)" +
    " received \(.delivery.received) completeness \(.delivery.completeness)"' "$log.json" |
    tee -a "$OUT/results.txt"
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for name in $SERVERS; do run "$name"; done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

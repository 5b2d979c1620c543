#!/usr/bin/env bash
# Instructions per delivery, `serve` against bare socketioxide (benches/bare_socketioxide.rs),
# counted by valgrind's callgrind: repeatable on a shared, noisy machine where CPU time is not.
# Each server runs under callgrind in turn and gets the same small burst
# (benches/callgrind-burst.yaml: 400 sessions in 4 rooms of 100, 800 posts, 80,000 deliveries)
# from a native `load-test`. Counting starts at the load test's "setup done" log line (start-up,
# demo data, dev logins and rooms left out; the setup is counted apart, setup_ir) and ends when
# the load test has finished, so it covers what benches/three-way.sh's CPU figure covers:
# sessions opening, joins, posts, fan-out. with_setup_per_delivery is the figure as counted
# before 2026-11-30 (from /healthz on, dev logins included).
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
  # Counts so far (start-up) zeroed. The load test's setup (dev logins, rooms) is dumped
  # apart at its "setup done" log line (NAME-setup.callgrind; a dump zeroes the counts):
  # every session's first step is a 2 s think, so no session work races that dump. The dump
  # after the load test (NAME.callgrind) is the run itself.
  callgrind_control -z "$SERVER" > /dev/null
  RUST_LOG=warn,scmarket_ws::loadtest::runner=info \
    "$LOADTEST" load-test benches/callgrind-burst.yaml -q --target "http://127.0.0.1:$PORT" \
    -o "$log.json" > "$log.out" 2>&1 &
  local lt=$!
  until grep -q "setup done" "$log.out" 2> /dev/null; do
    kill -0 "$lt" 2> /dev/null || { echo "$name: load-test ended before setup: $(cat "$log.out")" >&2; exit 1; }
    sleep 0.02
  done
  callgrind_control -d "$SERVER" > /dev/null
  wait "$lt" || echo "$name: load-test exited $? (see $log.out)" >&2
  callgrind_control -d "$SERVER" > /dev/null
  stop_server
  mv "$log.callgrind.1" "$log-setup.callgrind"
  mv "$log.callgrind.2" "$log.callgrind"
  local ir setup
  ir=$(sed -nE 's/^(summary|totals): ([0-9]+).*/\2/p' "$log.callgrind" | head -1)
  setup=$(sed -nE 's/^(summary|totals): ([0-9]+).*/\2/p' "$log-setup.callgrind" | head -1)
  jq -r --arg name "$name" --argjson ir "$ir" --argjson setup "$setup" '
    "\($name) ir_per_delivery \($ir / .delivery.received | round) ir \($ir)" +
    " received \(.delivery.received) completeness \(.delivery.completeness)" +
    " setup_ir \($setup) with_setup_per_delivery \(($ir + $setup) / .delivery.received | round)"' \
    "$log.json" | tee -a "$OUT/results.txt"
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for name in $SERVERS; do run "$name"; done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

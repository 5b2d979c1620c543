#!/usr/bin/env bash
# Three servers side by side, alternating, driven by the same load tests: Node socket.io 4.8
# (benches/node/fanout-server.js), a bare socketioxide + axum server (benches/bare_socketioxide.rs)
# and `serve --dev` (sqlite::memory:, every limit at its default except the per-IP handshake rate
# and connection cap, which a load test from one address must lift). Each measurement starts its
# server afresh.
#
#   cargo build --release && (cd tests/node && npm ci)
#   benches/three-way.sh [ROUNDS] [HELD]          # defaults: 3 rounds, 15000 held sessions
#
# Per round and server, in an order rotated every round:
# - hold (benches/three-way-hold.yaml): HELD idle websocket sessions, one user each. Memory per
#   session = (server RSS with HELD sessions open - server RSS just before the first session
#   opened, after the dev logins) / sessions open. RSS and open sockets are sampled every 0.5 s.
# - burst (benches/three-way-burst.yaml): 400,000 deliveries. CPU per delivery = the server's
#   utime+stime (/proc/PID/stat) from the end of the load test's setup (its "setup done" log
#   line: users logged in, rooms made) to the end of the run (sessions opening, joins, posts,
#   fan-out) / deliveries received; delivery p99 and completeness from the load-test report.
#   setup_cpu_s is the setup's own CPU (dev logins), which the figure before 2026-11-30 counted.
# Then the table: per server, the range over rounds (min-max). SERVE_BIN, SERVE_FLAGS (extra
# serve flags), OUT, PORT and BARE_BIN (skips building it) can be set; SERVERS="serve bare"
# runs a subset of the servers, MEASURES=hold (or burst) one of the two measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
HELD=${2:-15000}
PORT=${PORT:-7300}
OUT=${OUT:-/tmp/three-way}
SERVE_BIN=${SERVE_BIN:-$PWD/target/release/scmarket-ws}
LOADTEST=${LOADTEST:-$PWD/target/release/scmarket-ws}
SERVERS=${SERVERS:-node bare serve}
MEASURES=${MEASURES:-hold burst}
mkdir -p "$OUT"
rm -f "$OUT"/results.txt

if [[ ! -d tests/node/node_modules/socket.io ]]; then
  (cd tests/node && npm ci --no-audit --no-fund > /dev/null)
fi
if [[ -z ${BARE_BIN:-} ]]; then
  BARE_BIN=$(cargo bench --bench bare_socketioxide --no-run 2>&1 |
    sed -nE 's/.*Executable .*\((.*bare_socketioxide-[0-9a-f]+)\).*/\1/p' | tail -1)
fi
[[ -x $BARE_BIN ]] || { echo "cannot build benches/bare_socketioxide.rs" >&2; exit 1; }
HOLD_SECONDS=$(( (HELD + 999) / 1000 ))

SERVER=
stop_server() {
  if [[ -n $SERVER ]]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=
  fi
}
trap stop_server EXIT

start_server() { # NAME LOG
  case $1 in
    node) node benches/node/fanout-server.js "$PORT" > "$2" 2>&1 & ;;
    bare) "$BARE_BIN" --listen "127.0.0.1:$PORT" > "$2" 2>&1 & ;;
    # shellcheck disable=SC2086 # SERVE_FLAGS is a list of flags
    serve) "$SERVE_BIN" -q serve --dev --database sqlite::memory: --listen "127.0.0.1:$PORT" \
      --handshake-rate 0 --max-connections-per-ip 0 ${SERVE_FLAGS:-} > "$2" 2>&1 & ;;
  esac
  SERVER=$!
  for _ in $(seq 100); do
    curl -sf "127.0.0.1:$PORT/healthz" > /dev/null && return 0
    sleep 0.1
  done
  echo "$1 did not start: $(cat "$2")" >&2
  exit 1
}

# Waits until the load test writing LOG has logged "setup done" (0), or has exited (1).
wait_for_setup_done() { # LOG PID
  until grep -q "setup done" "$1" 2> /dev/null; do
    kill -0 "$2" 2> /dev/null || return 1
    sleep 0.02
  done
}
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; } # utime+stime
rss_kib() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
sockets() { find "/proc/$1/fd" -lname 'socket:*' 2> /dev/null | wc -l; }

hold() { # NAME ROUND
  local log="$OUT/$1-r$2-hold" samples
  start_server "$1" "$log.server"
  samples="$log.samples"
  : > "$samples"
  "$LOADTEST" load-test benches/three-way-hold.yaml -q --target "http://127.0.0.1:$PORT" \
    --set "phases.0.duration=${HOLD_SECONDS}s" --set "phases.0.arrival_rate=$((HELD / HOLD_SECONDS))" \
    -o "$log.json" > "$log.out" 2>&1 &
  local lt=$!
  while kill -0 "$lt" 2> /dev/null; do
    echo "$(rss_kib "$SERVER") $(sockets "$SERVER")" >> "$samples"
    sleep 0.5
  done
  wait "$lt" || echo "$1 round $2: hold load-test exited $? (see $log.out)" >&2
  stop_server
  # empty: the last sample with fewer than 50 sockets open before the count first reached its
  # most; held: the highest RSS among samples with at least 98% of that most open. The most is
  # HELD unless sessions failed or (on a loaded machine) the first closed before the last opened.
  awk -v held="$HELD" -v name="$1" '
    { rss[NR] = $1; open[NR] = $2; if ($2 > most) { most = $2; at = NR } }
    END {
      for (i = 1; i < at; i++) if (open[i] < 50) empty = rss[i]
      for (i = 1; i <= NR; i++) if (open[i] >= 0.98 * most && rss[i] > peak) peak = rss[i]
      if (most < held) printf "%s hold: only %d of %d sessions open at once\n", name, most, held > "/dev/stderr"
      printf "%s mem_kb_per_session %.2f empty_kib %d held_kib %d open %d\n", name, (peak - empty) * 1.024 / most, empty, peak, most
    }' "$samples" | tee -a "$OUT/results.txt"
}

burst() { # NAME ROUND
  local log="$OUT/$1-r$2-burst"
  start_server "$1" "$log.server"
  local before after lt
  # The load test's setup (dev logins, rooms) is left out: counting starts at its
  # "setup done" log line (info level); every session's first step is a 1 s think, so no
  # session work reaches the server before the snapshot. setup_ticks is the old method's
  # figure (from before the dev logins), kept for comparison.
  before=$(cpu_ticks "$SERVER")
  RUST_LOG=warn,scmarket_ws::loadtest::runner=info \
    "$LOADTEST" load-test benches/three-way-burst.yaml -q --target "http://127.0.0.1:$PORT" \
    -o "$log.json" > "$log.out" 2>&1 &
  lt=$!
  local setup=$before
  if wait_for_setup_done "$log.out" "$lt"; then setup=$(cpu_ticks "$SERVER"); fi
  wait "$lt" || echo "$1 round $2: burst load-test exited $? (see $log.out)" >&2
  after=$(cpu_ticks "$SERVER")
  stop_server
  jq -r --arg name "$1" --argjson ticks "$((after - setup))" --argjson setup "$((setup - before))" '
    "\($name) cpu_us_per_delivery \(($ticks * 10000 / .delivery.received) * 100 | round / 100)" +
    " p99_ms \(.latency_ms.delivery.p99) completeness \(.delivery.completeness)" +
    " received \(.delivery.received) cpu_s \($ticks / 100) setup_cpu_s \($setup / 100)"' \
    "$log.json" | tee -a "$OUT/results.txt"
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
read -r -a servers <<< "$SERVERS"
for round in $(seq 1 "$ROUNDS"); do
  # Rotate the order so no server always runs first (or right after the heaviest).
  order=("${servers[@]:$(( (round - 1) % ${#servers[@]} ))}" "${servers[@]:0:$(( (round - 1) % ${#servers[@]} ))}")
  echo "== round $round: ${order[*]} (load $(cut -d' ' -f1 /proc/loadavg))"
  for name in "${order[@]}"; do
    for measure in $MEASURES; do "$measure" "$name" "$round"; done
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

range() { # NAME FIELD
  awk -v name="$1" -v field="$2" '$1 == name { for (i = 2; i < NF; i++) if ($i == field) print $(i + 1) }' \
    "$OUT/results.txt" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf (lo == hi ? "%s" : "%s-%s"), lo, hi; else printf "-" }'
}
echo
echo "| server | memory per idle websocket session ($HELD held) | server CPU per delivery (burst fan-out) | delivery p99 in that burst | completeness |"
echo "|---|---|---|---|---|"
for name in "${servers[@]}"; do
  case $name in
    node) label="Node socket.io 4.8 (in-memory, any cookie)" ;;
    bare) label="bare socketioxide + axum (in-memory, any cookie)" ;;
    serve) label="\`serve\` (auth, SQLite store, metrics, limits)" ;;
  esac
  echo "| $label | $(range "$name" mem_kb_per_session) KB | $(range "$name" cpu_us_per_delivery) µs | $(range "$name" p99_ms) ms | $(range "$name" completeness) |"
done

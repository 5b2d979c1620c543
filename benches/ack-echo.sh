#!/usr/bin/env bash
# ack-echo side by side: scmarket-ws load-test (release) and the plain Node socket.io-client
# script, alternately, RUNS times each, against one Node echo server on loopback.
# Prints CPU-seconds (user+sys) and peak RSS from /usr/bin/time -v for every run.
#
#   (cd tests/node && npm ci) && cargo build --release && benches/ack-echo.sh [RUNS]
#
# ARTILLERY=path/to/node_modules/.bin/artillery adds Artillery 2.0.34 (its socketio engine,
# benches/artillery/ack-echo.yml) to each round; install it apart from the repository with
# `npm install --ignore-scripts artillery@2.0.34`.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
PORT=${PORT:-7100}
BIN=${BIN:-target/release/scmarket-ws}
OUT=${OUT:-/tmp/ack-echo}
mkdir -p "$OUT"
node benches/node/echo-server.js "$PORT" > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 1
measure() { # name, command...
  local name=$1; shift
  /usr/bin/time -v "$@" > "$OUT/$name.out" 2> "$OUT/$name.time" || echo "$name exited $?"
  awk -v n="$name" -F': ' '/User time/{u=$2} /System time/{s=$2} /Maximum resident/{r=$2}
    END{printf "%-14s cpu %5.2f s (user %.2f sys %.2f)  peak rss %6.1f MB\n", n, u+s, u, s, r/1024}' "$OUT/$name.time"
}
for i in $(seq 1 "$RUNS"); do
  # The scenario path is absolute: a relative one resolves sessions_file twice (see BENCHMARKS.md).
  measure "load-test-$i" "$BIN" load-test "$PWD/benches/ack-echo.yaml" -q \
    --target "http://127.0.0.1:$PORT" -o "$OUT/load-test-$i.json"
  grep -E "generator:|^│ ack " "$OUT/load-test-$i.out" | sed 's/^/    /'
  measure "node-client-$i" node benches/node/ack-echo-client.js "http://127.0.0.1:$PORT" 2000 200
  sed 's/^/    /' "$OUT/node-client-$i.out"
  if [ -n "${ARTILLERY:-}" ]; then
    DO_NOT_TRACK=1 measure "artillery-$i" "$ARTILLERY" run \
      --target "http://127.0.0.1:$PORT" benches/artillery/ack-echo.yml
    grep -E "socketio.emit:|vusers.(completed|failed):|errors" "$OUT/artillery-$i.out" | tail -4 | sed "s/^/    /" || true
  fi
done

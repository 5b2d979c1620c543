#!/usr/bin/env bash
# Load-test against a separate release `serve --dev` (sqlite::memory:, limits off), one process
# each, so each side's CPU and memory are its own.
#
#   cargo build --release
#   benches/serve-bench.sh hold                 # 15,000 held sessions: load-test RSS per session
#   (HOLD_ARGS="--set ..." adds one load-test flag)
#   benches/serve-bench.sh rate 2000 5000 8000  # session opens/s at each rate: lag, errors, CPU
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/target/release/scmarket-ws}
PORT=7200
DIR=/tmp/scmarket-bench
mkdir -p "$DIR"
MODE=${1:-hold}; shift || true

"$BIN" -q serve --dev --database sqlite::memory: --listen 127.0.0.1:$PORT \
  --handshake-rate 0 --max-connections-per-user 0 --max-connections-per-ip 0 --event-rate 0 > "$DIR/serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf localhost:$PORT/healthz > /dev/null && break; sleep 0.1; done
# One user for every session (no per-user cap): the sessions file needs only its cookie.
curl -s -X POST localhost:$PORT/api/dev/login -H 'content-type: application/json' \
  -d '{"username":"bench"}' | sed -E 's/.*"session_cookie":"([^"]+)".*/\1/' > "$DIR/cookies.txt"

cpu() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }   # utime+stime, seconds (USER_HZ 100)
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }    # KiB

case $MODE in
hold)
  # HOLD_ARGS: extra load-test flags, e.g. the closed model:
  #   HOLD_ARGS="--set phases.0={duration: 30s, vus: 15000}" benches/serve-bench.sh hold
  "$BIN" load-test "$PWD/benches/hold.yaml" -q -o "$DIR/hold.json" ${HOLD_ARGS:+"$HOLD_ARGS"} > "$DIR/hold.out" 2>&1 &
  LT=$!
  # RSS per session = slope between the first sample (about 1 s in) and the plateau, in RSS
  # per open socket (fds): the fixed start-up memory is not charged to the sessions.
  sleep 1
  R1=$(rss $LT); F1=$(ls /proc/$LT/fd | wc -l)
  PEAK=0; PEAKFD=0
  for _ in $(seq 60); do
    kill -0 $LT 2>/dev/null || break
    R=$(rss $LT || echo 0); [ "${R:-0}" -gt "$PEAK" ] && PEAK=$R
    OPEN=$(ls /proc/$LT/fd 2>/dev/null | wc -l)
    [ "$OPEN" -gt "$PEAKFD" ] && PEAKFD=$OPEN
    echo "t+${SECONDS}s load-test rss ${R} KiB fds ${OPEN} serve rss $(rss $SERVE) KiB"
    sleep 1
  done
  wait $LT || echo "load-test exited $?"
  grep -E "sessions (connected|failed|peak)|generator:|^│ connect " "$DIR/hold.out"
  echo "first sample ${R1} KiB at ${F1} fds; peak ${PEAK} KiB at ${PEAKFD} fds"
  echo "per session: $(echo "scale=2; ($PEAK - $R1) * 1.024 / ($PEAKFD - $F1)" | bc) kB (slope); $(echo "scale=2; $PEAK * 1.024 / 15000" | bc) kB (peak RSS / 15000)"
  ;;
rate)
  for R in "$@"; do
    S0=$(cpu $SERVE)
    /usr/bin/time -f "generator cpu %U+%S s rss %M KiB" "$BIN" load-test "$PWD/benches/connect-rate.yaml" -q \
      --set phases.0.arrival_rate=$R -o "$DIR/rate-$R.json" > "$DIR/rate-$R.out" 2> "$DIR/rate-$R.time" || true
    S1=$(cpu $SERVE)
    echo "== rate $R/s for 4 s: serve cpu $(echo "$S1 - $S0" | bc) s"
    grep -E "sessions (started|connected|failed)|^│ (connect|engine_open|schedule_lag) |errors|generator:" "$DIR/rate-$R.out"
    tail -1 "$DIR/rate-$R.time"
    sleep 2
  done
  ;;
esac

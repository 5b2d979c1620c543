#!/usr/bin/env bash
# cluster.sh: a load test past one process on this machine. Starts N `serve --dev` nodes as one
# deployment (one PostgreSQL store, the Redis adapter with a prefix of their own), runs `load-test --workers
# W` over all of them, samples each node's memory and sessions, and writes everything to OUT:
#
#   report.json        the merged load-test report
#   node-K.log         each node's log
#   memory.tsv         every second: node, RSS (KiB), open sessions (scmarket_ws_connections_active)
#   nodes.tsv          per node: RSS before the run, at its most sessions, and KiB per session
#   node-K.metrics     each node's /metrics at the end (store call times, pool waits, refusals)
#
#   scripts/cluster.sh scenarios/c100k.yaml --nodes 7 --workers 6 --out c100k
#   scripts/cluster.sh scenarios/c100k.yaml --nodes 3 --workers 2 -- --set 'phases.0={duration: 4s, arrival_rate: 500}'
#
# Options: --nodes N (3), --workers W (2), --adapter URL (redis://127.0.0.1:6379), --database DB
# (default: a new PostgreSQL database on 127.0.0.1:5432, user postgres, created with the dev
# tables and demo data and dropped at the end; or any `serve --database` value every node can
# share), --init (the first node creates the tables in --database, `serve --init`), --out DIR
# (a new temporary folder), --bin PATH (env SCMARKET_WS, else target/release/scmarket-ws),
# --serve-arg ARG (repeatable: one more argument for every node, e.g. --serve-arg=--pool-size=32),
# --local-ips IPS (load-test's `--local-ips`: where the sessions' connections leave from; default
# 127.0.0.16-127.0.0.47, so that no address holds more than a few thousand connections to one
# node; '' for the system's choice). After `--`, arguments for load-test. Exit code: load-test's.
set -euo pipefail

NODES=3
WORKERS=2
ADAPTER=redis://127.0.0.1:6379
DATABASE=
INIT=
OUT=
BIN=${SCMARKET_WS:-}
SCENARIO=
EXTRA=()
SERVE_ARGS=()
LOCAL_IPS=127.0.0.16-127.0.0.47
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) NODES=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --adapter) ADAPTER=$2; shift 2 ;;
    --database) DATABASE=$2; shift 2 ;;
    --init) INIT=--init; shift ;;
    --out) OUT=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --local-ips) LOCAL_IPS=$2; shift 2 ;;
    --serve-arg) SERVE_ARGS+=("$2"); shift 2 ;;
    --serve-arg=*) SERVE_ARGS+=("${1#--serve-arg=}"); shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    -*) echo "cluster.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) SCENARIO=$1; shift ;;
  esac
done
[ -n "$SCENARIO" ] || { echo "cluster.sh: give a scenario file (see --help)" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/scmarket-ws}
[ -x "$BIN" ] || { echo "cluster.sh: no binary at $BIN (cargo build --release, or --bin)" >&2; exit 2; }
OUT=${OUT:-$(mktemp -d -t scmarket-ws-cluster.XXXXXX)}
mkdir -p "$OUT"
CREATED_DB=
if [ -z "$DATABASE" ]; then
  CREATED_DB="scmarket_ws_cluster_$$_$RANDOM"
  createdb -h 127.0.0.1 -U postgres "$CREATED_DB"
  DATABASE="postgres://postgres@127.0.0.1:5432/$CREATED_DB"
  INIT=--init
fi
PREFIX="scmarket-ws-cluster-$$-$RANDOM"
# Every session is an open file, on its node and in its worker.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

PIDS=()
SAMPLER=
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$CREATED_DB" ]; then
    dropdb -h 127.0.0.1 -U postgres --if-exists --force "$CREATED_DB" 2>/dev/null || true
  fi
}
trap cleanup EXIT

URLS=()
start_node() {
  local k=$1 log="$OUT/node-$1.log" init=
  # Only the first node creates the tables; the others open them.
  [ "$k" = 1 ] && init=$INIT
  # The address is read from the log line that says where the node listens.
  NO_COLOR=1 RUST_LOG=${NODE_LOG:-info} "$BIN" serve --dev $init --database "$DATABASE" --listen 127.0.0.1:0 \
    --adapter "$ADAPTER" --adapter-prefix "$PREFIX" \
    --handshake-rate 0 --event-rate 0 --max-connections-per-user 0 --max-connections-per-ip 0 \
    "${SERVE_ARGS[@]}" 2>"$log" &
  PIDS+=($!)
  local url=
  for _ in $(seq 300); do
    url=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/listening on //') || true
    [ -n "$url" ] && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { echo "cluster.sh: node $k did not start:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$url" ] || { echo "cluster.sh: node $k did not listen within 30 s" >&2; exit 1; }
  URLS+=("$url")
}
# The first node creates and seeds a new store; the others then open it.
for k in $(seq "$NODES"); do start_node "$k"; done
echo "cluster.sh: $NODES node(s): ${URLS[*]}; adapter $ADAPTER prefix $PREFIX; out $OUT" >&2

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
sessions() { curl -s "$1/metrics" | awk '$1 == "scmarket_ws_connections_active" {print $2}' || echo 0; }
BASE=()
for i in "${!PIDS[@]}"; do BASE+=("$(rss_kib "${PIDS[$i]}")"); done
printf 'seconds\tnode\trss_kib\tsessions\n' >"$OUT/memory.tsv"
(
  t=0
  while true; do
    for i in "${!PIDS[@]}"; do
      printf '%s\t%s\t%s\t%s\n' "$t" "$((i + 1))" "$(rss_kib "${PIDS[$i]}")" "$(sessions "${URLS[$i]}")" >>"$OUT/memory.tsv"
    done
    sleep 1
    t=$((t + 1))
  done
) &
SAMPLER=$!

TARGETS=()
for url in "${URLS[@]}"; do TARGETS+=(--target "$url"); done
[ -n "$LOCAL_IPS" ] && TARGETS+=(--local-ips "$LOCAL_IPS")
set +e
"$BIN" load-test "$SCENARIO" --workers "$WORKERS" "${TARGETS[@]}" -o "$OUT/report.json" "${EXTRA[@]}"
RC=$?
set -e
for i in "${!URLS[@]}"; do
  curl -s "${URLS[$i]}/metrics" >"$OUT/node-$((i + 1)).metrics" || true
done

# Per node: the sample with the most sessions, and the memory it took above the node's start.
printf 'node\trss_before_kib\trss_at_peak_kib\tpeak_sessions\tkib_per_session\n' >"$OUT/nodes.tsv"
for i in "${!PIDS[@]}"; do
  awk -v node="$((i + 1))" -v base="${BASE[$i]}" -F'\t' '
    NR > 1 && $2 == node && $4 + 0 >= peak { peak = $4 + 0; rss = $3 + 0 }
    END { printf "%s\t%s\t%s\t%s\t%s\n", node, base, rss, peak, (peak > 0 ? sprintf("%.1f", (rss - base) / peak) : "-") }
  ' "$OUT/memory.tsv" >>"$OUT/nodes.tsv"
done
echo "cluster.sh: per node (memory.tsv, nodes.tsv in $OUT):" >&2
column -t "$OUT/nodes.tsv" >&2 || cat "$OUT/nodes.tsv" >&2
exit "$RC"

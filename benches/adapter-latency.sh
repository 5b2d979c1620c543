#!/usr/bin/env bash
# Cross-node delivery latency, one node against two nodes over each adapter (Redis pub/sub,
# PostgreSQL LISTEN/NOTIFY), alternating round by round (the machine is shared and noisy).
# Each run is scripts/cluster.sh with benches/cross-node.yaml; prints one line per run and
# the median of each variant's delivery p50 / p99.
#
#   cargo build --release && benches/adapter-latency.sh [ROUNDS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-3}
OUT=$(mktemp -d -t scmarket-ws-adapters.XXXXXX)
DB="scmarket_ws_bench_$$"
createdb -h 127.0.0.1 -U postgres "$DB"
trap 'dropdb -h 127.0.0.1 -U postgres --if-exists --force "$DB" >/dev/null 2>&1 || true' EXIT
run() {
  local variant=$1 round=$2; shift 2
  "$ROOT/scripts/cluster.sh" "$ROOT/benches/cross-node.yaml" --workers 1 --out "$OUT/$variant-$round" "$@" -- -q >/dev/null 2>"$OUT/$variant-$round.err" || true
  jq -r --arg v "$variant" --arg r "$round" \
    '[$v, $r, .latency_ms.delivery.count, .latency_ms.delivery.p50, .latency_ms.delivery.p99, .delivery.completeness] | @tsv' \
    "$OUT/$variant-$round/report.json"
}
printf 'variant\tround\tdeliveries\tp50_ms\tp99_ms\tcompleteness\n' | tee "$OUT/runs.tsv"
for round in $(seq "$ROUNDS"); do
  run one-node "$round" --nodes 1 --adapter local | tee -a "$OUT/runs.tsv"
  run redis "$round" --nodes 2 --adapter redis://127.0.0.1:6379 | tee -a "$OUT/runs.tsv"
  run postgres "$round" --nodes 2 --adapter "postgres://postgres@127.0.0.1:5432/$DB" | tee -a "$OUT/runs.tsv"
done
echo "median per variant (p50, p99 in ms):"
for v in one-node redis postgres; do
  awk -F'\t' -v v="$v" '$1 == v { print $4 "\t" $5 }' "$OUT/runs.tsv" | sort -n -k2 |
    awk -v v="$v" '{ a[NR] = $0 } END { print v "\t" a[int((NR + 1) / 2)] }'
done
echo "runs in $OUT"

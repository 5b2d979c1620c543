#!/usr/bin/env bash
# Cross-node delivery latency, one node against two nodes over each adapter (Redis pub/sub,
# PostgreSQL LISTEN/NOTIFY), alternating round by round (the machine is shared and noisy).
# Each run is scripts/cluster.sh with benches/cross-node.yaml; prints one line per run and
# the median of each variant's delivery p50 / p99.
#
#   cargo build --release && benches/adapter-latency.sh [ROUNDS]
#
# With OTHER_BIN=PATH (another build of scmarket-ws, e.g. of an earlier commit), each round also
# runs two nodes over Redis on that build (variant redis-other), for a before/after of the
# Redis driver in the same alternation; VARIANTS="one-node redis redis-other" picks variants.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-3}
OTHER_BIN=${OTHER_BIN:-}
VARIANTS=${VARIANTS:-one-node redis postgres${OTHER_BIN:+ redis-other}}
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
  for v in $VARIANTS; do
    case "$v" in
      one-node) run one-node "$round" --nodes 1 --adapter local ;;
      redis) run redis "$round" --nodes 2 --adapter redis://127.0.0.1:6379 ;;
      postgres) run postgres "$round" --nodes 2 --adapter "postgres://postgres@127.0.0.1:5432/$DB" ;;
      redis-other) run redis-other "$round" --nodes 2 --adapter redis://127.0.0.1:6379 --bin "$OTHER_BIN" ;;
      *) echo "adapter-latency.sh: unknown variant $v" >&2; exit 2 ;;
    esac | tee -a "$OUT/runs.tsv"
  done
done
echo "median per variant (p50, p99 in ms):"
for v in $VARIANTS; do
  awk -F'\t' -v v="$v" '$1 == v { print $4 "\t" $5 }' "$OUT/runs.tsv" | sort -n -k2 |
    awk -v v="$v" '{ a[NR] = $0 } END { print v "\t" a[int((NR + 1) / 2)] }'
done
echo "runs in $OUT"

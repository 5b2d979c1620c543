#!/usr/bin/env bash
# A/B for serve_accept: two serve binaries, one driver, alternating in the same run, so a busy
# shared machine weighs on both alike. Build the driver once with
#   cargo bench --bench serve_accept --no-run
# and keep the "before" binary aside (e.g. a copy of target/release/scmarket-ws built from the
# old commit).
#
#   benches/serve_accept_ab.sh ROUNDS SESSIONS DRIVER SERVE_A SERVE_B [DB_A DB_B]
#
# DB_A and DB_B default to sqlite::memory:; give two files to measure the file path (one file
# per binary: a file migrated by one store version may not open with an older one).
set -euo pipefail
if [[ $# -ne 5 && $# -ne 7 ]]; then
  echo "usage: $0 ROUNDS SESSIONS DRIVER SERVE_A SERVE_B [DB_A DB_B]" >&2
  exit 2
fi
rounds=$1 sessions=$2 driver=$3
bins=("$4" "$5")
dbs=("${6:-sqlite::memory:}" "${7:-sqlite::memory:}")
for r in $(seq 1 "$rounds"); do
  # Swap the order every round, so neither side always runs on a warmer machine.
  if (( r % 2 )); then order="0 1"; else order="1 0"; fi
  for i in $order; do
    log=$(mktemp)
    RUST_LOG=info "${bins[$i]}" serve --dev --quiet --database "${dbs[$i]}" \
      --listen 127.0.0.1:0 --handshake-rate 0 --max-connections-per-user 0 --max-connections-per-ip 0 2>"$log" &
    pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
    base=$(grep -o 'listening on [^ ]*' "$log" | head -1 | awk '{print $3}')
    out=$("$driver" --url "$base" --server-pid "$pid" --sessions "$sessions" 2>&1)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -f "$log"
    rate=$(grep -o '= [0-9]* sessions/s' <<<"$out" | awk '{print $2}')
    cpu=$(grep -o '([0-9]* us per session)' <<<"$out" | tr -d '(' | awk '{print $1}')
    p99=$(grep -o 'p99 [0-9.]* ms' <<<"$out" | awk '{print $2}')
    opened=$(grep -o '^serve_accept: [0-9]* of [0-9]*' <<<"$out" | awk '{print $2 "/" $4}')
    echo "round $r $(basename "${bins[$i]}"): ${rate} sessions/s, ${cpu} us server CPU per session, p99 ${p99} ms, opened ${opened}"
  done
done

#!/usr/bin/env bash
# A/B for the ack-echo generator cost: two load-test binaries against one Node echo server,
# alternating in the same run (the order swapped every round), so a busy shared machine weighs
# on both alike. Keep the "before" binary aside (a copy of target/release/scmarket-ws built from
# the old commit).
#
#   (cd tests/node && npm ci) && benches/ack-echo-ab.sh ROUNDS BIN_A BIN_B
#
# Prints CPU-seconds (user+sys) and peak RSS from /usr/bin/time -v for every run, then the
# median of each side. Extra load-test flags can be given in LOAD_TEST_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -ne 3 ]]; then
  echo "usage: $0 ROUNDS BIN_A BIN_B" >&2
  exit 2
fi
rounds=$1
bins=("$2" "$3")
PORT=${PORT:-7100}
OUT=${OUT:-/tmp/ack-echo-ab}
mkdir -p "$OUT"
node benches/node/echo-server.js "$PORT" > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 1
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -a cpu_a cpu_b
for r in $(seq 1 "$rounds"); do
  if (( r % 2 )); then order="0 1"; else order="1 0"; fi
  for i in $order; do
    name="r$r-$([[ $i == 0 ]] && echo A || echo B)"
    # shellcheck disable=SC2086 # LOAD_TEST_FLAGS is a list of flags
    /usr/bin/time -v "${bins[$i]}" load-test "$PWD/benches/ack-echo.yaml" -q \
      --target "http://127.0.0.1:$PORT" -o "$OUT/$name.json" ${LOAD_TEST_FLAGS:-} \
      > "$OUT/$name.out" 2> "$OUT/$name.time" || echo "$name exited $?"
    line=$(awk -F': ' '/User time/{u=$2} /System time/{s=$2} /Maximum resident/{r=$2}
      END{printf "%.2f %.2f %.2f %.1f", u+s, u, s, r/1024}' "$OUT/$name.time")
    read -r cpu user sys rss <<< "$line"
    printf "%-6s cpu %5.2f s (user %.2f sys %.2f)  peak rss %6.1f MB  load %s\n" \
      "$name" "$cpu" "$user" "$sys" "$rss" "$(cut -d' ' -f1 /proc/loadavg)"
    if [[ $i == 0 ]]; then cpu_a+=("$cpu"); else cpu_b+=("$cpu"); fi
  done
done
median() { printf "%s\n" "$@" | sort -n | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "median cpu A $(median "${cpu_a[@]}") s, B $(median "${cpu_b[@]}") s"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

#!/usr/bin/env bash
# cluster-watch.sh: what the machine does during a scripts/cluster.sh run, for when a run
# collapses and the question is which part holds it back (docs/BENCHMARKS.md, "100,000
# sessions", third session). Start it beside the run, on the run's --out folder:
#
#   scripts/cluster.sh scenarios/c100k.yaml ... --out /tmp/c100k &
#   benches/cluster-watch.sh /tmp/c100k [SESSIONS] [DELAY]
#
# Writes into that folder, until cluster.sh has written its report:
#   watch-pg.tsv   every second: load average, CPU and I/O pressure, and the cluster database's
#                  backends by state and wait event (pg_stat_activity)
#   watch-cpu.tsv  every 2 s: CPU seconds used so far (cumulative: compare two lines) by the
#                  serve nodes, the load-test processes, PostgreSQL and Redis (utime + stime
#                  of /proc/PID/stat, threads included; a process that ended drops out)
#   perf.data      once the nodes hold SESSIONS sessions (default 99000, from cluster.sh's
#                  memory.tsv) and DELAY seconds more (default 35): 30 s of `perf record -a`
#                  on the software clock (machines without hardware counters too). Read it with
#                  `perf report -i perf.data --sort comm,pid` and `--sort sym`.
set -euo pipefail
OUT=${1:?usage: cluster-watch.sh OUT_DIR [SESSIONS] [DELAY]}
SESSIONS=${2:-99000}
DELAY=${3:-35}
mkdir -p "$OUT"
hz=$(getconf CLK_TCK)
done_yet() { [ -s "$OUT/report.json" ]; }

pg_sample() {
  printf 'time\tload\tcpu_some_avg10\tio_full_avg10\tbackends\n' >"$OUT/watch-pg.tsv"
  until done_yet; do
    local backends
    backends=$(psql -h 127.0.0.1 -U postgres -d postgres -Atc \
      "SELECT coalesce(string_agg(k || '=' || n, ' '), '') FROM (SELECT state || ':' || coalesce(wait_event, '-') AS k, count(*) AS n \
       FROM pg_stat_activity WHERE datname LIKE 'scmarket_ws_cluster%' GROUP BY 1 ORDER BY 2 DESC) x" 2>/dev/null || true)
    printf '%s\t%s\t%s\t%s\t%s\n' "$(date +%T)" "$(cut -d' ' -f1 /proc/loadavg)" \
      "$(awk '/some/ {sub("avg10=", "", $2); print $2}' /proc/pressure/cpu 2>/dev/null)" \
      "$(awk '/full/ {sub("avg10=", "", $2); print $2}' /proc/pressure/io 2>/dev/null)" \
      "$backends" >>"$OUT/watch-pg.tsv"
    sleep 1
  done
}

cpu_sample() {
  printf 'time\tserve_s\tloadtest_s\tpostgres_s\tredis_s\n' >"$OUT/watch-cpu.tsv"
  until done_yet; do
    for dir in /proc/[0-9]*; do
      local cmd stat group
      cmd=$(tr '\0' ' ' 2>/dev/null <"$dir/cmdline") || continue
      case "$cmd" in
        *" serve "*) group=serve ;;
        *load-test*) group=loadtest ;;
        postgres*) group=postgres ;;
        redis*) group=redis ;;
        *) continue ;;
      esac
      stat=$(cat 2>/dev/null <"$dir/stat") || continue
      # What follows "pid (comm) ": the state first, utime and stime 12th and 13th.
      echo "$group ${stat##*) }"
    done | awk -v hz="$hz" -v t="$(date +%T)" '{s[$1] += $13 + $14}
      END {printf "%s\t%.1f\t%.1f\t%.1f\t%.1f\n", t, s["serve"]/hz, s["loadtest"]/hz, s["postgres"]/hz, s["redis"]/hz}' \
      >>"$OUT/watch-cpu.tsv"
    sleep 2
  done
}

profile() {
  until done_yet; do
    local held
    held=$(tail -n 50 "$OUT/memory.tsv" 2>/dev/null |
      awk -F'\t' '$1 ~ /^[0-9]+$/ {last[$2] = $4} END {for (n in last) s += last[n]; print s + 0}')
    if [ "$held" -ge "$SESSIONS" ]; then
      sleep "$DELAY"
      perf record -a -F 499 -e cpu-clock -o "$OUT/perf.data" -- sleep 30 >"$OUT/perf.log" 2>&1 || true
      return
    fi
    sleep 1
  done
}

pg_sample &
cpu_sample &
profile &
wait

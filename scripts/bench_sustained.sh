#!/usr/bin/env bash
# Sustained rate (issue 16, item 3), on a throwaway cluster with the worker preloaded (default
# settings): the highest steady publish rate at which the worker keeps the event-to-metrics p99
# under 1 s. Publishers are pgbench clients at a fixed --rate (CLIENTS connections, PER_SEND
# events per pgmq.send_batch transaction, from the 200,000 events of bench_events.sql), for
# STEP_S s per step. The rate starts at START_RATE events/s and doubles while a step passes,
# then bisects between the best pass and the first failure until they are within 10% (or
# MAX_STEPS steps were run).
#
# Latency of an event: from its enqueued_at (pgmq's now() of the sending transaction, which
# commits right after) to the commit of the worker's transaction that recorded it and counted
# it in the metrics (pg_xact_commit_timestamp of the routing_records row; the cluster runs with
# track_commit_timestamp = on for this). Events of a step's first 2 s are left out (pgbench
# connecting). A step passes when p99 < 1000 ms and the publishers achieved >= 95% of the rate
# (pgbench's tps times PER_SEND).
# Each step also reports the CPU used, from /proc, by the worker, by the publishing side (the
# pgbench client backends and pgbench itself), by the rest of the cluster, and by the whole
# machine (other work runs on it too): the bottleneck is read from there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/common.sh"

export CLUSTER_DIR="${BENCH_DIR:-/tmp/centralcloud-bench-sustained}"
export CLUSTER_PORT="${BENCH_PORT:-28823}"
START_RATE="${START_RATE:-2000}"
PER_SEND="${PER_SEND:-50}"
CLIENTS="${CLIENTS:-8}"
STEP_S="${STEP_S:-20}"
MAX_STEPS="${MAX_STEPS:-10}"
TARGET_P99_MS=1000

cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" "shared_buffers = 1GB" "max_wal_size = 8GB" \
  "track_commit_timestamp = on" \
  "shared_preload_libraries = 'centralcloud'" "centralcloud.database = 'postgres'"
trap 'cluster_stop "$CLUSTER_DIR"' EXIT
cpsql -d postgres -c "CREATE EXTENSION centralcloud CASCADE" 2>/dev/null
q() { cpsql -d postgres -At -F ' ' -c "$1"; }
cpsql -d postgres -q -f "$here/bench_events.sql" -c "CREATE UNIQUE INDEX ON bench.events (k)"
cat >"$CLUSTER_DIR/send.sql" <<SQL
\set i random(1, $((200000 - PER_SEND)))
SELECT pgmq.send_batch('model_routing_decisions', ARRAY(SELECT msg FROM bench.events WHERE k >= :i AND k < :i + $PER_SEND));
SQL
wait_for postgres "SELECT state IN ('idle', 'ingesting') FROM centralcloud.worker_status" 30

tck="$(getconf CLK_TCK)"
postmaster="$(head -1 "$CLUSTER_DIR/data/postmaster.pid")"
# CPU ticks (user + system) of the given pids that are still alive.
ticks_of() { local pid t=0; for pid in "$@"; do
  [[ -r /proc/$pid/stat ]] && t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
# Busy ticks of the whole machine (every core).
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
# "time worker backends pgbench rest machine" now: seconds since the epoch, then CPU ticks; the
# pgbench client backends are $3..., the rest is every other child of the postmaster.
snapshot() {
  local worker="$1" bench="$2" pid rest=(); shift 2
  for pid in $(pgrep -P "$postmaster"); do
    [[ " $worker $* " == *" $pid "* ]] || rest+=("$pid")
  done
  echo "$(date +%s.%N) $(ticks_of "$worker") $(ticks_of "$@") $(ticks_of "$bench") $(ticks_of "${rest[@]}") $(machine_ticks)"
}
pct() { echo "scale=0; 100 * $1 / $tck / $2" | bc -l | cut -d. -f1; }

results="$CLUSTER_DIR/steps.txt"; : >"$results"

# step RATE: one step; appends "rate pass line" to $results and prints the line.
step() {
  local rate="$1" tps worker from to out bench pids before after secs t0 w0 b0 p0 r0 m0 t1 w1 b1 p1 r1 m1 latency p50 p95 p99 max n achieved pass
  tps=$((rate / PER_SEND))
  worker="$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'centralcloud worker'")"
  from="$(q "SELECT clock_timestamp() + interval '2 seconds'")"
  out="$CLUSTER_DIR/pgbench-$rate.out"
  "$PG_BIN/pgbench" -n -h "$CLUSTER_DIR" -p "$CLUSTER_PORT" -U postgres -c "$CLIENTS" -j 2 -R "$tps" \
    -T "$STEP_S" -f "$CLUSTER_DIR/send.sql" postgres >"$out" 2>&1 &
  bench=$!
  sleep 2
  pids="$(q "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE application_name = 'pgbench'")"
  before="$(snapshot "$worker" "$bench" $pids)" after="$before"
  # The last sample while every pgbench backend is alive (they end with pgbench, their CPU
  # with them).
  while kill -0 "$bench" 2>/dev/null; do
    local sample alive=1 pid
    sample="$(snapshot "$worker" "$bench" $pids)"
    for pid in $pids; do [[ -r /proc/$pid/stat ]] || alive=0; done
    ((alive)) && after="$sample"
    sleep 1
  done
  wait "$bench" || true
  to="$(q "SELECT clock_timestamp()")"
  wait_for postgres "SELECT queue_length = 0 FROM pgmq.metrics('model_routing_decisions')" 600
  latency="$(q "
    SELECT count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)), round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)),
           round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)), round(max(ms))
      FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - enqueued_at) * 1000 AS ms
              FROM centralcloud.routing_records WHERE enqueued_at >= '$from' AND enqueued_at < '$to') l")"
  read -r n p50 p95 p99 max <<<"$latency"
  achieved="$(awk -v per="$PER_SEND" '/^tps = / { printf "%.0f", $3 * per }' "$out")"
  pass=0
  ((p99 < TARGET_P99_MS && achieved * 100 >= rate * 95)) && pass=1
  read -r t0 w0 b0 p0 r0 m0 <<<"$before"; read -r t1 w1 b1 p1 r1 m1 <<<"$after"
  secs="$(echo "$t1 - $t0 + 0.001" | bc -l)"
  local line
  line="$(printf '  %6s events/s wanted, %6s achieved: latency p50 %5s ms, p95 %5s ms, p99 %5s ms, max %5s ms | CPU %% worker %3s, senders %3s (backends %3s), rest of cluster %3s, machine %3s of %s | %s' \
    "$rate" "$achieved" "$p50" "$p95" "$p99" "$max" "$(pct $((w1 - w0)) "$secs")" \
    "$(pct $((b1 - b0 + p1 - p0)) "$secs")" "$(pct $((b1 - b0)) "$secs")" \
    "$(pct $((r1 - r0)) "$secs")" "$(pct $((m1 - m0)) "$secs")" "$(($(nproc) * 100))" \
    "$([[ $pass == 1 ]] && echo pass || echo FAIL)")"
  echo "$rate $pass $line" >>"$results"
  echo "$line"
  # The next step starts on an empty audit trail.
  q "TRUNCATE centralcloud.routing_records" >/dev/null
}

log "steady publishing, $PER_SEND events per send, $CLIENTS pgbench clients, ${STEP_S} s per step"
echo "sustained-rate benchmark, $(nproc) cores: worker with default settings; event enqueued -> counted (commit), p99 target < $TARGET_P99_MS ms"
rate="$START_RATE" best=0 failed=0
for _ in $(seq 1 "$MAX_STEPS"); do
  step "$rate"
  if [[ "$(tail -1 "$results" | cut -d' ' -f2)" == 1 ]]; then best="$rate"; else failed="$rate"; fi
  ((failed > 0 && best > 0 && (failed - best) * 10 <= best)) && break
  if ((failed == 0)); then rate=$((rate * 2)); else rate=$(((best + failed) / 2 / PER_SEND * PER_SEND)); fi
  ((rate > 0)) || break
done
echo "  highest rate that passed: $best events/s (lowest that failed: $([[ $failed -gt 0 ]] && echo "$failed events/s" || echo none))"

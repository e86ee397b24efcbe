#!/usr/bin/env bash
# Capacity of one server, for docs/scale-out.md (not part of the tests), on a throwaway cluster
# with the worker and default durability (fsync on, synchronous_commit on):
#   1. routers publishing at full speed with pgbench (CLIENTS connections, SECONDS_RUN s each),
#      one event per transaction (pgmq.send) and 100 per transaction (pgmq.send_batch), while
#      the worker ingests: events sent and ingested per second, the backlog left, and CPU seconds
#      spent by the worker (ingest) and by the other backends (sending), from /proc;
#   2. learning (policy bayes) and refresh_metrics_from_rollup() over a rollup of CELLS cells x
#      HOURS hours x INSTANCES instances.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/common.sh"

export CLUSTER_DIR="${BENCH_DIR:-/tmp/centralcloud-bench-scale}"
export CLUSTER_PORT="${BENCH_PORT:-28819}"
CLIENTS="${CLIENTS:-4}"
SECONDS_RUN="${SECONDS_RUN:-20}"
CELLS="${CELLS:-1000}" HOURS="${HOURS:-48}" INSTANCES="${INSTANCES:-5}"

cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" "shared_buffers = 1GB" "max_wal_size = 8GB" \
  "shared_preload_libraries = 'centralcloud'" "centralcloud.database = 'postgres'" \
  "centralcloud.learn_interval_s = 3600"
trap 'cluster_stop "$CLUSTER_DIR"' EXIT
cpsql -d postgres -c "CREATE EXTENSION centralcloud CASCADE" 2>/dev/null
q() { cpsql -d postgres -At -c "$1"; }
cpsql -d postgres -q -f "$here/bench_events.sql" -c "CREATE UNIQUE INDEX ON bench.events (k)"
cat >"$CLUSTER_DIR/send1.sql" <<'SQL'
\set i random(1, 200000)
SELECT pgmq.send('model_routing_decisions', msg) FROM bench.events WHERE k = :i;
SQL
cat >"$CLUSTER_DIR/send100.sql" <<'SQL'
\set i random(1, 199900)
SELECT pgmq.send_batch('model_routing_decisions', ARRAY(SELECT msg FROM bench.events WHERE k >= :i AND k < :i + 100));
SQL

tck="$(getconf CLK_TCK)"
postmaster="$(head -1 "$CLUSTER_DIR/data/postmaster.pid")"
# CPU seconds (user + system) of the given pids, live or not yet gone.
cpu_of() { local pid t=0; for pid in "$@"; do
  [[ -r /proc/$pid/stat ]] && t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$t"; }
backends() { pgrep -P "$postmaster" | tr '\n' ' '; }

# run NAME SCRIPT EVENTS_PER_TRANSACTION
run() {
  local name="$1" script="$2" per="$3" worker before_ingested before_w after_w tps sent ingested backlog out
  cpsql -d postgres -q -c "SELECT pgmq.purge_queue('model_routing_decisions')" >/dev/null
  worker="$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'centralcloud worker'")"
  before_ingested="$(q "SELECT count(*) FROM centralcloud.routing_records")"
  before_w="$(cpu_of "$worker")"
  # Backends come and go with pgbench: sample the whole cluster's CPU from its processes' stat
  # while it runs (each pgbench connection lives the whole run).
  out="$CLUSTER_DIR/$(basename "$script" .sql).pgbench"
  "$PG_BIN/pgbench" -n -h "$CLUSTER_DIR" -p "$CLUSTER_PORT" -U postgres -c "$CLIENTS" -j 2 -T "$SECONDS_RUN" \
    -f "$script" postgres >"$out" 2>&1 &
  local bench=$! senders_cpu=0 pids
  sleep 1
  pids="$(q "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE application_name = 'pgbench'")"
  local start_cpu; start_cpu="$(cpu_of $pids)"
  local last_cpu="$start_cpu"
  while kill -0 "$bench" 2>/dev/null; do last_cpu="$(cpu_of $pids)"; sleep 0.5; done
  senders_cpu=$(((last_cpu - start_cpu)))
  after_w="$(cpu_of "$worker")"
  tps="$(awk '/^tps = / { print $3 }' "$out")"
  sent="$(printf '%.0f' "$(echo "$tps * $per" | bc)")"
  backlog="$(q "SELECT queue_length FROM pgmq.metrics('model_routing_decisions')")"
  ingested=$(($(q "SELECT count(*) FROM centralcloud.routing_records") - before_ingested))
  printf '  %-34s sent %7s events/s | worker ingested %7s events/s, backlog left %7s | CPU s: worker %5.1f, senders %5.1f (over ~%ss)\n' \
    "$name" "$sent" "$((ingested / SECONDS_RUN))" "$backlog" \
    "$(echo "($after_w - $before_w) / $tck" | bc -l)" "$(echo "$senders_cpu / $tck" | bc -l)" "$((SECONDS_RUN - 1))"
  wait_for postgres "SELECT queue_length = 0 FROM pgmq.metrics('model_routing_decisions')" 600
}

log "1. routers at full speed ($CLIENTS pgbench clients, $SECONDS_RUN s) while the worker ingests"
run "pgmq.send, 1 event/transaction" "$CLUSTER_DIR/send1.sql" 1
run "pgmq.send_batch, 100 events/transaction" "$CLUSTER_DIR/send100.sql" 100

log "2. learning over $CELLS cells x $HOURS hours x $INSTANCES instances of rollup"
cpsql -d postgres -q -c "ALTER SYSTEM SET centralcloud.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
cpsql -d postgres -q <<SQL
TRUNCATE centralcloud.routing_rollup_hourly, centralcloud.model_routing_metrics, centralcloud.model_complexity_scores,
         centralcloud.score_history, centralcloud.learning_changes;
-- 50 distinct sketches of 100 latencies each, reused across the rows.
CREATE TEMP TABLE sketches AS
SELECT s, centralcloud.latency_sketch_agg(100 + s * 20 + (v * 37) % 400) AS sketch
  FROM generate_series(0, 49) s, generate_series(1, 100) v GROUP BY s;
INSERT INTO centralcloud.routing_rollup_hourly
       (hour, instance_id, model, complexity, provider, usage_count, success_count, failure_count,
        response_time_count, response_time_sum, response_time_min, response_time_max, latency_sketch)
SELECT date_trunc('hour', now()) - make_interval(hours => h), 'instance-' || i, 'model-' || (c / 3),
       (ARRAY['simple', 'medium', 'complex'])[1 + c % 3], 'provider', 100, 90 + c % 10, 10 - c % 10,
       100, 100 * (100 + (c % 50) * 20 + 200), 100 + (c % 50) * 20, 100 + (c % 50) * 20 + 399, k.sketch
  FROM generate_series(0, $CELLS - 1) c, generate_series(0, $HOURS - 1) h, generate_series(1, $INSTANCES) i, sketches k
 WHERE k.s = c % 50;
SQL
rows="$(q "SELECT count(*) FROM centralcloud.routing_rollup_hourly")"
q "VACUUM ANALYZE centralcloud.routing_rollup_hourly" >/dev/null
timed() { local t0 t1; t0="$(date +%s.%N)"; q "$1" >/dev/null; t1="$(date +%s.%N)"; printf '%.2f' "$(echo "$t1 - $t0" | bc)"; }
refresh_s="$(timed "SELECT * FROM centralcloud.refresh_metrics_from_rollup()")"
refresh_again_s="$(timed "SELECT * FROM centralcloud.refresh_metrics_from_rollup()")"
learn_s="$(timed "SELECT count(*) FROM centralcloud.learn_complexity_scores()")"
learn_again_s="$(timed "SELECT count(*) FROM centralcloud.learn_complexity_scores()")"
echo "  rollup rows $rows: refresh_metrics_from_rollup() ${refresh_s} s (again: ${refresh_again_s} s); learn_complexity_scores() ${learn_s} s (again: ${learn_again_s} s)"

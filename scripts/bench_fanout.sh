#!/usr/bin/env bash
# Fan-out benchmark (issue 16, item 2), on a throwaway cluster (no worker): one learning run
# (policy bayes, default settings) that changes CELLS cells, with each of FLEETS subscribed
# instances, RUNS times each. Every score update goes to every instance's queue and to the
# seed's plain model_score_updates queue. Reports, per run: the cells changed, the run's time,
# the messages it queued (sum of score_history.published_to, checked against the queues'
# lengths) and per second, the same run with dry_run => true (deciding without recording or
# publishing: what the run costs besides publishing), the time spent inside pgmq's topic sends
# (send_topic or send_batch_topic, from pg_stat_xact_user_functions, track_functions = all) and
# the messages per second of that time, and the backend's peak private memory (RssAnon, sampled
# every 20 ms; also for the dry run, which holds the same result rows and evidence) and VmHWM
# (peak resident, shared buffers it touched included).
# Each run starts from a copy of a template database made once per fleet size.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/common.sh"

export CLUSTER_DIR="${BENCH_DIR:-/tmp/centralcloud-bench-fanout}"
export CLUSTER_PORT="${BENCH_PORT:-28822}"
CELLS="${CELLS:-10000}"
FLEETS="${FLEETS:-10 100}"
RUNS="${RUNS:-2}"
HOURS=4       # of rollup per cell: enough evidence for bayes to move every cell off 2.5
REPORTERS=2   # instances in the rollup (the routers that reported the evidence)

cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" "shared_buffers = 1GB" "max_wal_size = 8GB" \
  "checkpoint_timeout = 30min" "track_functions = all"
trap 'cluster_stop "$CLUSTER_DIR"' EXIT

# template_of FLEET: a database with FLEET subscribed instances (subscribed while the catalog is
# empty, so their queues start empty) and CELLS cells of evidence at score 2.5.
template_of() {
  local db="fanout_$1"
  cpsql -d postgres -q -c "CREATE DATABASE $db"
  cpsql -d "$db" -q -c "CREATE EXTENSION centralcloud CASCADE" 2>/dev/null
  cpsql -d "$db" -q -v fleet="$1" -v cells="$CELLS" -v hours="$HOURS" -v reporters="$REPORTERS" <<'SQL'
SELECT count(centralcloud.subscribe_instance('router-' || i)) FROM generate_series(1, :fleet) AS i \g /dev/null
-- 50 distinct sketches of 100 latencies each, reused across the rows.
CREATE TEMP TABLE sketches AS
SELECT s, centralcloud.latency_sketch_agg(100 + s * 20 + (v * 37) % 400) AS sketch
  FROM generate_series(0, 49) s, generate_series(1, 100) v GROUP BY s;
INSERT INTO centralcloud.routing_rollup_hourly
       (hour, instance_id, model, complexity, provider, usage_count, success_count, failure_count,
        response_time_count, response_time_sum, response_time_min, response_time_max, latency_sketch)
SELECT date_trunc('hour', now()) - make_interval(hours => h), 'reporter-' || i, 'model-' || (c / 3),
       (ARRAY['simple', 'medium', 'complex'])[1 + c % 3], 'provider', 100, 90 + c % 10, 10 - c % 10,
       100, 100 * (100 + (c % 50) * 20 + 200), 100 + (c % 50) * 20, 100 + (c % 50) * 20 + 399, k.sketch
  FROM generate_series(0, :cells - 1) c, generate_series(0, :hours - 1) h,
       generate_series(1, :reporters) i, sketches k
 WHERE k.s = c % 50;
SELECT * FROM centralcloud.refresh_metrics_from_rollup() \g /dev/null
SQL
  cpsql -d "$db" -q -c "VACUUM ANALYZE"
}

# Runs SQL in a session on DB whose backend's RssAnon is sampled every 20 ms; prints the SQL's
# output (psql -At) and, last, the peak RssAnon in KiB.
with_peak_rss() {
  local db="$1" sql="$2" pidfile="$CLUSTER_DIR/backend.pid" out="$CLUSTER_DIR/probe.out" peak=0 pid rss
  rm -f "$pidfile"
  printf 'SELECT pg_backend_pid() \\g %s\n%s\n' "$pidfile" "$sql" | cpsql -d "$db" -At -F ' ' >"$out" &
  local job=$!
  while [[ ! -s "$pidfile" ]]; do
    kill -0 "$job" 2>/dev/null || die "session for the memory probe ended early"
    sleep 0.01
  done
  pid="$(head -1 "$pidfile")"
  while kill -0 "$job" 2>/dev/null; do
    rss="$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)"
    [[ -n "$rss" && "$rss" -gt "$peak" ]] && peak="$rss"
    sleep 0.02
  done
  wait "$job"
  cat "$out"
  echo "$peak"
}

elapsed_ms="round(extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000)"
# Milliseconds this transaction spent in pgmq's topic sends (the outermost overload's total).
send_ms="(SELECT round(coalesce(max(total_time), 0)) FROM pg_stat_xact_user_functions
           WHERE schemaname = 'pgmq' AND funcname IN ('send_topic', 'send_batch_topic'))"
vm_hwm_kib="substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') FROM 'VmHWM:\s+(\d+)')"

# one_run FLEET N: a fresh copy of the fleet's template, a dry run, then the learning run.
one_run() {
  local fleet="$1" n="$2" db="fanout_run" dry dry_ms dry_peak result changed ms hwm sending peak messages wrong rate send_rate
  cpsql -d postgres -q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db TEMPLATE fanout_$fleet" 2>/dev/null
  dry="$(with_peak_rss "$db" "SELECT $elapsed_ms FROM (SELECT count(*) FROM centralcloud.learn_complexity_scores(dry_run => true)) r;")"
  dry_ms="$(sed -n 1p <<<"$dry")" dry_peak="$(sed -n 2p <<<"$dry")"
  result="$(with_peak_rss "$db" "BEGIN;
    SELECT count(*) FILTER (WHERE changed) AS changed, $elapsed_ms AS ms, $vm_hwm_kib AS hwm FROM centralcloud.learn_complexity_scores() \\gset
    SELECT :changed, :ms, :hwm, $send_ms;
    COMMIT;")"
  read -r changed ms hwm sending <<<"$(sed -n 1p <<<"$result")"
  peak="$(sed -n 2p <<<"$result")"
  messages="$(cpsql -d "$db" -At -c "SELECT coalesce(sum(published_to), 0) FROM centralcloud.score_history")"
  # Every instance's queue and the plain one hold exactly one message per change.
  wrong="$(cpsql -d "$db" -At -c "
    SELECT count(*) FROM pgmq.metrics_all()
     WHERE (queue_name LIKE 'cc_scores_%' OR queue_name = 'model_score_updates') AND queue_length <> $changed")"
  rate=$(echo "scale=0; $messages * 1000 / $ms" | bc)
  send_rate=$(echo "scale=0; $messages * 1000 / ($sending + 1)" | bc)
  printf '  %3s instances, run %s: %5s cells changed in %6s ms (dry run %5s ms, in topic sends %6s ms): %7s messages queued, %7s/s over the run, %7s/s in the sends; peak RssAnon %6s KiB (dry run %6s KiB), VmHWM %7s KiB; queues with a wrong count: %s\n' \
    "$fleet" "$n" "$changed" "$ms" "$dry_ms" "$sending" "$messages" "$rate" "$send_rate" "$peak" "$dry_peak" "$hwm" "$wrong"
}

log "templates: $CELLS cells of evidence, fleets of $FLEETS subscribed instances"
for fleet in $FLEETS; do template_of "$fleet"; done
echo
echo "fan-out benchmark, $(nproc) cores: one learning run changing $CELLS cells, each update to every subscribed instance + model_score_updates"
for fleet in $FLEETS; do
  for n in $(seq 1 "$RUNS"); do one_run "$fleet" "$n"; done
done

#!/usr/bin/env bash
# Cardinality: one ingest call over N events that each name a different model (a buggy router),
# with and without the pending-rows flush, then one learning run over the N cells, and what the
# default new-model cap lets in. Reports time and the backend's peak resident memory (VmHWM;
# shared_buffers is 16MB here, so at most that much of it is shared memory).
# Usage: scripts/bench_cardinality.sh [N]   (make bench-cardinality; default 100000)
set -euo pipefail
source "$(dirname "$0")/common.sh"
n="${1:-100000}"
export CLUSTER_DIR=/tmp/centralcloud-bench-cardinality CLUSTER_PORT=28870
cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" "shared_buffers = 16MB" "max_locks_per_transaction = 256"
trap 'cluster_stop "$CLUSTER_DIR"' EXIT

peak_mb="(SELECT round(substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') FROM 'VmHWM:\s+(\d+)')::numeric / 1024)) AS peak_mb"

# publish N events, model-<i>, 5,000 per send_batch
publish() {
  cpsql -d "$1" -q -c "
    DO \$\$
    BEGIN
        FOR chunk IN 0 .. ($n - 1) / 5000 LOOP
            PERFORM pgmq.send_batch('model_routing_decisions', ARRAY(
                SELECT jsonb_build_object(
                    'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                    'instance_id', 'buggy-' || (i % 3),
                    'routing_decision', jsonb_build_object(
                        'complexity', 'simple', 'selected_model', 'model-' || i, 'selected_provider', 'p',
                        'complexity_score', 2.5, 'outcome', 'success', 'response_time_ms', 100 + i % 900))
                  FROM generate_series(chunk * 5000 + 1, least((chunk + 1) * 5000, $n)) AS i));
        END LOOP;
    END \$\$;"
}

for pending in 10000 10000000; do
  db="bench_$pending"
  cpsql -d postgres -q -c "CREATE DATABASE $db"
  cpsql -d "$db" -q -c "CREATE EXTENSION centralcloud CASCADE" 2>/dev/null
  publish "$db"
  log "ingest of $n distinct models in one call, centralcloud.ingest_max_pending_rows = $pending"
  cpsql -d "$db" -c "SET centralcloud.max_new_models_per_hour = 0" \
        -c "SET centralcloud.ingest_max_pending_rows = $pending" \
        -c "SELECT ingested, rejected, round(ms) AS ms, $peak_mb FROM centralcloud.ingest_routing_events()"
done

db=bench_10000
for i in 1 2 3; do cpsql -d "$db" -q -c "SELECT centralcloud.subscribe_instance('r-$i')" >/dev/null; done
log "learning over $n cells (min_samples 1, 3 subscribed instances)"
cpsql -d "$db" -c "SET centralcloud.min_samples_for_learning = 1" \
      -c "SELECT count(*) AS cells, count(*) FILTER (WHERE changed) AS changed, round(extract(epoch FROM clock_timestamp() - now()) * 1000) AS ms, $peak_mb FROM centralcloud.learn_complexity_scores()" \
      -c "SELECT sum(published_to) AS messages_sent FROM centralcloud.score_history"
log "learning again: nothing new"
cpsql -d "$db" -c "SET centralcloud.min_samples_for_learning = 1" \
      -c "SELECT count(*) AS cells, count(*) FILTER (WHERE changed) AS changed, round(extract(epoch FROM clock_timestamp() - now()) * 1000) AS ms, $peak_mb FROM centralcloud.learn_complexity_scores()"

log "the default cap (centralcloud.max_new_models_per_hour = 100) on a fresh database"
cpsql -d postgres -q -c "CREATE DATABASE bench_cap"
cpsql -d bench_cap -q -c "CREATE EXTENSION centralcloud CASCADE" 2>/dev/null
publish bench_cap
cpsql -d bench_cap -c "SELECT ingested, rejected, round(ms) AS ms, $peak_mb FROM centralcloud.ingest_routing_events()" \
      -c "SELECT reason_code, count(*) FROM centralcloud.routing_events_rejected GROUP BY 1"

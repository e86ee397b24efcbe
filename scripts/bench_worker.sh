#!/usr/bin/env bash
# Worker benchmark (issue: part 3), on a throwaway cluster with centralcloud preloaded:
#   1. latency from pgmq.send to the event being counted, with the worker, at a steady
#      RATE events/s for SECONDS s: p50/p99 of routing_records.created_at - enqueued_at
#      (created_at is the start of the worker's ingest transaction, which commits a batch's
#      few milliseconds later; enqueued_at is pgmq's);
#   2. draining a BACKLOG-event backlog with the worker vs one ingest_routing_events() call.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/common.sh"

export CLUSTER_DIR="${BENCH_DIR:-/tmp/centralcloud-bench-worker}"
export CLUSTER_PORT="${BENCH_PORT:-28818}"
RATE="${RATE:-1000}"
SECONDS_RUN="${SECONDS_RUN:-30}"
BACKLOG="${BACKLOG:-200000}"

cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" "shared_buffers = 1GB" "max_wal_size = 8GB" \
  "shared_preload_libraries = 'centralcloud'" "centralcloud.database = 'postgres'"
trap 'cluster_stop "$CLUSTER_DIR"' EXIT
cpsql -d postgres -c "CREATE EXTENSION centralcloud CASCADE" 2>/dev/null
set_worker() {
  cpsql -d postgres -q -c "ALTER SYSTEM SET centralcloud.worker_enabled = $1" -c "SELECT pg_reload_conf()" >/dev/null
  wait_for postgres "SELECT state $([[ $1 == on ]] && echo "<>" || echo "=") 'disabled' FROM centralcloud.worker_status" 10
}
cpsql -d postgres -q -f "$here/bench_events.sql"
cpsql -d postgres -q <<'SQL'
-- A steady publisher: `per_tick` events every 100 ms, for `ticks` ticks, each tick committed.
CREATE PROCEDURE bench.steady(per_tick int, ticks int) LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
    batch jsonb[] := ARRAY(SELECT msg FROM bench.events ORDER BY k LIMIT per_tick);
BEGIN
    FOR tick IN 1 .. ticks LOOP
        PERFORM pgmq.send_batch('model_routing_decisions', batch);
        COMMIT;
        PERFORM pg_sleep(greatest(0, extract(epoch FROM started + tick * interval '100 ms' - clock_timestamp())));
    END LOOP;
END $$;

CREATE PROCEDURE bench.publish(n bigint) LANGUAGE plpgsql AS $$
BEGIN
    FOR start IN 0 .. n - 1 BY 10000 LOOP
        PERFORM pgmq.send_batch('model_routing_decisions',
            ARRAY(SELECT msg FROM bench.events WHERE k > start AND k <= least(start + 10000, n) ORDER BY k));
        COMMIT;
    END LOOP;
END $$;
SQL
wait_for postgres "SELECT state IN ('idle', 'ingesting') FROM centralcloud.worker_status" 30

log "1. steady $RATE events/s for $SECONDS_RUN s, the worker ingesting"
per_tick=$((RATE / 10)); ticks=$((SECONDS_RUN * 10)); total=$((per_tick * ticks))
cpsql -d postgres -c "CALL bench.steady($per_tick, $ticks)"
wait_for postgres "SELECT count(*) = $total FROM centralcloud.routing_records" 30
latency="$(cpsql -d postgres -At -F ' ' -c "
  SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
         round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),
         round(max(ms)::numeric, 1)
    FROM (SELECT extract(epoch FROM created_at - enqueued_at) * 1000 AS ms FROM centralcloud.routing_records) l")"
read -r p50 p99 max <<<"$latency"

log "2. a $BACKLOG-event backlog: the worker vs one ingest_routing_events() call"
set_worker off
cpsql -d postgres -q -c "TRUNCATE centralcloud.routing_records, centralcloud.model_routing_metrics"
cpsql -d postgres -c "CALL bench.publish($BACKLOG)" -c "VACUUM ANALYZE pgmq.q_model_routing_decisions" >/dev/null
t0=$(date +%s.%N)
set_worker on
wait_for postgres "SELECT count(*) = $BACKLOG FROM centralcloud.routing_records" 600
t1=$(date +%s.%N)
worker_rate=$(echo "scale=0; $BACKLOG / ($t1 - $t0)" | bc)
set_worker off
cpsql -d postgres -q -c "TRUNCATE centralcloud.routing_records, centralcloud.model_routing_metrics"
cpsql -d postgres -c "CALL bench.publish($BACKLOG)" -c "VACUUM ANALYZE pgmq.q_model_routing_decisions" >/dev/null
t0=$(date +%s.%N)
cpsql -d postgres -At -c "SELECT read FROM centralcloud.ingest_routing_events()" >/dev/null
t1=$(date +%s.%N)
direct_rate=$(echo "scale=0; $BACKLOG / ($t1 - $t0)" | bc)

cat <<REPORT

worker benchmark, $(nproc) cores
  1. send -> counted latency at $RATE events/s for $SECONDS_RUN s ($total events):
       p50 $p50 ms, p99 $p99 ms, max $max ms   (target p99 < 1000 ms: $( (( $(echo "$p99 < 1000" | bc) )) && echo met || echo NOT met))
  2. draining a $BACKLOG-event backlog:
       worker (one batch per transaction)        $worker_rate events/s
       one ingest_routing_events() call          $direct_rate events/s
REPORT

#!/usr/bin/env bash
# Dashboard benchmark (issue: part 4). On a throwaway cluster, builds TOTAL events spread over
# DAYS days: the first TOTAL - INGESTED straight into routing_records (bulk INSERT ... SELECT,
# one daily partition each), with their metrics and hourly rollups built by the same aggregates
# ingest maintains; the last INGESTED published to pgmq and ingested by
# ingest_routing_events(). Then times each dashboard view (best and worst of RUNS runs, every
# column computed), prints the EXPLAIN ANALYZE of the slowest, and times retention dropping
# the oldest day's partition.
# BENCH_REUSE=1 keeps the cluster running afterwards, and reuses the one an earlier
# BENCH_REUSE=1 run left in the same BENCH_DIR: only the timings, no load (and no retention,
# which deletes a day). For timing changes to the functions without a reload: reinstall the
# extension (a new session loads the new library) and recreate changed SQL objects by hand.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/common.sh"

export CLUSTER_DIR="${BENCH_DIR:-/tmp/centralcloud-bench-dashboards}"
export CLUSTER_PORT="${BENCH_PORT:-28819}"
TOTAL="${TOTAL:-10000000}"
INGESTED="${INGESTED:-200000}"
DAYS="${DAYS:-30}"
RUNS="${RUNS:-5}"
BULK=$((TOTAL - INGESTED))
REUSE="${BENCH_REUSE:-0}"
# Written once the load is complete: a cluster without it is never reused.
LOADED="$CLUSTER_DIR/loaded"

if [[ "$REUSE" == 1 && -f "$LOADED" ]]; then
  log "reusing the loaded cluster in $CLUSTER_DIR ($(cat "$LOADED"))"
  sudo -u postgres "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" status >/dev/null \
    || sudo -u postgres "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w -t 60 start >/dev/null
  fresh=0
else
  cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" "shared_buffers = 2GB" "max_wal_size = 16GB" \
    "checkpoint_timeout = 30min" "work_mem = 64MB" "maintenance_work_mem = 1GB"
  fresh=1
fi
[[ "$REUSE" == 1 ]] || trap 'cluster_stop "$CLUSTER_DIR"' EXIT

if ((fresh)); then  # the load, to the end of the ingest
cpsql -d postgres -c "CREATE DATABASE bench" >/dev/null
cpsql -d bench -c "CREATE EXTENSION centralcloud CASCADE" 2>/dev/null

log "bulk: $BULK events over $DAYS days into routing_records (one partition per day)"
start=$SECONDS
cpsql -d bench -v bulk="$BULK" -v days="$DAYS" <<'SQL'
SELECT count(*) FROM (SELECT centralcloud.add_routing_partition((now() AT TIME ZONE 'UTC')::date - d)
                        FROM generate_series(1, :days) AS d) AS created \g /dev/null
-- 20 instances x 8 models (one provider each) x 3 complexities, every combination in every
-- hour (480 rollup rows an hour); half decisions, half outcomes
-- (95% success) with a response time. Received times spread evenly from midnight (UTC) DAYS
-- days ago until now, so the oldest partition holds a whole day.
INSERT INTO centralcloud.routing_records
       (msg_id, "timestamp", instance_id, complexity, model, provider, score, outcome,
        response_time_ms, capabilities_required, preference, received_at, enqueued_at)
SELECT 1000000000 + g, t - interval '2 seconds', 'router-' || (g % 20),
       (ARRAY['simple', 'medium', 'complex'])[1 + (g / 160) % 3],
       'model-' || (g / 20) % 8, 'provider-' || (g / 20) % 8 % 3,
       ((g % 50) / 10.0)::float8,
       CASE WHEN g % 2 = 0 THEN 'routed' WHEN g % 20 = 1 THEN 'failure' ELSE 'success' END,
       CASE WHEN g % 2 = 1 THEN 40 + (g * 7919) % 4000 END,
       '{}', NULL, t, t
  FROM generate_series(1::bigint, :bulk) AS g,
       LATERAL (SELECT start + (now() - interval '1 hour' - start) * g / :bulk AS t
                  FROM (SELECT ((now() AT TIME ZONE 'UTC')::date - :days) AT TIME ZONE 'UTC' AS start) AS s) AS at;
-- Their metrics and rollups, from the same aggregates ingest uses (latency_sketch_agg builds
-- the sketch ingest builds).
INSERT INTO centralcloud.model_routing_metrics
       (model_name, complexity_level, usage_count, success_count, failure_count,
        response_time_count, response_time_sum, response_time_min, response_time_max,
        avg_response_time, latency_sketch)
SELECT model, complexity, count(*) FILTER (WHERE outcome = 'routed'),
       count(*) FILTER (WHERE outcome = 'success'), count(*) FILTER (WHERE outcome = 'failure'),
       count(response_time_ms), coalesce(sum(response_time_ms), 0), min(response_time_ms),
       max(response_time_ms), avg(response_time_ms), centralcloud.latency_sketch_agg(response_time_ms)
  FROM centralcloud.routing_records GROUP BY 1, 2;
INSERT INTO centralcloud.model_complexity_scores (model_name, complexity_level, score, prior_score, change_source, change_reason)
SELECT model_name, complexity_level, 2.5, 2.5, 'reported', 'initial (bulk load)' FROM centralcloud.model_routing_metrics;
INSERT INTO centralcloud.routing_rollup_hourly
       (hour, instance_id, model, complexity, provider, usage_count, success_count, failure_count,
        response_time_count, response_time_sum, response_time_min, response_time_max, latency_sketch)
SELECT date_trunc('hour', "timestamp", 'UTC'), instance_id, model, complexity, provider,
       count(*) FILTER (WHERE outcome = 'routed'), count(*) FILTER (WHERE outcome = 'success'),
       count(*) FILTER (WHERE outcome = 'failure'), count(response_time_ms),
       coalesce(sum(response_time_ms), 0), min(response_time_ms), max(response_time_ms),
       centralcloud.latency_sketch_agg(response_time_ms)
  FROM centralcloud.routing_records GROUP BY 1, 2, 3, 4, 5;
INSERT INTO centralcloud.routing_rollup_hourly_fleet
       (model, complexity, hour, provider, usage_count, success_count, failure_count,
        response_time_count, response_time_sum, response_time_min, response_time_max, latency_sketch)
SELECT model, complexity, hour, provider, sum(usage_count), sum(success_count), sum(failure_count),
       sum(response_time_count), sum(response_time_sum), min(response_time_min), max(response_time_max),
       centralcloud.latency_sketch_union(latency_sketch)
  FROM centralcloud.routing_rollup_hourly GROUP BY 1, 2, 3, 4;
SQL
log "bulk load and aggregation: $((SECONDS - start)) s"

log "ingest: publishing $INGESTED events (1% invalid) and draining them with ingest_routing_events()"
cpsql -d bench -v n="$INGESTED" <<'SQL'
SELECT count(*) FROM pgmq.send_batch('model_routing_decisions', ARRAY(
    SELECT CASE WHEN g % 100 = 0 THEN jsonb_build_object('instance_id', 'router-x') ELSE jsonb_build_object(
        'timestamp', to_char((now() - make_interval(secs => g % 3600)) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'instance_id', 'router-' || (g % 20),
        'routing_decision', jsonb_build_object(
            'complexity', (ARRAY['simple', 'medium', 'complex'])[1 + (g / 160) % 3],
            'selected_model', 'model-' || (g / 20) % 8,
            'selected_provider', 'provider-' || (g / 20) % 8 % 3,
            'complexity_score', ((g % 50) / 10.0),
            'outcome', CASE WHEN g % 2 = 0 THEN 'routed' WHEN g % 20 = 1 THEN 'failure' ELSE 'success' END,
            'response_time_ms', CASE WHEN g % 2 = 1 THEN 40 + (g * 7919) % 4000 END)) END
      FROM generate_series(1, :n) AS g)) \g /dev/null
\timing on
SELECT * FROM centralcloud.ingest_routing_events();
\timing off
SELECT count(*) AS learned_changes FROM centralcloud.learn_complexity_scores() WHERE changed;
SELECT centralcloud.set_complexity_score('model-1', 'simple', 4.2, 'operator: benchmark');
VACUUM ANALYZE;
SELECT pg_size_pretty(pg_total_relation_size('centralcloud.routing_records_p' || to_char((now() AT TIME ZONE 'UTC')::date - 1, 'YYYYMMDD'))) AS one_day_partition,
       (SELECT count(*) FROM centralcloud.routing_rollup_hourly) AS rollup_rows,
       (SELECT count(*) FROM centralcloud.routing_rollup_hourly_fleet) AS fleet_rollup_rows,
       (SELECT sum(usage_count + success_count + failure_count) FROM centralcloud.routing_rollup_hourly_fleet)
         = (SELECT sum(usage_count + success_count + failure_count) FROM centralcloud.routing_rollup_hourly) AS fleet_totals_equal,
       (SELECT sum(usage_count + success_count + failure_count) FROM centralcloud.model_routing_metrics) AS events_in_metrics,
       (SELECT count(*) FROM centralcloud.routing_events_rejected) AS dead_letters;
SQL
echo "TOTAL=$TOTAL INGESTED=$INGESTED DAYS=$DAYS, loaded $(date -u +%FT%TZ)" >"$LOADED"
fi

log "dashboard views: best / worst of $RUNS runs (ms), every row and column computed"
cpsql -d bench -v runs="$RUNS" <<'SQL'
SET bench.runs = :runs;
CREATE TEMP TABLE timings (what text, ms float8);
DO $$
DECLARE
    what text;
    started timestamptz;
    r record;
BEGIN
    FOREACH what IN ARRAY ARRAY[
        'centralcloud.model_usage_by_instance', 'centralcloud.model_success_rates',
        'centralcloud.model_response_times', 'centralcloud.model_rankings',
        'centralcloud.ingest_health', 'centralcloud.score_updates_recent', 'centralcloud.worker_status',
        $q$centralcloud.latency_quantiles('model-3', 'complex', now() - interval '1 day')$q$,
        $q$centralcloud.latency_quantiles('model-3', 'complex', now() - interval '30 days')$q$,
        $q$centralcloud.latency_quantiles(NULL, NULL, now() - interval '30 days')$q$,
        $q$centralcloud.routing_timeseries(now() - interval '30 days', now(), '1 hour', 'model-3')$q$,
        $q$centralcloud.routing_timeseries(now() - interval '30 days', now(), '1 day')$q$]
    LOOP
        FOR i IN 1..current_setting('bench.runs')::int LOOP
            started := clock_timestamp();
            FOR r IN EXECUTE 'SELECT * FROM ' || what LOOP END LOOP;
            INSERT INTO timings VALUES (what, extract(epoch FROM clock_timestamp() - started) * 1000);
        END LOOP;
    END LOOP;
END $$;
SELECT what, round(min(ms)::numeric, 1) AS best_ms, round(max(ms)::numeric, 1) AS worst_ms,
       CASE WHEN what LIKE '%routing_timeseries%''1 hour''%'
            THEN CASE WHEN max(ms) < 100 THEN 'ok < 100 ms' ELSE 'OVER 100 ms' END
            WHEN what LIKE '%latency_quantiles%' OR what LIKE '%routing_timeseries%' THEN ''
            WHEN max(ms) < 50 THEN 'ok < 50 ms' ELSE 'OVER 50 ms' END AS target
  FROM timings GROUP BY what ORDER BY min(ms) DESC;
SELECT what AS slowest_view FROM timings WHERE what NOT LIKE '%latency_quantiles%' AND what NOT LIKE '%routing_timeseries%'
 GROUP BY what ORDER BY min(ms) DESC LIMIT 1 \gset
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM :slowest_view;
SQL

[[ "$REUSE" != 1 ]] || exit 0
log "retention: keeping $((DAYS - 1)) days drops the oldest day's partition"
cpsql -d bench -v days="$DAYS" <<'SQL'
SELECT count(*) AS records_before FROM centralcloud.routing_records;
SELECT set_config('centralcloud.routing_records_retention', ((:days - 1) * 86400)::text, false) \g /dev/null
\timing on
SELECT * FROM centralcloud.run_maintenance();
\timing off
SELECT count(*) AS records_after FROM centralcloud.routing_records;
SQL

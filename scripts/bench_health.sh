#!/usr/bin/env bash
# Outage detection benchmark (issue 13), on a throwaway cluster with the worker preloaded: a
# steady RATE events/s (half routing decisions, half outcomes, 98% success) over 24 models of
# 6 providers, three subscribed instances, and TRIALS full outages one after the other: every
# OUTAGE_S s model-k fails every request for OUTAGE_S - 2 s, then succeeds again. For each
# outage: the time from the commit of its first failed outcome to the first health event about
# it (and to the `down` one) in each instance's queue, as a poller sees it (every 20 ms); and
# from the first good outcome after it to the `healthy` event. Also counts the changes of the
# models and providers that had no outage (false alarms) and checks that each event reached
# every instance exactly once.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/common.sh"

export CLUSTER_DIR="${BENCH_DIR:-/tmp/centralcloud-bench-health}"
export CLUSTER_PORT="${BENCH_PORT:-28821}"
RATE="${RATE:-1000}"
TRIALS="${TRIALS:-20}"
OUTAGE_S="${OUTAGE_S:-5}"
WARMUP_S=10
TAIL_S=45   # the last recovery needs centralcloud.health_min_recovery (30 s) of good outcomes

cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" "shared_buffers = 512MB" \
  "shared_preload_libraries = 'centralcloud'" "centralcloud.database = 'postgres'"
[[ -n "${KEEP:-}" ]] || trap 'cluster_stop "$CLUSTER_DIR"' EXIT   # KEEP=1 leaves the cluster running
cpsql -d postgres -c "CREATE EXTENSION centralcloud CASCADE" 2>/dev/null
ticks=$(( (WARMUP_S + TRIALS * OUTAGE_S + TAIL_S) * 10 ))
cpsql -d postgres -q -v rate="$RATE" -v trials="$TRIALS" -v outage_ticks=$((OUTAGE_S * 10)) \
  -v warmup_ticks=$((WARMUP_S * 10)) <<'SQL'
CREATE SCHEMA bench;
SELECT centralcloud.subscribe_instance('router-' || i) FROM generate_series(1, 3) AS i;
CREATE TABLE bench.settings AS
SELECT :rate / 10 AS per_tick, :trials AS trials, :outage_ticks AS outage_ticks, :warmup_ticks AS warmup_ticks;
-- Trial k: model-k is down from tick start_tick for outage_ticks - 20 ticks.
CREATE TABLE bench.trials AS
SELECT k, 'model-' || k AS model, warmup_ticks + k * outage_ticks AS start_tick,
       warmup_ticks + k * outage_ticks + outage_ticks - 20 AS end_tick,
       NULL::timestamptz AS first_failure_at, NULL::timestamptz AS first_success_after_at
  FROM bench.settings, generate_series(0, :trials - 1) AS k;
CREATE TABLE bench.seen (queue text, msg_id bigint, message jsonb, seen_at timestamptz, PRIMARY KEY (queue, msg_id));
CREATE TABLE bench.run (started_at timestamptz, done_at timestamptz, ticks int);
INSERT INTO bench.run VALUES (NULL, NULL, NULL);

-- The events of one tick: per_tick / 2 requests, each a decision and its outcome, spread over 24
-- models (model-i of provider-(i % 6)); a model in its outage fails, the others fail 2%.
CREATE FUNCTION bench.tick_events(tick int) RETURNS jsonb[] LANGUAGE sql AS $$
    SELECT array_agg(jsonb_build_object(
               'timestamp', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'instance_id', 'router-' || (r % 3 + 1),
               'routing_decision', jsonb_build_object(
                   'complexity', (ARRAY['simple', 'medium', 'complex'])[1 + r % 3],
                   'selected_model', 'model-' || m, 'selected_provider', 'provider-' || (m % 6),
                   'complexity_score', 2.5,
                   'outcome', CASE WHEN o = 0 THEN 'routed'
                                   WHEN EXISTS (SELECT 1 FROM bench.trials t WHERE t.k = m AND tick >= t.start_tick AND tick < t.end_tick)
                                        OR (tick * 7919 + r) % 50 = 0 THEN 'failure'
                                   ELSE 'success' END,
                   'response_time_ms', CASE WHEN o = 1 THEN 200 + (r * 37) % 800 END)) ORDER BY r, o)
      FROM bench.settings, generate_series(1, per_tick / 2) AS r, LATERAL (SELECT (tick * 131 + r) % 24 AS m) AS pick,
           generate_series(0, 1) AS o
$$;

-- Every tick's events, made before the run so that publishing costs only the sends.
CREATE PROCEDURE bench.prepare(ticks int) LANGUAGE sql AS $$
    CREATE TABLE bench.ticks AS SELECT tick, bench.tick_events(tick) AS events FROM generate_series(1, ticks) AS tick;
    CREATE UNIQUE INDEX ON bench.ticks (tick);
$$;

-- A steady publisher: one tick every 100 ms, each committed; notes when each outage's first
-- failure and the first success after it were committed.
CREATE PROCEDURE bench.publish(ticks int) LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
BEGIN
    UPDATE bench.run SET started_at = started, ticks = publish.ticks;
    COMMIT;
    FOR n IN 1 .. ticks LOOP
        PERFORM pgmq.send_batch('model_routing_decisions', (SELECT events FROM bench.ticks t WHERE t.tick = n));
        COMMIT;
        UPDATE bench.trials SET first_failure_at = clock_timestamp() WHERE start_tick = n;
        UPDATE bench.trials SET first_success_after_at = clock_timestamp() WHERE end_tick = n;
        COMMIT;
        PERFORM pg_sleep(greatest(0, extract(epoch FROM started + n * interval '100 ms' - clock_timestamp())));
    END LOOP;
    UPDATE bench.run SET done_at = clock_timestamp();
END $$;

-- The instances' side: every 20 ms, the messages that appeared in their queues since the last
-- look, with the time they were first seen; until 5 s after the publisher is done.
CREATE PROCEDURE bench.poll() LANGUAGE plpgsql AS $$
DECLARE
    sub record;
BEGIN
    WHILE NOT EXISTS (SELECT 1 FROM bench.run WHERE done_at < clock_timestamp() - interval '5 seconds') LOOP
        FOR sub IN SELECT queue_name FROM centralcloud.score_subscriptions LOOP
            EXECUTE format('INSERT INTO bench.seen SELECT %L, q.msg_id, q.message, clock_timestamp() FROM pgmq.%I q
                             ON CONFLICT DO NOTHING', sub.queue_name, pgmq.format_table_name(sub.queue_name, 'q'));
        END LOOP;
        COMMIT;
        PERFORM pg_sleep(0.02);
    END LOOP;
END $$;
SQL
cpsql -d postgres -c "CALL bench.prepare($ticks)" >/dev/null
wait_for postgres "SELECT state IN ('idle', 'ingesting') FROM centralcloud.worker_status" 30

log "$RATE events/s for $((ticks / 10)) s, $TRIALS outages of ${OUTAGE_S}s - 2 s, 3 subscribed instances"
cpsql -d postgres -c "CALL bench.poll()" >/dev/null &
poller=$!
cpsql -d postgres -c "CALL bench.publish($ticks)" >/dev/null
wait "$poller"
wait_for postgres "SELECT queue_length = 0 FROM pgmq.metrics('model_routing_decisions')" 120
# What one evaluation costs with the window full (24 models, 300 s of traffic), as ingest runs it.
eval_ms="$(cpsql -d postgres -At -c "
  DO \$\$ DECLARE t timestamptz := clock_timestamp(); BEGIN
    FOR i IN 1 .. 20 LOOP PERFORM * FROM centralcloud.evaluate_model_health(); END LOOP;
    RAISE NOTICE '%', round(extract(epoch FROM clock_timestamp() - t) * 1000 / 20, 1);
  END \$\$" 2>&1 | grep -o '[0-9.]*$')"

cpsql -d postgres -At -F ' ' <<'SQL' >"$CLUSTER_DIR/report.txt"
WITH events AS (
    SELECT s.queue, s.seen_at, s.message ->> 'model' AS model, s.message ->> 'state' AS state, s.msg_id
      FROM bench.seen s WHERE s.message ->> 'event_type' = 'model_health_update'),
detection AS (
    SELECT t.k, q.queue,
           min(e.seen_at) FILTER (WHERE e.seen_at > t.first_failure_at AND e.state <> 'healthy') - t.first_failure_at AS first_event,
           min(e.seen_at) FILTER (WHERE e.seen_at > t.first_failure_at AND e.state = 'down') - t.first_failure_at AS down,
           min(e.seen_at) FILTER (WHERE e.seen_at > t.first_success_after_at AND e.state = 'healthy') - t.first_success_after_at AS recovery
      FROM bench.trials t CROSS JOIN (SELECT queue_name AS queue FROM centralcloud.score_subscriptions) q
      LEFT JOIN events e ON e.model = t.model AND e.queue = q.queue
     GROUP BY t.k, q.queue, t.first_failure_at, t.first_success_after_at),
ms AS (
    SELECT extract(epoch FROM first_event) * 1000 AS first_ms, extract(epoch FROM down) * 1000 AS down_ms,
           extract(epoch FROM recovery) * 1000 AS recovery_ms FROM detection)
SELECT 'samples', count(*), count(first_ms), count(down_ms), count(recovery_ms) FROM ms
UNION ALL
SELECT 'first_event', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY first_ms)::numeric), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY first_ms)::numeric), round(max(first_ms)::numeric), NULL FROM ms
UNION ALL
SELECT 'down', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY down_ms)::numeric), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY down_ms)::numeric), round(max(down_ms)::numeric), NULL FROM ms
UNION ALL
SELECT 'recovery', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY recovery_ms)::numeric), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY recovery_ms)::numeric), round(max(recovery_ms)::numeric), NULL FROM ms
UNION ALL
SELECT 'false_alarms', count(*), NULL, NULL, NULL FROM centralcloud.health_history h
 WHERE h.model IS NULL OR h.model NOT IN (SELECT model FROM bench.trials)
UNION ALL
SELECT 'copies', min(n), max(n), count(*), NULL FROM (SELECT message, count(*) AS n FROM bench.seen
                                                       WHERE message ->> 'event_type' = 'model_health_update' GROUP BY message) c
UNION ALL
SELECT 'history', count(*), sum(published_to), NULL, NULL FROM centralcloud.health_history
UNION ALL
SELECT 'ingested', count(*), NULL, NULL, NULL FROM centralcloud.routing_records
UNION ALL
SELECT 'rate', round(ticks * (SELECT per_tick FROM bench.settings) / extract(epoch FROM done_at - started_at)),
       round(extract(epoch FROM done_at - started_at)), NULL, NULL FROM bench.run;
SQL
get() { awk -v k="$1" -v c="$2" '$1 == k {print $c}' "$CLUSTER_DIR/report.txt"; }
p99=$(get down 3)
cat <<REPORT

health benchmark, $(nproc) cores: $RATE events/s wanted, $(get rate 2) events/s published ($(get ingested 2) events in $(get rate 3) s, all ingested by the worker), $TRIALS full outages, 3 instances
  samples (outage x instance): $(get samples 2); with a first event $(get samples 3), with a down event $(get samples 4), with a recovery $(get samples 5)
  first failed outcome -> first health event in an instance's queue: p50 $(get first_event 2) ms, p99 $(get first_event 3) ms, max $(get first_event 4) ms
  first failed outcome -> "down" event in an instance's queue:        p50 $(get down 2) ms, p99 $p99 ms, max $(get down 4) ms   (target p99 < 5000 ms: $( [[ -n "$p99" ]] && (( p99 < 5000 )) && echo met || echo NOT met))
  first good outcome after it -> "healthy" event:                      p50 $(get recovery 2) ms, p99 $(get recovery 3) ms, max $(get recovery 4) ms   (centralcloud.health_min_recovery 30 s)
  changes of models and providers without an outage (false alarms): $(get false_alarms 2)
  health changes: $(get history 2), published to $(get history 3) queues; each event seen $(get copies 2)..$(get copies 3) times ($(get copies 4) distinct events)
  one health evaluation with a full window (24 models x 300 s): $eval_ms ms
REPORT

-- Dashboards: ingest keeps the hourly rollup in step with the audit trail; the views answer
-- from rollups, metrics and the score catalog with the numbers the published events give; the
-- sketch aggregates merge the same way serially and across parallel workers.
\ir lib.sql

INSERT INTO test.published (msg) SELECT test.events(3000);
-- Events from two days ago: in the rollup, outside the 24-hour views.
INSERT INTO test.published (msg)
SELECT test.event('singularity-old', 'gpt-4o', 'simple', 'success', 100 + i, 1.0, now() - interval '2 days')
  FROM generate_series(1, 40) AS i;
-- A second provider for one model.
INSERT INTO test.published (msg)
SELECT jsonb_set(test.event('singularity-1', 'gpt-4o', 'medium', 'routed', 55), '{routing_decision,selected_provider}', '"azure"')
  FROM generate_series(1, 7);
SELECT test.publish();
-- Several calls and batch sizes: the rollup must not depend on how batches fall.
SELECT * FROM centralcloud.ingest_routing_events(batch_size => 700, max_batches => 2);
SELECT * FROM centralcloud.ingest_routing_events(batch_size => 333);

SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'rollup and metrics equal a recount');
SELECT test.eq((SELECT sum(usage_count + success_count + failure_count) FROM centralcloud.routing_rollup_hourly),
               3047::numeric, 'every event in the rollup once');
SELECT test.eq((SELECT sum(usage_count) FROM centralcloud.routing_rollup_hourly WHERE provider = 'azure'),
               7::numeric, 'provider kept apart');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_rollup_hourly
                 WHERE hour <> date_trunc('hour', hour, 'UTC')), 0::bigint, 'rows are whole UTC hours');

-- model_usage_by_instance: the seed's query 1 over the rollup; the old events are outside.
SELECT test.empty($$
    (SELECT instance_id, model, usage_count, success_count, failure_count, events
       FROM centralcloud.model_usage_by_instance
     EXCEPT
     SELECT msg->>'instance_id', msg #>> '{routing_decision,selected_model}',
            count(*) FILTER (WHERE msg #>> '{routing_decision,outcome}' = 'routed'),
            count(*) FILTER (WHERE msg #>> '{routing_decision,outcome}' = 'success'),
            count(*) FILTER (WHERE msg #>> '{routing_decision,outcome}' = 'failure'),
            count(*)
       FROM test.published
      WHERE (msg->>'timestamp')::timestamptz >= date_trunc('hour', now() - interval '23 hours', 'UTC')
      GROUP BY 1, 2)
$$, 'usage by instance = published events of the last 24 hours');
SELECT test.eq((SELECT count(*) FROM centralcloud.model_usage_by_instance WHERE instance_id = 'singularity-old'),
               0::bigint, 'older events outside the window');

-- latency_quantiles over a window = a sketch of exactly those events' response times.
CREATE TEMP TABLE window_truth AS
SELECT count(*) AS samples, round(avg(response_time_ms), 1)::float8 AS avg_ms,
       round(centralcloud.latency_quantile(centralcloud.latency_sketch_agg(response_time_ms), 0.5)::numeric, 1)::float8 AS p50,
       round(centralcloud.latency_quantile(centralcloud.latency_sketch_agg(response_time_ms), 0.95)::numeric, 1)::float8 AS p95,
       round(centralcloud.latency_quantile(centralcloud.latency_sketch_agg(response_time_ms), 0.99)::numeric, 1)::float8 AS p99,
       min(response_time_ms) AS min_ms, max(response_time_ms) AS max_ms
  FROM centralcloud.routing_records
 WHERE model = 'gpt-4o' AND complexity = 'simple' AND response_time_ms IS NOT NULL
   AND "timestamp" >= date_trunc('hour', now() - interval '3 days', 'UTC');
SELECT test.eq((SELECT (samples, avg_ms, p50_ms, p95_ms, p99_ms, min_ms, max_ms)::text
                  FROM centralcloud.latency_quantiles('gpt-4o', 'simple', now() - interval '3 days')),
               (SELECT (samples, avg_ms, p50, p95, p99, min_ms, max_ms)::text FROM window_truth),
               'latency_quantiles = the window''s own sketch');
SELECT test.eq((SELECT samples FROM centralcloud.latency_quantiles('gpt-4o', 'simple', now() - interval '1 day')),
               (SELECT count(*) FROM centralcloud.routing_records
                 WHERE model = 'gpt-4o' AND complexity = 'simple' AND response_time_ms IS NOT NULL
                   AND "timestamp" >= date_trunc('hour', now() - interval '1 day', 'UTC')),
               'a shorter window leaves the old events out');
SELECT test.eq((SELECT samples FROM centralcloud.latency_quantiles(NULL, NULL, '-infinity')),
               (SELECT count(response_time_ms) FROM centralcloud.routing_records), 'NULL model and complexity: all');
SELECT test.eq((SELECT (samples, p50_ms)::text FROM centralcloud.latency_quantiles('no-such-model', 'simple', now() - interval '1 day')),
               '(0,)', 'empty window');

-- The sketch aggregates: serial and parallel plans merge to the same sketch.
CREATE TABLE test.many_sketches AS
SELECT g % 50 AS grp, centralcloud.latency_sketch_agg(((g * 7919) % 100000)::int) AS sketch
  FROM generate_series(1, 200000) AS g GROUP BY 1;
CREATE TABLE test.many_values AS SELECT ((g * 7919) % 100000)::int AS ms FROM generate_series(1, 200000) AS g;
CREATE TEMP TABLE serial AS
SELECT centralcloud.latency_quantile(centralcloud.latency_sketch_union(sketch), 0.99) AS union_p99,
       (SELECT centralcloud.latency_quantile(centralcloud.latency_sketch_agg(ms), 0.99) FROM test.many_values) AS agg_p99
  FROM test.many_sketches;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
DO $$
DECLARE
    line text;
    partial boolean := false;
BEGIN
    FOR line IN EXPLAIN SELECT centralcloud.latency_sketch_agg(ms) FROM test.many_values LOOP
        partial := partial OR line LIKE '%Partial Aggregate%';
    END LOOP;
    PERFORM test.eq(partial, true, 'latency_sketch_agg runs as a parallel partial aggregate');
END $$;
SELECT test.eq((SELECT centralcloud.latency_quantile(centralcloud.latency_sketch_agg(ms), 0.99) FROM test.many_values),
               (SELECT agg_p99 FROM serial), 'parallel agg = serial agg');
SELECT test.eq((SELECT centralcloud.latency_sketch_count(centralcloud.latency_sketch_agg(ms)) FROM test.many_values),
               200000::bigint, 'parallel agg counts every value');
SELECT test.eq((SELECT centralcloud.latency_quantile(centralcloud.latency_sketch_union(sketch), 0.99) FROM test.many_sketches),
               (SELECT union_p99 FROM serial), 'parallel union = serial union');
SELECT test.eq((SELECT union_p99 = agg_p99 FROM serial), true, 'union of partial sketches = sketch of all values');
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
SELECT test.eq((SELECT centralcloud.latency_sketch_union(NULL::bytea)), NULL::bytea, 'union of nothing');

-- model_rankings: per complexity by score, with the evidence and the last change.
SELECT centralcloud.set_complexity_score('gpt-4o', 'complex', 4.9, 'operator: pinned for the test');
SELECT test.eq((SELECT (rank, score, previous_score, last_change_source) FROM centralcloud.model_rankings
                 WHERE model = 'gpt-4o' AND complexity_level = 'complex')::text,
               (SELECT (1, 4.9, old_score, 'operator') FROM centralcloud.score_history
                 WHERE model_name = 'gpt-4o' AND complexity_level = 'complex')::text,
               'operator change ranks first with its previous score');
SELECT test.empty($$
    SELECT complexity_level, rank, score FROM centralcloud.model_rankings r
     WHERE rank <> (SELECT count(*) + 1 FROM centralcloud.model_complexity_scores s
                     WHERE s.complexity_level = r.complexity_level AND s.score > r.score)
$$, 'ranks follow scores');
SELECT test.empty($$
    SELECT r.model, r.complexity_level FROM centralcloud.model_rankings r
      JOIN centralcloud.model_success_rates s USING (model, complexity_level)
     WHERE (r.success_rate, r.outcome_count) IS DISTINCT FROM (s.success_rate, s.outcome_count)
$$, 'rankings carry the success rates');
SELECT test.eq((SELECT count(*) FROM centralcloud.model_rankings), (SELECT count(*) FROM centralcloud.model_complexity_scores),
               'one ranking row per cell');

-- score_updates_recent: newest first.
SELECT centralcloud.set_complexity_score('llama-3-70b', 'simple', 1.5, 'operator: second change');
SELECT test.eq((SELECT array_agg(model ORDER BY changed_at DESC) FROM (SELECT * FROM centralcloud.score_updates_recent LIMIT 2) x),
               (SELECT array_agg(model) FROM (SELECT model FROM centralcloud.score_updates_recent LIMIT 2) y), 'ordered');
SELECT test.eq((SELECT (model, new_score, reason) FROM centralcloud.score_updates_recent LIMIT 1)::text,
               '(llama-3-70b,1.5,"operator: second change")', 'latest change first');

-- ingest_health: queue depth and age, dead letters, last ingest.
SELECT pgmq.send('model_routing_decisions', '{"not": "an event"}'::jsonb);
SELECT * FROM centralcloud.ingest_routing_events();
SELECT pgmq.send('model_routing_decisions', test.event('singularity-1', 'gpt-4o', 'simple', 'routed'));
SELECT pgmq.send('model_routing_decisions', test.event('singularity-1', 'gpt-4o', 'simple', 'routed'), 3600);
SELECT test.eq((SELECT (queue_name, queue_length, queue_visible_length, dead_letters_last_hour, dead_letters_total)::text
                  FROM centralcloud.ingest_health),
               '(model_routing_decisions,2,1,1,1)', 'queue depth and dead letters');
SELECT test.eq((SELECT oldest_msg_age_sec >= 0 AND last_ingest_at = (SELECT max(updated_at) FROM centralcloud.model_routing_metrics)
                  FROM centralcloud.ingest_health), true, 'ages and last ingest');
SELECT test.eq((SELECT worker_state FROM centralcloud.ingest_health),
               'not preloaded: schedule with pg_cron or call ingest yourself', 'worker state');
SET centralcloud.queue_name = 'not_there';
SELECT test.eq((SELECT (queue_name, queue_length)::text FROM centralcloud.ingest_health), '(not_there,)', 'missing queue: no numbers, no error');
RESET centralcloud.queue_name;

-- The checker refuses a queue that does not exist.
DO $$
BEGIN
    PERFORM * FROM centralcloud.check_invariants(NULL, 'not_there');
    RAISE EXCEPTION 'FAILED: checker ran on a missing queue';
EXCEPTION WHEN undefined_table THEN
    PERFORM test.eq(SQLERRM, 'centralcloud: pgmq queue "not_there" does not exist', 'checker: missing queue');
END $$;

-- Every dashboard view answers and is documented.
SELECT test.empty($$
    SELECT v FROM unnest(ARRAY['model_usage_by_instance', 'model_success_rates', 'model_response_times',
                               'model_rankings', 'ingest_health', 'score_updates_recent']) AS v
     WHERE obj_description(('centralcloud.' || v)::regclass, 'pg_class') IS NULL
$$, 'views documented');
SELECT test.empty($$
    SELECT c.relname || '.' || a.attname
      FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE c.relnamespace = 'centralcloud'::regnamespace AND c.relkind = 'v'
       AND col_description(c.oid, a.attnum) IS NULL
$$, 'every view column documented');

-- Time series: routing_timeseries (6-hour buckets, per model and complexity; per provider and
-- instance) equals a recount of the audit trail, sketches merged exactly; routing_hourly is
-- the rollup hour by hour.
CREATE TEMP TABLE series_from AS
SELECT date_bin('6 hours', now() - interval '3 days', timestamptz '2000-01-01 00:00:00+00') AS t;
CREATE TEMP TABLE series_truth AS
SELECT date_bin('6 hours', date_trunc('hour', "timestamp", 'UTC'), timestamptz '2000-01-01 00:00:00+00') AS "time",
       model::text, complexity::text, provider::text, instance_id::text,
       count(*) FILTER (WHERE outcome = 'routed') AS decisions,
       count(*) FILTER (WHERE outcome = 'success') AS successes,
       count(*) FILTER (WHERE outcome = 'failure') AS failures,
       round(100.0 * count(*) FILTER (WHERE outcome = 'success')
             / nullif(count(*) FILTER (WHERE outcome <> 'routed'), 0), 2)::float8 AS success_rate,
       round(centralcloud.latency_quantile(centralcloud.latency_sketch_agg(response_time_ms), 0.95)::numeric, 1)::float8 AS p95_ms
  FROM centralcloud.routing_records
 WHERE "timestamp" >= (SELECT t FROM series_from)
 GROUP BY 1, 2, 3, 4, 5;
SELECT test.empty($$
    (SELECT * FROM series_truth
     EXCEPT SELECT "time", model, complexity, provider, instance_id, decisions, successes, failures, success_rate, p95_ms
              FROM centralcloud.routing_timeseries((SELECT t FROM series_from), now() + interval '1 day', '6 hours',
                                                   per_provider => true, per_instance => true))
    UNION ALL
    (SELECT "time", model, complexity, provider, instance_id, decisions, successes, failures, success_rate, p95_ms
       FROM centralcloud.routing_timeseries((SELECT t FROM series_from), now() + interval '1 day', '6 hours',
                                            per_provider => true, per_instance => true)
     EXCEPT SELECT * FROM series_truth)
$$, 'routing_timeseries = a recount');
-- p50, p95 and p99 (read from one decode of the merged sketch) are each quantile of the union.
CREATE TEMP TABLE series_quantiles AS
SELECT date_bin('6 hours', hour, timestamptz '2000-01-01 00:00:00+00') AS "time", model::text, complexity::text,
       round(centralcloud.latency_quantile(centralcloud.latency_sketch_union(latency_sketch), 0.50)::numeric, 1)::float8 AS p50_ms,
       round(centralcloud.latency_quantile(centralcloud.latency_sketch_union(latency_sketch), 0.95)::numeric, 1)::float8 AS p95_ms,
       round(centralcloud.latency_quantile(centralcloud.latency_sketch_union(latency_sketch), 0.99)::numeric, 1)::float8 AS p99_ms
  FROM centralcloud.routing_rollup_hourly WHERE hour >= (SELECT t FROM series_from) GROUP BY 1, 2, 3;
SELECT test.eq((SELECT count(*) FROM series_quantiles WHERE p99_ms > p50_ms) > 0, true, 'the series has spread latencies');
SELECT test.empty($$
    (SELECT * FROM series_quantiles
     EXCEPT SELECT "time", model, complexity, p50_ms, p95_ms, p99_ms
              FROM centralcloud.routing_timeseries((SELECT t FROM series_from), now() + interval '1 day', '6 hours'))
    UNION ALL
    (SELECT "time", model, complexity, p50_ms, p95_ms, p99_ms
       FROM centralcloud.routing_timeseries((SELECT t FROM series_from), now() + interval '1 day', '6 hours')
     EXCEPT SELECT * FROM series_quantiles)
$$, 'routing_timeseries quantiles = latency_quantile of the merged sketches');
SELECT test.eq(centralcloud.latency_sketch_quantiles(centralcloud.latency_sketch_agg(v), '{0, 0.5, NULL, 1, 1.5}'),
               ARRAY[centralcloud.latency_quantile(centralcloud.latency_sketch_agg(v), 0),
                     centralcloud.latency_quantile(centralcloud.latency_sketch_agg(v), 0.5), NULL,
                     centralcloud.latency_quantile(centralcloud.latency_sketch_agg(v), 1), NULL]::float8[],
               'latency_sketch_quantiles = latency_quantile for each q')
  FROM generate_series(1, 1000) AS v;
SELECT test.eq((SELECT sum(decisions + successes + failures) FROM centralcloud.routing_timeseries((SELECT t FROM series_from), now() + interval '1 day', '1 day', 'gpt-4o')),
               (SELECT count(*) FROM centralcloud.routing_records WHERE model = 'gpt-4o' AND "timestamp" >= (SELECT t FROM series_from))::numeric,
               'one model, daily buckets');
SELECT test.eq((SELECT sum(decisions) FROM centralcloud.routing_hourly WHERE "time" >= (SELECT t FROM series_from)),
               (SELECT sum(decisions) FROM series_truth)::numeric, 'routing_hourly');
SELECT test.fails_with($$SELECT * FROM centralcloud.routing_timeseries(now() - interval '1 day', now(), '30 minutes')$$,
                       '22023', 'bucket below an hour');
SELECT test.fails_with($$SELECT * FROM centralcloud.routing_timeseries(now(), now() - interval '1 day')$$,
                       '22023', 'until before since');

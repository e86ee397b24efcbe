-- refresh_metrics_from_rollup(), the central server's step (docs/scale-out.md), on one server:
-- after ingest it changes nothing; it repairs metrics to the rollup's recount; rollup rows that
-- arrive without ingest (as logical replication writes them) get their metrics, fleet rollup rows
-- (deleted ones leave it) and a score at 2.5, which learning then uses; it refuses REPEATABLE
-- READ; operators may run it.
\ir lib.sql
INSERT INTO test.published (msg) SELECT test.events(900);
SELECT test.publish();
SELECT count(*) FROM centralcloud.ingest_routing_events();
SELECT test.eq((SELECT (cells_added, cells_changed)::text FROM centralcloud.refresh_metrics_from_rollup()), '(0,0)',
               'after ingest the metrics are the recount already');

UPDATE centralcloud.model_routing_metrics SET usage_count = 0, latency_sketch = NULL WHERE model_name = 'gpt-4o';
SELECT test.eq((SELECT (cells_added, cells_changed)::text FROM centralcloud.refresh_metrics_from_rollup()), '(0,3)',
               'three cells repaired');
SELECT test.empty('SELECT * FROM test.metrics_diff', 'metrics equal the published events again');
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'invariants');

-- A region's rows, as a subscription applies them: no ingest, no metrics, no score.
INSERT INTO centralcloud.routing_rollup_hourly
       (hour, instance_id, model, complexity, provider, usage_count, success_count, failure_count,
        response_time_count, response_time_sum, response_time_min, response_time_max, latency_sketch)
SELECT date_trunc('hour', now()) - make_interval(hours => h), 'eu-' || i, 'regional-model', 'complex', 'p',
       10, 9, 1, 10, 10 * (100 + h), 100 + h, 100 + h, (SELECT centralcloud.latency_sketch_agg(100 + h + 0 * g) FROM generate_series(1, 10) g)
  FROM generate_series(0, 5) h, generate_series(1, 3) i;
SELECT test.eq((SELECT count(*) FROM centralcloud.check_invariants() WHERE problem = 'fleet'), 6::bigint,
               'until the refresh, the fleet rollup lacks the six regional hours (and the check says so)');
SELECT test.eq((SELECT (cells_added, cells_changed)::text FROM centralcloud.refresh_metrics_from_rollup()), '(1,1)',
               'the regional cell enters');
SELECT test.empty($$SELECT * FROM centralcloud.check_invariants() WHERE problem = 'fleet'$$,
                  'the refresh recounts the fleet rollup');
SELECT test.eq((SELECT string_agg((usage_count, success_count, failure_count, response_time_min,
                                   centralcloud.latency_sketch_count(latency_sketch))::text, ' ' ORDER BY hour)
                  FROM centralcloud.routing_rollup_hourly_fleet WHERE model = 'regional-model'),
               '(30,27,3,105,30) (30,27,3,104,30) (30,27,3,103,30) (30,27,3,102,30) (30,27,3,101,30) (30,27,3,100,30)',
               'each regional hour summed over its three instances');
SELECT test.eq((SELECT string_agg((decisions, successes, p50_ms)::text, ' ' ORDER BY "time")
                  FROM centralcloud.routing_timeseries(now() - interval '6 hours', now() + interval '1 hour',
                                                       model_name => 'regional-model')),
               '(30,27,105) (30,27,104) (30,27,103) (30,27,102) (30,27,101) (30,27,100)',
               'the time series reads them');
SELECT test.eq((SELECT (usage_count, success_count, failure_count, response_time_count, response_time_min, response_time_max)::text
                  FROM centralcloud.model_routing_metrics WHERE model_name = 'regional-model'),
               '(180,162,18,180,100,105)', 'its metrics: the sum of its rollup rows');
SELECT test.eq((SELECT centralcloud.latency_sketch_count(latency_sketch) FROM centralcloud.model_routing_metrics
                 WHERE model_name = 'regional-model'), 180::bigint, 'its merged sketch');
SELECT test.eq((SELECT (score, prior_score, change_source)::text FROM centralcloud.model_complexity_scores
                 WHERE model_name = 'regional-model'), '(2.5,2.5,reported)', 'its score starts at the midpoint');
SET centralcloud.min_samples_for_learning = 50;
SELECT test.eq((SELECT samples FROM centralcloud.learn_complexity_scores(true) WHERE model = 'regional-model'), 180::bigint,
               'learning sees its 180 outcomes');

-- A region's rows deleted (a replicated DELETE): its share leaves the fleet rollup.
DELETE FROM centralcloud.routing_rollup_hourly WHERE instance_id = 'eu-1' AND model = 'regional-model';
DELETE FROM centralcloud.routing_rollup_hourly
 WHERE model = 'regional-model' AND hour = date_trunc('hour', now()) - interval '5 hours';
SELECT count(*) FROM centralcloud.refresh_metrics_from_rollup();
SELECT test.eq((SELECT string_agg(usage_count::text, ' ' ORDER BY hour)
                  FROM centralcloud.routing_rollup_hourly_fleet WHERE model = 'regional-model'),
               '20 20 20 20 20', 'deleted rollup rows leave the fleet rollup, an hour with none goes');
SELECT test.empty($$SELECT * FROM centralcloud.check_invariants() WHERE problem = 'fleet'$$, 'the fleet check after the deletes');

BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT test.fails_with('SELECT * FROM centralcloud.refresh_metrics_from_rollup()', '25000', 'REPEATABLE READ refused');
ROLLBACK;

CREATE ROLE t24_operator IN ROLE centralcloud_operator;
-- (the test helpers, for the roles below)
GRANT USAGE ON SCHEMA test TO t24_operator, centralcloud_reader;
SET ROLE t24_operator;
SELECT test.eq((SELECT (cells_added, cells_changed)::text FROM centralcloud.refresh_metrics_from_rollup()), '(0,0)', 'an operator runs it');
RESET ROLE;
SET ROLE centralcloud_reader;
SELECT test.fails_with('SELECT * FROM centralcloud.refresh_metrics_from_rollup()', '42501', 'a reader may not');
RESET ROLE;
REVOKE USAGE ON SCHEMA test FROM t24_operator, centralcloud_reader;
DROP ROLE t24_operator;

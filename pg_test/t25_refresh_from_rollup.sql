-- refresh_metrics_from_rollup(), the central server's step (docs/scale-out.md), on one server:
-- after ingest it changes nothing; it repairs metrics to the rollup's recount; rollup rows that
-- arrive without ingest (as logical replication writes them) get their metrics and a score at
-- 2.5, which learning then uses; it refuses REPEATABLE READ; operators may run it.
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
SELECT test.eq((SELECT (cells_added, cells_changed)::text FROM centralcloud.refresh_metrics_from_rollup()), '(1,1)',
               'the regional cell enters');
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

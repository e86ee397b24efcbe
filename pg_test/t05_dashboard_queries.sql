-- The seed's first dashboard query runs verbatim on our tables and returns the right numbers;
-- its other two (which cannot run on the seed's own schema) run as corrected views.
\ir lib.sql

INSERT INTO test.published (msg) SELECT test.events(1500);
-- Old events: ingested, but outside the query's one-day window.
INSERT INTO test.published (msg)
SELECT test.event('singularity-old', 'gpt-4o', 'simple', 'routed', NULL, 1.0, now() - interval '3 days')
  FROM generate_series(1, 25);
SELECT test.publish();
SELECT * FROM centralcloud.ingest_routing_events();

SET search_path = centralcloud, public;

-- Seed query 1, verbatim.
CREATE TEMP TABLE seed_q1 AS
SELECT instance_id, model, COUNT(*) as usage_count
FROM routing_records
WHERE timestamp > NOW() - INTERVAL '1 day'
GROUP BY instance_id, model
ORDER BY usage_count DESC;

SELECT test.empty($$
    (SELECT instance_id, model, usage_count FROM seed_q1
     EXCEPT
     SELECT msg->>'instance_id', msg #>> '{routing_decision,selected_model}', count(*)
       FROM test.published
      WHERE (msg->>'timestamp')::timestamptz > now() - interval '1 day'
      GROUP BY 1, 2)
    UNION ALL
    (SELECT msg->>'instance_id', msg #>> '{routing_decision,selected_model}', count(*)
       FROM test.published
      WHERE (msg->>'timestamp')::timestamptz > now() - interval '1 day'
      GROUP BY 1, 2
     EXCEPT
     SELECT instance_id, model, usage_count FROM seed_q1)
$$, 'seed query 1 numbers');
SELECT test.eq((SELECT count(*) FROM seed_q1), 12::bigint, '3 instances x 4 models');
SELECT test.eq((SELECT count(*) FROM seed_q1 WHERE instance_id = 'singularity-old'), 0::bigint, 'one-day window');

-- Seed query 2, corrected: success / (success + failure), with its sample size.
SELECT test.empty($$
    (SELECT model, complexity_level, success_rate, outcome_count, usage_count FROM model_success_rates
     EXCEPT
     SELECT model_name, complexity_level,
            ROUND(success_count::numeric / NULLIF(success_count + failure_count, 0) * 100, 2),
            success_count + failure_count, usage_count
       FROM test.expected_metrics)
    UNION ALL
    (SELECT model_name, complexity_level,
            ROUND(success_count::numeric / NULLIF(success_count + failure_count, 0) * 100, 2),
            success_count + failure_count, usage_count
       FROM test.expected_metrics
     EXCEPT
     SELECT model, complexity_level, success_rate, outcome_count, usage_count FROM model_success_rates)
$$, 'success rates');
-- Ordered by success rate, best first.
SELECT test.eq(
    (SELECT array_agg(success_rate) FROM model_success_rates),
    (SELECT array_agg(success_rate ORDER BY success_rate DESC NULLS LAST) FROM model_success_rates),
    'ordered by success rate');

-- Seed query 3, corrected: exact average and max, plus quantiles from the sketch.
SELECT test.empty($$
    SELECT r.model, r.complexity_level
      FROM model_response_times r
      JOIN test.expected_metrics e ON e.model_name = r.model AND e.complexity_level = r.complexity_level
     WHERE r.avg_ms <> ROUND(e.response_time_sum::numeric / e.response_time_count, 1)::float8
        OR r.max_ms <> e.response_time_max
        OR r.samples <> e.response_time_count
        OR NOT (r.p50_ms <= r.p95_ms AND r.p95_ms <= r.p99_ms AND r.p99_ms <= r.max_ms)
$$, 'response times');
SELECT test.eq((SELECT count(*) FROM model_response_times), 12::bigint, 'every cell with latencies');

-- pg_test/scaleout.sh's checks on the central server, once both regions are shipped and their
-- rollup rows and metrics copied into test.regional_rollup and test.regional_metrics.
\ir lib.sql
\o /dev/null
-- The central rollup is the union of the regions', each row once (instances are per region, so
-- no key is in both).
CREATE TEMP VIEW central_rollup AS
SELECT hour, instance_id::text, model::text, complexity::text, provider::text, usage_count, success_count,
       failure_count, response_time_count, response_time_sum, response_time_min, response_time_max,
       md5(latency_sketch) AS sketch_md5
  FROM centralcloud.routing_rollup_hourly;
SELECT test.empty($$SELECT * FROM central_rollup EXCEPT ALL SELECT hour, instance_id, model, complexity, provider, usage_count,
                       success_count, failure_count, response_time_count, response_time_sum, response_time_min,
                       response_time_max, sketch_md5 FROM test.regional_rollup$$, 'central rows no region has');
SELECT test.empty($$SELECT hour, instance_id, model, complexity, provider, usage_count, success_count, failure_count,
                           response_time_count, response_time_sum, response_time_min, response_time_max, sketch_md5
                      FROM test.regional_rollup EXCEPT ALL SELECT * FROM central_rollup$$, 'regional rows missing at the central server');
SELECT test.eq((SELECT count(DISTINCT region) FROM test.regional_rollup), 2::bigint, 'both regions shipped');

-- Central metrics (after refresh_metrics_from_rollup) are the sum of the regions' metrics.
SELECT test.empty($$
    WITH summed AS (
        SELECT model, complexity, sum(usage_count)::bigint AS usage_count, sum(success_count)::bigint AS success_count,
               sum(failure_count)::bigint AS failure_count, sum(response_time_count)::bigint AS response_time_count,
               sum(response_time_sum)::bigint AS response_time_sum, min(response_time_min) AS response_time_min,
               max(response_time_max) AS response_time_max, sum(sketch_count)::bigint AS sketch_count
          FROM test.regional_metrics GROUP BY 1, 2),
    central AS (
        SELECT model_name::text, complexity_level::text, usage_count, success_count, failure_count, response_time_count,
               response_time_sum, response_time_min, response_time_max,
               centralcloud.latency_sketch_count(latency_sketch)::bigint
          FROM centralcloud.model_routing_metrics)
    (SELECT 'regions', * FROM summed EXCEPT SELECT 'regions', * FROM central)
    UNION ALL
    (SELECT 'central', * FROM central EXCEPT SELECT 'central', * FROM summed)$$,
    'central metrics = the sum of the regions''');
-- So is its fleet rollup the regions' rollup rows summed over instances.
SELECT test.empty($$
    WITH summed AS (
        SELECT model, complexity, hour, provider, sum(usage_count)::bigint, sum(success_count)::bigint,
               sum(failure_count)::bigint, sum(response_time_count)::bigint, sum(response_time_sum)::bigint,
               min(response_time_min), max(response_time_max)
          FROM test.regional_rollup GROUP BY 1, 2, 3, 4),
    central AS (
        SELECT model::text, complexity::text, hour, provider::text, usage_count, success_count, failure_count,
               response_time_count, response_time_sum, response_time_min, response_time_max
          FROM centralcloud.routing_rollup_hourly_fleet)
    (SELECT 'regions', * FROM summed EXCEPT SELECT 'regions', * FROM central)
    UNION ALL
    (SELECT 'central', * FROM central EXCEPT SELECT 'central', * FROM summed)$$,
    'central fleet rollup = the regions'' rollup summed over instances');
SELECT test.empty($$SELECT * FROM centralcloud.check_invariants() WHERE problem = 'fleet'$$,
                  'central fleet rollup sketches = the rollup''s merged');
SELECT test.empty($$SELECT m.model_name FROM centralcloud.model_routing_metrics m
                     WHERE NOT EXISTS (SELECT 1 FROM centralcloud.model_complexity_scores s
                                        WHERE (s.model_name, s.complexity_level) = (m.model_name, m.complexity_level))$$,
                  'every central cell has a score');

-- Central learning counts every regional outcome once: per cell, its sample count is the regions'
-- outcomes of the hours from the cell's regime start (where learning detected a change) on. A
-- learning run first, so that every change is recorded (the worker's may not have run yet).
SELECT count(*) FROM centralcloud.learn_complexity_scores();
SELECT test.empty($$
    SELECT l.model, l.complexity, l.samples, sum(r.success_count + r.failure_count) AS regional_outcomes
      FROM centralcloud.learn_complexity_scores(true) l
      JOIN centralcloud.model_complexity_scores s ON (s.model_name, s.complexity_level) = (l.model, l.complexity)
      JOIN test.regional_rollup r ON (r.model, r.complexity) = (l.model, l.complexity)
                                 AND r.hour >= coalesce(s.regime_start, '-infinity')
     GROUP BY 1, 2, 3
    HAVING l.samples <> sum(r.success_count + r.failure_count)$$, 'central learning samples = regional outcomes');
\o
SELECT (SELECT count(*) FROM centralcloud.routing_rollup_hourly) AS central_rollup_rows,
       (SELECT count(*) FILTER (WHERE region = 'eu') || ' + ' || count(*) FILTER (WHERE region = 'us') FROM test.regional_rollup) AS eu_plus_us_rows,
       (SELECT sum(success_count + failure_count) FROM centralcloud.model_routing_metrics) AS central_outcomes,
       (SELECT count(*) FROM centralcloud.learn_complexity_scores(true) WHERE samples > 0) AS cells_learned,
       (SELECT count(*) FROM centralcloud.learning_changes) AS changes_detected;

-- Real traffic for the previous release, before pg_test/upgrade.sh upgrades it: events over
-- several days (records in several daily partitions, rollups over many hours), dead letters,
-- learning and an operator's score, two subscribed instances (one with its own role, one
-- through the publisher group) with updates waiting, and events still queued.
\ir lib.sql
SET centralcloud.min_samples_for_learning = 20;
GRANT USAGE ON SCHEMA test TO upg_router;
GRANT SELECT, UPDATE ON test.published TO upg_router;

SELECT centralcloud.subscribe_instance('upg-own', 'upg_router');
SELECT centralcloud.subscribe_instance('upg-shared');

-- Three past days, each with its partition, as if the service had been running.
SELECT centralcloud.add_routing_partition(current_date - d) FROM generate_series(1, 3) AS d;
INSERT INTO pgmq.q_model_routing_decisions (enqueued_at, vt, message)
SELECT now() - make_interval(days => d), now(),
       jsonb_set(e, '{timestamp}', to_jsonb(to_char((now() - make_interval(days => d, mins => n::int)) AT TIME ZONE 'UTC',
                                                    'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')))
  FROM generate_series(1, 3) AS d,
       LATERAL (SELECT e, row_number() OVER () AS n FROM test.events(900, d * 1000) AS e) AS x;
SELECT * FROM centralcloud.ingest_routing_events();

-- Today, through a publisher, with some invalid events.
INSERT INTO test.published (msg, expected) SELECT test.events(1200, 7), NULL;
INSERT INTO test.published (msg, expected) VALUES
    ('{"not": "an event"}', 'missing_field'),
    (jsonb_set(test.event('upg-1', 'gpt-4o', 'simple', 'success'), '{routing_decision,complexity_score}', '9'), 'out_of_range');
SET ROLE upg_router;
SELECT test.publish();
RESET ROLE;
SELECT * FROM centralcloud.ingest_routing_events();

-- Learning, and an operator's change: updates wait in both subscribed queues.
SELECT count(*) FILTER (WHERE changed) AS learned FROM centralcloud.learn_complexity_scores();
SELECT centralcloud.set_complexity_score('gpt-4o', 'complex', 4.4, 'operator: before the upgrade');

-- Events that are still queued when the new library arrives.
INSERT INTO test.published (msg) SELECT test.events(50, 99000);
SELECT test.publish();
SELECT count(*) AS queued FROM pgmq.q_model_routing_decisions;
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'the previous release is exact before the upgrade');
CREATE TABLE test.before AS
SELECT (SELECT count(*) FROM centralcloud.routing_records) AS records,
       (SELECT count(*) FROM centralcloud.routing_events_rejected) AS dead_letters,
       (SELECT count(*) FROM centralcloud.routing_rollup_hourly) AS rollup_rows,
       (SELECT count(DISTINCT hour) FROM centralcloud.routing_rollup_hourly) AS hours,
       (SELECT count(*) FROM centralcloud.routing_record_partitions) AS partitions,
       (SELECT string_agg(model_name || '/' || complexity_level || '=' || score, ' ' ORDER BY model_name, complexity_level) FROM centralcloud.model_complexity_scores) AS scores,
       (SELECT count(*) FROM centralcloud.score_history) AS changes,
       (SELECT max(id) FROM centralcloud.score_history) AS last_change_id,
       (SELECT string_agg(md5(latency_sketch), ',' ORDER BY model_name, complexity_level) FROM centralcloud.model_routing_metrics) AS sketches,
       (SELECT count(*) FROM pgmq.q_model_routing_decisions) AS queued;

-- After ALTER EXTENSION centralcloud UPDATE (pg_test/upgrade.sh): nothing recorded before is
-- lost or changed, the queued events were ingested once, and 0.2.0's rules hold for the old
-- data: tightened grants on the old queues, the exact-accounting check, new traffic.
\ir lib.sql
GRANT USAGE ON SCHEMA test TO PUBLIC;
SELECT test.eq((SELECT extversion FROM pg_extension WHERE extname = 'centralcloud'), '0.2.0', 'updated');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records), (SELECT records + queued FROM test.before),
               'every record kept, the queued events ingested once');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records WHERE enqueued_at IS NULL), 0::bigint, 'enqueued_at filled');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_events_rejected), (SELECT dead_letters FROM test.before), 'dead letters kept');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_events_rejected WHERE message_sha256 IS NULL OR message_bytes IS NULL),
               0::bigint, 'dead letters have their length and hash');
SELECT test.eq((SELECT count(DISTINCT hour) FROM centralcloud.routing_rollup_hourly), (SELECT hours FROM test.before), 'rollup hours kept');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_record_partitions) >= (SELECT partitions FROM test.before), true, 'partitions kept');
-- (The worker learns as soon as the catalog is updated: history can only have grown.)
SELECT test.eq((SELECT count(*) FROM centralcloud.score_history WHERE id <= (SELECT last_change_id FROM test.before)),
               (SELECT changes FROM test.before), 'score history kept');
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'exact after the upgrade');
SELECT test.eq((SELECT prior_score FROM centralcloud.model_complexity_scores WHERE model_name = 'gpt-4o' AND complexity_level = 'complex'),
               4.4::float8, 'the operator''s score is the prior');
SELECT test.empty($$SELECT s.model_name, s.complexity_level FROM centralcloud.model_complexity_scores s
                     WHERE s.change_source = 'learned' AND s.prior_score IS DISTINCT FROM
                           (SELECT h.old_score FROM centralcloud.score_history h
                             WHERE h.model_name = s.model_name AND h.complexity_level = s.complexity_level ORDER BY h.id LIMIT 1)$$,
                  'a learned cell''s prior is the score it entered with');

-- The instance with its own role reads both waiting updates; nobody can rewrite them, and the
-- publisher group cannot read its queue.
CREATE TEMP TABLE queues AS SELECT instance_id, queue_name, pgmq.format_table_name(queue_name, 'q') AS q FROM centralcloud.score_subscriptions;
GRANT SELECT ON queues TO PUBLIC;
CREATE ROLE upg_other LOGIN IN ROLE centralcloud_publisher;
SET ROLE upg_other;
DO $$
BEGIN
    PERFORM * FROM pgmq.read((SELECT queue_name FROM queues WHERE instance_id = 'upg-own'), 0, 1);
    RAISE EXCEPTION 'FAILED: the publisher group reads upg-own''s queue after the upgrade';
EXCEPTION WHEN insufficient_privilege THEN NULL;
END $$;
SELECT test.eq((SELECT count(*) FROM pgmq.read((SELECT queue_name FROM queues WHERE instance_id = 'upg-shared'), 0, 10)) >= 2, true,
               'the shared queue stays the group''s');
RESET ROLE;
SET ROLE upg_router;
DO $$
BEGIN
    EXECUTE format('UPDATE pgmq.%I SET message = ''{}''', (SELECT q FROM queues WHERE instance_id = 'upg-own'));
    RAISE EXCEPTION 'FAILED: a reader rewrites its updates after the upgrade';
EXCEPTION WHEN insufficient_privilege THEN NULL;
END $$;
SELECT test.eq((SELECT count(*) FILTER (WHERE message ->> 'reason' = 'operator: before the upgrade')
                  FROM pgmq.read((SELECT queue_name FROM queues WHERE instance_id = 'upg-own'), 30, 100)),
               1::bigint, 'the update sent before the upgrade is there');
-- Publishing after the upgrade: pgmq.send works, choosing msg_ids does not.
SELECT test.eq((SELECT count(*) FROM pgmq.send('model_routing_decisions', test.event('upg-1', 'gpt-4o', 'simple', 'success', 80))),
               1::bigint, 'publisher sends after the upgrade');
DO $$
BEGIN
    INSERT INTO pgmq.q_model_routing_decisions (msg_id, vt, message) OVERRIDING SYSTEM VALUE VALUES (1000000, 'infinity', '{}');
    RAISE EXCEPTION 'FAILED: a publisher chooses msg_ids after the upgrade';
EXCEPTION WHEN insufficient_privilege THEN NULL;
END $$;
RESET ROLE;

-- Health and recommendations on the upgraded catalog: the subscribed instances get health
-- events, every pair seen before is a candidate, every cell has its percentiles.
SELECT test.eq((SELECT count(*) FROM pgmq.topic_bindings b JOIN centralcloud.score_subscriptions s USING (queue_name)
                 WHERE b.pattern = 'centralcloud.model_health_update'), 2::bigint, 'subscriptions bound to health updates');
SELECT test.empty($$SELECT DISTINCT provider, model FROM centralcloud.routing_rollup_hourly
                    EXCEPT SELECT provider, model FROM centralcloud.health_states$$, 'every pair seen before has a health state');
SELECT test.eq((SELECT count(*) FROM centralcloud.model_routing_metrics WHERE latency_sketch IS NOT NULL AND p95_ms IS NULL),
               0::bigint, 'percentiles of every cell');
SET ROLE upg_router;
SELECT test.eq((SELECT count(*) > 0 FROM centralcloud.recommend_model('complex', prefer => 'speed')), true, 'a router asks for a model');
RESET ROLE;

-- New traffic and learning on the upgraded catalog.
SELECT test.eq((SELECT ingested FROM centralcloud.ingest_routing_events()) >= 0, true, 'ingest runs');
SELECT count(*) FROM centralcloud.learn_complexity_scores();
SELECT centralcloud.set_complexity_score('gpt-4o', 'complex', 4.5, 'operator: after the upgrade');
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'exact after new traffic');

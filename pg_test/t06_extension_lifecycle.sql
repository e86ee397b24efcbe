-- Installation details a user relies on: the queue is created through pgmq and stays pgmq's,
-- errors are clear, settings and every object are documented, PUBLIC cannot ingest.
\ir lib.sql

-- The queue exists and belongs to pgmq, not to centralcloud.
SELECT test.eq((SELECT count(*) FROM pgmq.list_queues() WHERE queue_name = 'model_routing_decisions'), 1::bigint, 'queue created');
SELECT test.empty($$
    SELECT pg_describe_object(classid, objid, 0)
      FROM pg_depend
     WHERE refobjid = (SELECT oid FROM pg_extension WHERE extname = 'centralcloud') AND deptype = 'e'
       AND pg_describe_object(classid, objid, 0) LIKE '%pgmq.%'
$$, 'no pgmq object is a member of centralcloud');

-- Every table, view and function of the extension has a comment.
SELECT test.empty($$
    SELECT c.oid::regclass FROM pg_class c
     WHERE c.relnamespace = 'centralcloud'::regnamespace AND c.relkind IN ('r', 'v', 'p', 'm')
       AND obj_description(c.oid, 'pg_class') IS NULL
$$, 'tables and views are commented');
SELECT test.empty($$
    SELECT p.oid::regprocedure FROM pg_proc p
     WHERE p.pronamespace = 'centralcloud'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
$$, 'functions are commented');
SELECT test.empty($$
    SELECT c.oid::regclass, a.attname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
     WHERE c.relnamespace = 'centralcloud'::regnamespace AND c.relkind IN ('r', 'p')
       AND NOT c.relispartition AND a.attnum > 0
       AND NOT a.attisdropped AND a.attname NOT IN ('id', 'created_at')
       AND col_description(c.oid, a.attnum) IS NULL
$$, 'columns are commented');

-- Settings are registered with their defaults and descriptions (once the library is loaded:
-- by shared_preload_libraries, by LOAD, or by the first call of one of its functions).
LOAD 'centralcloud';
SELECT test.eq(
    (SELECT string_agg(name || '=' || setting, ' ' ORDER BY name COLLATE "C") FROM pg_settings WHERE name LIKE 'centralcloud.%'),
    'centralcloud.batch_size=1000 centralcloud.change_threshold=8 centralcloud.consensus_window=21600 centralcloud.database=postgres centralcloud.dead_letter_max_bytes=16384 '
    || 'centralcloud.dead_letter_retention=2592000 '
    || 'centralcloud.health_baseline_window=604800 centralcloud.health_degraded_below=0.8 '
    || 'centralcloud.health_down_below=0.2 centralcloud.health_min_recovery=30 centralcloud.health_min_samples=20 '
    || 'centralcloud.health_provider_min_models=2 centralcloud.health_recovered_above=0.9 centralcloud.health_window=300 '
    || 'centralcloud.ingest_interval_ms=250 '
    || 'centralcloud.ingest_max_pending_rows=10000 centralcloud.latency_target_ms=2000 centralcloud.latency_weight=0.25 '
    || 'centralcloud.learn_interval_s=300 centralcloud.learning_bound_z=1.645 centralcloud.learning_half_life=86400 '
    || 'centralcloud.learning_policy=bayes '
    || 'centralcloud.maintenance_interval_s=3600 centralcloud.max_capabilities=32 '
    || 'centralcloud.max_event_age=604800 centralcloud.max_event_clock_skew=900 '
    || 'centralcloud.max_new_models_per_hour=100 '
    || 'centralcloud.max_response_time_ms=3600000 centralcloud.max_retries=5 centralcloud.max_string_chars=256 '
    || 'centralcloud.min_agreeing_instances=2 '
    || 'centralcloud.min_samples_for_learning=100 centralcloud.min_score_change=0.05 '
    || 'centralcloud.outlier_min_outcomes=50 centralcloud.outlier_threshold=10 centralcloud.prior_strength=10 '
    || 'centralcloud.queue_name=model_routing_decisions '
    || 'centralcloud.recommend_max_candidates=10 centralcloud.recommend_tolerance=0.25 '
    || 'centralcloud.routing_records_retention=2592000 '
    || 'centralcloud.score_midpoint=0.8 '
    || 'centralcloud.slowness_threshold_ms=2000 centralcloud.speed_step=0.1 centralcloud.success_step=0.2 '
    || 'centralcloud.success_threshold=0.95 centralcloud.visibility_timeout_s=30 centralcloud.worker_enabled=on',
    'GUC defaults');
SELECT test.eq((SELECT count(*) FROM pg_settings WHERE name LIKE 'centralcloud.%' AND short_desc IS NULL), 0::bigint, 'GUCs documented');

-- Clear errors.
DO $$
BEGIN
    SET LOCAL centralcloud.queue_name = 'no_such_queue';
    PERFORM centralcloud.ingest_routing_events();
    RAISE EXCEPTION 'FAILED: ingest on a missing queue succeeded';
EXCEPTION WHEN undefined_table THEN
    PERFORM test.eq(SQLERRM, 'centralcloud: pgmq queue "no_such_queue" does not exist', 'missing queue error');
END $$;
DO $$
BEGIN
    PERFORM centralcloud.ingest_routing_events(batch_size => 0);
    RAISE EXCEPTION 'FAILED: batch_size 0 accepted';
EXCEPTION WHEN invalid_parameter_value THEN
    PERFORM test.eq(SQLERRM, 'centralcloud: batch_size must be between 1 and 100000, got 0', 'batch_size error');
END $$;
DO $$
BEGIN
    PERFORM centralcloud.latency_quantile('\x0102'::bytea, 0.5);
    RAISE EXCEPTION 'FAILED: corrupt sketch accepted';
EXCEPTION WHEN others THEN
    PERFORM test.eq(SQLERRM, 'centralcloud: latency sketch is corrupt: Hit the end of buffer, expected more data', 'corrupt sketch error');
END $$;
DO $$
BEGIN
    PERFORM centralcloud.latency_sketch_merge('\x09'::bytea, NULL);
    RAISE EXCEPTION 'FAILED: unknown sketch format accepted';
EXCEPTION WHEN others THEN
    PERFORM test.eq(SQLERRM, 'centralcloud: unknown latency sketch format version 9', 'unknown sketch format error');
END $$;
SELECT test.eq(centralcloud.latency_sketch_merge(NULL, NULL), NULL::bytea, 'merge of nothing');

-- PUBLIC cannot run ingest.
CREATE ROLE cc_nobody;
SET ROLE cc_nobody;
DO $$
BEGIN
    PERFORM centralcloud.ingest_routing_events();
    RAISE EXCEPTION 'FAILED: PUBLIC may ingest';
EXCEPTION WHEN insufficient_privilege THEN NULL;
END $$;
RESET ROLE;
DROP ROLE cc_nobody;

-- A custom queue name works through the GUC.
SELECT pgmq.create('other_routing_queue');
SELECT pgmq.send('other_routing_queue', test.event('singularity-x', 'gpt-4o', 'simple', 'routed'));
SET centralcloud.queue_name = 'other_routing_queue';
SELECT test.eq((SELECT ingested FROM centralcloud.ingest_routing_events()), 1::bigint, 'custom queue');
RESET centralcloud.queue_name;

-- Bad arguments are invalid_parameter_value, missing objects undefined_*, the wrong
-- transaction state invalid_transaction_state: callers match codes, not English.
SELECT test.fails_with($$SELECT centralcloud.set_complexity_score('gpt-4o', 'huge', 1)$$, '22023', 'unknown complexity');
SELECT test.fails_with($$SELECT centralcloud.set_complexity_score('gpt-4o', 'simple', 7)$$, '22023', 'score out of range');
SELECT test.fails_with($$SELECT centralcloud.set_complexity_score('', 'simple', 1)$$, '22023', 'empty model');
SELECT test.fails_with($$SELECT centralcloud.subscribe_instance('')$$, '22023', 'empty instance id');
SELECT test.fails_with($$SELECT centralcloud.subscribe_instance('x', 'no_such_role')$$, '42704', 'unknown reader role');
SELECT test.fails_with($$SELECT * FROM centralcloud.check_invariants(NULL, 'no_such_queue')$$, '42P01', 'checker: missing queue');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT test.fails_with($$SELECT * FROM centralcloud.learn_complexity_scores()$$, '25000', 'learning under REPEATABLE READ');
ROLLBACK;

-- DROP EXTENSION leaves pgmq's queue (and its messages) alone; CREATE again reuses it. A
-- subscribed instance's queue survives too, but the new installation, which has no
-- subscriptions, does not feed it.
SELECT pgmq.send('model_routing_decisions', test.event('singularity-1', 'gpt-4o', 'simple', 'routed'));
SELECT centralcloud.subscribe_instance('before-drop') AS orphan_queue \gset
SELECT queue_length AS orphan_snapshot FROM pgmq.metrics(:'orphan_queue') \gset
DROP VIEW test.metrics_diff;
DROP EXTENSION centralcloud;
SELECT test.eq(test.queue_length(), 1::bigint, 'queue survives DROP EXTENSION');
-- So does the audit trail (not a member, so that pg_dump dumps it whole): CREATE EXTENSION
-- says so rather than adopt records without their metrics.
SELECT test.eq((SELECT count(*) > 0 FROM centralcloud.routing_records), true, 'the audit trail survives DROP EXTENSION');
SELECT test.fails_with('CREATE EXTENSION centralcloud', '42P07', 'an earlier audit trail is in the way');
DROP TABLE centralcloud.routing_records;
CREATE EXTENSION centralcloud;
SELECT test.eq((SELECT ingested FROM centralcloud.ingest_routing_events()), 1::bigint, 'reinstalled ingest');
SELECT test.eq((SELECT array_agg(queue_name::text) FROM pgmq.topic_bindings WHERE pattern = 'centralcloud.model_score_update'),
               ARRAY['model_score_updates'], 'the orphaned queue is unbound');
SELECT test.eq((SELECT count(*) FROM pgmq.topic_bindings WHERE pattern = 'centralcloud.model_health_update'),
               0::bigint, 'from health updates too');
SELECT centralcloud.set_complexity_score('gpt-4o', 'simple', 2.2, 'after reinstall');
SELECT test.eq((SELECT queue_length FROM pgmq.metrics(:'orphan_queue')), :orphan_snapshot::bigint, 'and gets no update (only the snapshot it subscribed with)');
SELECT pgmq.drop_queue(:'orphan_queue');

-- A score that underflows double precision is 0, not a failed batch.
SELECT pgmq.send('model_routing_decisions', jsonb_set(test.event('singularity-1', 'tiny', 'simple', 'routed'), '{routing_decision,complexity_score}', '1e-400'));
SELECT test.eq((SELECT (ingested, retry_later) FROM centralcloud.ingest_routing_events())::text, '(1,0)', 'underflowing score');
SELECT test.eq((SELECT score FROM centralcloud.routing_records WHERE model = 'tiny'), 0::float8, 'stored as 0');

-- Timestamps and scores are stored as the validator read them: PostgreSQL's own input rules
-- differ at the edges, so it never re-reads the instance's text. Forms PostgreSQL would refuse
-- are rejected with a reason, not left to fail the batch. (Fixed dates: the window around the
-- server time is off here; t15 tests it.)
SET centralcloud.max_event_age = 0;
SELECT pgmq.send_batch('model_routing_decisions', ARRAY[
    jsonb_set(test.event('tz-1', 'tz', 'simple', 'routed'), '{timestamp}', '"2025-10-27T06:55:00+14:00"'),
    jsonb_set(test.event('tz-2', 'tz', 'simple', 'routed'), '{timestamp}', '"2025-10-27T06:55:00.123456789-15:59"'),
    jsonb_set(test.event('tz-3', 'tz', 'simple', 'routed'), '{routing_decision,complexity_score}', '4.99999999999999999999'),
    jsonb_set(test.event('tz-4', 'tz', 'simple', 'routed'), '{timestamp}', '"2025-10-27T06:55:00+20:00"'),
    jsonb_set(test.event('tz-5', 'tz', 'simple', 'routed'), '{timestamp}', '"2016-12-31T23:59:60Z"'),
    jsonb_set(test.event('tz-6', 'tz', 'simple', 'routed'), '{routing_decision,complexity_score}', '5.00000000000000050000000000000001')]);
SELECT test.eq((SELECT (ingested, rejected, retry_later) FROM centralcloud.ingest_routing_events())::text, '(3,3,0)', 'edge timestamps and scores');
SELECT test.eq((SELECT array_agg(to_char("timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') ORDER BY instance_id)
                  FROM centralcloud.routing_records WHERE model = 'tz' AND instance_id IN ('tz-1', 'tz-2')),
               ARRAY['2025-10-26 16:55:00.000000', '2025-10-27 22:54:00.123456'], 'timestamps normalised to UTC');
SELECT test.eq((SELECT score FROM centralcloud.routing_records WHERE instance_id = 'tz-3'), 5::float8, 'score a hair below 5 is 5');
SELECT test.eq((SELECT array_agg(reason_code ORDER BY message->>'instance_id') FROM centralcloud.routing_events_rejected
                 WHERE message->>'instance_id' IN ('tz-4', 'tz-5', 'tz-6')),
               ARRAY['out_of_range', 'out_of_range', 'out_of_range'], 'refused with a reason');
RESET centralcloud.max_event_age;

-- Operators can check an event by hand.
SELECT test.eq(centralcloud.routing_event_rejection(test.event('i', 'm', 'simple', 'routed')::text), NULL::text[], 'valid event');
SELECT test.eq(centralcloud.routing_event_rejection('{"timestamp": 1}'),
               ARRAY['missing_field', 'routing_decision: required field is missing'], 'invalid event');

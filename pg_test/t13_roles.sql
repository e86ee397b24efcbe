-- Roles and security: the publisher can only send (and read the score-update queue it is
-- given), the reader can only read the dashboards, the operator runs everything but cannot
-- rewrite history; PUBLIC runs nothing that changes data; SECURITY DEFINER functions pin
-- search_path, so objects in a caller's schema cannot hijack them.
\ir lib.sql
GRANT USAGE ON SCHEMA test TO PUBLIC;

-- Expects `statement` to fail for lack of privilege.
CREATE FUNCTION test.denied(statement text, label text) RETURNS void LANGUAGE sql AS $$
    SELECT test.fails_with(statement, '42501', label)
$$;

SELECT test.eq((SELECT array_agg(rolname::text ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'centralcloud\_%'),
               ARRAY['centralcloud_operator', 'centralcloud_publisher', 'centralcloud_reader'], 'the three roles');
SELECT test.eq((SELECT bool_and(NOT rolcanlogin AND shobj_description(oid, 'pg_authid') IS NOT NULL) FROM pg_roles
                 WHERE rolname LIKE 'centralcloud\_%'), true, 'group roles, documented');
CREATE ROLE router_eu LOGIN IN ROLE centralcloud_publisher;
CREATE ROLE router_us LOGIN IN ROLE centralcloud_publisher;
CREATE ROLE dash LOGIN IN ROLE centralcloud_reader;
CREATE ROLE ops LOGIN IN ROLE centralcloud_operator;
CREATE ROLE nobody LOGIN;

-- Some data, ingested and learned from, and two subscriptions.
INSERT INTO test.published (msg) SELECT test.events(600);
SELECT test.publish();
SELECT * FROM centralcloud.ingest_routing_events();
SELECT centralcloud.subscribe_instance('eu-1', 'router_eu');
SELECT centralcloud.subscribe_instance('shared-1');
SELECT centralcloud.set_complexity_score('gpt-4o', 'simple', 3.3, 'operator: for the roles test');

-- ---------------------------------------------------------------------------------------
-- Every privilege any role but a superuser holds on an object of centralcloud or pgmq (tables,
-- columns, views, sequences, functions, schemas; PUBLIC's defaults included), against the
-- expected table. Membership (ops in operator in reader, router_* in publisher) is not listed:
-- only what is granted to each role itself. Score-update queues are shown by instance.
-- ---------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW test.privileges AS
WITH roles(oid, name) AS (
    SELECT 0::oid, 'PUBLIC' UNION ALL
    SELECT oid, rolname::text FROM pg_roles WHERE NOT rolsuper AND rolname !~ '^pg_'),
queue_names AS (
    SELECT pgmq.format_table_name(s.queue_name, t.kind) AS relname,
           'queue of ' || s.instance_id || CASE t.kind WHEN 'a' THEN ' (archive)' ELSE '' END AS shown
      FROM centralcloud.score_subscriptions s, (VALUES ('q'), ('a')) t(kind)),
objects AS (
    SELECT 'schema ' || n.nspname AS object, n.nspacl AS acl, n.nspowner AS owner, 'n' AS kind
      FROM pg_namespace n WHERE n.nspname IN ('centralcloud', 'pgmq')
    UNION ALL
    SELECT CASE c.relkind WHEN 'v' THEN 'view ' WHEN 'S' THEN 'sequence ' ELSE 'table ' END
           || c.relnamespace::regnamespace || '.' || coalesce(q.shown, c.relname), c.relacl, c.relowner,
           CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END
      FROM pg_class c LEFT JOIN queue_names q ON q.relname = c.relname
     WHERE c.relnamespace IN ('centralcloud'::regnamespace, 'pgmq'::regnamespace) AND c.relkind IN ('r', 'p', 'v', 'S')
       AND c.relname !~ '^routing_records_p[0-9]{8}$'
    UNION ALL
    SELECT 'column ' || c.relnamespace::regnamespace || '.' || coalesce(q.shown, c.relname) || '.' || a.attname,
           a.attacl, c.relowner, 'c'
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid LEFT JOIN queue_names q ON q.relname = c.relname
     WHERE c.relnamespace IN ('centralcloud'::regnamespace, 'pgmq'::regnamespace) AND a.attnum > 0 AND a.attacl IS NOT NULL
    UNION ALL
    SELECT CASE p.prokind WHEN 'p' THEN 'procedure ' WHEN 'a' THEN 'aggregate ' ELSE 'function ' END || p.oid::regprocedure::text,
           p.proacl, p.proowner, 'f'
      FROM pg_proc p WHERE p.pronamespace = 'centralcloud'::regnamespace)
SELECT r.name AS grantee, o.object, x.privilege_type AS privilege
  FROM objects o
 CROSS JOIN LATERAL aclexplode(coalesce(o.acl, acldefault(o.kind::"char", o.owner))) x
  JOIN roles r ON r.oid = x.grantee;

CREATE TEMP TABLE expected_privileges (grantee text, object text, privilege text);
INSERT INTO expected_privileges VALUES
    -- PUBLIC: pure functions only (validation, sketch arithmetic; the internal-typed aggregate
    -- support functions cannot be called from SQL).
    ('PUBLIC', 'aggregate centralcloud.latency_sketch_agg(integer)', 'EXECUTE'),
    ('PUBLIC', 'aggregate centralcloud.latency_sketch_union(bytea)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.counter_summary(bigint,bigint,bigint,bigint,bigint,integer,integer,bytea)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.dead_letter_body(jsonb)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.latency_quantile(bytea,double precision)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.latency_sketch_quantiles(bytea,double precision[])', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.latency_sketch_add_trans(internal,integer)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.latency_sketch_combine(internal,internal)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.latency_sketch_count(bytea)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.latency_sketch_deserialize(bytea,internal)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.latency_sketch_final(internal)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.latency_sketch_merge(bytea,bytea)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.latency_sketch_serialize(internal)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.latency_sketch_union_trans(internal,bytea)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.routing_event_rejection(text)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.routing_event_verdict(text)', 'EXECUTE'),
    -- Publishers: what pgmq.send / send_batch need on the event queue, and the shared
    -- score-update queues (subscribed without a role): read, set visibility, delete, archive.
    ('centralcloud_publisher', 'schema pgmq', 'USAGE'),
    -- Routers may ask for a recommendation: the schema (to name the function) and the function.
    ('centralcloud_publisher', 'schema centralcloud', 'USAGE'),
    ('centralcloud_publisher', 'function centralcloud.recommend_model(text,text[],text,text[])', 'EXECUTE'),
    ('centralcloud_publisher', 'column pgmq.q_model_routing_decisions.vt', 'INSERT'),
    ('centralcloud_publisher', 'column pgmq.q_model_routing_decisions.message', 'INSERT'),
    ('centralcloud_publisher', 'column pgmq.q_model_routing_decisions.headers', 'INSERT'),
    ('centralcloud_publisher', 'column pgmq.q_model_routing_decisions.msg_id', 'SELECT'),
    ('centralcloud_publisher', 'table pgmq.queue of shared-1', 'SELECT'),
    ('centralcloud_publisher', 'table pgmq.queue of shared-1', 'DELETE'),
    ('centralcloud_publisher', 'column pgmq.queue of shared-1.vt', 'UPDATE'),
    ('centralcloud_publisher', 'column pgmq.queue of shared-1.read_ct', 'UPDATE'),
    ('centralcloud_publisher', 'column pgmq.queue of shared-1.last_read_at', 'UPDATE'),
    ('centralcloud_publisher', 'table pgmq.queue of shared-1 (archive)', 'INSERT'),
    ('centralcloud_publisher', 'column pgmq.queue of shared-1 (archive).msg_id', 'SELECT'),
    -- An instance subscribed with its own role: the same on its queue only.
    ('router_eu', 'table pgmq.queue of eu-1', 'SELECT'),
    ('router_eu', 'table pgmq.queue of eu-1', 'DELETE'),
    ('router_eu', 'column pgmq.queue of eu-1.vt', 'UPDATE'),
    ('router_eu', 'column pgmq.queue of eu-1.read_ct', 'UPDATE'),
    ('router_eu', 'column pgmq.queue of eu-1.last_read_at', 'UPDATE'),
    ('router_eu', 'table pgmq.queue of eu-1 (archive)', 'INSERT'),
    ('router_eu', 'column pgmq.queue of eu-1 (archive).msg_id', 'SELECT'),
    -- Dashboard readers: the views and the owner-rights read helpers behind them.
    ('centralcloud_reader', 'schema centralcloud', 'USAGE'),
    ('centralcloud_reader', 'view centralcloud.health_updates_recent', 'SELECT'),
    ('centralcloud_reader', 'view centralcloud.ingest_health', 'SELECT'),
    ('centralcloud_reader', 'view centralcloud.instance_anomalies', 'SELECT'),
    ('centralcloud_reader', 'view centralcloud.learning_changes_recent', 'SELECT'),
    ('centralcloud_reader', 'view centralcloud.model_health', 'SELECT'),
    ('centralcloud_reader', 'view centralcloud.model_rankings', 'SELECT'),
    ('centralcloud_reader', 'view centralcloud.model_response_times', 'SELECT'),
    ('centralcloud_reader', 'view centralcloud.model_success_rates', 'SELECT'),
    ('centralcloud_reader', 'view centralcloud.model_usage_by_instance', 'SELECT'),
    ('centralcloud_reader', 'view centralcloud.score_updates_recent', 'SELECT'),
    ('centralcloud_reader', 'view centralcloud.worker_status', 'SELECT'),
    ('centralcloud_reader', 'function centralcloud.latency_quantiles(text,text,timestamp with time zone,timestamp with time zone)', 'EXECUTE'),
    ('centralcloud_reader', 'function centralcloud.queue_health()', 'EXECUTE'),
    ('centralcloud_reader', 'function centralcloud.recommend_model(text,text[],text,text[])', 'EXECUTE'),
    ('centralcloud_reader', 'function centralcloud.worker_liveness(integer)', 'EXECUTE'),
    ('centralcloud_reader', 'function centralcloud.timestamps_without_offset(timestamp with time zone)', 'EXECUTE'),
    -- Operators: the entry points, reading every table and view, and what check_invariants
    -- (caller's rights) reads of pgmq: the queue list and the event queue's msg_ids.
    ('centralcloud_operator', 'schema centralcloud', 'USAGE'),
    ('centralcloud_operator', 'schema pgmq', 'USAGE'),
    ('centralcloud_operator', 'table pgmq.meta', 'SELECT'),
    ('centralcloud_operator', 'column pgmq.q_model_routing_decisions.msg_id', 'SELECT'),
    ('centralcloud_operator', 'function centralcloud.add_routing_partition(date)', 'EXECUTE'),
    ('centralcloud_operator', 'function centralcloud.check_invariants(regclass,text)', 'EXECUTE'),
    ('centralcloud_operator', 'function centralcloud.evaluate_model_health()', 'EXECUTE'),
    ('centralcloud_operator', 'function centralcloud.grant_queue_privileges()', 'EXECUTE'),
    ('centralcloud_operator', 'function centralcloud.ingest_routing_events(integer,integer)', 'EXECUTE'),
    ('centralcloud_operator', 'function centralcloud.learn_complexity_scores(boolean)', 'EXECUTE'),
    ('centralcloud_operator', 'function centralcloud.refresh_metrics_from_rollup()', 'EXECUTE'),
    ('centralcloud_operator', 'function centralcloud.run_maintenance()', 'EXECUTE'),
    ('centralcloud_operator', 'function centralcloud.set_complexity_score(text,text,double precision,text)', 'EXECUTE'),
    ('centralcloud_operator', 'function centralcloud.subscribe_instance(text,text)', 'EXECUTE'),
    ('centralcloud_operator', 'function centralcloud.unsubscribe_instance(text,boolean)', 'EXECUTE'),
    ('centralcloud_operator', 'procedure centralcloud.drain_routing_events(integer)', 'EXECUTE'),
    ('centralcloud_operator', 'table centralcloud.instance_anomaly_episodes', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.health_history', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.health_outcomes', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.health_states', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.learning_changes', 'SELECT'),
    -- Capabilities and prices are the operators' to maintain (supported only, for capabilities:
    -- whether a row was learned or added by hand is not theirs to forge).
    ('centralcloud_operator', 'table centralcloud.model_capabilities', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.model_capabilities', 'DELETE'),
    ('centralcloud_operator', 'column centralcloud.model_capabilities.provider', 'INSERT'),
    ('centralcloud_operator', 'column centralcloud.model_capabilities.model', 'INSERT'),
    ('centralcloud_operator', 'column centralcloud.model_capabilities.capability', 'INSERT'),
    ('centralcloud_operator', 'column centralcloud.model_capabilities.supported', 'INSERT'),
    ('centralcloud_operator', 'column centralcloud.model_capabilities.supported', 'UPDATE'),
    ('centralcloud_operator', 'table centralcloud.model_prices', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.model_prices', 'INSERT'),
    ('centralcloud_operator', 'table centralcloud.model_prices', 'UPDATE'),
    ('centralcloud_operator', 'table centralcloud.model_prices', 'DELETE'),
    ('centralcloud_operator', 'table centralcloud.model_complexity_scores', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.model_routing_metrics', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.retention_log', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.routing_events_rejected', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.routing_records', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.routing_records_default', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.routing_rollup_hourly', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.routing_rollup_hourly_fleet', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.score_history', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.score_subscriptions', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.worker_state', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.health_updates_recent', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.ingest_health', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.instance_anomalies', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.learning_changes_recent', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.model_health', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.model_rankings', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.model_response_times', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.model_success_rates', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.model_usage_by_instance', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.routing_record_partitions', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.score_updates_recent', 'SELECT'),
    -- The router's view (issue 14): the catalog, its queue's name and metrics, its own dead
    -- letters, and the seed's shared queue, read like an instance queue.
    ('centralcloud_operator', 'function centralcloud.instance_queue(text)', 'EXECUTE'),
    ('centralcloud_operator', 'view centralcloud.instance_dead_letters', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.instance_sync', 'SELECT'),
    ('centralcloud_publisher', 'column pgmq.a_model_score_updates.msg_id', 'SELECT'),
    ('centralcloud_publisher', 'column pgmq.q_model_score_updates.last_read_at', 'UPDATE'),
    ('centralcloud_publisher', 'column pgmq.q_model_score_updates.read_ct', 'UPDATE'),
    ('centralcloud_publisher', 'column pgmq.q_model_score_updates.vt', 'UPDATE'),
    ('centralcloud_publisher', 'function centralcloud.instance_queue(text)', 'EXECUTE'),
    ('centralcloud_publisher', 'function centralcloud.score_snapshot()', 'EXECUTE'),
    ('centralcloud_publisher', 'schema centralcloud', 'USAGE'),
    ('centralcloud_publisher', 'sequence pgmq.q_cc_scores_shared_1_49a4a6fe_msg_id_seq', 'SELECT'),
    ('centralcloud_publisher', 'sequence pgmq.q_model_score_updates_msg_id_seq', 'SELECT'),
    ('centralcloud_publisher', 'table pgmq.a_model_score_updates', 'INSERT'),
    ('centralcloud_publisher', 'table pgmq.q_model_score_updates', 'DELETE'),
    ('centralcloud_publisher', 'table pgmq.q_model_score_updates', 'SELECT'),
    ('centralcloud_publisher', 'view centralcloud.instance_dead_letters', 'SELECT'),
    ('centralcloud_reader', 'function centralcloud.instance_sync_state(interval)', 'EXECUTE'),
    ('centralcloud_reader', 'function centralcloud.score_snapshot()', 'EXECUTE'),
    ('centralcloud_reader', 'view centralcloud.instance_sync', 'SELECT'),
    ('router_eu', 'sequence pgmq.q_cc_scores_eu_1_4ac9b395_msg_id_seq', 'SELECT'),
    -- Units and time series (issue 15).
    ('PUBLIC', 'function centralcloud.ms(double precision)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.percent(numeric,numeric)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.score4(double precision)', 'EXECUTE'),
    ('PUBLIC', 'function centralcloud.success_lower_bound(bigint,bigint)', 'EXECUTE'),
    ('centralcloud_operator', 'view centralcloud.routing_hourly', 'SELECT'),
    ('centralcloud_reader', 'function centralcloud.routing_timeseries(timestamp with time zone,timestamp with time zone,interval,text,text,boolean,boolean)', 'EXECUTE'),
    ('centralcloud_reader', 'view centralcloud.routing_hourly', 'SELECT'),
    ('centralcloud_reader', 'view centralcloud.events_by_outcome', 'SELECT'),
    ('centralcloud_reader', 'view centralcloud.dead_letters_by_reason', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.events_by_outcome', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.dead_letters_by_reason', 'SELECT'),
    ('centralcloud_operator', 'table centralcloud.dead_letter_counts', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.worker_status', 'SELECT'),
    -- recommend_model()'s candidates (operators read every table; check_invariants compares them).
    ('centralcloud_operator', 'table centralcloud.recommend_candidates', 'SELECT'),
    ('centralcloud_operator', 'view centralcloud.recommend_candidates_source', 'SELECT');
SELECT test.empty($$
    (SELECT 'granted but not expected' AS problem, * FROM test.privileges
     EXCEPT SELECT 'granted but not expected', * FROM expected_privileges)
    UNION ALL
    (SELECT 'expected but not granted', * FROM expected_privileges
     EXCEPT SELECT 'expected but not granted', * FROM test.privileges)
$$, 'privileges of every role on every object');

-- ---------------------------------------------------------------------------------------
-- Publisher.
-- ---------------------------------------------------------------------------------------
SET ROLE router_eu;
SELECT test.eq((SELECT count(*) FROM pgmq.send('model_routing_decisions', test.event('eu-1', 'gpt-4o', 'simple', 'routed'))),
               1::bigint, 'publisher sends');
SELECT test.eq((SELECT count(*) FROM pgmq.send_batch('model_routing_decisions', ARRAY(SELECT test.events(3, 9000)))),
               3::bigint, 'publisher sends batches');
SELECT test.denied($$SELECT message FROM pgmq.q_model_routing_decisions$$, 'publisher reads others'' events');
SELECT test.denied($$SELECT * FROM pgmq.read('model_routing_decisions', 30, 1)$$, 'publisher consumes the queue');
SELECT test.denied($$SELECT pgmq.send('model_score_updates', '{}')$$, 'publisher sends elsewhere');
SELECT test.denied($$SELECT pgmq.purge_queue('model_routing_decisions')$$, 'publisher purges');
SELECT test.denied($$SELECT count(*) FROM centralcloud.routing_records$$, 'publisher reads the audit trail');
SELECT test.denied($$SELECT * FROM centralcloud.ingest_routing_events()$$, 'publisher ingests');
SELECT test.denied($$SELECT * FROM centralcloud.model_rankings$$, 'publisher reads dashboards');
RESET ROLE;
-- Its own score-update queue: read, delete, archive.
CREATE TEMP TABLE queues AS SELECT instance_id, queue_name FROM centralcloud.score_subscriptions;
GRANT SELECT ON queues TO PUBLIC;
SET ROLE router_eu;
SELECT test.eq((SELECT string_agg(message->>'model', ', ') FROM pgmq.read((SELECT queue_name FROM queues WHERE instance_id = 'eu-1'), 30, 100)
                 WHERE NOT message ? 'snapshot'),
               'gpt-4o', 'publisher reads its score updates (after the snapshot it subscribed with)');
SELECT test.eq(pgmq.archive((SELECT queue_name FROM queues WHERE instance_id = 'eu-1'), 1::bigint), true, 'and archives them');
SELECT test.eq((SELECT count(*) FROM pgmq.read((SELECT queue_name FROM queues WHERE instance_id = 'shared-1'), 30, 1)),
               1::bigint, 'a queue subscribed without a reader is the publishers'' group''s');
RESET ROLE;
SET ROLE router_us;
SELECT test.denied($$SELECT * FROM pgmq.read((SELECT queue_name FROM queues WHERE instance_id = 'eu-1'), 30, 1)$$,
                   'another instance reads eu-1''s queue');
RESET ROLE;
DO $$
BEGIN
    PERFORM centralcloud.subscribe_instance('x', 'no_such_role');
    RAISE EXCEPTION 'FAILED: unknown reader accepted';
EXCEPTION WHEN others THEN
    PERFORM test.eq(SQLERRM, 'centralcloud: role "no_such_role" does not exist (the reader of the score-update queue)', 'unknown reader');
END $$;

-- ---------------------------------------------------------------------------------------
-- Dashboard reader.
-- ---------------------------------------------------------------------------------------
SET ROLE dash;
SELECT test.eq((SELECT count(*) > 0 FROM centralcloud.model_usage_by_instance), true, 'reader: usage');
SELECT test.eq((SELECT count(*) > 0 FROM centralcloud.model_success_rates), true, 'reader: success rates');
SELECT test.eq((SELECT count(*) > 0 FROM centralcloud.model_response_times), true, 'reader: response times');
SELECT test.eq((SELECT count(*) > 0 FROM centralcloud.model_rankings), true, 'reader: rankings');
SELECT test.eq((SELECT queue_length FROM centralcloud.ingest_health), 4::bigint, 'reader: ingest health');
SELECT test.eq((SELECT count(*) FROM centralcloud.score_updates_recent), 1::bigint, 'reader: score updates');
SELECT test.eq((SELECT state FROM centralcloud.worker_status),
               'not preloaded: schedule with pg_cron or call ingest yourself', 'reader: worker status');
SELECT test.eq((SELECT worker_state FROM centralcloud.ingest_health),
               'not preloaded: schedule with pg_cron or call ingest yourself', 'reader: worker state in ingest health');
SELECT test.eq((SELECT samples > 0 FROM centralcloud.latency_quantiles('gpt-4o', NULL, now() - interval '1 day')), true,
               'reader: latency_quantiles');
SELECT test.denied($$SELECT count(*) FROM centralcloud.routing_records$$, 'reader reads the audit trail');
SELECT test.denied($$SELECT count(*) FROM centralcloud.model_routing_metrics$$, 'reader reads tables');
SELECT test.denied($$DELETE FROM centralcloud.model_routing_metrics$$, 'reader deletes');
SELECT test.denied($$INSERT INTO centralcloud.score_history (model_name, complexity_level, new_score, policy, reason, published_to) VALUES ('m', 'simple', 1, 'p', 'r', 0)$$, 'reader writes');
SELECT test.denied($$SELECT * FROM centralcloud.ingest_routing_events()$$, 'reader ingests');
SELECT test.denied($$SELECT * FROM centralcloud.learn_complexity_scores()$$, 'reader learns');
SELECT test.denied($$SELECT centralcloud.set_complexity_score('gpt-4o', 'simple', 1, 'x')$$, 'reader sets scores');
SELECT test.denied($$SELECT * FROM centralcloud.run_maintenance()$$, 'reader runs maintenance');
SELECT test.denied($$SELECT centralcloud.subscribe_instance('evil')$$, 'reader subscribes');
SELECT test.denied($$CALL centralcloud.drain_routing_events()$$, 'reader drains');
SELECT test.denied($$SELECT pgmq.send('model_routing_decisions', '{}')$$, 'reader publishes');
RESET ROLE;

-- ---------------------------------------------------------------------------------------
-- Operator.
-- ---------------------------------------------------------------------------------------
SET ROLE ops;
SELECT test.eq((SELECT ingested FROM centralcloud.ingest_routing_events()), 4::bigint, 'operator ingests');
CALL centralcloud.drain_routing_events();
SELECT test.eq((SELECT count(*) > 0 FROM centralcloud.learn_complexity_scores(true)), true, 'operator learns');
SELECT test.eq(centralcloud.set_complexity_score('gpt-4o', 'simple', 3.4, 'operator: adjust'), true, 'operator sets scores');
SELECT test.eq(centralcloud.subscribe_instance('ops-1', 'ops'), centralcloud.subscribe_instance('ops-1', 'ops'), 'operator subscribes');
SELECT test.eq(centralcloud.unsubscribe_instance('ops-1'), true, 'operator unsubscribes');
SELECT count(*) FROM centralcloud.run_maintenance();
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'operator checks');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records), 604::bigint, 'operator reads the audit trail');
SELECT test.denied($$DELETE FROM centralcloud.routing_records$$, 'operator rewrites the audit trail');
SELECT test.denied($$UPDATE centralcloud.model_routing_metrics SET usage_count = 0$$, 'operator edits metrics');
SELECT test.denied($$UPDATE centralcloud.model_complexity_scores SET score = 0$$, 'operator edits scores behind the log');
SELECT test.denied($$SELECT * FROM centralcloud.schedule_with_pg_cron()$$, 'operator schedules jobs as the owner');
SELECT test.denied($$SELECT * FROM centralcloud.drop_expired_routing_partitions(now())$$, 'operator drops partitions directly');
RESET ROLE;

-- ---------------------------------------------------------------------------------------
-- PUBLIC: only pure functions; every SECURITY DEFINER function pins search_path.
-- ---------------------------------------------------------------------------------------
SELECT test.empty($$
    SELECT p.oid::regprocedure, p.prosecdef, p.provolatile FROM pg_proc p
     WHERE p.pronamespace = 'centralcloud'::regnamespace
       AND has_function_privilege('nobody', p.oid, 'EXECUTE')
       AND (p.prosecdef OR (p.prokind <> 'a' AND p.provolatile = 'v'))
$$, 'PUBLIC executes only pure functions');
SELECT test.empty($$
    SELECT p.oid::regprocedure, p.proconfig FROM pg_proc p
     WHERE p.pronamespace = 'centralcloud'::regnamespace AND p.prosecdef
       AND p.proconfig IS DISTINCT FROM ARRAY['search_path=centralcloud, pg_catalog, pg_temp']
       AND NOT (p.oid = 'centralcloud.recommend_model(text,text[],text,text[])'::regprocedure
                AND p.proconfig = ARRAY['search_path=centralcloud, pg_catalog, pg_temp', 'plan_cache_mode=force_generic_plan', 'enable_sort=off'])
       AND NOT (p.oid = 'centralcloud.routing_timeseries(timestamptz,timestamptz,interval,text,text,boolean,boolean)'::regprocedure
                AND p.proconfig = ARRAY['search_path=centralcloud, pg_catalog, pg_temp', 'plan_cache_mode=force_custom_plan'])
       AND NOT (p.oid IN ('centralcloud.learn_complexity_scores(boolean)'::regprocedure,
                          'centralcloud.evaluate_model_health()'::regprocedure)
                AND p.proconfig = ARRAY['search_path=centralcloud, pg_catalog, pg_temp', 'jit=off'])
       AND NOT (p.oid = 'centralcloud.ingest_routing_events(integer,integer)'::regprocedure
                AND p.proconfig = ARRAY['search_path=centralcloud, pg_catalog, pg_temp', 'jit=off', 'plan_cache_mode=force_generic_plan'])
$$, 'SECURITY DEFINER functions pin search_path (recommend_model also keeps its plans and reads in index order, routing_timeseries plans each call, ingest, learning and health never compile, ingest keeps one generic plan)');
SELECT test.eq((SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text) FROM pg_proc p
                 WHERE p.pronamespace = 'centralcloud'::regnamespace AND p.prosecdef),
               ARRAY['centralcloud.add_routing_partition(date)', 'centralcloud.drop_expired_dead_letters(timestamp with time zone)',
                     'centralcloud.drop_expired_routing_partitions(timestamp with time zone)',
                     'centralcloud.ensure_routing_partitions(integer)', 'centralcloud.evaluate_model_health()',
                     'centralcloud.grant_queue_privileges()',
                     'centralcloud.ingest_routing_events(integer,integer)', 'centralcloud.instance_queue(text)',
                     'centralcloud.instance_sync_state(interval)', 'centralcloud.latency_quantiles(text,text,timestamp with time zone,timestamp with time zone)',
                     'centralcloud.learn_complexity_scores(boolean)', 'centralcloud.queue_health()',
                     'centralcloud.recommend_candidates_from_health()', 'centralcloud.recommend_candidates_from_metrics()',
                     'centralcloud.recommend_candidates_from_pair()', 'centralcloud.recommend_candidates_from_scores()',
                     'centralcloud.recommend_model(text,text[],text,text[])',
                     'centralcloud.refresh_metrics_from_rollup()', 'centralcloud.routing_timeseries(timestamp with time zone,timestamp with time zone,interval,text,text,boolean,boolean)', 'centralcloud.run_maintenance()',
                     'centralcloud.score_snapshot()', 'centralcloud.set_complexity_score(text,text,double precision,text)', 'centralcloud.subscribe_instance(text,text)',
                     'centralcloud.timestamps_without_offset(timestamp with time zone)',
                     'centralcloud.unsubscribe_instance(text,boolean)', 'centralcloud.worker_liveness(integer)'],
               'the entry points, the privileged read helpers and the candidates'' triggers run as the owner, nothing else');
-- Everything else that is not pure C arithmetic pins search_path too (a superuser's job runs
-- it with the superuser's rights); aggregates cannot, drain_routing_events pins it itself
-- (t13 below), C functions without SPI resolve no names, and neither do the unit functions
-- with SQL-standard bodies (bound when created; unpinned so that they are inlined).
SELECT test.empty($$
    SELECT p.oid::regprocedure FROM pg_proc p
     WHERE p.pronamespace = 'centralcloud'::regnamespace AND p.prokind IN ('f', 'p')
       AND p.prolang <> (SELECT oid FROM pg_language WHERE lanname = 'c')
       AND NOT coalesce(p.proconfig::text[] && ARRAY['search_path=centralcloud, pg_catalog, pg_temp', 'search_path=pg_catalog, pg_temp'], false)
       AND p.oid <> 'centralcloud.drain_routing_events(integer)'::regprocedure
       AND NOT (p.prosqlbody IS NOT NULL AND p.proconfig IS NULL
                AND p.oid IN ('centralcloud.ms(double precision)'::regprocedure,
                              'centralcloud.percent(numeric,numeric)'::regprocedure,
                              'centralcloud.score4(double precision)'::regprocedure))
$$, 'every SQL and PL/pgSQL function pins search_path');

-- ---------------------------------------------------------------------------------------
-- Shadowing: an operator's own schema, first on its search_path, with look-alikes of the
-- catalog functions the entry points use, and temp tables named like ours.
-- ---------------------------------------------------------------------------------------
CREATE SCHEMA evil AUTHORIZATION ops;
-- pgmq's own functions do not pin search_path, so publish before the trap is set.
SELECT pgmq.send('model_routing_decisions', test.event('eu-1', 'mistral-large', 'complex', 'success', 250));
SET ROLE ops;
CREATE TABLE evil.hijacked (what text);
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS
    $$ INSERT INTO evil.hijacked VALUES ('now') RETURNING pg_catalog.now() $$;
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS
    $$ INSERT INTO evil.hijacked VALUES ('clock_timestamp') RETURNING pg_catalog.clock_timestamp() $$;
CREATE FUNCTION evil.format(text, text) RETURNS text LANGUAGE sql AS
    $$ INSERT INTO evil.hijacked VALUES ('format') RETURNING pg_catalog.format($1, $2) $$;
CREATE FUNCTION evil.to_regclass(text) RETURNS regclass LANGUAGE sql AS
    $$ INSERT INTO evil.hijacked VALUES ('to_regclass') RETURNING pg_catalog.to_regclass($1) $$;
CREATE FUNCTION evil.jsonb_typeof(jsonb) RETURNS text LANGUAGE sql AS
    $$ INSERT INTO evil.hijacked VALUES ('jsonb_typeof') RETURNING pg_catalog.jsonb_typeof($1) $$;
CREATE FUNCTION evil.round(numeric, integer) RETURNS numeric LANGUAGE sql AS
    $$ INSERT INTO evil.hijacked VALUES ('round') RETURNING pg_catalog.round($1, $2) $$;
CREATE FUNCTION evil.date_trunc(text, timestamptz, text) RETURNS timestamptz LANGUAGE sql AS
    $$ INSERT INTO evil.hijacked VALUES ('date_trunc') RETURNING pg_catalog.date_trunc($1, $2, $3) $$;
CREATE FUNCTION evil.to_timestamp(double precision) RETURNS timestamptz LANGUAGE sql AS
    $$ INSERT INTO evil.hijacked VALUES ('to_timestamp') RETURNING pg_catalog.to_timestamp($1) $$;
CREATE FUNCTION evil.current_setting(text, boolean) RETURNS text LANGUAGE sql AS
    $$ INSERT INTO evil.hijacked VALUES ('current_setting') RETURNING pg_catalog.current_setting($1, $2) $$;
CREATE TEMP TABLE model_routing_metrics (LIKE centralcloud.model_routing_metrics);
CREATE TEMP TABLE routing_records (LIKE centralcloud.routing_records);
SET search_path = evil, pg_catalog, centralcloud, public;

-- The look-alikes do fire for code that does not pin its search_path ...
SELECT now() IS NOT NULL;
SELECT test.eq((SELECT count(*) FROM evil.hijacked), 1::bigint, 'the trap works');
TRUNCATE evil.hijacked;
-- ... and never inside the entry points (nor in pgmq's functions they call: the pinned
-- search_path holds for everything they run).
SELECT test.eq((SELECT ingested FROM centralcloud.ingest_routing_events()), 1::bigint, 'ingest under a hostile search_path');
SELECT count(*) FROM centralcloud.learn_complexity_scores();
SELECT centralcloud.set_complexity_score('mistral-large', 'complex', 2.2, 'operator: hostile path');
SELECT centralcloud.subscribe_instance('evil-1', 'ops');
SELECT count(*) FROM centralcloud.run_maintenance();
SELECT * FROM centralcloud.latency_quantiles('mistral-large', 'complex', pg_catalog.now() - interval '1 day');
SELECT * FROM centralcloud.ingest_health;
SELECT count(*) FROM centralcloud.check_invariants();
SELECT count(*) FROM centralcloud.evaluate_model_health();
SELECT count(*) FROM centralcloud.recommend_model('complex', prefer => 'speed');
SELECT * FROM centralcloud.model_health;
SELECT test.eq((SELECT string_agg(DISTINCT what, ',') FROM evil.hijacked), NULL, 'no look-alike ran inside SECURITY DEFINER code');
SELECT test.eq((SELECT count(*) FROM pg_temp.model_routing_metrics), 0::bigint, 'temp look-alike tables untouched');
RESET search_path;
RESET ROLE;
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'all exact at the end');

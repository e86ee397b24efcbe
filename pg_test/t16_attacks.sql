-- Attacks and faults found against 0.1.0, each reproduced as it was done then and now refused
-- (issue 10): an operator escalating through check_invariants(), a publisher jamming the event
-- queue or rewriting another instance's score updates, a search_path trap in the pg_cron
-- procedure, a re-created queue without publisher grants, unbounded dead letters, and one
-- router flooding the catalog with new models.
\ir lib.sql
GRANT USAGE ON SCHEMA test TO PUBLIC;

CREATE ROLE t16_ops LOGIN IN ROLE centralcloud_operator;
CREATE ROLE t16_router_a LOGIN IN ROLE centralcloud_publisher;
CREATE ROLE t16_router_b LOGIN IN ROLE centralcloud_publisher;
CREATE ROLE t16_user LOGIN;

-- ---------------------------------------------------------------------------------------
-- 1. check_invariants(published regclass) read the caller's relation with the owner's rights:
--    a temp view over a temp function ran as superuser. Now it runs as the caller.
-- ---------------------------------------------------------------------------------------
SET ROLE t16_ops;
CREATE FUNCTION pg_temp.escalate() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'ALTER ROLE t16_ops SUPERUSER';
    RETURN 1;
END $$;
CREATE TEMP VIEW trap AS SELECT pg_temp.escalate() AS msg_id;
SELECT test.fails_with($$SELECT * FROM centralcloud.check_invariants('trap'::regclass)$$, '42501',
                       'the trap runs with the caller''s rights');
-- The operator can still check, with a relation of its own.
CREATE TEMP TABLE mine AS SELECT 1::bigint AS msg_id WHERE false;
SELECT test.empty($$SELECT * FROM centralcloud.check_invariants('mine'::regclass)$$, 'operator runs the checker');
RESET ROLE;
SELECT test.eq((SELECT rolsuper FROM pg_roles WHERE rolname = 't16_ops'), false, 'operator is no superuser');

-- ---------------------------------------------------------------------------------------
-- 3. A publisher's table-level INSERT allowed OVERRIDING SYSTEM VALUE: msg_ids ahead of the
--    sequence with vt = infinity made every later pgmq.send fail. Now: only what send needs.
-- ---------------------------------------------------------------------------------------
SET ROLE t16_router_a;
SELECT test.fails_with($$INSERT INTO pgmq.q_model_routing_decisions (msg_id, vt, message) OVERRIDING SYSTEM VALUE
                         SELECT g, 'infinity', '{}' FROM generate_series(7, 1000) g$$, '42501', 'publisher picks msg_ids');
SELECT test.fails_with($$INSERT INTO pgmq.q_model_routing_decisions (enqueued_at, message) VALUES (now() + interval '3 days', '{}')$$,
                       '42501', 'publisher picks enqueued_at');
SELECT test.fails_with($$INSERT INTO pgmq.q_model_routing_decisions (read_ct, message) VALUES (99, '{}')$$,
                       '42501', 'publisher picks read_ct');
SELECT test.fails_with($$UPDATE pgmq.q_model_routing_decisions SET vt = 'infinity'$$, '42501', 'publisher hides messages');
SELECT test.fails_with($$DELETE FROM pgmq.q_model_routing_decisions$$, '42501', 'publisher deletes messages');
SELECT test.eq((SELECT count(*) FROM pgmq.send('model_routing_decisions', test.event('a-1', 'gpt-4o', 'simple', 'routed'))),
               1::bigint, 'publisher sends');
SELECT test.eq((SELECT count(*) FROM pgmq.send_batch('model_routing_decisions', ARRAY(SELECT test.events(5)))), 5::bigint,
               'publisher sends batches');
RESET ROLE;
SELECT test.eq((SELECT ingested FROM centralcloud.ingest_routing_events()), 6::bigint, 'ingested');

-- ---------------------------------------------------------------------------------------
-- 4. received_at came from the publisher's enqueued_at: one three days ahead went to the
--    default partition and then blocked that day's partition; one from 2000 was deleted by the
--    next retention run. Now received_at is the claim time (even for a superuser's insert).
-- ---------------------------------------------------------------------------------------
INSERT INTO pgmq.q_model_routing_decisions (enqueued_at, vt, message)
VALUES (now() + interval '3 days', now(), test.event('a-1', 'gpt-4o', 'simple', 'success', 120)),
       ('2000-01-01', now(), test.event('a-1', 'gpt-4o', 'simple', 'failure', 130));
SELECT test.eq((SELECT ingested FROM centralcloud.ingest_routing_events()), 2::bigint, 'odd enqueue times ingested');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records_default), 0::bigint, 'nothing in the default partition');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records
                 WHERE received_at > now() OR received_at < now() - interval '5 minutes'), 0::bigint, 'received_at is the claim');
SELECT test.eq((SELECT count(*) FROM centralcloud.run_maintenance() WHERE action <> 'created partition'), 0::bigint,
               'retention removes nothing');
SELECT test.eq(centralcloud.add_routing_partition(current_date + 3) IS NOT NULL, true, 'the day three days ahead gets its partition');

-- ---------------------------------------------------------------------------------------
-- 5. Score-update queues: a publisher rewrote another instance's update (new_score 0) and
--    forged rows into its archive. Now each queue has one reader, which cannot rewrite rows.
-- ---------------------------------------------------------------------------------------
SELECT centralcloud.subscribe_instance('a-1', 't16_router_a');
SELECT centralcloud.subscribe_instance('b-1');
SELECT centralcloud.set_complexity_score('gpt-4o', 'simple', 4.2, 'operator: t16');
CREATE TEMP TABLE queues AS SELECT instance_id, pgmq.format_table_name(queue_name, 'q') AS q,
                                   pgmq.format_table_name(queue_name, 'a') AS a, queue_name
                              FROM centralcloud.score_subscriptions;
GRANT SELECT ON queues TO PUBLIC;
SET ROLE t16_router_b;
SELECT test.fails_with(format($$UPDATE pgmq.%I SET message = jsonb_set(message, '{new_score}', '0')$$,
                              (SELECT q FROM queues WHERE instance_id = 'a-1')), '42501', 'another instance rewrites a-1''s update');
SELECT test.fails_with(format($$INSERT INTO pgmq.%I (msg_id, vt, message) VALUES (999, now(), '{"new_score": 0}')$$,
                              (SELECT a FROM queues WHERE instance_id = 'a-1')), '42501', 'another instance forges a-1''s archive');
SELECT test.fails_with(format($$SELECT * FROM pgmq.read(%L, 30, 1)$$, (SELECT queue_name FROM queues WHERE instance_id = 'a-1')),
                       '42501', 'another instance reads a-1''s queue');
-- Its own (shared) queue: nobody may rewrite the updates there either.
SELECT test.fails_with(format($$UPDATE pgmq.%I SET message = '{}'$$, (SELECT q FROM queues WHERE instance_id = 'b-1')),
                       '42501', 'a reader rewrites an update');
RESET ROLE;
SET ROLE t16_router_a;
SELECT test.eq((SELECT (message ->> 'new_score')::float8 FROM pgmq.read((SELECT queue_name FROM queues WHERE instance_id = 'a-1'), 30, 100)
                 WHERE NOT message ? 'snapshot'),
               4.2::float8, 'the subscriber reads its update (after its snapshot)');
SELECT test.eq(pgmq.archive((SELECT queue_name FROM queues WHERE instance_id = 'a-1'), 1::bigint), true, 'and archives it');
SELECT test.fails_with(format($$SELECT message FROM pgmq.%I$$, (SELECT a FROM queues WHERE instance_id = 'a-1')), '42501',
                       'the archive is not readable');
SELECT test.eq((SELECT count(*) FROM pgmq.read((SELECT queue_name FROM queues WHERE instance_id = 'b-1'), 0, 1)), 1::bigint,
               'the shared queue is the publisher group''s');
RESET ROLE;
-- Given a role, a queue is that role's alone: the publisher group loses it.
SELECT centralcloud.subscribe_instance('b-1', 't16_router_b');
SET ROLE t16_router_a;
SELECT test.fails_with(format($$SELECT * FROM pgmq.read(%L, 0, 1)$$, (SELECT queue_name FROM queues WHERE instance_id = 'b-1')),
                       '42501', 'the group lost b-1''s queue');
RESET ROLE;
SET ROLE t16_router_b;
SELECT test.eq((SELECT count(*) FROM pgmq.read((SELECT queue_name FROM queues WHERE instance_id = 'b-1'), 0, 1)), 1::bigint,
               'b-1''s own role reads it');
RESET ROLE;
SELECT test.fails_with($$SELECT centralcloud.subscribe_instance('c-1', 'no_such_role')$$, '42704', 'unknown reader: undefined_object');

-- ---------------------------------------------------------------------------------------
-- 7. drain_routing_events() (the superuser's pg_cron job) resolved make_interval through the
--    caller's search_path: an ordinary user's public.make_interval(integer) ran as superuser.
-- ---------------------------------------------------------------------------------------
GRANT CREATE ON SCHEMA public TO t16_user;
SET ROLE t16_user;
CREATE FUNCTION public.make_interval(secs integer) RETURNS interval LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'ALTER ROLE t16_user SUPERUSER';
    RETURN pg_catalog.make_interval(secs => secs);
END $$;
CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'ALTER ROLE t16_user SUPERUSER';
    RETURN pg_catalog.clock_timestamp();
END $$;
RESET ROLE;
SET search_path = public, pg_catalog;
CALL centralcloud.drain_routing_events(1);
RESET search_path;
SELECT test.eq((SELECT rolsuper FROM pg_roles WHERE rolname = 't16_user'), false, 'the planted functions never ran');
DROP FUNCTION public.make_interval(integer), public.clock_timestamp();
REVOKE CREATE ON SCHEMA public FROM t16_user;

-- ---------------------------------------------------------------------------------------
-- 10. After the event queue is dropped and re-created, publishers can send again once ingest
--     (or grant_queue_privileges()) ran; the error on the missing queue says so.
-- ---------------------------------------------------------------------------------------
SELECT pgmq.drop_queue('model_routing_decisions');
DO $$
BEGIN
    PERFORM centralcloud.ingest_routing_events();
    RAISE EXCEPTION 'FAILED: ingest without a queue';
EXCEPTION WHEN undefined_table THEN
    DECLARE hint text;
    BEGIN
        GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
        PERFORM test.eq(hint LIKE '%pgmq.create(''model_routing_decisions'')%grant_queue_privileges()%', true, 'hint: ' || hint);
    END;
END $$;
SELECT pgmq.create('model_routing_decisions');
SET ROLE t16_router_a;
SELECT test.fails_with($$SELECT pgmq.send('model_routing_decisions', '{}')$$, '42501', 're-created queue: no grants yet');
RESET ROLE;
SELECT test.eq((SELECT read FROM centralcloud.ingest_routing_events()), 0::bigint, 'ingest on the new queue');
SET ROLE t16_router_a;
SELECT test.eq((SELECT count(*) FROM pgmq.send('model_routing_decisions', test.event('a-1', 'gpt-4o', 'simple', 'routed'))),
               1::bigint, 'publishers send again after ingest re-granted');
SELECT test.fails_with($$INSERT INTO pgmq.q_model_routing_decisions (msg_id, message) OVERRIDING SYSTEM VALUE VALUES (50, '{}')$$,
                       '42501', 'and still only what pgmq.send needs');
RESET ROLE;
SELECT test.eq((SELECT ingested FROM centralcloud.ingest_routing_events()), 1::bigint, 'ingested from the new queue');

-- ---------------------------------------------------------------------------------------
-- 11. Dead letters: bounded size (t01 checks the prefix), and a retention.
-- ---------------------------------------------------------------------------------------
SELECT pgmq.send('model_routing_decisions', jsonb_build_object('junk', repeat('j', 5000000)));
SELECT pgmq.send('model_routing_decisions', '{"junk": 1}');
SELECT test.eq((SELECT rejected FROM centralcloud.ingest_routing_events()), 2::bigint, 'junk dead-lettered');
SELECT test.eq((SELECT pg_column_size(x.*) < 20000 FROM centralcloud.routing_events_rejected x WHERE message_bytes > 5000000), true,
               'a 5 MB message costs a few kB');
UPDATE centralcloud.routing_events_rejected SET rejected_at = now() - interval '31 days' WHERE message_bytes > 5000000;
SELECT test.eq((SELECT string_agg(action || ' ' || object || ' ' || rows_removed, ', ') FROM centralcloud.run_maintenance()
                 WHERE action <> 'created partition'),
               'removed expired dead letters routing_events_rejected 1', 'dead-letter retention');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_events_rejected), 1::bigint, 'the recent one is kept');
SELECT test.eq((SELECT partition_name || ':' || rows_removed FROM centralcloud.retention_log), 'routing_events_rejected:1', 'logged');
SET centralcloud.dead_letter_retention = 0;
UPDATE centralcloud.routing_events_rejected SET rejected_at = now() - interval '400 days';
SELECT test.eq((SELECT count(*) FROM centralcloud.run_maintenance() WHERE action <> 'created partition'), 0::bigint, '0 keeps them');
RESET centralcloud.dead_letter_retention;

-- ---------------------------------------------------------------------------------------
-- 9. One buggy router inventing model names: at most centralcloud.max_new_models_per_hour new
--    models an hour; the rest are dead letters too_many_models. Known models always pass.
-- ---------------------------------------------------------------------------------------
SET centralcloud.max_new_models_per_hour = 2;
-- gpt-4o and claude-3.5-sonnet came in above: this hour has had its 2 new models.
SELECT test.eq((SELECT count(DISTINCT model_name) FROM centralcloud.model_routing_metrics), 2::bigint, 'two models this hour');
SELECT pgmq.send_batch('model_routing_decisions',
                       ARRAY(SELECT test.event('buggy', 'garbage-' || i, 'simple', 'routed') FROM generate_series(1, 50) i)
                       || ARRAY[test.event('a-1', 'gpt-4o', 'medium', 'success', 90)]);
SELECT test.eq((SELECT (ingested, rejected) FROM centralcloud.ingest_routing_events())::text, '(1,50)', 'no room this hour');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_events_rejected WHERE reason_code = 'too_many_models'), 50::bigint,
               'dead letters too_many_models');
SELECT test.eq((SELECT reason FROM centralcloud.routing_events_rejected WHERE reason_code = 'too_many_models' ORDER BY msg_id LIMIT 1),
               'model "garbage-1" is new and 2 new models were already accepted in the last hour (centralcloud.max_new_models_per_hour)',
               'the reason');
SET centralcloud.max_new_models_per_hour = 4;
SELECT pgmq.send_batch('model_routing_decisions',
                       ARRAY(SELECT test.event('buggy', 'garbage-' || i, 'simple', 'routed') FROM generate_series(1, 5) i));
SELECT test.eq((SELECT (ingested, rejected) FROM centralcloud.ingest_routing_events())::text, '(2,3)', 'room for two more');
SET centralcloud.max_new_models_per_hour = 0;
SELECT pgmq.send_batch('model_routing_decisions',
                       ARRAY(SELECT test.event('buggy', 'garbage-' || i, 'simple', 'routed') FROM generate_series(1, 5) i));
SELECT test.eq((SELECT (ingested, rejected) FROM centralcloud.ingest_routing_events())::text, '(5,0)', '0: no cap');
RESET centralcloud.max_new_models_per_hour;
-- routing_event_verdict() called by hand judges the event alone.
SELECT test.eq((centralcloud.routing_event_verdict(test.event('x', 'never-seen', 'simple', 'routed')::text))[1], NULL, 'verdict by hand');
-- A call cancelled midway leaves no admission behind: a later verdict by hand still judges the
-- event alone. (The call admits the hour's last new model, then a slow trigger is cancelled.)
CREATE FUNCTION test.slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(5); RETURN NEW; END $$;
CREATE TRIGGER slow BEFORE INSERT ON centralcloud.routing_records FOR EACH ROW
    WHEN (NEW.instance_id = 'slow') EXECUTE FUNCTION test.slow();
SELECT set_config('centralcloud.max_new_models_per_hour',
                  (SELECT count(DISTINCT model_name) + 1 FROM centralcloud.model_routing_metrics)::text, false);
SELECT pgmq.send('model_routing_decisions', test.event('slow', 'brand-new-1', 'simple', 'routed'));
SET statement_timeout = '300ms';
\set ON_ERROR_STOP 0
SELECT * FROM centralcloud.ingest_routing_events();
\set ON_ERROR_STOP 1
SELECT test.eq(:'SQLSTATE'::text, '57014', 'the call was cancelled midway');
RESET statement_timeout;
SELECT test.eq((centralcloud.routing_event_verdict(test.event('x', 'brand-new-2', 'simple', 'routed')::text))[1], NULL,
               'no admission left behind');
DROP TRIGGER slow ON centralcloud.routing_records;
SELECT pgmq.purge_queue('model_routing_decisions');
RESET centralcloud.max_new_models_per_hour;

-- One call over many distinct cells writes its pending rows every centralcloud.ingest_max_pending_rows
-- and stays exact.
SET centralcloud.ingest_max_pending_rows = 100;
SELECT pgmq.send_batch('model_routing_decisions',
                       ARRAY(SELECT test.event('fleet-' || (i % 40), 'garbage-' || (i % 5 + 1), 'simple', 'success', i,
                                               2.5, now() - make_interval(hours => i % 30))
                               FROM generate_series(1, 3000) i));
SELECT test.eq((SELECT (ingested, batches) FROM centralcloud.ingest_routing_events(100))::text, '(3000,30)', 'ingested in 30 batches');
RESET centralcloud.ingest_max_pending_rows;
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'exact after flushing mid-call');

-- Learning reads and applies the catalog in chunks of 1000 cells: a catalog of 2,500 more
-- cells is learned once each, none skipped or repeated across chunk boundaries (policy seed,
-- whose watermarks show what each step consumed).
SET centralcloud.learning_policy = 'seed';
SET centralcloud.max_new_models_per_hour = 0;
SET centralcloud.min_samples_for_learning = 1;
SELECT count(*) FROM centralcloud.learn_complexity_scores();
SELECT pgmq.send_batch('model_routing_decisions',
                       ARRAY(SELECT test.event('fleet-1', 'many-' || i, 'medium', 'success', 100) FROM generate_series(1, 2500) i));
SELECT test.eq((SELECT ingested FROM centralcloud.ingest_routing_events()), 2500::bigint, '2,500 new cells');
CREATE TEMP TABLE learned AS SELECT * FROM centralcloud.learn_complexity_scores();
SELECT test.eq((SELECT (count(*), count(DISTINCT (model, complexity))) FROM learned)::text,
               (SELECT (count(*), count(*)) FROM centralcloud.model_complexity_scores)::text, 'every cell once');
SELECT test.eq((SELECT count(*) FROM learned WHERE model LIKE 'many-%' AND samples = 1), 2500::bigint, 'each new cell learned its sample');
SELECT test.eq((SELECT count(*) FROM centralcloud.learn_complexity_scores() WHERE samples > 0), 0::bigint, 'nothing learned twice');
RESET centralcloud.min_samples_for_learning;
RESET centralcloud.max_new_models_per_hour;
RESET centralcloud.learning_policy;
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'exact at the end');

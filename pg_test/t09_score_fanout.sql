-- Every score update reaches every subscribed instance exactly once, in order, with the seed's
-- JSON shape; the plain model_score_updates queue gets it too; an unsubscribed instance gets
-- nothing; instance ids of any shape map to safe queue names.
\ir lib.sql

CREATE TEMP TABLE subs AS
SELECT id, centralcloud.subscribe_instance(id) AS queue
  FROM unnest(ARRAY['singularity-us-west-1', 'Singularity-EU-1', 'a;DROP TABLE t;--''"$']) AS id;
SELECT * FROM subs;
SELECT test.eq((SELECT count(DISTINCT queue) FROM subs), 3::bigint, 'distinct queues');
SELECT test.eq((SELECT count(*) FROM subs WHERE queue !~ '^cc_scores_[a-z0-9_]+_[0-9a-f]{8}$' OR length(queue) > 47), 0::bigint, 'safe names');
SELECT test.eq(centralcloud.subscribe_instance('singularity-us-west-1'), (SELECT queue FROM subs WHERE id = 'singularity-us-west-1'), 'idempotent');
SELECT test.eq((SELECT count(*) FROM pgmq.list_queues() WHERE queue_name IN (SELECT queue FROM subs)), 3::bigint, 'queues created');

-- One instance that leaves (queue dropped) and one that leaves but keeps its queue.
SELECT centralcloud.subscribe_instance('leaving-1') AS leaving_queue \gset
SELECT centralcloud.subscribe_instance('leaving-2') AS kept_queue \gset
SELECT test.eq(centralcloud.unsubscribe_instance('leaving-1'), true, 'unsubscribed');
SELECT test.eq(centralcloud.unsubscribe_instance('leaving-2', drop_queue => false), true, 'unsubscribed, queue kept');
SELECT test.eq(centralcloud.unsubscribe_instance('never-subscribed'), false, 'not subscribed');
SELECT test.eq((SELECT count(*) FROM pgmq.list_queues() WHERE queue_name = :'leaving_queue'), 0::bigint, 'queue dropped');

DO $$
BEGIN
    PERFORM centralcloud.subscribe_instance('');
    RAISE EXCEPTION 'FAILED: empty instance id accepted';
EXCEPTION WHEN others THEN
    PERFORM test.eq(SQLERRM, 'centralcloud: instance_id must not be empty', 'empty id');
END $$;

-- Three changes, in one learning run and two operator calls.
INSERT INTO test.published (msg)
SELECT test.event('singularity-us-west-1', 'gpt-4o', 'complex', 'success', 300, 4.0) FROM generate_series(1, 100);
SELECT test.publish();
SELECT ingested FROM centralcloud.ingest_routing_events();
SELECT count(*) FILTER (WHERE changed) FROM centralcloud.learn_complexity_scores();
SELECT centralcloud.set_complexity_score('gpt-4o', 'complex', 2.0);
SELECT centralcloud.set_complexity_score('claude-3.5-sonnet', 'simple', 1.0);
SELECT test.eq((SELECT array_agg(published_to ORDER BY id) FROM centralcloud.score_history), ARRAY[4, 4, 4], 'three instances + the plain queue');

-- Each subscribed queue, and the plain one, holds exactly the three updates in history order.
CREATE TEMP TABLE expected AS
SELECT row_number() OVER (ORDER BY id) AS n, model_name, complexity_level, old_score, new_score, reason
  FROM centralcloud.score_history;
CREATE TEMP TABLE received AS
SELECT q.queue, row_number() OVER (PARTITION BY q.queue ORDER BY r.msg_id) AS n, r.message
  FROM (SELECT queue FROM subs UNION ALL SELECT 'model_score_updates') q,
       LATERAL pgmq.read(q.queue, 60, 100) r;
SELECT test.eq((SELECT count(*) FROM received), 12::bigint, '4 queues x 3 updates');
SELECT test.empty($$
    SELECT r.queue, r.n FROM received r JOIN expected e USING (n)
     WHERE r.message->>'model' <> e.model_name OR r.message->>'complexity' <> e.complexity_level
        OR (r.message->>'new_score')::float8 <> e.new_score
        OR (r.message->>'old_score')::float8 IS DISTINCT FROM e.old_score
        OR r.message->>'reason' <> e.reason
        OR r.message->>'event_type' <> 'model_score_update'
        OR (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(r.message) k)
           <> ARRAY['complexity', 'event_type', 'model', 'new_score', 'old_score', 'reason', 'timestamp']
$$, 'every queue got every update, in order, in the seed''s shape');
SELECT test.eq((SELECT queue_length FROM pgmq.metrics(:'kept_queue')), 0::bigint, 'unsubscribed instance got nothing');

-- The same pgmq message never lands twice in routing_records: (msg_id, enqueued_at) names a
-- message. A queue dropped and recreated restarts its msg_ids; those are new messages (another
-- enqueue time) and are recorded. A message delivered again (here: put back into the queue
-- table as a restore would) is dead-lettered as a duplicate (kept, with its reason), not
-- counted again and not silently dropped.
\ir lib.sql

INSERT INTO test.published (msg) SELECT test.events(30);
SELECT test.publish();
SELECT test.eq((SELECT ingested FROM centralcloud.ingest_routing_events()), 30::bigint, 'first ingest');

SELECT pgmq.drop_queue('model_routing_decisions');
SELECT pgmq.create('model_routing_decisions');
-- msg_ids 1..6 again, with new enqueue times: new messages.
SELECT count(*) FROM pgmq.send_batch('model_routing_decisions', ARRAY(SELECT test.events(6, 500)));
SELECT test.eq((SELECT (read, ingested, rejected, duplicates) FROM centralcloud.ingest_routing_events())::text,
               '(6,6,0,0)', 'reused msg_ids of a recreated queue are new messages');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records WHERE msg_id <= 6), 12::bigint, 'both generations kept');

-- Messages 3 and 4 of the first generation delivered again, next to a new one.
INSERT INTO pgmq.q_model_routing_decisions (msg_id, read_ct, enqueued_at, vt, message)
OVERRIDING SYSTEM VALUE
SELECT msg_id, 0, enqueued_at, now(), test.event(instance_id, model, complexity, outcome, response_time_ms, score::numeric, "timestamp")
  FROM centralcloud.routing_records
 WHERE msg_id IN (3, 4) AND enqueued_at = (SELECT min(enqueued_at) FROM centralcloud.routing_records);
SELECT pgmq.send('model_routing_decisions', test.event('singularity-9', 'gpt-4o', 'simple', 'routed'));

CREATE TEMP TABLE r AS SELECT * FROM centralcloud.ingest_routing_events();
SELECT test.eq((SELECT (read, ingested, rejected, duplicates) FROM r)::text, '(3,1,0,2)', 'duplicates counted apart');
SELECT test.eq(
    (SELECT array_agg(msg_id ORDER BY msg_id) FROM centralcloud.routing_events_rejected WHERE reason_code = 'duplicate'),
    ARRAY[3, 4]::bigint[], 'duplicates dead-lettered');
SELECT test.eq(
    (SELECT reason FROM centralcloud.routing_events_rejected WHERE msg_id = 3),
    'msg_id 3 is already in routing_records (delivered twice)', 'duplicate reason');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records), 37::bigint, 'records: 30 + 6 + 1');
-- Metrics count each message once.
SELECT test.eq(
    (SELECT sum(usage_count + success_count + failure_count) FROM centralcloud.model_routing_metrics),
    37::numeric, 'metrics not double counted');
SELECT test.eq(
    (SELECT sum(usage_count + success_count + failure_count) FROM centralcloud.routing_rollup_hourly),
    37::numeric, 'rollups not double counted');

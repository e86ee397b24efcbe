-- The same pgmq msg_id never lands twice in routing_records. A queue dropped and recreated
-- restarts its msg_ids; a message whose msg_id is already recorded is dead-lettered as a
-- duplicate (kept, with its reason), not counted again and not silently dropped.
\ir lib.sql

INSERT INTO test.published (msg) SELECT test.events(30);
SELECT test.publish();
SELECT test.eq((SELECT ingested FROM centralcloud.ingest_routing_events()), 30::bigint, 'first ingest');

SELECT pgmq.drop_queue('model_routing_decisions');
SELECT pgmq.create('model_routing_decisions');
-- msg_ids 1..5 again, and one new id (31) that was never recorded.
SELECT count(*) FROM pgmq.send_batch('model_routing_decisions', ARRAY(SELECT test.events(36, 500)));
SELECT pgmq.delete('model_routing_decisions', ARRAY(SELECT generate_series(6::bigint, 30)));

CREATE TEMP TABLE r AS SELECT * FROM centralcloud.ingest_routing_events();
SELECT test.eq((SELECT (read, ingested, rejected, duplicates) FROM r)::text, '(11,6,0,5)', 'duplicates counted apart');
SELECT test.eq(
    (SELECT array_agg(msg_id ORDER BY msg_id) FROM centralcloud.routing_events_rejected WHERE reason_code = 'duplicate'),
    ARRAY[1, 2, 3, 4, 5]::bigint[], 'duplicates dead-lettered');
SELECT test.eq(
    (SELECT reason FROM centralcloud.routing_events_rejected WHERE msg_id = 3),
    'msg_id 3 is already in routing_records (delivered twice)', 'duplicate reason');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records), 36::bigint, 'records: 30 + 6 new');
-- Metrics count the first 30 and the 6 new events only.
SELECT test.eq(
    (SELECT sum(usage_count + success_count + failure_count) FROM centralcloud.model_routing_metrics),
    36::numeric, 'metrics not double counted');

-- A message whose processing raises an unexpected error (here: a failing trigger) does not
-- block the queue: the rest of its batch is ingested, it is retried on later reads, and after
-- centralcloud.max_retries reads it is dead-lettered with the error text.
\ir lib.sql

CREATE TRIGGER explode BEFORE INSERT ON centralcloud.routing_records
    FOR EACH ROW EXECUTE FUNCTION test.explode();

INSERT INTO test.published (msg) SELECT test.events(40);
INSERT INTO test.published (msg, expected) VALUES (test.event('poison', 'gpt-4o', 'simple', 'success', 10), 'processing_error');
INSERT INTO test.published (msg) SELECT test.events(40, 100);
INSERT INTO test.published (msg, expected) VALUES ('{"not": "an event"}', 'missing_field');
SELECT test.publish();

SET centralcloud.max_retries = 3;
-- Read 1: the batch fails, then each message alone: 80 valid + 1 invalid done, poison stays.
CREATE TEMP TABLE r1 AS SELECT * FROM centralcloud.ingest_routing_events(batch_size => 1000);
SELECT test.eq((SELECT (read, ingested, rejected, retry_later, dead_lettered_on_error) FROM r1)::text, '(82,80,1,1,0)', 'read 1');
SELECT test.eq(test.queue_length(), 1::bigint, 'poison still queued');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records), 80::bigint, 'queue behind the poison moved');

-- Make it visible again at once (pgmq's API) instead of waiting out the visibility timeout.
SELECT count(*) FROM pgmq.q_model_routing_decisions q, LATERAL pgmq.set_vt('model_routing_decisions', q.msg_id, 0) s;
SELECT test.eq((SELECT (read, retry_later) FROM centralcloud.ingest_routing_events())::text, '(1,1)', 'read 2: retried');
SELECT count(*) FROM pgmq.q_model_routing_decisions q, LATERAL pgmq.set_vt('model_routing_decisions', q.msg_id, 0) s;
SELECT test.eq((SELECT (read, dead_lettered_on_error) FROM centralcloud.ingest_routing_events())::text, '(1,1)', 'read 3: dead-lettered');

SELECT test.eq(test.queue_length(), 0::bigint, 'queue empty');
SELECT test.eq(
    (SELECT reason_code || ': ' || reason FROM centralcloud.routing_events_rejected WHERE message->>'instance_id' = 'poison'),
    'processing_error: processing failed on read 3 (max_retries 3): simulated failure for '
        || (SELECT msg_id FROM centralcloud.routing_events_rejected WHERE message->>'instance_id' = 'poison'),
    'dead letter carries the error text');
SELECT test.empty($$
    (SELECT msg, expected FROM test.published WHERE expected IS NOT NULL
     EXCEPT ALL SELECT message, reason_code FROM centralcloud.routing_events_rejected)
    UNION ALL
    (SELECT message, reason_code FROM centralcloud.routing_events_rejected
     EXCEPT ALL SELECT msg, expected FROM test.published WHERE expected IS NOT NULL)
$$, 'dead letters');
-- The poison's partial work was rolled back: metrics count exactly the 80 valid events.
SELECT test.empty('SELECT * FROM test.metrics_diff', 'metrics match the valid events');

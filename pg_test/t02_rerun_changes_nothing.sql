-- Re-running ingest on an empty queue changes nothing.
\ir lib.sql

INSERT INTO test.published (msg) SELECT test.events(500);
INSERT INTO test.published (msg, expected) VALUES ('{"bad": true}', 'missing_field');
SELECT test.publish();
SELECT * FROM centralcloud.ingest_routing_events();

CREATE TEMP TABLE before AS
SELECT (SELECT md5(string_agg(t::text, ',' ORDER BY t.id)) FROM centralcloud.model_routing_metrics t) AS metrics,
       (SELECT md5(string_agg(t::text, ',' ORDER BY t.id)) FROM centralcloud.routing_records t) AS records,
       (SELECT md5(string_agg(t::text, ',' ORDER BY t.id)) FROM centralcloud.routing_events_rejected t) AS rejected;

CREATE TEMP TABLE again AS SELECT * FROM centralcloud.ingest_routing_events();
SELECT test.eq((SELECT (read, ingested, rejected, batches) FROM again)::text, '(0,0,0,0)', 'nothing read');
SELECT test.eq(
    (SELECT (metrics, records, rejected) FROM before)::text,
    (SELECT (
        (SELECT md5(string_agg(t::text, ',' ORDER BY t.id)) FROM centralcloud.model_routing_metrics t),
        (SELECT md5(string_agg(t::text, ',' ORDER BY t.id)) FROM centralcloud.routing_records t),
        (SELECT md5(string_agg(t::text, ',' ORDER BY t.id)) FROM centralcloud.routing_events_rejected t)))::text,
    'tables unchanged');
SELECT test.empty('SELECT * FROM test.metrics_diff', 'metrics still match');

-- max_batches bounds one call; the rest stays queued for the next.
INSERT INTO test.published (msg) SELECT test.events(250, 1000);
SELECT test.publish();
SELECT test.eq((SELECT (read, batches) FROM centralcloud.ingest_routing_events(100, 2))::text, '(200,2)', 'max_batches');
SELECT test.eq(test.queue_length(), 50::bigint, 'rest still queued');
SELECT test.eq((SELECT read FROM centralcloud.ingest_routing_events(100)), 50::bigint, 'rest drained');
SELECT test.empty('SELECT * FROM test.metrics_diff', 'metrics match after partial drains');

-- N valid + M malformed events through the real queue: after one ingest the queue is empty,
-- routing_records holds exactly the valid ones, dead letters exactly the invalid ones with the
-- right reasons, and the metrics equal counts computed independently from what was published.
\ir lib.sql

INSERT INTO test.published (msg) SELECT test.events(3000);

-- Malformed events, each with the reason code ingest must give it.
WITH base AS (SELECT test.event('singularity-bad', 'gpt-4o', 'simple', 'success', 100) AS e)
INSERT INTO test.published (msg, expected)
SELECT m, code FROM base, LATERAL (VALUES
    ('[1, 2, 3]'::jsonb, 'not_an_object'),
    ('"just a string"', 'not_an_object'),
    ('42', 'not_an_object'),
    ('null', 'not_an_object'),
    (e - 'routing_decision', 'missing_field'),
    (e #- '{routing_decision,selected_model}', 'missing_field'),
    (e - 'timestamp', 'missing_field'),
    (jsonb_set(e, '{routing_decision}', '"complex"'), 'not_an_object'),
    (jsonb_set(e, '{instance_id}', '42'), 'wrong_type'),
    (jsonb_set(e, '{routing_decision,complexity_score}', '7.5'), 'out_of_range'),
    (jsonb_set(e, '{routing_decision,complexity_score}', '-1'), 'out_of_range'),
    (jsonb_set(e, '{routing_decision,complexity_score}', '"NaN"'), 'wrong_type'),
    (jsonb_set(e, '{routing_decision,complexity_score}', '"Infinity"'), 'wrong_type'),
    (jsonb_set(e, '{routing_decision,complexity_score}', '"4.5"'), 'wrong_type'),
    (jsonb_set(e, '{routing_decision,response_time_ms}', '-5'), 'out_of_range'),
    (jsonb_set(e, '{routing_decision,response_time_ms}', '99999999999'), 'out_of_range'),
    (jsonb_set(e, '{routing_decision,response_time_ms}', '-0.4'), 'out_of_range'),
    (jsonb_set(e, '{routing_decision,response_time_ms}', '"fast"'), 'wrong_type'),
    (jsonb_set(e, '{routing_decision,selected_model}', to_jsonb(repeat('x', 1048576))), 'too_long'),
    (jsonb_set(e, '{instance_id}', to_jsonb(repeat('i', 1048576))), 'too_long'),
    (jsonb_set(e, '{routing_decision,selected_model}', '""'), 'empty_string'),
    (jsonb_set(e, '{routing_decision,complexity}', '"extreme"'), 'not_allowed'),
    (jsonb_set(e, '{routing_decision,outcome}', '"timeout"'), 'not_allowed'),
    (jsonb_set(e, '{routing_decision,prefer}', '"quality"'), 'not_allowed'),
    (jsonb_set(e, '{routing_decision,capabilities_required}', '"vision"'), 'wrong_type'),
    (jsonb_set(e, '{routing_decision,capabilities_required}', '[1]'), 'wrong_type'),
    (jsonb_set(e, '{timestamp}', '"yesterday"'), 'bad_timestamp'),
    (jsonb_set(e, '{timestamp}', '"2025-10-27T06:55"'), 'bad_timestamp'),
    (jsonb_set(e, '{timestamp}', '1761548100'), 'wrong_type'),
    (jsonb_set(e, '{routing_decision,complexity_score}', '1e400'), 'unparseable'),
    ((repeat('[', 200) || repeat(']', 200))::jsonb, 'unparseable')
) AS bad(m, code);
-- A NULL message body (pgmq accepts one).
INSERT INTO test.published (msg, expected) VALUES (NULL, 'null_message');

-- Valid events with extra, unknown fields are accepted unchanged.
INSERT INTO test.published (msg)
SELECT jsonb_set(test.event('singularity-9', 'gpt-4o', 'medium', 'success', 321), '{routing_decision,future_field}', '{"a": 1}')
       || '{"schema_version": 2}';

-- Valid events with capabilities that need quoting in a text[], a preference and a request.
INSERT INTO test.published (msg)
SELECT jsonb_set(jsonb_set(jsonb_set(test.event('singularity-9', 'gpt-4o', 'complex', 'success', 50),
                                     '{routing_decision,capabilities_required}', c),
                           '{routing_decision,prefer}', '"speed"'),
                 '{routing_decision,user_model_request}', '"gpt-4o, \"now\" {please}"')
  FROM (VALUES ('["vision", "a\"b", "c\\d", "{x,y}", "NULL", " spaced ", "é"]'::jsonb), ('[]'), ('null')) AS v(c);

SELECT test.eq(test.publish(), (SELECT count(*) FROM test.published), 'published');

CREATE TEMP TABLE result AS SELECT * FROM centralcloud.ingest_routing_events(batch_size => 500);
SELECT * FROM result;

SELECT test.eq((SELECT read FROM result), (SELECT count(*) FROM test.published), 'read');
SELECT test.eq((SELECT ingested FROM result), (SELECT count(*) FROM test.published WHERE expected IS NULL), 'ingested');
SELECT test.eq((SELECT rejected FROM result), (SELECT count(*) FROM test.published WHERE expected IS NOT NULL), 'rejected');
SELECT test.eq((SELECT duplicates + retry_later + dead_lettered_on_error FROM result), 0::bigint, 'no duplicates or failures');
SELECT test.eq((SELECT batches FROM result), 7, 'batches of 500');
SELECT test.eq(test.queue_length(), 0::bigint, 'queue empty');

-- The audit trail holds exactly the valid events (as a multiset, compared field by field).
SELECT test.empty($$
    (SELECT (msg->>'timestamp')::timestamptz, msg->>'instance_id',
            msg #>> '{routing_decision,complexity}', msg #>> '{routing_decision,selected_model}',
            msg #>> '{routing_decision,selected_provider}', (msg #>> '{routing_decision,complexity_score}')::float8,
            msg #>> '{routing_decision,outcome}', (msg #>> '{routing_decision,response_time_ms}')::int,
            CASE WHEN jsonb_typeof(msg #> '{routing_decision,capabilities_required}') = 'array'
                 THEN ARRAY(SELECT jsonb_array_elements_text(msg #> '{routing_decision,capabilities_required}'))
                 ELSE '{}' END,
            msg #>> '{routing_decision,prefer}', msg #>> '{routing_decision,user_model_request}'
       FROM test.published WHERE expected IS NULL
     EXCEPT ALL
     SELECT "timestamp", instance_id, complexity, model, provider, score, outcome, response_time_ms,
            capabilities_required, preference, user_model_request
       FROM centralcloud.routing_records)
    UNION ALL
    (SELECT "timestamp", instance_id, complexity, model, provider, score, outcome, response_time_ms,
            capabilities_required, preference, user_model_request
       FROM centralcloud.routing_records
     EXCEPT ALL
     SELECT (msg->>'timestamp')::timestamptz, msg->>'instance_id',
            msg #>> '{routing_decision,complexity}', msg #>> '{routing_decision,selected_model}',
            msg #>> '{routing_decision,selected_provider}', (msg #>> '{routing_decision,complexity_score}')::float8,
            msg #>> '{routing_decision,outcome}', (msg #>> '{routing_decision,response_time_ms}')::int,
            CASE WHEN jsonb_typeof(msg #> '{routing_decision,capabilities_required}') = 'array'
                 THEN ARRAY(SELECT jsonb_array_elements_text(msg #> '{routing_decision,capabilities_required}'))
                 ELSE '{}' END,
            msg #>> '{routing_decision,prefer}', msg #>> '{routing_decision,user_model_request}'
       FROM test.published WHERE expected IS NULL)
$$, 'routing_records = valid published events');
SELECT test.eq((SELECT count(DISTINCT msg_id) FROM centralcloud.routing_records), (SELECT count(*) FROM centralcloud.routing_records), 'msg_ids unique');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records WHERE received_at IS NULL), 0::bigint, 'received_at set');

-- Dead letters: exactly the invalid events (by the hash of their text: the huge ones are kept
-- as a prefix), each with the expected reason code.
SELECT test.empty($$
    (SELECT sha256(convert_to(msg::text, 'UTF8')), expected FROM test.published WHERE expected IS NOT NULL
     EXCEPT ALL SELECT message_sha256, reason_code FROM centralcloud.routing_events_rejected)
    UNION ALL
    (SELECT message_sha256, reason_code FROM centralcloud.routing_events_rejected
     EXCEPT ALL SELECT sha256(convert_to(msg::text, 'UTF8')), expected FROM test.published WHERE expected IS NOT NULL)
$$, 'dead letters = invalid published events with their reason codes');
-- Kept whole up to centralcloud.dead_letter_max_bytes, else as a prefix with length and hash.
SELECT test.empty($$
    SELECT x.msg_id, x.message_bytes FROM centralcloud.routing_events_rejected x
      JOIN test.published p ON p.msg_id = x.msg_id
     WHERE x.message_bytes IS DISTINCT FROM octet_length(p.msg::text)
        OR (x.message_bytes <= 16384) <> (x.message IS NOT DISTINCT FROM p.msg AND x.message_prefix IS NULL)
        OR (x.message_bytes > 16384) <> (x.message IS NULL AND x.message_prefix = left(p.msg::text, 16384))
$$, 'dead letters keep small messages whole and a prefix of large ones');
SELECT test.eq((SELECT count(*) > 0 FROM centralcloud.routing_events_rejected WHERE message_prefix IS NOT NULL), true,
               'some dead letters were large enough to be cut');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_events_rejected WHERE length(reason) > 300), 0::bigint, 'reasons stay short');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_events_rejected WHERE read_ct <> 0), 0::bigint, 'rejected on first delivery: never read by pgmq.read');
SELECT test.eq(
    (SELECT reason FROM centralcloud.routing_events_rejected WHERE message @> '{"routing_decision": {"complexity_score": 7.5}}'),
    'routing_decision.complexity_score: must be a number in [0, 5], got 7.5', 'precise reason for score 7.5');
SELECT test.eq(
    (SELECT x.reason FROM centralcloud.routing_events_rejected x JOIN test.published p ON p.msg_id = x.msg_id
      WHERE x.reason_code = 'too_long' AND length(p.msg->>'instance_id') > 1000),
    'instance_id: 1048576 characters, at most 256 allowed', 'precise reason for a 1 MB string');

-- Metrics equal what SQL computes from the published events.
SELECT test.empty('SELECT * FROM test.metrics_diff', 'metrics match published events');
-- The invariant checker agrees: each published msg_id in one place, counters = a recount.
SELECT test.empty($$SELECT * FROM centralcloud.check_invariants('test.published')$$, 'checker: exact');
-- ... and it notices a lost message and a message nobody published.
BEGIN;
DELETE FROM centralcloud.routing_records WHERE msg_id = (SELECT min(msg_id) FROM test.published WHERE expected IS NULL);
INSERT INTO centralcloud.routing_events_rejected (msg_id, reason_code, reason, read_ct) VALUES (987654, 'x', 'planted', 0);
SELECT test.eq((SELECT array_agg(problem ORDER BY problem) FROM centralcloud.check_invariants('test.published')),
               ARRAY['metrics', 'missing', 'not published', 'rollup'], 'checker: finds the difference');
ROLLBACK;
SELECT test.eq((SELECT count(*) FROM centralcloud.model_routing_metrics), 12::bigint, '4 models x 3 complexities');
SELECT test.eq(
    (SELECT count(*) FROM centralcloud.model_routing_metrics
      WHERE abs(avg_response_time - response_time_sum::float8 / response_time_count) > 1e-9),
    0::bigint, 'avg_response_time = sum / count');

-- p50/p95/p99 from the sketches are within the 1% relative accuracy of the exact values
-- (the value at rank floor(q * (n - 1)), the sketch's rank convention).
SELECT test.empty($$
    WITH exact AS (
        SELECT msg #>> '{routing_decision,selected_model}' AS model_name,
               msg #>> '{routing_decision,complexity}' AS complexity_level,
               array_agg((msg #>> '{routing_decision,response_time_ms}')::int
                         ORDER BY (msg #>> '{routing_decision,response_time_ms}')::int) AS v
          FROM test.published
         WHERE expected IS NULL AND msg #>> '{routing_decision,response_time_ms}' IS NOT NULL
         GROUP BY 1, 2)
    SELECT e.model_name, e.complexity_level, q, v[floor(q * (cardinality(v) - 1))::int + 1] AS exact,
           centralcloud.latency_quantile(m.latency_sketch, q) AS estimate
      FROM exact e
      JOIN centralcloud.model_routing_metrics m USING (model_name, complexity_level)
     CROSS JOIN unnest(ARRAY[0.5, 0.95, 0.99]) AS q
     WHERE abs(centralcloud.latency_quantile(m.latency_sketch, q) - v[floor(q * (cardinality(v) - 1))::int + 1])
           > 0.01 * v[floor(q * (cardinality(v) - 1))::int + 1] + 1e-9
$$, 'sketch quantiles within 1%');
SELECT test.eq(
    (SELECT sum(centralcloud.latency_sketch_count(latency_sketch)) FROM centralcloud.model_routing_metrics),
    (SELECT sum(response_time_count) FROM centralcloud.model_routing_metrics)::numeric, 'sketch counts');
SELECT test.eq((SELECT max(length(latency_sketch)) < 4096 FROM centralcloud.model_routing_metrics), true, 'sketches stay small');

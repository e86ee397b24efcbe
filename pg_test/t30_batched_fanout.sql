-- Batched fan-out (issue 16): one learning run that changes 2,500 cells (three chunks of
-- learning, one pgmq.send_batch_topic each) with four subscribed instances, then an operator's
-- change. Every instance's queue, and the plain model_score_updates queue, holds every update
-- exactly once, in score_history order, each message exactly the seed's event built from its
-- history row (same JSON in every queue); published_to counts the queues; a queue unsubscribed
-- before the run gets nothing.
\ir lib.sql

-- Subscribed while the catalog is empty: their queues start empty (no snapshot rows).
CREATE TEMP TABLE subs AS
SELECT id, centralcloud.subscribe_instance(id) AS queue
  FROM unnest(ARRAY['router-1', 'Router-2', 'router;3', 'router-4', 'gone']) AS id;
SELECT centralcloud.unsubscribe_instance('gone', drop_queue => false);
SELECT queue AS gone_queue FROM subs WHERE id = 'gone' \gset
DELETE FROM subs WHERE id = 'gone';
INSERT INTO subs VALUES ('(plain)', 'model_score_updates');

-- 2,500 cells of evidence (two reporting routers, two hours, 90-99% success), entered at 2.5.
CREATE TEMP TABLE sketches AS
SELECT s, centralcloud.latency_sketch_agg(300 + s * 10 + v % 50) AS sketch
  FROM generate_series(0, 49) s, generate_series(1, 100) v GROUP BY s;
INSERT INTO centralcloud.routing_rollup_hourly
       (hour, instance_id, model, complexity, provider, usage_count, success_count, failure_count,
        response_time_count, response_time_sum, response_time_min, response_time_max, latency_sketch)
SELECT date_trunc('hour', now()) - make_interval(hours => h), 'reporter-' || i, 'model-' || (c / 3),
       (ARRAY['simple', 'medium', 'complex'])[1 + c % 3], 'provider', 100, 90 + c % 10, 10 - c % 10,
       100, 100 * (300 + (c % 50) * 10 + 25), 300 + (c % 50) * 10, 300 + (c % 50) * 10 + 49, k.sketch
  FROM generate_series(0, 2499) c, generate_series(0, 1) h, generate_series(1, 2) i, sketches k
 WHERE k.s = c % 50;
SELECT cells_added FROM centralcloud.refresh_metrics_from_rollup();

SELECT test.eq((SELECT count(*) FILTER (WHERE changed) FROM centralcloud.learn_complexity_scores()),
               2500::bigint, 'every cell changed');
SELECT test.eq(centralcloud.set_complexity_score('model-0', 'simple', 0.5, 'operator after the run'), true,
               'an operator change');

SELECT test.eq((SELECT count(*) FROM centralcloud.score_history), 2501::bigint, 'history rows');
SELECT test.eq((SELECT array_agg(DISTINCT published_to) FROM centralcloud.score_history), ARRAY[5],
               'four instances + the plain queue, for every change');

-- Every message of every queue, in msg_id order.
CREATE TEMP TABLE received AS
SELECT s.queue, row_number() OVER (PARTITION BY s.queue ORDER BY r.msg_id) AS n, r.msg_id, r.message
  FROM subs s, LATERAL pgmq.read(s.queue, 600, 10000) r;
-- What each should be: the seed's event of the history row, the timestamp aside.
CREATE TEMP TABLE expected AS
SELECT row_number() OVER (ORDER BY id) AS n,
       jsonb_build_object('event_type', 'model_score_update', 'model', model_name,
                          'complexity', complexity_level, 'old_score', old_score,
                          'new_score', new_score, 'reason', reason) AS event
  FROM centralcloud.score_history;

SELECT test.eq((SELECT count(*) FROM received), 5 * 2501::bigint, '5 queues x 2,501 updates');
SELECT test.eq((SELECT sum(published_to) FROM centralcloud.score_history), 5 * 2501::bigint,
               'published_to adds up to the messages queued');
SELECT test.empty($$
    SELECT queue, count(*) FROM received GROUP BY queue HAVING count(*) <> 2501
$$, 'each queue got each update once');
SELECT test.empty($$
    SELECT r.queue, r.n, r.message, e.event
      FROM received r FULL JOIN expected e USING (n)
     WHERE r.message - 'timestamp' IS DISTINCT FROM e.event
$$, 'in history order, each the seed''s event of its history row');
SELECT test.empty($$
    SELECT queue, n, message ->> 'timestamp' FROM received
     WHERE message ->> 'timestamp' !~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$'
$$, 'RFC 3339 timestamps with microseconds');
SELECT test.empty($$
    SELECT n, count(DISTINCT message) FROM received GROUP BY n HAVING count(DISTINCT message) <> 1
$$, 'every instance got the same message, timestamp included');
-- Scores read back exactly (the events are serialised by serde, not by jsonb's float output).
SELECT test.empty($$
    SELECT r.queue, r.n FROM received r
      JOIN (SELECT row_number() OVER (ORDER BY id) AS n, old_score, new_score FROM centralcloud.score_history) h USING (n)
     WHERE (r.message ->> 'new_score')::float8 <> h.new_score
        OR (r.message ->> 'old_score')::float8 IS DISTINCT FROM h.old_score
$$, 'exact scores');
SELECT test.eq((SELECT queue_length FROM pgmq.metrics(:'gone_queue')), 0::bigint, 'unsubscribed queue got nothing');

-- Helpers of pg_test/stress.sh (loaded after lib.sql): publishers, ingest / drain / learn loops
-- that commit as they go, and the checks of learning and of generated malformed events.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE TABLE test.loop_calls (session text, calls bigint);
-- Every msg_id the publishers got back, written in the same transaction as the send: what
-- check_invariants() must account for.
CREATE TABLE test.sent (msg_id bigint PRIMARY KEY);

-- n events (every 100th malformed), sent with pgmq.send_batch 20,000 at a time, each chunk
-- committed: the worker drains while the rest is sent.
CREATE PROCEDURE test.publish_events(n int, seed int)
LANGUAGE plpgsql AS $$
DECLARE
    sent int := 0;
    chunk int;
BEGIN
    WHILE sent < n LOOP
        chunk := least(20000, n - sent);
        INSERT INTO test.sent SELECT * FROM pgmq.send_batch('model_routing_decisions', ARRAY(
            SELECT CASE WHEN i % 100 = 0 THEN jsonb_build_object('instance_id', 'broken-' || i)
                        ELSE e END
              FROM test.events(chunk, seed + sent) WITH ORDINALITY AS x(e, i)));
        sent := sent + chunk;
        COMMIT;
    END LOOP;
END $$;

-- Publishes batches of 200 (2% malformed) until `seconds` have passed.
CREATE PROCEDURE test.publish_for(seconds int, publisher int)
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => seconds);
    round int := 0;
BEGIN
    WHILE clock_timestamp() < deadline LOOP
        INSERT INTO test.sent SELECT * FROM pgmq.send_batch('model_routing_decisions', ARRAY(
            SELECT CASE WHEN i % 50 = 0 THEN '{"routing_decision": []}'::jsonb ELSE e END
              FROM test.events(200, publisher * 400000000 + round * 200) WITH ORDINALITY AS x(e, i)));
        round := round + 1;
        COMMIT;
    END LOOP;
END $$;

-- Calls ingest_routing_events() one small batch per transaction until `seconds` have passed.
CREATE PROCEDURE test.ingest_for(seconds int)
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => seconds);
    calls bigint := 0;
BEGIN
    WHILE clock_timestamp() < deadline LOOP
        PERFORM * FROM centralcloud.ingest_routing_events(100, 1);
        calls := calls + 1;
        COMMIT;
    END LOOP;
    INSERT INTO test.loop_calls VALUES ('ingest', calls);
END $$;

-- The pg_cron ingest job's entry point, called back to back until `seconds` have passed.
CREATE PROCEDURE test.drain_for(seconds int)
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => seconds);
    calls bigint := 0;
BEGIN
    WHILE clock_timestamp() < deadline LOOP
        CALL centralcloud.drain_routing_events(2);
        calls := calls + 1;
    END LOOP;
    INSERT INTO test.loop_calls VALUES ('drain', calls);
END $$;

-- Learns every 50 ms until `seconds` have passed (the worker learns every second too).
CREATE PROCEDURE test.learn_for(seconds int)
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => seconds);
BEGIN
    WHILE clock_timestamp() < deadline LOOP
        PERFORM count(*) FROM centralcloud.learn_complexity_scores();
        COMMIT;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;

-- Learning under concurrency: every score change is published exactly once to the plain
-- model_score_updates queue (which nobody reads here), in the order of score_history; each
-- learned change used at least min_samples new outcomes, and no cell learned from more
-- outcomes in total than it has (seed: no evidence used twice; bayes: no assessment of more
-- than there is).
CREATE VIEW test.learning_problems AS
WITH changes AS (
    SELECT row_number() OVER (ORDER BY id) AS n, model_name, complexity_level, new_score
      FROM centralcloud.score_history),
published AS (
    SELECT row_number() OVER (ORDER BY msg_id) AS n, message->>'model' AS model_name,
           message->>'complexity' AS complexity_level, (message->>'new_score')::float8 AS new_score
      FROM pgmq.q_model_score_updates)
SELECT 'change not published once, in order' AS problem, c.n, p.n AS published_n,
       c.model_name || '/' || c.complexity_level AS cell
  FROM changes c FULL JOIN published p ON p.n = c.n
 WHERE (c.model_name, c.complexity_level, c.new_score) IS DISTINCT FROM (p.model_name, p.complexity_level, p.new_score)
UNION ALL
SELECT 'learned from too few new samples', h.id, h.samples, h.model_name || '/' || h.complexity_level
  FROM centralcloud.score_history h
 WHERE h.policy <> 'operator' AND h.samples < current_setting('centralcloud.min_samples_for_learning')::int
UNION ALL
SELECT 'evidence used twice', NULL, sum(h.samples)::bigint, h.model_name || '/' || h.complexity_level
  FROM centralcloud.score_history h
  JOIN centralcloud.model_routing_metrics m
    ON m.model_name = h.model_name AND m.complexity_level = h.complexity_level
 WHERE h.policy = 'seed'
 GROUP BY h.model_name, h.complexity_level, m.success_count, m.failure_count
HAVING sum(h.samples) > m.success_count + m.failure_count
UNION ALL
-- bayes assesses all of a cell's evidence in its regime at each run: each change's samples are
-- a total, not what is new since the last change, so only each one is bounded.
SELECT 'assessed more evidence than there is', NULL, max(h.samples)::bigint, h.model_name || '/' || h.complexity_level
  FROM centralcloud.score_history h
  JOIN centralcloud.model_routing_metrics m
    ON m.model_name = h.model_name AND m.complexity_level = h.complexity_level
 WHERE h.policy = 'bayes'
 GROUP BY h.model_name, h.complexity_level, m.success_count, m.failure_count
HAVING max(h.samples) > m.success_count + m.failure_count;

-- Generated events (pg_test/malformed_events.py, one JSON line each), sent in chunks,
-- remembering each one's msg_id.
CREATE TABLE test.generated (k bigserial PRIMARY KEY, line jsonb);
CREATE TABLE test.generated_sent (k bigint PRIMARY KEY, msg_id bigint NOT NULL);
CREATE PROCEDURE test.send_generated(chunk int)
LANGUAGE plpgsql AS $$
DECLARE
    first_k bigint := 0;
    last_k bigint;
BEGIN
    SELECT max(k) INTO last_k FROM test.generated;
    WHILE first_k < last_k LOOP
        INSERT INTO test.generated_sent (k, msg_id)
        SELECT g.k, s.msg_id
          FROM (SELECT k, row_number() OVER (ORDER BY k) AS n FROM test.generated
                 WHERE k > first_k AND k <= first_k + chunk) AS g
          JOIN (SELECT msg_id, row_number() OVER () AS n
                  FROM pgmq.send_batch('model_routing_decisions', ARRAY(
                       SELECT line->'message' FROM test.generated
                        WHERE k > first_k AND k <= first_k + chunk ORDER BY k)) AS msg_id) AS s
            ON s.n = g.n;
        first_k := first_k + chunk;
        COMMIT;
    END LOOP;
END $$;

CREATE VIEW test.generated_verdicts AS
SELECT g.k, g.line->>'expect' AS expect, g.line->>'code' AS code,
       CASE WHEN r.msg_id IS NOT NULL THEN 'recorded' ELSE x.reason_code END AS got,
       x.reason,
       CASE g.line->>'expect'
           WHEN 'valid' THEN r.msg_id IS NOT NULL
           WHEN 'invalid' THEN r.msg_id IS NULL AND x.reason_code IS NOT NULL
                               AND x.reason_code = coalesce(g.line->>'code', x.reason_code)
           ELSE r.msg_id IS NOT NULL OR x.reason_code IS NOT NULL
       END AS as_expected
  FROM test.generated g
  JOIN test.generated_sent s USING (k)
  LEFT JOIN centralcloud.routing_records r ON r.msg_id = s.msg_id
  LEFT JOIN centralcloud.routing_events_rejected x ON x.msg_id = s.msg_id;

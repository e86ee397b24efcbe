-- Test helpers, included by every pg_test file with \ir lib.sql.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS test;

-- Fails the test with both values when they differ.
CREATE OR REPLACE FUNCTION test.eq(actual anyelement, expected anyelement, label text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF actual IS DISTINCT FROM expected THEN
        RAISE EXCEPTION 'FAILED %: expected %, got %', label, expected, actual;
    END IF;
END $$;

-- Expects `statement` to fail with SQLSTATE `code`.
CREATE OR REPLACE FUNCTION test.fails_with(statement text, code text, label text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RAISE EXCEPTION 'FAILED %: allowed: %', label, statement;
EXCEPTION WHEN others THEN
    IF SQLSTATE <> code THEN
        RAISE EXCEPTION 'FAILED %: expected SQLSTATE %, got % (%)', label, code, SQLSTATE, SQLERRM;
    END IF;
END $$;

-- Fails the test when a query returns rows; shows the first few.
CREATE OR REPLACE FUNCTION test.empty(query text, label text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    sample text;
BEGIN
    EXECUTE format('SELECT string_agg(t::text, E''\n'') FROM (SELECT * FROM (%s) q LIMIT 5) t', query) INTO sample;
    IF sample IS NOT NULL THEN
        RAISE EXCEPTION 'FAILED %: unexpected rows:%', label, E'\n' || sample;
    END IF;
END $$;

-- A valid seed-format event; tests mutate it with jsonb_set.
CREATE OR REPLACE FUNCTION test.event(
    instance text, model text, complexity text, outcome text,
    response_time_ms int DEFAULT NULL, score numeric DEFAULT 2.5,
    ts timestamptz DEFAULT now())
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object(
        'timestamp', to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'instance_id', instance,
        'routing_decision', jsonb_build_object(
            'complexity', complexity,
            'selected_model', model,
            'selected_provider', 'github_models',
            'complexity_score', score,
            'outcome', outcome,
            'response_time_ms', response_time_ms,
            'capabilities_required', '[]'::jsonb,
            'prefer', NULL,
            'user_model_request', NULL))
$$;

-- n realistic events from 3 instances, 4 models, 3 complexities, routed/success/failure.
CREATE OR REPLACE FUNCTION test.events(n int, seed int DEFAULT 0)
RETURNS SETOF jsonb LANGUAGE sql AS $$
    SELECT test.event(
        'singularity-' || (i % 3),
        (ARRAY['gpt-4o', 'claude-3.5-sonnet', 'llama-3-70b', 'mistral-large'])[1 + (i / 3) % 4],
        (ARRAY['simple', 'medium', 'complex'])[1 + i % 3],
        (ARRAY['routed', 'success', 'routed', 'failure', 'success'])[1 + (i / 12) % 5],
        CASE WHEN (i / 12) % 5 IN (0, 2) THEN NULL ELSE 40 + ((i::bigint * 7919 + seed) % 5000)::int END,
        round(((i % 51) / 10.0)::numeric, 1),
        now() - make_interval(mins => i % 600))
    FROM generate_series(seed + 1, seed + n) AS i
$$;

-- What is published, kept so expectations are computed independently of ingest.
CREATE TABLE IF NOT EXISTS test.published (
    k        bigserial PRIMARY KEY,
    msg      jsonb,
    expected text,   -- NULL: valid; otherwise the reason_code ingest must give it
    sent     boolean NOT NULL DEFAULT false,
    msg_id   bigint  -- pgmq's msg_id, once sent
);

-- Sends every not yet sent row of test.published with one pgmq.send_batch, in k order, and
-- remembers each one's msg_id (send_batch returns them in the order of its array).
CREATE OR REPLACE FUNCTION test.publish()
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    sent_count bigint;
BEGIN
    WITH batch AS (SELECT k, row_number() OVER (ORDER BY k) AS n FROM test.published WHERE NOT sent),
    ids AS (SELECT msg_id, row_number() OVER () AS n
              FROM pgmq.send_batch('model_routing_decisions',
                                   ARRAY(SELECT msg FROM test.published WHERE NOT sent ORDER BY k)) AS msg_id)
    UPDATE test.published p SET sent = true, msg_id = ids.msg_id
      FROM batch JOIN ids USING (n)
     WHERE p.k = batch.k;
    GET DIAGNOSTICS sent_count = ROW_COUNT;
    RETURN sent_count;
END $$;

-- Expected metrics, straight from the valid published events.
CREATE OR REPLACE VIEW test.expected_metrics AS
SELECT e.msg #>> '{routing_decision,selected_model}' AS model_name,
       e.msg #>> '{routing_decision,complexity}' AS complexity_level,
       count(*) FILTER (WHERE e.msg #>> '{routing_decision,outcome}' = 'routed') AS usage_count,
       count(*) FILTER (WHERE e.msg #>> '{routing_decision,outcome}' = 'success') AS success_count,
       count(*) FILTER (WHERE e.msg #>> '{routing_decision,outcome}' = 'failure') AS failure_count,
       count((e.msg #>> '{routing_decision,response_time_ms}')::int) AS response_time_count,
       COALESCE(sum((e.msg #>> '{routing_decision,response_time_ms}')::int), 0) AS response_time_sum,
       min((e.msg #>> '{routing_decision,response_time_ms}')::int) AS response_time_min,
       max((e.msg #>> '{routing_decision,response_time_ms}')::int) AS response_time_max
  FROM test.published e
 WHERE e.expected IS NULL
 GROUP BY 1, 2;

CREATE OR REPLACE VIEW test.metrics_diff AS
(SELECT 'expected' AS side, * FROM test.expected_metrics
 EXCEPT
 SELECT 'expected', model_name, complexity_level, usage_count, success_count, failure_count,
        response_time_count, response_time_sum, response_time_min, response_time_max
   FROM centralcloud.model_routing_metrics)
UNION ALL
(SELECT 'actual', model_name, complexity_level, usage_count, success_count, failure_count,
        response_time_count, response_time_sum, response_time_min, response_time_max
   FROM centralcloud.model_routing_metrics
 EXCEPT
 SELECT 'actual', * FROM test.expected_metrics);

-- A poison: as a BEFORE INSERT trigger on routing_records, processing fails, unexpectedly, for
-- events of instance 'poison'.
CREATE OR REPLACE FUNCTION test.explode() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.instance_id = 'poison' THEN
        RAISE EXCEPTION 'simulated failure for %', NEW.msg_id;
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION test.queue_length() RETURNS bigint LANGUAGE sql AS $$
    SELECT queue_length FROM pgmq.metrics('model_routing_decisions')
$$;

-- Waits until a boolean query is true (new snapshot each try, and pg_stat_activity re-read),
-- failing after `timeout`. Returns how long it took, for the log.
CREATE OR REPLACE FUNCTION test.wait_until(condition text, timeout interval, label text)
RETURNS interval LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
    ok boolean;
BEGIN
    LOOP
        PERFORM pg_stat_clear_snapshot();
        EXECUTE condition INTO ok;
        EXIT WHEN ok;
        IF clock_timestamp() - started > timeout THEN
            RAISE EXCEPTION 'FAILED %: not true after %: %', label, timeout, condition;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RAISE NOTICE '% after %', label, clock_timestamp() - started;
    RETURN clock_timestamp() - started;
END $$;

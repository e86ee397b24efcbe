-- Health of models and providers: an outage of one model, of a whole provider, recovery, a
-- flapping model (one state, no flapping), expiry without traffic, thresholds relative to each
-- model's long-run rate; every change published once to every subscribed instance, in order,
-- in the transaction that detected it. Time is simulated by moving every health timestamp
-- back (test.health_age): deterministic, no sleeps.
\ir lib.sql

SELECT centralcloud.subscribe_instance('eu-1') AS eu_queue \gset
SELECT centralcloud.subscribe_instance('us-1') AS us_queue \gset

-- `successes` then `failures` outcomes of one (model, provider), timestamped `ts`.
CREATE FUNCTION test.outcomes(model text, provider text, successes int, failures int,
                              ts timestamptz DEFAULT now())
RETURNS void LANGUAGE sql AS $$
    INSERT INTO test.published (msg)
    SELECT jsonb_set(test.event('eu-1', model, 'complex',
                                CASE WHEN i <= successes THEN 'success' ELSE 'failure' END, 200, 2.5, ts),
                     '{routing_decision,selected_provider}', to_jsonb(provider))
      FROM generate_series(1, successes + failures) AS i
$$;

-- As if `by` had passed: every health time moves back (evidence, states, recoveries).
CREATE FUNCTION test.health_age(by interval) RETURNS void LANGUAGE sql AS $$
    WITH moved AS (DELETE FROM centralcloud.health_outcomes RETURNING *)
    INSERT INTO centralcloud.health_outcomes SELECT second - by, provider, model, routed_count, success_count, failure_count
      FROM moved;
    UPDATE centralcloud.health_states
       SET since = since - by, evidence_from = evidence_from - by, last_recovered_at = last_recovered_at - by;
$$;

-- One second: publish what is pending, ingest it (health is evaluated at the end), move on.
CREATE FUNCTION test.tick(seconds int DEFAULT 1) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM test.publish();
    SELECT ingested INTO n FROM centralcloud.ingest_routing_events();
    PERFORM test.health_age(make_interval(secs => seconds));
    RETURN n;
END $$;

-- Normal traffic: 95% success, 20 outcomes a second for each of five models of three providers.
CREATE TABLE test.fleet (model text, provider text);
INSERT INTO test.fleet VALUES ('gpt-4o', 'openai'), ('gpt-4o-mini', 'openai'), ('o1', 'openai'),
                              ('claude', 'anthropic'), ('mistral-large', 'mistral');
CREATE FUNCTION test.normal(except_provider text DEFAULT '') RETURNS void LANGUAGE sql AS $$
    SELECT test.outcomes(model, provider, 19, 1) FROM test.fleet WHERE provider <> except_provider
$$;
SELECT count(*) FROM (SELECT test.normal(), test.tick() FROM generate_series(1, 30)) t;
SELECT test.eq((SELECT count(*) FROM centralcloud.health_history), 0::bigint, '30 s of normal traffic: no change');
SELECT test.eq((SELECT array_agg(DISTINCT state) FROM centralcloud.model_health), ARRAY['healthy'], 'all healthy');
SELECT test.eq((SELECT count(*) FROM centralcloud.model_health WHERE model IS NULL), 3::bigint, 'three providers');

-- 1. One model fails every request: down within the second, its provider not.
SELECT test.normal('openai'), test.outcomes('gpt-4o', 'openai', 0, 20),
       test.outcomes('gpt-4o-mini', 'openai', 19, 1), test.outcomes('o1', 'openai', 19, 1);
SELECT test.tick();
SELECT test.eq((SELECT state FROM centralcloud.model_health WHERE model = 'gpt-4o'), 'down', 'outage: down at once');
SELECT test.eq((SELECT reason LIKE 'down: 0.0% success in the last 1 s (0 of 20 outcomes, after a change at %) <= 20% of its long-run 95.0%%'
                  FROM centralcloud.model_health WHERE model = 'gpt-4o'), true, 'the reason says why');
SELECT test.eq((SELECT state FROM centralcloud.model_health WHERE provider = 'openai' AND model IS NULL), 'healthy',
               'one failing model is not its provider''s outage');

-- 2. Its provider's other models fail with it: the provider is down.
SELECT test.normal('openai'), test.outcomes('gpt-4o', 'openai', 0, 20),
       test.outcomes('gpt-4o-mini', 'openai', 0, 20), test.outcomes('o1', 'openai', 0, 20);
SELECT test.tick();
SELECT test.eq((SELECT array_agg(coalesce(model, '(provider)') || ' ' || state ORDER BY model NULLS FIRST)
                  FROM centralcloud.model_health WHERE provider = 'openai'),
               ARRAY['(provider) down', 'gpt-4o down', 'gpt-4o-mini down', 'o1 down'], 'provider outage');
SELECT test.eq((SELECT reason FROM centralcloud.model_health WHERE provider = 'openai' AND model IS NULL),
               'down: 3 of its 3 models with recent outcomes are down (gpt-4o, gpt-4o-mini, o1)', 'provider reason');

-- 3. Recovery: good outcomes again, for at least centralcloud.health_min_recovery (30 s).
SELECT test.normal();
SELECT test.tick();
SELECT test.eq((SELECT count(*) FROM centralcloud.evaluate_model_health()), 0::bigint, 'not after 1 s');
SELECT test.health_age('30 seconds');
SELECT test.eq((SELECT array_agg(coalesce(model, '(provider)') || ' ' || previous_state || '->' || state ORDER BY model NULLS LAST)
                  FROM centralcloud.evaluate_model_health()),
               ARRAY['gpt-4o down->healthy', 'gpt-4o-mini down->healthy', 'o1 down->healthy', '(provider) down->healthy'],
               'recovered after 30 s of good outcomes, models first, then the provider');
SELECT test.eq((SELECT reason LIKE 'healthy: 95.0% success over the last __ s (19 of 20 outcomes) >= 90% of its long-run %, for at least 30 s'
                  FROM centralcloud.model_health WHERE model = 'o1'), true, 'recovery reason');

-- 4. A flapping model: a second of failures, a second of successes, for 20 s. It goes down
-- once and stays down: no good stretch lasts the 30 s a recovery needs.
SELECT count(*) FROM (SELECT test.normal('mistral'),
                             test.outcomes('mistral-large', 'mistral', CASE WHEN i % 2 = 1 THEN 0 ELSE 20 END,
                                           CASE WHEN i % 2 = 1 THEN 20 ELSE 0 END),
                             test.tick()
                        FROM generate_series(1, 20) AS i) t;
SELECT test.eq((SELECT array_agg(previous_state || '->' || state ORDER BY id) FROM centralcloud.health_history
                 WHERE model = 'mistral-large'), ARRAY['healthy->down'], 'flapping: one change, no flapping');

-- 5. No traffic for a whole window: down expires to degraded (routers may probe it).
SELECT test.health_age('301 seconds');
SELECT test.eq((SELECT array_agg(model || ' ' || previous_state || '->' || state) FROM centralcloud.evaluate_model_health()),
               ARRAY['mistral-large down->degraded'], 'expired');
SELECT test.eq((SELECT reason LIKE 'degraded: down expired: 0 outcomes (< 20) since it began 3__ s ago'
                  FROM centralcloud.model_health WHERE model = 'mistral-large'), true, 'expiry reason');

-- 6. Thresholds are relative to each model's long run (hourly rollup, up to the previous hour).
-- flaky usually succeeds 60%: 60% now is its normal. solid usually succeeds 99%: 70% is
-- degraded. fresh has no history: it is judged against the prior, 95%.
SELECT test.outcomes('flaky', 'cheap', 600, 400, now() - interval '3 hours'),
       test.outcomes('solid', 'cheap', 990, 10, now() - interval '3 hours');
SELECT test.tick(400);
SELECT count(*) FROM (SELECT test.outcomes('flaky', 'cheap', 12, 8), test.outcomes('solid', 'cheap', 14, 6),
                             test.outcomes('fresh', 'cheap', 12, 8), test.tick()
                        FROM generate_series(1, 2)) t;
SELECT test.eq((SELECT array_agg(model || ' ' || state || ' ' || long_run_outcomes ORDER BY model)
                  FROM centralcloud.model_health WHERE provider = 'cheap' AND model IS NOT NULL),
               ARRAY['flaky healthy 1000', 'fresh degraded 0', 'solid degraded 1000'], 'relative thresholds');
SELECT test.eq((SELECT state FROM centralcloud.model_health WHERE provider = 'cheap' AND model IS NULL), 'degraded',
               'two of three degraded: the provider is degraded');

-- Every change went to every subscribed instance exactly once, in the order of health_history,
-- as the documented event; the seed's plain score-update queue got none.
SELECT test.eq((SELECT array_agg(DISTINCT published_to) FROM centralcloud.health_history), ARRAY[2], 'two queues each');
SELECT test.eq((SELECT queue_length FROM pgmq.metrics('model_score_updates')), 0::bigint, 'none in the seed''s queue');
CREATE TEMP TABLE expected AS
SELECT row_number() OVER (ORDER BY id) AS n, * FROM centralcloud.health_history;
CREATE TEMP TABLE received AS
SELECT q.queue, row_number() OVER (PARTITION BY q.queue ORDER BY r.msg_id) AS n, r.message
  FROM (VALUES (:'eu_queue'), (:'us_queue')) AS q(queue),
       LATERAL pgmq.read(q.queue, 60, 1000) r;
SELECT test.eq((SELECT count(*) FROM received), 2 * (SELECT count(*) FROM expected), 'each change once per queue');
SELECT test.empty($$
    SELECT r.queue, r.n, r.message FROM received r LEFT JOIN expected e USING (n)
     WHERE e.n IS NULL
        OR r.message->>'event_type' <> 'model_health_update'
        OR r.message->>'provider' <> e.provider
        OR r.message->>'model' IS DISTINCT FROM e.model
        OR r.message->>'state' <> e.state
        OR r.message->>'previous_state' <> e.previous_state
        OR (r.message->>'failure_rate')::float8 IS DISTINCT FROM round(e.failure_rate::numeric * 100, 2)::float8  -- events in percent
        OR (r.message->>'window_s')::int <> 300
        OR (r.message->>'since')::timestamptz IS NULL
        OR r.message->>'reason' <> e.reason
        OR (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(r.message) k)
           <> ARRAY['event_type', 'failure_rate', 'model', 'previous_state', 'provider', 'reason', 'since',
                    'state', 'timestamp', 'window_s']
$$, 'every queue got every change, in order, in the documented shape');
SELECT test.eq((SELECT count(*) FROM centralcloud.health_updates_recent), (SELECT count(*) FROM expected), 'the recent view');

-- A change and its event commit or roll back together.
BEGIN;
SELECT test.outcomes('claude', 'anthropic', 0, 20);
SELECT test.tick();
SELECT test.eq((SELECT state FROM centralcloud.model_health WHERE model = 'claude'), 'down', 'claude down, in the transaction');
ROLLBACK;
SELECT test.eq((SELECT state FROM centralcloud.model_health WHERE model = 'claude'), 'healthy', 'rolled back: still healthy');
SELECT test.eq((SELECT queue_length FROM pgmq.metrics(:'eu_queue')), (SELECT count(*) FROM expected), 'and nothing published');

-- Evaluation needs READ COMMITTED (it would judge an old snapshot of the states); ingest under
-- another isolation level skips it, without an error.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT test.fails_with('SELECT * FROM centralcloud.evaluate_model_health()', '25000', 'evaluation under REPEATABLE READ');
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT test.outcomes('claude', 'anthropic', 0, 20);
SELECT test.eq(test.tick(), 20::bigint, 'ingest under REPEATABLE READ works');
SELECT test.eq((SELECT state FROM centralcloud.model_health WHERE model = 'claude'), 'healthy', 'and skips health');
COMMIT;

-- centralcloud.health_window = 0 turns health off: no evaluation, no evidence kept.
SET centralcloud.health_window = 0;
SELECT test.outcomes('claude', 'anthropic', 0, 40);
SELECT test.tick();
SELECT test.eq((SELECT count(*) FROM centralcloud.evaluate_model_health()), 0::bigint, 'health off');
SELECT test.eq((SELECT sum(failure_count) FROM centralcloud.health_outcomes WHERE model = 'claude'), 20::numeric,
               'only the 20 failures received under REPEATABLE READ, none while off');
RESET centralcloud.health_window;
SELECT test.eq((SELECT array_agg(model || ' ' || state) FROM centralcloud.evaluate_model_health()),
               ARRAY['claude down'], 'back on: the evidence it has counts');
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'ingest exact throughout');

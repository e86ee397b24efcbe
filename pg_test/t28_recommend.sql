-- recommend_model(): ranked candidates with each preference, capabilities learned from ingest
-- and edited by operators, prices, exclusions, down models skipped (and an error when that
-- leaves nothing), degraded ones last, bad arguments, and who may call it.
\ir lib.sql
GRANT USAGE ON SCHEMA test TO PUBLIC;

-- n outcomes (`failures` of them failures) of one (model, provider) for complex tasks, each
-- taking `ms`, the successful ones having required `capabilities`.
CREATE FUNCTION test.outcomes(model text, provider text, n int, failures int, ms int,
                              capabilities text[] DEFAULT '{}', complexity text DEFAULT 'complex')
RETURNS void LANGUAGE sql AS $$
    INSERT INTO test.published (msg)
    SELECT jsonb_set(jsonb_set(test.event('eu-1', model, complexity, CASE WHEN i <= failures THEN 'failure' ELSE 'success' END, ms),
                               '{routing_decision,selected_provider}', to_jsonb(provider)),
                     '{routing_decision,capabilities_required}', to_jsonb(capabilities))
      FROM generate_series(1, n) AS i
$$;

-- The fleet: scores set by hand (learning is not what this tests).
CREATE TEMP TABLE fleet (model text, provider text, score float8, ms int, failures int, capabilities text[]);
INSERT INTO fleet VALUES
    ('best-slow',    'openai',    4.2,  3000, 0,  '{}'),
    ('close-fast',   'anthropic', 4.0,  400,  0,  '{}'),
    ('close-cheap',  'mistral',   3.96, 900,  0,  '{}'),
    ('far-fastest',  'groq',      3.0,  100,  0,  '{}'),
    ('vision-model', 'openai',    3.5,  500,  0,  '{vision}'),
    ('broken',       'groq',      4.5,  200,  40, '{}'),   -- every request fails: down
    ('shaky',        'xai',       4.1,  300,  16, '{}');   -- 60% success: degraded
SELECT count(*) FROM (SELECT test.outcomes(model, provider, 40, failures, ms, capabilities) FROM fleet) t;
SELECT test.publish();
SELECT ingested FROM centralcloud.ingest_routing_events();
SELECT count(*) FROM (SELECT centralcloud.set_complexity_score(model, 'complex', score) FROM fleet) t;
SELECT test.eq((SELECT array_agg(model || ' ' || state ORDER BY model) FROM centralcloud.model_health
                 WHERE model IN ('broken', 'shaky')), ARRAY['broken down', 'shaky degraded'], 'health as set up');

-- No preference: best score first, the down model skipped, the degraded one last.
CREATE TEMP TABLE plain AS SELECT * FROM centralcloud.recommend_model('complex');
SELECT * FROM plain;
SELECT test.eq((SELECT array_agg(model ORDER BY rank) FROM plain),
               ARRAY['best-slow', 'close-fast', 'close-cheap', 'vision-model', 'far-fastest', 'shaky'], 'by score, healthy first');
SELECT test.eq((SELECT (provider, score, success_rate, samples, p50_ms::int, p95_ms::int, health, reason)::text FROM plain WHERE rank = 1),
               '(openai,4.2,100,40,3000,3000,healthy,"best score 4.20, 100.0% success over 40 outcomes")', 'the best row (rates in percent)');
SELECT test.eq((SELECT success_rate_lower > 90 AND success_rate_lower < 100 FROM plain WHERE rank = 1), true, 'a lower bound');
SELECT test.eq((SELECT (health, reason LIKE '%; degraded: ranked after every healthy candidate') FROM plain WHERE model = 'shaky')::text,
               '(degraded,t)', 'degraded, last, and says so');
SELECT test.eq((SELECT count(*) FROM plain WHERE cost_per_request_usd IS NOT NULL), 0::bigint, 'no prices yet');

-- Speed: the fastest among those within centralcloud.recommend_tolerance (0.25) of the best.
SELECT test.eq((SELECT array_agg(model ORDER BY rank) FROM centralcloud.recommend_model('complex', prefer => 'speed')),
               ARRAY['close-fast', 'close-cheap', 'best-slow', 'vision-model', 'far-fastest', 'shaky'], 'prefer speed');
SELECT test.eq((SELECT reason FROM centralcloud.recommend_model('complex', prefer => 'speed') WHERE rank = 1),
               'p95 400 ms, the fastest within 0.25 of the best score 4.20', 'speed reason');
SET centralcloud.recommend_tolerance = 2;
SELECT test.eq((SELECT model FROM centralcloud.recommend_model('complex', prefer => 'speed') WHERE rank = 1),
               'far-fastest', 'a wider tolerance lets a worse but faster model win');
RESET centralcloud.recommend_tolerance;

-- Cost: no prices, and it says so; then the operators' prices.
SELECT test.eq((SELECT array_agg(model ORDER BY rank) FROM centralcloud.recommend_model('complex', prefer => 'cost')),
               ARRAY['best-slow', 'close-fast', 'close-cheap', 'vision-model', 'far-fastest', 'shaky'], 'cost without prices: by score');
SELECT test.eq((SELECT reason LIKE 'no price known for any candidate (centralcloud.model_prices): by score%'
                  FROM centralcloud.recommend_model('complex', prefer => 'cost') WHERE rank = 1), true, 'says there are no prices');
CREATE ROLE rec_ops LOGIN IN ROLE centralcloud_operator;
SET ROLE rec_ops;
INSERT INTO centralcloud.model_prices (provider, model, usd_per_request) VALUES ('openai', 'best-slow', 0.03);
INSERT INTO centralcloud.model_prices (provider, model, usd_per_million_input_tokens, usd_per_million_output_tokens)
VALUES ('anthropic', 'close-fast', 3, 15), ('mistral', 'close-cheap', 0.5, 1.5);
RESET ROLE;
SELECT test.eq((SELECT array_agg(model || ' ' || round(cost_per_request_usd::numeric, 6) ORDER BY rank)
                  FROM centralcloud.recommend_model('complex', prefer => 'cost') WHERE rank <= 3),
               ARRAY['close-cheap 0.001250', 'close-fast 0.010500', 'best-slow 0.030000'], 'prefer cost: cheapest within the tolerance');
SELECT test.fails_with($$INSERT INTO centralcloud.model_prices (provider, model) VALUES ('groq', 'far-fastest')$$, '23514', 'a price row needs a price');

-- Capabilities: learned from successful requests that required them, edited by operators.
SELECT test.eq((SELECT (source, supported, successes)::text FROM centralcloud.model_capabilities WHERE model = 'vision-model'),
               '(learned,t,40)', 'learned from 40 successes');
SELECT test.eq((SELECT array_agg(model) FROM centralcloud.recommend_model('complex', '{vision}')), ARRAY['vision-model'], 'vision');
SET ROLE rec_ops;
INSERT INTO centralcloud.model_capabilities (provider, model, capability) VALUES ('anthropic', 'close-fast', 'vision');
SELECT test.eq((SELECT array_agg(model ORDER BY rank) FROM centralcloud.recommend_model('complex', '{vision}')),
               ARRAY['close-fast', 'vision-model'], 'an operator''s capability');
UPDATE centralcloud.model_capabilities SET supported = false WHERE model = 'vision-model';
RESET ROLE;
SELECT test.outcomes('vision-model', 'openai', 5, 0, 500, '{vision}');
SELECT test.publish();
SELECT ingested FROM centralcloud.ingest_routing_events();
SELECT test.eq((SELECT (supported, successes)::text FROM centralcloud.model_capabilities WHERE model = 'vision-model'),
               '(f,45)', 'ingest counts the successes, never overrides the operator');
SELECT test.eq((SELECT array_agg(model) FROM centralcloud.recommend_model('complex', '{vision}')), ARRAY['close-fast'], 'denied by the operator');
SELECT test.eq((SELECT count(*) FROM centralcloud.recommend_model('complex', '{vision,vision}')), 1::bigint, 'duplicates asked once');
SELECT test.eq((SELECT count(*) FROM centralcloud.recommend_model('simple', '{vision}')), 0::bigint,
               'a known capability nothing supports for this complexity: an empty result');

-- Exclusions, by model or by provider.
SELECT test.eq((SELECT array_agg(model ORDER BY rank) FROM centralcloud.recommend_model('complex', exclude => '{best-slow,mistral}')),
               ARRAY['close-fast', 'vision-model', 'far-fastest', 'shaky'], 'exclude a model and a provider');
SET centralcloud.recommend_max_candidates = 2;
SELECT test.eq((SELECT array_agg(model ORDER BY rank) FROM centralcloud.recommend_model('complex')),
               ARRAY['best-slow', 'close-fast'], 'at most recommend_max_candidates');
RESET centralcloud.recommend_max_candidates;

-- Every candidate down: an error that says so (not an empty result); none at all: empty.
SELECT count(*) FROM (SELECT test.outcomes(m, 'deadco', 30, 30, 100, '{}', 'simple') FROM unnest(ARRAY['dead-1', 'dead-2']) m) t;
SELECT test.publish();
SELECT ingested FROM centralcloud.ingest_routing_events();
SELECT test.fails_with($$SELECT * FROM centralcloud.recommend_model('simple')$$, 'P0002', 'every candidate down');
DO $$
BEGIN
    PERFORM * FROM centralcloud.recommend_model('simple');
EXCEPTION WHEN no_data_found THEN
    PERFORM test.eq(SQLERRM, 'centralcloud: every candidate for a simple task is down: dead-1 (deadco), dead-2 (deadco)', 'the message names them');
END $$;
SELECT test.eq((SELECT count(*) FROM centralcloud.recommend_model('medium')), 0::bigint, 'no candidate at all: empty');

-- A crowd tied on score (a new fleet that reported one complexity_score): the few rows read
-- for ten (rank.rs, Segment) rank as reading all 300 does, with each preference, some of them
-- degraded, some without latency or price. Set up as the owner, straight into the sources.
INSERT INTO centralcloud.health_states (provider, model, state)
SELECT 'tieco', 'tie-' || i, CASE WHEN i % 7 = 0 THEN 'degraded' ELSE 'healthy' END FROM generate_series(1, 300) AS i;
INSERT INTO centralcloud.model_complexity_scores (model_name, complexity_level, score, prior_score, change_source, change_reason)
SELECT 'tie-' || i, 'medium', CASE WHEN i % 10 = 0 THEN 2.9 ELSE 3.0 END, 3.0, 'operator', 'a tie' FROM generate_series(1, 300) AS i;
INSERT INTO centralcloud.model_routing_metrics (model_name, complexity_level, success_count, failure_count, latency_sketch)
SELECT 'tie-' || i, 'medium', 50 + (i * 37) % 300, (i * 11) % 40,
       CASE WHEN i % 9 <> 0 THEN (SELECT centralcloud.latency_sketch_agg(100 + (i * 53) % 997 + g) FROM generate_series(1, 20) AS g) END
  FROM generate_series(1, 300) AS i;
INSERT INTO centralcloud.model_prices (provider, model, usd_per_request)
SELECT 'tieco', 'tie-' || i, ((i * 31) % 101) / 1000.0 FROM generate_series(1, 300) AS i WHERE i % 4 <> 0;
CREATE FUNCTION test.tied_top(prefer text, n int) RETURNS text[] LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('centralcloud.recommend_max_candidates', n::text, true);
    RETURN (SELECT array_agg(model || ' ' || reason ORDER BY rank) FROM centralcloud.recommend_model('medium', prefer => prefer) WHERE rank <= 10);
END $$;
SELECT test.eq(test.tied_top(NULL, 10), test.tied_top(NULL, 300), 'tied: no preference, ten read as all');
SELECT test.eq(test.tied_top('speed', 10), test.tied_top('speed', 300), 'tied: speed, ten read as all');
SELECT test.eq(test.tied_top('cost', 10), test.tied_top('cost', 300), 'tied: cost, ten read as all');
SELECT test.eq((SELECT count(DISTINCT success_rate_lower) FROM centralcloud.recommend_model('medium')), 10::bigint,
               'tied scores go by the success bound');
-- The candidates' table follows every source: scores, metrics, health, prices, capabilities.
UPDATE centralcloud.health_states SET state = 'down' WHERE provider = 'tieco' AND model = 'tie-1';
INSERT INTO centralcloud.health_states (provider, state) VALUES ('tieco', 'degraded')
    ON CONFLICT (provider, model) DO UPDATE SET state = EXCLUDED.state;
UPDATE centralcloud.model_routing_metrics SET success_count = success_count + 1 WHERE model_name = 'tie-2';
DELETE FROM centralcloud.model_prices WHERE model = 'tie-3';
UPDATE centralcloud.model_prices SET model = 'tie-4' WHERE model = 'tie-5';
DELETE FROM centralcloud.model_complexity_scores WHERE model_name = 'tie-6';
DELETE FROM centralcloud.health_states WHERE model = 'tie-7';
INSERT INTO centralcloud.model_capabilities (provider, model, capability) VALUES ('tieco', 'tie-8', 'vision');
SELECT test.empty($$SELECT * FROM centralcloud.check_invariants() WHERE problem = 'candidate'$$, 'recommend_candidates equals its sources');
SELECT test.eq((SELECT count(*) FROM centralcloud.recommend_candidates WHERE provider = 'tieco' AND state <> 'down'
                   AND provider_state = 'degraded'), 297::bigint, 'a provider''s health reaches its pairs');

-- Bad arguments: clear errors with SQLSTATEs.
SELECT test.fails_with($$SELECT * FROM centralcloud.recommend_model('hard')$$, '22023', 'unknown complexity');
SELECT test.fails_with($$SELECT * FROM centralcloud.recommend_model(NULL)$$, '22023', 'NULL complexity');
SELECT test.fails_with($$SELECT * FROM centralcloud.recommend_model('complex', prefer => 'quality')$$, '22023', 'unknown preference');
SELECT test.fails_with($$SELECT * FROM centralcloud.recommend_model('complex', '{telepathy}')$$, '42704', 'unknown capability');
SELECT test.fails_with($$SELECT * FROM centralcloud.recommend_model('complex', ARRAY[NULL]::text[])$$, '22023', 'NULL capability');
SELECT test.fails_with($$SELECT * FROM centralcloud.recommend_model('complex', exclude => ARRAY['x', NULL])$$, '22023', 'NULL exclusion');
DO $$
BEGIN
    PERFORM * FROM centralcloud.recommend_model('complex', '{telepathy,vision}');
EXCEPTION WHEN undefined_object THEN
    PERFORM test.eq(SQLERRM, 'centralcloud: unknown capability "telepathy": no model is known to support it', 'names the unknown one');
END $$;

-- Who may call it: dashboards, routers, operators; nobody else. Routers see nothing else.
CREATE ROLE rec_router LOGIN IN ROLE centralcloud_publisher;
CREATE ROLE rec_dash LOGIN IN ROLE centralcloud_reader;
CREATE ROLE rec_nobody LOGIN;
SET ROLE rec_router;
SELECT test.eq((SELECT model FROM centralcloud.recommend_model('complex') WHERE rank = 1), 'best-slow', 'a router may');
SELECT test.fails_with('SELECT * FROM centralcloud.model_health', '42501', 'a router reads no view');
SELECT test.fails_with('SELECT * FROM centralcloud.model_prices', '42501', 'nor a table');
SELECT test.fails_with('SELECT * FROM centralcloud.evaluate_model_health()', '42501', 'nor evaluates health');
RESET ROLE;
SET ROLE rec_dash;
SELECT test.eq((SELECT count(*) > 0 FROM centralcloud.recommend_model('complex', prefer => 'speed')), true, 'a dashboard may');
SELECT test.eq((SELECT count(*) > 0 FROM centralcloud.model_health), true, 'and reads model_health');
SELECT test.fails_with($$INSERT INTO centralcloud.model_prices (provider, model, usd_per_request) VALUES ('a', 'b', 1)$$, '42501', 'a dashboard sets no price');
RESET ROLE;
SET ROLE rec_ops;
SELECT test.eq((SELECT count(*) > 0 FROM centralcloud.recommend_model('complex')), true, 'an operator may');
SELECT test.fails_with($$INSERT INTO centralcloud.model_capabilities (provider, model, capability, source) VALUES ('a', 'b', 'c', 'learned')$$,
                       '42501', 'an operator cannot forge a learned capability');
SELECT test.fails_with($$UPDATE centralcloud.health_states SET state = 'healthy'$$, '42501', 'nor edit health');
RESET ROLE;
SET ROLE rec_nobody;
SELECT test.fails_with($$SELECT * FROM centralcloud.recommend_model('complex')$$, '42501', 'anyone else may not');
RESET ROLE;

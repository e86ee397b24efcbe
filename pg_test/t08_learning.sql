-- learn_complexity_scores(): each branch of the seed rule fires for some cell, one cell stays
-- under the sample minimum, a second call changes nothing, a cell that later gets 100 more
-- outcomes learns from those only, dry run changes nothing, rolled-back learning publishes
-- nothing, and the operator can set a score.
\ir lib.sql
SET centralcloud.learning_policy = 'seed';

-- n events of one outcome for one cell (instances report `score`).
CREATE FUNCTION test.cell(model text, outcome text, n int, rt int, score numeric DEFAULT 3.0)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO test.published (msg)
    SELECT test.event('singularity-' || (i % 3), model, 'medium', outcome, rt, score)
      FROM generate_series(1, n) AS i
$$;
SELECT test.cell('good-fast', 'routed', 50, NULL);   -- decisions are not outcome samples
SELECT test.cell('good-fast', 'success', 99, 500);
SELECT test.cell('good-fast', 'failure', 1, 500);
SELECT test.cell('good-slow', 'success', 99, 2500);
SELECT test.cell('good-slow', 'failure', 1, 2500);
SELECT test.cell('bad-fast', 'success', 80, 500);
SELECT test.cell('bad-fast', 'failure', 20, 500);
SELECT test.cell('bad-slow', 'success', 80, 2500);
SELECT test.cell('bad-slow', 'failure', 20, 2500);
SELECT test.cell('boundary', 'success', 95, 2000);   -- exactly 0.95 and exactly 2000 ms
SELECT test.cell('boundary', 'failure', 5, 2000);
SELECT test.cell('top', 'success', 100, 10, 4.9);
SELECT test.cell('floor', 'failure', 100, 9000, 0.1);
SELECT test.cell('few', 'success', 30, 100);
SELECT test.cell('few', 'failure', 7, 100);
SELECT test.cell('routed-only', 'routed', 150, NULL);
SELECT test.publish();
SELECT ingested FROM centralcloud.ingest_routing_events();

-- Cells entered the catalog at the score instances reported.
SELECT test.eq((SELECT count(*) FROM centralcloud.model_complexity_scores WHERE change_source = 'reported'), 9::bigint, 'catalog');
SELECT test.eq((SELECT score FROM centralcloud.model_complexity_scores WHERE model_name = 'top'), 4.9::float8, 'initial score');

CREATE TEMP TABLE first_run AS SELECT * FROM centralcloud.learn_complexity_scores();
SELECT model, samples, success_rate, avg_response_time_ms, old_score, new_score, changed, reason FROM first_run ORDER BY model;
SELECT test.eq(
    (SELECT string_agg(format('%s %s->%s', model, old_score, new_score), ', ' ORDER BY model) FROM first_run),
    'bad-fast 3->2.9, bad-slow 3->2.7, boundary 3->2.9, few 3->3, floor 0.1->0, good-fast 3->3.3, good-slow 3->3.1, routed-only 3->3, top 4.9->5',
    'each branch, the boundary and both clamps');
SELECT test.eq((SELECT reason FROM first_run WHERE model = 'few'), 'insufficient data: 37 < 100', 'insufficient data reason');
SELECT test.eq((SELECT reason FROM first_run WHERE model = 'routed-only'), 'insufficient data: 0 < 100', 'decisions are not samples');
SELECT test.eq((SELECT samples FROM first_run WHERE model = 'good-fast'), 100::bigint, 'outcomes only');
SELECT test.eq((SELECT reason FROM first_run WHERE model = 'boundary'),
    'success rate 95.0% <= 95.0%: -0.2; avg 2000 ms <= 2000 ms: +0.1 (100 outcomes)', 'strict thresholds');
SELECT test.eq((SELECT count(*) FROM first_run WHERE changed), 7::bigint, 'seven changes');

-- Catalog, history and published events agree.
SELECT test.empty($$
    SELECT f.model FROM first_run f JOIN centralcloud.model_complexity_scores s
        ON s.model_name = f.model AND s.complexity_level = f.complexity
     WHERE s.score <> f.new_score OR (f.changed AND s.change_source <> 'learned')
$$, 'catalog holds the new scores');
SELECT test.eq((SELECT count(*) FROM centralcloud.score_history), 7::bigint, 'one history row per change');
SELECT test.eq((SELECT count(*) FROM centralcloud.score_history WHERE published_to <> 1 OR policy <> 'seed'), 0::bigint, 'published to the plain queue');
SELECT test.eq(
    (SELECT (samples, success_rate, avg_response_time_ms) FROM centralcloud.score_history WHERE model_name = 'good-fast')::text,
    '(100,0.99,500)', 'evidence recorded');
CREATE TEMP TABLE updates AS SELECT msg_id, message FROM pgmq.read('model_score_updates', 60, 100);
SELECT test.eq((SELECT count(*) FROM updates), 7::bigint, 'seven events');
SELECT test.empty($$
    SELECT message FROM updates
     WHERE (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(message) k)
           <> ARRAY['complexity', 'event_type', 'model', 'new_score', 'old_score', 'reason', 'timestamp']
        OR message->>'event_type' <> 'model_score_update'
        OR (message->>'timestamp')::timestamptz IS NULL
$$, 'the seed''s event shape');
SELECT test.empty($$
    SELECT h.model_name FROM centralcloud.score_history h
      LEFT JOIN updates u ON u.message->>'model' = h.model_name AND u.message->>'complexity' = h.complexity_level
       AND (u.message->>'old_score')::float8 = h.old_score AND (u.message->>'new_score')::float8 = h.new_score
       AND u.message->>'reason' = h.reason
     WHERE u.msg_id IS NULL
$$, 'every change has its event');
SELECT pgmq.purge_queue('model_score_updates');

-- No drift: a second call with no new evidence changes nothing.
CREATE TEMP TABLE second_run AS SELECT * FROM centralcloud.learn_complexity_scores();
SELECT test.eq((SELECT count(*) FROM second_run WHERE changed), 0::bigint, 'second call: no change');
SELECT test.eq((SELECT count(*) FROM second_run WHERE reason <> 'insufficient data: 0 < 100' AND model NOT IN ('few', 'routed-only')), 0::bigint, 'evidence consumed');
SELECT test.eq((SELECT count(*) FROM centralcloud.score_history), 7::bigint, 'no new history');
SELECT test.eq((SELECT queue_length FROM pgmq.metrics('model_score_updates')), 0::bigint, 'nothing published');

-- 100 more outcomes for good-fast, all slow failures: it learns from those only (3.3 - 0.3).
SELECT test.cell('good-fast', 'failure', 100, 2500);
SELECT test.publish();
SELECT ingested FROM centralcloud.ingest_routing_events();
CREATE TEMP TABLE third_run AS SELECT * FROM centralcloud.learn_complexity_scores();
SELECT test.eq((SELECT string_agg(model || ' ' || old_score || '->' || new_score, ', ') FROM third_run WHERE changed), 'good-fast 3.3->3', 'learns from new evidence only');
SELECT test.eq((SELECT (samples, success_rate) FROM third_run WHERE model = 'good-fast')::text, '(100,0)', 'window is the new evidence');

-- Dry run: same rows, nothing changed, nothing published.
SELECT pgmq.purge_queue('model_score_updates');
SELECT test.cell('bad-fast', 'success', 100, 10);
SELECT test.publish();
SELECT ingested FROM centralcloud.ingest_routing_events();
CREATE TEMP TABLE before AS SELECT * FROM centralcloud.model_complexity_scores;
CREATE TEMP TABLE dry AS SELECT * FROM centralcloud.learn_complexity_scores(dry_run => true);
SELECT test.eq((SELECT string_agg(model || ' ' || old_score || '->' || new_score, ', ') FROM dry WHERE changed), 'bad-fast 2.9->3.2', 'dry run computes');
SELECT test.empty('(SELECT * FROM before EXCEPT SELECT * FROM centralcloud.model_complexity_scores) UNION ALL (SELECT * FROM centralcloud.model_complexity_scores EXCEPT SELECT * FROM before)', 'dry run changes nothing');
SELECT test.eq((SELECT queue_length FROM pgmq.metrics('model_score_updates')), 0::bigint, 'dry run publishes nothing');

-- Rolled-back learning publishes nothing (publish and update share the transaction).
BEGIN;
SELECT count(*) FILTER (WHERE changed) FROM centralcloud.learn_complexity_scores();
SELECT test.eq((SELECT queue_length FROM pgmq.metrics('model_score_updates')), 1::bigint, 'visible inside the transaction');
ROLLBACK;
SELECT test.eq((SELECT queue_length FROM pgmq.metrics('model_score_updates')), 0::bigint, 'rolled back: nothing published');
SELECT test.eq((SELECT score FROM centralcloud.model_complexity_scores WHERE model_name = 'bad-fast'), 2.9::float8, 'rolled back: score unchanged');
SELECT test.eq((SELECT string_agg(model || '->' || new_score, ', ') FROM centralcloud.learn_complexity_scores() WHERE changed), 'bad-fast->3.2', 'learns after the rollback');

-- Learning needs READ COMMITTED (an older snapshot would consume evidence twice).
BEGIN ISOLATION LEVEL REPEATABLE READ;
DO $$
BEGIN
    PERFORM centralcloud.learn_complexity_scores();
    RAISE EXCEPTION 'FAILED: learning under REPEATABLE READ';
EXCEPTION WHEN others THEN
    PERFORM test.eq(SQLERRM, 'centralcloud: learning needs READ COMMITTED isolation, the transaction is repeatable read', 'isolation error');
END $$;
ROLLBACK;

-- Operator changes: validated, recorded, published.
SELECT pgmq.purge_queue('model_score_updates');
SELECT test.eq(centralcloud.set_complexity_score('good-slow', 'medium', 4.5, 'pinned by ops'), true, 'set');
SELECT test.eq(centralcloud.set_complexity_score('good-slow', 'medium', 4.5), false, 'same value: no change');
SELECT test.eq(centralcloud.set_complexity_score('brand-new', 'simple', 1.5), true, 'new cell');
SELECT test.eq(
    (SELECT string_agg(format('%s %s %s->%s %s', model_name, policy, old_score, new_score, reason), '; ' ORDER BY id)
       FROM centralcloud.score_history WHERE policy = 'operator'),
    'good-slow operator 3.1->4.5 pinned by ops; brand-new operator ->1.5 set by operator', 'operator history');
SELECT test.eq((SELECT count(*) FROM pgmq.read('model_score_updates', 60, 10)), 2::bigint, 'operator changes published');
DO $$
DECLARE
    bad record;
BEGIN
    FOR bad IN SELECT * FROM (VALUES ('m', 'medium', 7.5, 'score must be a number in [0, 5], got 7.5'),
                                     ('m', 'medium', 'NaN'::float8, 'score must be a number in [0, 5], got NaN'),
                                     ('m', 'extreme', 1, 'complexity must be one of simple/medium/complex, got "extreme"'),
                                     ('', 'simple', 1, 'model must be 1 to 256 characters')) AS v(model, complexity, score, msg)
    LOOP
        BEGIN
            PERFORM centralcloud.set_complexity_score(bad.model, bad.complexity, bad.score);
            RAISE EXCEPTION 'FAILED: accepted %', bad;
        EXCEPTION WHEN others THEN
            PERFORM test.eq(SQLERRM, 'centralcloud: ' || bad.msg, 'set_complexity_score validation');
        END;
    END LOOP;
END $$;

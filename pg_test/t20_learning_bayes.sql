-- Policy bayes through SQL: the score is a function of the evidence (the same evidence gives
-- the same score, so a second run changes nothing), a success-rate drop is detected, recorded
-- and visible to dashboards, a sparse cell keeps its prior, an operator's score becomes the
-- prior, dry runs and min_score_change hold. The quality targets are t19's (the replay).
\ir lib.sql
GRANT USAGE ON SCHEMA test TO PUBLIC;
SET centralcloud.learning_policy = 'bayes';

-- n outcomes of a cell in the hour `hours_ago` hours before now, `rate` of them successes, each
-- with response time `rt`; instances report `score`.
CREATE FUNCTION test.hour_of(model text, hours_ago int, n int, rate float8, rt int, score numeric DEFAULT 2.5)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO test.published (msg)
    SELECT test.event('r-' || (i % 3), model, 'medium', CASE WHEN i <= round(n * rate) THEN 'success' ELSE 'failure' END,
                      rt, score, date_trunc('hour', now()) - make_interval(hours => hours_ago) + make_interval(secs => i))
      FROM generate_series(1, n) AS i
$$;
SELECT test.hour_of('steady', h, 300, 0.95, 400) FROM generate_series(0, 5) AS h;
SELECT test.hour_of('drop', h, 300, 0.95, 400) FROM generate_series(1, 5) AS h;
SELECT test.hour_of('drop', 0, 300, 0.60, 400);
SELECT test.hour_of('slow', h, 300, 0.95, 1600) FROM generate_series(0, 5) AS h;
SELECT test.hour_of('sparse', 0, 20, 1.0, 400, 1.5);
SELECT test.publish();
SELECT ingested FROM centralcloud.ingest_routing_events();

CREATE TEMP TABLE first_run AS SELECT * FROM centralcloud.learn_complexity_scores();
SELECT model, samples, success_rate, old_score, new_score, changed, reason FROM first_run ORDER BY model;
SELECT test.eq((SELECT new_score > 3.5 AND new_score < 5 AND changed FROM first_run WHERE model = 'steady'), true,
               'a steady 95% cell moves from its prior 2.5 (80%) to above 3.5, and not to 5');
SELECT test.eq((SELECT reason ~ '^bayes: n 1800 .*rate .*bound .*p95 ' FROM first_run WHERE model = 'steady'), true,
               'the reason explains the numbers');
SELECT test.eq((SELECT (SELECT new_score FROM first_run WHERE model = 'slow') < (SELECT new_score FROM first_run WHERE model = 'steady')),
               true, 'the same successes, 4x slower: strictly lower');
SELECT test.eq((SELECT NOT changed AND new_score = 1.5 AND reason LIKE '%insufficient%' FROM first_run WHERE model = 'sparse'), true,
               'a sparse cell keeps its prior');

-- The drop in the last hour is a change: recorded, visible, and only the new regime counts.
SELECT test.eq((SELECT count(*) FROM centralcloud.learning_changes WHERE model_name = 'drop' AND kind = 'success_rate'
                   AND change_hour = date_trunc('hour', now()) AND before_value > 0.9 AND after_value < 0.7), 1::bigint,
               'the drop is recorded at its hour');
SELECT test.eq((SELECT reason LIKE '%change: success rate%' AND samples = 300 FROM first_run WHERE model = 'drop'), true,
               'the reason names the change; only the 300 outcomes since count');
SELECT test.eq((SELECT regime_start FROM centralcloud.model_complexity_scores WHERE model_name = 'drop'), date_trunc('hour', now()),
               'the cell''s regime starts at the change');
SELECT test.eq((SELECT count(*) FROM centralcloud.learning_changes WHERE model_name <> 'drop'), 0::bigint, 'no false alarm');
CREATE ROLE t20_dash LOGIN IN ROLE centralcloud_reader;
SET ROLE t20_dash;
SELECT test.eq((SELECT count(*) FROM centralcloud.learning_changes_recent WHERE model = 'drop'), 1::bigint, 'dashboards see it');
RESET ROLE;

-- The same evidence gives the same scores: a second run changes and publishes nothing.
CREATE TEMP TABLE history_before AS SELECT count(*) AS n FROM centralcloud.score_history;
SELECT test.empty('SELECT * FROM centralcloud.learn_complexity_scores() WHERE changed', 'second run changes nothing');
SELECT test.eq((SELECT count(*) FROM centralcloud.score_history), (SELECT n FROM history_before), 'nothing published');
SELECT test.eq((SELECT count(*) FROM centralcloud.learning_changes), 1::bigint, 'the change is not detected twice');

-- Dry run; min_score_change; an operator's score is the new prior.
SELECT test.hour_of('steady', 0, 300, 0.50, 400);
SELECT test.publish();
SELECT ingested FROM centralcloud.ingest_routing_events();
SELECT test.empty($$SELECT * FROM centralcloud.learn_complexity_scores(true) WHERE NOT changed AND model = 'steady'$$,
                  'dry run says steady changes');
SELECT test.eq((SELECT count(*) FROM centralcloud.score_history), (SELECT n FROM history_before), 'dry run publishes nothing');
SET centralcloud.min_score_change = 5;
SELECT test.empty($$SELECT * FROM centralcloud.learn_complexity_scores() WHERE changed$$, 'min_score_change 5: nothing moves');
SELECT test.eq((SELECT reason LIKE '%within centralcloud.min_score_change%' FROM centralcloud.learn_complexity_scores(true) WHERE model = 'steady'),
               true, 'and the reason says so');
RESET centralcloud.min_score_change;
SELECT centralcloud.set_complexity_score('sparse', 'medium', 4.0, 'operator: trust it');
SELECT test.eq((SELECT prior_score FROM centralcloud.model_complexity_scores WHERE model_name = 'sparse'), 4.0::float8,
               'an operator''s score is the prior');
SELECT test.eq((SELECT prior_score FROM centralcloud.model_complexity_scores WHERE model_name = 'steady'), 2.5::float8,
               'learned changes do not move the prior');
SELECT count(*) FROM centralcloud.learn_complexity_scores();
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'exact');
SET centralcloud.learning_policy = 'magic';
SELECT test.fails_with($$SELECT * FROM centralcloud.learn_complexity_scores()$$, '22023', 'unknown policy: invalid_parameter_value');
RESET centralcloud.learning_policy;

-- Consensus among instances (issue 14, items 1 and 2): an instance whose failure rate for a
-- cell through a provider deviates from the rest of the fleet's is flagged, listed in
-- instance_anomalies, left out of learning, and advised once per episode in its own queue
-- only (an instance not subscribed gets nothing, recorded, until it subscribes); an episode
-- ends when the instance matches again and its evidence of the episode stays left out; a
-- score change needs the agreement of centralcloud.min_agreeing_instances reporting instances
-- (a single instance learns alone); the seed policy learns without the flagged share.
\ir lib.sql
GRANT USAGE ON SCHEMA test TO PUBLIC;
SET centralcloud.learning_policy = 'bayes';

-- n outcomes of `instance` for (model, medium) through `provider` in the hour `hours_ago`
-- hours before now, `rate` of them successes, 400 ms each.
CREATE FUNCTION test.outcomes(instance text, model text, provider text, hours_ago int, n int, rate float8)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO test.published (msg)
    SELECT jsonb_set(test.event(instance, model, 'medium', CASE WHEN i <= round(n * rate) THEN 'success' ELSE 'failure' END,
                                400, 2.5, date_trunc('hour', now()) - make_interval(hours => hours_ago) + make_interval(secs => i)),
                     '{routing_decision,selected_provider}', to_jsonb(provider))
      FROM generate_series(1, n) AS i
$$;
-- The instance_advisory events in an instance's own queue.
CREATE FUNCTION test.advisories(instance text) RETURNS SETOF jsonb LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format('SELECT message FROM pgmq.%I WHERE message->>''event_type'' = ''instance_advisory'' ORDER BY msg_id',
                                pgmq.format_table_name((SELECT queue_name FROM centralcloud.score_subscriptions
                                                         WHERE instance_id = instance), 'q'));
END $$;

-- ---------------------------------------------------------------------------------------
-- Hours 9..7 ago: m1 through pa, r-5 fails 90% where r-1..r-4 succeed 98%; m2 through pb,
-- r-3 (not subscribed) fails 90%. Cells for the agreement rule: two (2 instances, one of them
-- drops to 50% in the last hour), both (2 instances, both drop), solo (1 instance).
-- ---------------------------------------------------------------------------------------
SELECT test.outcomes('r-' || k, 'm1', 'pa', h, 60, CASE WHEN k = 5 THEN 0.10 ELSE 0.98 END),
       test.outcomes('r-' || k, 'm2', 'pb', h, 60, CASE WHEN k = 3 THEN 0.10 ELSE 0.98 END)
  FROM generate_series(1, 5) AS k, generate_series(7, 9) AS h;
SELECT test.outcomes('a-1', 'two', 'pa', h, 300, CASE WHEN h = 7 THEN 0.50 ELSE 0.95 END),
       test.outcomes('a-2', 'two', 'pa', h, 300, 0.95),
       test.outcomes('s-1', 'solo', 'pa', h, 300, 0.95)
  FROM generate_series(7, 9) AS h;
SELECT test.outcomes('b-' || k, 'both', 'pa', h, 300, CASE WHEN h = 7 THEN 0.60 ELSE 0.95 END)
  FROM generate_series(7, 9) AS h, generate_series(1, 2) AS k;
SELECT centralcloud.subscribe_instance('r-5'), centralcloud.subscribe_instance('r-1');

-- A dry run decides the same and records nothing.
SELECT test.publish();
SELECT count(*) FROM centralcloud.ingest_routing_events();
CREATE TEMP TABLE dry AS SELECT * FROM centralcloud.learn_complexity_scores(true);
SELECT test.eq((SELECT reason LIKE '%left out: r-5 via pa (failure rate 90.0% vs the fleet''s 1.7%, success_rate %' FROM dry WHERE model = 'm1'),
               true, 'dry run: the reason names the instance left out');
SELECT test.eq((SELECT count(*) FROM centralcloud.instance_anomaly_episodes), 0::bigint, 'dry run: no episode');

CREATE TEMP TABLE run1 AS SELECT * FROM centralcloud.learn_complexity_scores();
SELECT model, samples, old_score, new_score, changed, reason FROM run1 ORDER BY model;

-- The view: who, what, rates, statistic, since when.
SELECT * FROM centralcloud.instance_anomalies ORDER BY instance_id;
SELECT test.eq((SELECT array_agg(instance_id || '/' || model || '/' || complexity_level || '/' || provider ORDER BY instance_id)
                  FROM centralcloud.instance_anomalies),
               ARRAY['r-3/m2/medium/pb', 'r-5/m1/medium/pa'], 'the two broken instances are flagged, nobody else');
SELECT test.eq((SELECT (kind, instance_failure_rate, fleet_failure_rate, instance_outcomes, fleet_outcomes,
                        statistic > 10, since)::text
                  FROM centralcloud.instance_anomalies WHERE instance_id = 'r-5'),
               ('success_rate', 90::float8, 1.67::float8, 180, 720, true, date_trunc('hour', now()) - interval '9 hours')::text,
               'its rate vs the fleet''s, the statistic, since its first deviant hour');
-- Left out of learning: m1 learns from the 720 outcomes of the four others only.
SELECT test.eq((SELECT (samples, changed, reason LIKE '%left out: r-5 via pa%') FROM run1 WHERE model = 'm1')::text,
               (720::bigint, true, true)::text, 'the outlier''s evidence is left out');
SELECT test.eq((SELECT success_rate > 98 FROM run1 WHERE model = 'm1'), true, 'the score rests on the fleet''s rate');

-- The advisory: once, in r-5's own queue only; r-3 is not subscribed: nothing sent, recorded.
SELECT test.eq((SELECT count(*) FROM test.advisories('r-5')), 1::bigint, 'r-5 is advised once');
SELECT test.eq((SELECT count(*) FROM test.advisories('r-1')), 0::bigint, 'r-1 is not');
SELECT test.eq((SELECT count(*) FROM pgmq.q_model_score_updates WHERE message->>'event_type' = 'instance_advisory'),
               0::bigint, 'advisories do not go to the topic''s queues');
SELECT test.eq((SELECT array_agg(k ORDER BY k) FROM test.advisories('r-5') a, jsonb_object_keys(a) AS k),
               ARRAY['complexity', 'event_type', 'fleet_failure_rate', 'fleet_p50_ms', 'instance_failure_rate', 'instance_id',
                     'instance_p50_ms', 'kind', 'message', 'model', 'provider', 'since', 'statistic', 'timestamp'],
               'the advisory''s fields');
SELECT test.eq((SELECT (a->>'instance_id', a->>'model', a->>'complexity', a->>'provider', (a->>'instance_failure_rate')::float8,
                        (a->>'since')::timestamptz)::text FROM test.advisories('r-5') a),
               ('r-5', 'm1', 'medium', 'pa', 90::float8, date_trunc('hour', now()) - interval '9 hours')::text, 'what it says (rates in percent)');
SELECT test.eq((SELECT a->>'message' FROM test.advisories('r-5') a),
               'your failure rate with pa for m1/medium is 90% vs the fleet''s 2%: a local problem; your outcomes for it are left out of learning until they match the fleet''s again',
               'the message');
SELECT test.eq((SELECT (advised_at IS NULL, advised_queue IS NULL) FROM centralcloud.instance_anomaly_episodes
                 WHERE instance_id = 'r-3')::text, (true, true)::text, 'r-3: not subscribed, nothing sent');
SELECT test.eq((SELECT advised_queue FROM centralcloud.instance_anomaly_episodes WHERE instance_id = 'r-5'),
               (SELECT queue_name FROM centralcloud.score_subscriptions WHERE instance_id = 'r-5'), 'r-5: sent to its queue');

-- Once per episode: more runs send nothing more; r-3 subscribes while its episode lasts and
-- gets its advisory then, once.
SELECT count(*) FROM centralcloud.learn_complexity_scores();
SELECT test.eq((SELECT count(*) FROM test.advisories('r-5')), 1::bigint, 'a second run sends nothing');
SELECT centralcloud.subscribe_instance('r-3');
SELECT count(*) FROM centralcloud.learn_complexity_scores();
SELECT count(*) FROM centralcloud.learn_complexity_scores();
SELECT test.eq((SELECT count(*) FROM test.advisories('r-3')), 1::bigint, 'r-3 advised once it subscribed');
SELECT test.eq((SELECT count(*) FROM test.advisories('r-5')), 1::bigint, 'r-5 still once');
SELECT test.eq((SELECT count(*) FROM centralcloud.instance_anomaly_episodes), 2::bigint, 'one episode each');

-- ---------------------------------------------------------------------------------------
-- Agreement: a change only one of two instances sees is kept back (and no change point is
-- recorded); one both see applies; a cell with one instance learns alone.
-- ---------------------------------------------------------------------------------------
SELECT test.eq((SELECT (changed, new_score) FROM run1 WHERE model = 'two')::text, (false, 2.5::float8)::text,
               'one of two instances drops: kept');
SELECT test.eq((SELECT reason LIKE '%; kept 2.5: 1 of 2 reporting instances agree, 2 needed (centralcloud.min_agreeing_instances)'
                  FROM run1 WHERE model = 'two'), true, 'and the reason says why');
SELECT test.eq((SELECT count(*) FROM centralcloud.learning_changes WHERE model_name = 'two'), 0::bigint,
               'no change point recorded for it');
SELECT test.eq((SELECT changed AND reason LIKE '%change: success rate%' FROM run1 WHERE model = 'both'), true,
               'both instances drop: applied');
SELECT test.eq((SELECT count(*) FROM centralcloud.learning_changes WHERE model_name = 'both'), 1::bigint, 'and recorded');
SELECT test.eq((SELECT changed AND reason NOT LIKE '%kept%' FROM run1 WHERE model = 'solo'), true, 'one instance learns alone');
SET centralcloud.min_agreeing_instances = 1;
SELECT test.eq((SELECT changed AND reason LIKE '%change: success rate%' FROM centralcloud.learn_complexity_scores(true)
                 WHERE model = 'two'), true, 'min_agreeing_instances 1: one instance is enough');
RESET centralcloud.min_agreeing_instances;

-- ---------------------------------------------------------------------------------------
-- Hours 6..0 ago: everyone succeeds 98%. The window (6 hours) no longer holds the broken
-- hours: both episodes end; their evidence up to the hour before the newest stays left out.
-- ---------------------------------------------------------------------------------------
SELECT test.outcomes('r-' || k, m, p, h, 60, 0.98)
  FROM generate_series(1, 5) AS k, generate_series(0, 6) AS h, (VALUES ('m1', 'pa'), ('m2', 'pb')) AS c(m, p);
SELECT test.publish();
SELECT count(*) FROM centralcloud.ingest_routing_events();
CREATE TEMP TABLE run2 AS SELECT * FROM centralcloud.learn_complexity_scores();
SELECT model, samples, reason FROM run2 ORDER BY model;
SELECT test.empty('SELECT * FROM centralcloud.instance_anomalies', 'no anomaly left');
SELECT test.eq((SELECT array_agg((instance_id, cleared_hour)::text ORDER BY instance_id) FROM centralcloud.instance_anomaly_episodes),
               ARRAY[('r-3', date_trunc('hour', now()) - interval '1 hour')::text,
                     ('r-5', date_trunc('hour', now()) - interval '1 hour')::text],
               'both episodes ended, their evidence left out up to the hour before the newest');
SELECT test.eq((SELECT samples FROM run2 WHERE model = 'm1'), (4 * 60 * 10 + 60)::bigint,
               'r-5''s evidence of the episode stays left out, its newest hour counts');
SELECT test.eq((SELECT count(*) FROM test.advisories('r-5')), 1::bigint, 'ending sends nothing');

-- r-5 breaks again: a new episode, a new advisory (since: the hour it broke).
SELECT test.outcomes('r-5', 'm1', 'pa', 0, 200, 0.10);
SELECT test.publish();
SELECT count(*) FROM centralcloud.ingest_routing_events();
SELECT count(*) FROM centralcloud.learn_complexity_scores();
SELECT test.eq((SELECT (instance_id, since)::text FROM centralcloud.instance_anomalies),
               ('r-5', date_trunc('hour', now()))::text, 'a new episode, since the hour it broke');
SELECT test.eq((SELECT count(*) FROM test.advisories('r-5')), 2::bigint, 'one advisory per episode');

-- ---------------------------------------------------------------------------------------
-- Policy seed: its counters have no instance; while r-5 is flagged, its share of what
-- arrived since the last step is taken out (the rate of the others' rows in the window).
-- ---------------------------------------------------------------------------------------
SELECT test.outcomes('r-5', 'm1', 'pa', 0, 200, 0.10);
SELECT test.publish();
SELECT count(*) FROM centralcloud.ingest_routing_events();
SET centralcloud.learning_policy = 'seed';
SELECT test.eq((SELECT success_rate > 95 AND reason LIKE 'success rate %> 95.0%: +0.2; %left out: r-5 via pa%'
                  FROM centralcloud.learn_complexity_scores(true) WHERE model = 'm1'), true,
               'seed steps on the others'' rate');
SET centralcloud.outlier_threshold = 0;
SET centralcloud.min_agreeing_instances = 1;
SELECT test.eq((SELECT success_rate < 20 AND reason LIKE 'success rate %<= 95.0%: -0.2; %'
                  FROM centralcloud.learn_complexity_scores(true) WHERE model = 'm1'), true,
               'without consensus it would step on r-5''s failures');
RESET centralcloud.outlier_threshold;
RESET centralcloud.min_agreeing_instances;
RESET centralcloud.learning_policy;

-- Dashboards read the view, not the table.
CREATE ROLE t24_dash LOGIN IN ROLE centralcloud_reader;
SET ROLE t24_dash;
SELECT test.eq((SELECT count(*) FROM centralcloud.instance_anomalies), 1::bigint, 'readers see the view');
SELECT test.fails_with('SELECT * FROM centralcloud.instance_anomaly_episodes', '42501', 'not the table');
RESET ROLE;
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'exact');

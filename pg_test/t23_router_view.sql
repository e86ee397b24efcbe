-- The router's side (issue 14): a new instance starts in sync (its queue opens with a snapshot
-- of every cell, then the updates); a router role may check an event, read the catalog, find
-- its queue, read its queue's metrics and its own instances' dead letters, and read the seed's
-- shared queue; never other instances' dead letters, records or queues. instance_sync shows
-- unread updates and which instances route with stale scores.
\ir lib.sql
SET client_min_messages = warning;
CREATE ROLE t23_router_a LOGIN IN ROLE centralcloud_publisher;
CREATE ROLE t23_router_b LOGIN IN ROLE centralcloud_publisher;
CREATE ROLE t23_dashboard LOGIN IN ROLE centralcloud_reader;
GRANT USAGE ON SCHEMA test TO t23_router_a, t23_dashboard;

-- A catalog before the instance subscribes.
SELECT centralcloud.set_complexity_score('gpt-4o', 'simple', 3.5, 'operator');
SELECT centralcloud.set_complexity_score('claude', 'complex', 4.25, 'operator');
SELECT centralcloud.subscribe_instance('a-1', 't23_router_a') AS queue_a \gset
SELECT centralcloud.subscribe_instance('b-1', 't23_router_b') AS queue_b \gset
SELECT pgmq.format_table_name(:'queue_a', 'q') AS queue_a_table \gset
SELECT centralcloud.set_complexity_score('gpt-4o', 'simple', 3.0, 'operator: after a-1 subscribed');
SELECT test.eq((SELECT string_agg(format('%s %s %s->%s%s', message ->> 'model', message ->> 'complexity',
                                         coalesce(message ->> 'old_score', 'null'), message ->> 'new_score',
                                         CASE WHEN message ? 'snapshot' THEN ' snapshot' ELSE '' END),
                                  '; ' ORDER BY msg_id)
                  FROM pgmq.:"queue_a_table"),
               'claude complex null->4.25 snapshot; gpt-4o simple null->3.5 snapshot; gpt-4o simple 3.5->3.0',
               'snapshot first, then the updates');
-- Subscribing again (a new reader) sends no second snapshot.
SELECT centralcloud.subscribe_instance('a-1', 't23_router_a');
SELECT test.eq((SELECT count(*) FROM pgmq.:"queue_a_table"), 3::bigint, 'one snapshot per subscription');

-- Dead letters of both instances, and of a message too broken to name one.
SELECT pgmq.send_batch('model_routing_decisions', ARRAY[
    test.event('a-1', 'gpt-4o', 'simple', 'routed', NULL, 3.0),
    jsonb_set(test.event('a-1', 'gpt-4o', 'simple', 'routed'), '{routing_decision,complexity}', '"huge"'),
    jsonb_set(test.event('b-1', 'gpt-4o', 'simple', 'routed'), '{routing_decision,outcome}', '"maybe"'),
    '{"instance_id": 42}'::jsonb]);
SELECT test.eq((SELECT (ingested, rejected)::text FROM centralcloud.ingest_routing_events()), '(1,3)', 'ingested');

SET ROLE t23_router_a;
SELECT test.eq(centralcloud.routing_event_rejection(test.event('a-1', 'gpt-4o', 'simple', 'routed')::text), NULL,
               'a router checks an event');
SELECT test.eq((SELECT string_agg(model || ' ' || complexity || ' ' || score, '; ' ORDER BY model)
                  FROM centralcloud.score_snapshot()),
               'claude complex 4.25; gpt-4o simple 3', 'score_snapshot');
SELECT test.eq(centralcloud.instance_queue('a-1'), :'queue_a', 'its queue name');
SELECT test.fails_with($$SELECT centralcloud.instance_queue('nobody')$$, '42704', 'not subscribed');
SELECT test.eq((SELECT string_agg(instance_id || ' ' || reason_code, '; ') FROM centralcloud.instance_dead_letters),
               'a-1 not_allowed', 'its own dead letters only');
SELECT test.eq((SELECT queue_length FROM pgmq.metrics(:'queue_a')), 3::bigint, 'its queue''s metrics');
SELECT test.eq((SELECT count(*) FROM pgmq.read('model_score_updates', 30, 10)), 3::bigint,
               'the seed''s shared queue (compatibility)');
SELECT test.fails_with(format('SELECT * FROM pgmq.metrics(%L)', :'queue_b'), '42501', 'another instance''s metrics');
SELECT test.fails_with(format('SELECT * FROM pgmq.read(%L, 30, 1)', :'queue_b'), '42501', 'another instance''s queue');
SELECT test.fails_with('SELECT * FROM centralcloud.routing_events_rejected', '42501', 'all dead letters');
SELECT test.fails_with('SELECT * FROM centralcloud.routing_records', '42501', 'the audit trail');
SELECT test.fails_with('SELECT * FROM centralcloud.score_subscriptions', '42501', 'the subscriptions');
SELECT test.fails_with('SELECT * FROM centralcloud.instance_sync', '42501', 'instance_sync is the dashboards''');
SELECT test.fails_with($$UPDATE pgmq.q_model_score_updates SET message = '{}'$$, '42501', 'rewrite a shared update');
RESET ROLE;

-- instance_sync: a-1 routes with the current score, b-1 with the one before the change
-- (events a few minutes ahead, so after the change's minute of grace).
INSERT INTO test.published (msg)
SELECT test.event(i, 'gpt-4o', 'simple', 'routed', NULL, s, now() + interval '3 minutes')
  FROM (VALUES ('a-1', 3.0), ('a-1', 3.0), ('b-1', 3.5), ('b-1', 3.0)) AS v(i, s);
SELECT test.publish();
SELECT FROM centralcloud.ingest_routing_events();
SET ROLE t23_dashboard;
SELECT test.eq((SELECT string_agg(format('%s unread %s events %s stale %s rate %s', instance_id, unread_updates,
                                         recent_events, stale_events, stale_rate), '; ')
                  FROM centralcloud.instance_sync),
               'a-1 unread 3 events 2 stale 0 rate 0; b-1 unread 3 events 2 stale 1 rate 50',
               'instance_sync');
RESET ROLE;

REVOKE USAGE ON SCHEMA test FROM t23_router_a, t23_dashboard;
SELECT centralcloud.unsubscribe_instance('a-1'), centralcloud.unsubscribe_instance('b-1');
DROP ROLE t23_router_a, t23_router_b, t23_dashboard;

-- pg_test/failover.sh's checks, on the promoted server once the queue is drained. Variables:
-- base_us (the routers' tag base, µs since the epoch), acks and doubts (CSV of the routers'
-- logs), edge (the score updates edge-1 read), stopped_at (epoch of the stop), sync (the
-- primary's synchronous_standby_names, or async).
\ir lib.sql
\o /dev/null
CREATE TABLE test.acks (router text, seq bigint, msg_id bigint, at float8, PRIMARY KEY (router, seq));
CREATE TABLE test.doubts (router text, seq bigint, at float8, PRIMARY KEY (router, seq));
CREATE TABLE test.edge (msg_id bigint PRIMARY KEY, model text, complexity text, new_score float8);
\set copy_acks '\\copy test.acks FROM ' :'acks' ' WITH (FORMAT csv)'
:copy_acks
\set copy_doubts '\\copy test.doubts FROM ' :'doubts' ' WITH (FORMAT csv)'
:copy_doubts
\set copy_edge '\\copy test.edge FROM ' :'edge' ' WITH (FORMAT csv)'
:copy_edge

-- Where each routed event is, by its tag (router, seq): an acknowledged msg_id was issued by the
-- old primary, and only the tag tells whether the message found under it is the same one.
CREATE TEMP TABLE found AS
WITH tagged AS (
    SELECT r.instance_id AS router, r."timestamp" AS ts, r.msg_id, 'recorded' AS place
      FROM centralcloud.routing_records r WHERE r.instance_id LIKE 'router-%'
    UNION ALL
    SELECT x.message->>'instance_id', (x.message->>'timestamp')::timestamptz, x.msg_id,
           'dead-lettered (' || x.reason_code || ')'
      FROM centralcloud.routing_events_rejected x WHERE x.message->>'instance_id' LIKE 'router-%'
    UNION ALL
    SELECT q.message->>'instance_id', (q.message->>'timestamp')::timestamptz, q.msg_id, 'queued'
      FROM pgmq.q_model_routing_decisions q WHERE q.message->>'instance_id' LIKE 'router-%')
SELECT router, (extract(epoch FROM ts) * 1000000)::bigint - :base_us AS seq, msg_id, place FROM tagged;

-- What check_invariants() must account for: the events of the first phase (sent and committed
-- on the primary before any stop), every acknowledged send the server has, and the in-doubt
-- sends that did commit.
CREATE TABLE test.accountable AS
SELECT msg_id FROM test.sent
UNION SELECT f.msg_id FROM found f JOIN test.acks a USING (router, seq)
UNION SELECT f.msg_id FROM found f JOIN test.doubts d USING (router, seq);

SELECT test.empty($$SELECT router, seq, count(*) FROM found GROUP BY 1, 2 HAVING count(*) > 1$$,
                  'an event in more than one place');
SELECT test.empty($$SELECT * FROM found f WHERE NOT EXISTS (SELECT 1 FROM test.acks a WHERE (a.router, a.seq) = (f.router, f.seq))
                                          AND NOT EXISTS (SELECT 1 FROM test.doubts d WHERE (d.router, d.seq) = (f.router, f.seq))$$,
                  'found but neither acknowledged nor in doubt');
SELECT test.empty($$SELECT a.*, f.msg_id AS found_msg_id FROM test.acks a JOIN found f USING (router, seq)
                     WHERE f.msg_id <> a.msg_id$$, 'an acknowledged event under another msg_id');
SELECT test.empty($$SELECT * FROM found WHERE (seq % 100 = 99) <> (place = 'dead-lettered (missing_field)')
                     AND place <> 'queued'$$, 'recorded or dead-lettered as its content says');
SELECT test.empty($$SELECT * FROM centralcloud.check_invariants('test.accountable')$$, 'check_invariants');

-- Acknowledged sends the promoted server never received: none with synchronous replication.
CREATE TEMP TABLE lost AS
SELECT a.* FROM test.acks a WHERE NOT EXISTS (SELECT 1 FROM found f WHERE (f.router, f.seq) = (a.router, a.seq));
SELECT :'sync' = 'async' AS async \gset
\if :async
\else
SELECT test.empty('SELECT * FROM lost', 'acknowledged but lost with synchronous replication');
\endif

-- edge-1 read every score change of the promoted server's history exactly once, in order, the
-- operator's change after the failover included (learning may have moved that cell again since).
SELECT test.eq((SELECT count(*) FROM test.edge), (SELECT count(*) FROM centralcloud.score_history), 'score updates read by edge-1');
SELECT test.empty($$
    WITH h AS (SELECT row_number() OVER (ORDER BY id) AS n, model_name, complexity_level, new_score FROM centralcloud.score_history),
         e AS (SELECT row_number() OVER (ORDER BY msg_id) AS n, model, complexity, new_score FROM test.edge)
    SELECT * FROM h FULL JOIN e USING (n)
     WHERE (h.model_name, h.complexity_level, h.new_score) IS DISTINCT FROM (e.model, e.complexity, e.new_score)$$,
    'edge-1 read the history in order');
SELECT test.eq((SELECT count(*) FROM test.edge WHERE new_score = 1.2345), 1::bigint, 'the change after the failover reached edge-1');

\o
\pset footer off
SELECT :'sync' AS replication,
       (SELECT count(*) FROM test.acks) AS acknowledged,
       (SELECT count(*) FROM test.acks a JOIN found f USING (router, seq) WHERE f.place = 'recorded') AS recorded,
       (SELECT count(*) FROM test.acks a JOIN found f USING (router, seq) WHERE f.place LIKE 'dead%') AS dead_lettered,
       (SELECT count(*) FROM test.acks a JOIN found f USING (router, seq) WHERE f.place = 'queued') AS queued,
       (SELECT count(*) FROM lost) AS lost,
       (SELECT count(*) FROM test.doubts) AS in_doubt,
       (SELECT count(*) FROM test.doubts d JOIN found f USING (router, seq)) AS in_doubt_committed,
       (SELECT count(*) FROM test.edge) AS score_updates_read;
SELECT count(*) AS lost, round((:stopped_at - min(at))::numeric * 1000, 1) AS oldest_lost_ms_before_stop,
       round((:stopped_at - max(at))::numeric * 1000, 1) AS newest_lost_ms_before_stop
  FROM lost;

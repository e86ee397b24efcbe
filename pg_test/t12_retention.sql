-- Retention: records older than centralcloud.routing_records_retention go by dropping whole
-- daily partitions (and a DELETE of stragglers in the default partition); metrics and rollups
-- stay; every removal is logged. Partitions are created ahead, gaps are filled.
\ir lib.sql
LOAD 'centralcloud';

SELECT test.eq(current_setting('centralcloud.routing_records_retention'), '30d', 'default retention');
SELECT centralcloud.add_routing_partition(current_date - d) FROM unnest(ARRAY[40, 35, 10]) AS d;
SELECT test.eq(centralcloud.add_routing_partition(current_date - 40),
               'routing_records_p' || to_char(current_date - 40, 'YYYYMMDD'), 'idempotent');

-- Messages enqueued long ago (a publisher's clock, a backlog, a restore) still land in today's
-- partition: received_at is when ingest claimed them, and only the server sets it.
INSERT INTO pgmq.q_model_routing_decisions (read_ct, enqueued_at, vt, message)
SELECT 0, now() - make_interval(days => d), now(), test.event('singularity-' || d, 'gpt-4o', 'simple', 'success', 100 + d)
  FROM unnest(ARRAY[50, 40, 40, 35, 10]) AS d;
INSERT INTO test.published (msg) SELECT test.events(20);
SELECT test.publish();
SELECT test.eq((SELECT ingested FROM centralcloud.ingest_routing_events()), 25::bigint, 'all ingested');
SELECT test.eq((SELECT string_agg(tableoid::regclass::text || ':' || n, ' ') FROM
                 (SELECT tableoid, count(*) AS n FROM centralcloud.routing_records GROUP BY 1) x),
               'centralcloud.routing_records_p' || to_char(current_date, 'YYYYMMDD') || ':25',
               'every record in the partition of its claim, whatever its enqueue time');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records WHERE enqueued_at < now() - interval '9 days'), 5::bigint,
               'enqueue times kept');

-- Time passes: the records age as if claimed when they were enqueued (the rows move between
-- partitions); the 50-day-old one has no partition and goes to the default.
UPDATE centralcloud.routing_records SET received_at = enqueued_at WHERE enqueued_at < now() - interval '1 day';
SELECT test.eq((SELECT string_agg(tableoid::regclass::text || ':' || n, ' ' ORDER BY tableoid::regclass::text)
                  FROM (SELECT tableoid, count(*) AS n FROM centralcloud.routing_records GROUP BY 1) x),
               'centralcloud.routing_records_default:1 '
               || 'centralcloud.routing_records_p' || to_char(current_date - 40, 'YYYYMMDD') || ':2 '
               || 'centralcloud.routing_records_p' || to_char(current_date - 35, 'YYYYMMDD') || ':1 '
               || 'centralcloud.routing_records_p' || to_char(current_date - 10, 'YYYYMMDD') || ':1 '
               || 'centralcloud.routing_records_p' || to_char(current_date, 'YYYYMMDD') || ':20',
               'each record in its day''s partition, the one without a partition in the default');
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'exact before retention');

-- A day whose rows sit in the default partition gets its partition all the same: the rows move.
SELECT test.eq(centralcloud.add_routing_partition(current_date - 50),
               'routing_records_p' || to_char(current_date - 50, 'YYYYMMDD'), 'partition over default rows created');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records_default), 0::bigint, 'default partition emptied');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records WHERE tableoid::regclass::text
                  = 'centralcloud.routing_records_p' || to_char(current_date - 50, 'YYYYMMDD')), 1::bigint,
               'its row moved into it');
-- And one straggler older than any partition, for the default partition's sweep.
UPDATE centralcloud.routing_records SET received_at = now() - interval '60 days'
 WHERE msg_id = (SELECT min(msg_id) FROM centralcloud.routing_records WHERE enqueued_at > now() - interval '1 day');

CREATE TEMP TABLE kept_before AS
SELECT (SELECT sum(usage_count + success_count + failure_count) FROM centralcloud.model_routing_metrics) AS metrics,
       (SELECT sum(usage_count + success_count + failure_count) FROM centralcloud.routing_rollup_hourly) AS rollup,
       (SELECT string_agg(latency_sketch::text, ',' ORDER BY model_name, complexity_level) FROM centralcloud.model_routing_metrics) AS sketches;

-- Retention off: nothing removed.
SET centralcloud.routing_records_retention = 0;
SELECT test.empty($$SELECT * FROM centralcloud.run_maintenance() WHERE action <> 'created partition'$$, 'retention 0 keeps all');
RESET centralcloud.routing_records_retention;

CREATE TEMP TABLE removed AS SELECT * FROM centralcloud.run_maintenance();
SELECT test.eq((SELECT string_agg(object || ':' || rows_removed, ' ' ORDER BY object) FROM removed
                 WHERE action = 'removed expired records'),
               'routing_records_default:1 '
               || 'routing_records_p' || to_char(current_date - 50, 'YYYYMMDD') || ':1 '
               || 'routing_records_p' || to_char(current_date - 40, 'YYYYMMDD') || ':2 '
               || 'routing_records_p' || to_char(current_date - 35, 'YYYYMMDD') || ':1',
               'expired partitions dropped, default swept');
SELECT test.eq(to_regclass('centralcloud.routing_records_p' || to_char(current_date - 40, 'YYYYMMDD')), NULL::regclass, 'partition gone');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records), 20::bigint, '10-day-old and today''s records kept');
SELECT test.eq((SELECT string_agg(partition_name || ':' || rows_removed, ' ' ORDER BY partition_name) FROM centralcloud.retention_log),
               (SELECT string_agg(object || ':' || rows_removed, ' ' ORDER BY object) FROM removed WHERE action = 'removed expired records'),
               'logged');
SELECT test.eq((SELECT (sum(usage_count + success_count + failure_count)) FROM centralcloud.model_routing_metrics),
               (SELECT metrics FROM kept_before), 'metrics kept');
SELECT test.eq((SELECT (sum(usage_count + success_count + failure_count)) FROM centralcloud.routing_rollup_hourly),
               (SELECT rollup FROM kept_before), 'rollups kept');
SELECT test.eq((SELECT string_agg(latency_sketch::text, ',' ORDER BY model_name, complexity_level) FROM centralcloud.model_routing_metrics),
               (SELECT sketches FROM kept_before), 'sketches kept');
SELECT test.empty('SELECT * FROM centralcloud.run_maintenance()', 'second run: nothing to do');
-- The checker says what it cannot check any more, and still checks the rest.
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'checker after retention');

-- Partitions ahead, and gaps filled: drop the future ones, as if nobody ran for days.
DO $$
DECLARE d int;
BEGIN
    FOR d IN 1..2 LOOP
        EXECUTE format('DROP TABLE centralcloud.%I', 'routing_records_p' || to_char(current_date + d, 'YYYYMMDD'));
    END LOOP;
END $$;
SELECT test.eq((SELECT array_agg(object ORDER BY object) FROM centralcloud.run_maintenance() WHERE action = 'created partition'),
               ARRAY['routing_records_p' || to_char(current_date + 1, 'YYYYMMDD'),
                     'routing_records_p' || to_char(current_date + 2, 'YYYYMMDD')], 'future partitions recreated');
-- Ingest needs only tomorrow's: it creates it when missing.
DO $$ BEGIN EXECUTE format('DROP TABLE centralcloud.%I', 'routing_records_p' || to_char(current_date + 1, 'YYYYMMDD')); END $$;
SELECT pgmq.send('model_routing_decisions', test.event('singularity-1', 'gpt-4o', 'simple', 'routed'));
SELECT test.eq((SELECT ingested FROM centralcloud.ingest_routing_events()), 1::bigint, 'ingest after a missing partition');
SELECT test.eq(to_regclass('centralcloud.routing_records_p' || to_char(current_date + 1, 'YYYYMMDD')) IS NOT NULL, true,
               'ingest created tomorrow''s partition');
-- Partitions are not members of the extension: pg_dump dumps them with their rows.
SELECT test.empty($$
    SELECT c.relname FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
     WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'centralcloud') AND d.deptype = 'e'
       AND c.relname ~ '^routing_records_p'
$$, 'partitions are plain tables');

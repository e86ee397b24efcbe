-- Several databases in one cluster (pg_cron and the launcher run here, in postgres): pg_cron
-- scheduling for another database through pg_cron_statements(); one worker per database listed
-- in centralcloud.database, started and stopped on SIGHUP; a database that is not listed says
-- so; a listed database created later gets its worker; the launcher restarted.
\ir lib.sql
SET client_min_messages = notice;
DROP DATABASE IF EXISTS w03_other;
DROP DATABASE IF EXISTS w03_later;
CREATE DATABASE w03_other;
SELECT test.wait_until($$SELECT state IN ('idle', 'ingesting') FROM centralcloud.worker_status$$, '30 s', 'postgres served');
SELECT pid AS postgres_worker FROM centralcloud.worker_status \gset

\c w03_other
SET client_min_messages = warning;
CREATE EXTENSION centralcloud CASCADE;
\ir lib.sql
SET client_min_messages = notice;
SELECT test.eq((SELECT state FROM centralcloud.worker_status),
               'not served: add this database to centralcloud.database', 'not served, not starting');

-- pg_cron runs in postgres: scheduling here says where and how.
SELECT test.fails_with('SELECT * FROM centralcloud.schedule_with_pg_cron()', '55000', 'pg_cron in another database');
SELECT string_agg(statement, E'\n' ORDER BY jobname) AS cron_statements FROM centralcloud.pg_cron_statements() \gset
INSERT INTO test.published (msg) SELECT test.events(100);
SELECT test.publish();

\c postgres
:cron_statements
:cron_statements
SELECT test.eq((SELECT string_agg(jobname || ' ' || command || ' ' || database, '; ' ORDER BY jobname)
                  FROM cron.job WHERE database = 'w03_other'),
    'centralcloud-ingest@w03_other CALL centralcloud.drain_routing_events() w03_other; '
    || 'centralcloud-learn@w03_other SELECT count(*) FROM centralcloud.learn_complexity_scores() w03_other; '
    || 'centralcloud-maintenance@w03_other SELECT count(*) FROM centralcloud.run_maintenance() w03_other',
    'jobs for the other database, created once');
SELECT test.wait_until($$SELECT EXISTS (SELECT 1 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                                          WHERE j.jobname = 'centralcloud-ingest@w03_other' AND d.status = 'succeeded')$$,
                       '90 s', 'cron ran the ingest job in the other database');
-- The README's statement to unschedule them, in pg_cron's database.
SELECT test.eq((SELECT count(*) FROM cron.job j, LATERAL cron.unschedule(j.jobid) AS gone
                 WHERE j.database = 'w03_other' AND j.jobname LIKE 'centralcloud-%' AND gone), 3::bigint, 'unscheduled');

\c w03_other
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records), 100::bigint, 'cron ingested in the other database');
SELECT test.empty('SELECT * FROM test.metrics_diff', 'metrics exact');

-- Listed: a worker of its own, started on SIGHUP; the postgres worker is not restarted.
ALTER SYSTEM SET centralcloud.database = 'postgres, w03_other';
SELECT pg_reload_conf();
-- (A backend applies a reload between statements: the status, which reads the setting, is
-- checked after the worker is seen.)
SELECT test.wait_until($$SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'centralcloud worker' AND datname = 'w03_other')$$,
                       '30 s', 'worker started on SIGHUP');
SELECT test.wait_until($$SELECT state IN ('idle', 'ingesting') FROM centralcloud.worker_status$$, '30 s', 'served after SIGHUP');
INSERT INTO test.published (msg) SELECT test.events(200, 1000);
SELECT test.publish();
SELECT test.wait_until($$SELECT count(*) = 300 FROM centralcloud.routing_records$$, '30 s', 'ingested by its worker');
SELECT test.empty('SELECT * FROM test.metrics_diff', 'metrics exact with the worker');
SELECT pid AS other_worker FROM centralcloud.worker_status \gset
SELECT test.eq((SELECT datname::text FROM pg_stat_activity WHERE pid = :other_worker), 'w03_other', 'connected to its database');
SELECT test.eq((SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'centralcloud worker'), 2::bigint, 'one worker per database');
SELECT test.eq((SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'centralcloud launcher'), 1::bigint, 'one launcher');
SELECT test.eq((SELECT count(*) FROM pg_stat_activity WHERE pid = :postgres_worker), 1::bigint, 'postgres worker not restarted');

-- No longer listed: its worker stops for good, and the status says why.
ALTER SYSTEM SET centralcloud.database = 'postgres';
SELECT pg_reload_conf();
SELECT test.wait_until(format('SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)', :other_worker), '10 s', 'worker stopped');
SELECT test.eq((SELECT state FROM centralcloud.worker_status),
               'not served: add this database to centralcloud.database', 'not served after SIGHUP');
SELECT test.eq((SELECT count(*) FROM pg_stat_activity WHERE pid = :postgres_worker), 1::bigint, 'postgres worker still there');

-- A listed database that does not exist yet gets its worker once it is created.
\c postgres
ALTER SYSTEM SET centralcloud.database = 'postgres,w03_later';
SELECT pg_reload_conf();
CREATE DATABASE w03_later;
SELECT test.wait_until($$SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'centralcloud worker' AND datname = 'w03_later')$$,
                       '30 s', 'worker for a database created later');

-- The launcher restarted (pg_terminate_backend): it stops its workers and starts them again.
SELECT pid AS launcher FROM pg_stat_activity WHERE backend_type = 'centralcloud launcher' \gset
SELECT pg_terminate_backend(:launcher);
SELECT test.wait_until(format($$SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'centralcloud worker' AND pid <> %s$$, :postgres_worker),
                       '30 s', 'workers restarted with the launcher');
SELECT test.wait_until($$SELECT state IN ('idle', 'ingesting') FROM centralcloud.worker_status$$, '30 s', 'postgres served again');
SELECT test.eq((SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'centralcloud launcher' AND pid <> :launcher), 1::bigint, 'new launcher');

ALTER SYSTEM RESET ALL;
SELECT pg_reload_conf();
SELECT test.wait_until($$SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname IN ('w03_other', 'w03_later'))$$,
                       '10 s', 'workers of unlisted databases gone');
DROP DATABASE w03_other;
DROP DATABASE w03_later;

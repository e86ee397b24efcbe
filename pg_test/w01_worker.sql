-- The background worker, in a cluster with shared_preload_libraries = 'pg_cron,centralcloud':
-- events are ingested with no manual call, learning runs on its interval, the worker comes
-- back after being killed with exact counts, errors do not stop it, SIGHUP applies settings.
\ir lib.sql
SET client_min_messages = notice;

SELECT test.wait_until($$SELECT state IN ('idle', 'ingesting') FROM centralcloud.worker_status$$, '30 s', 'worker running');
SELECT pid AS first_pid FROM centralcloud.worker_status \gset

-- Published events are ingested with no manual call.
INSERT INTO test.published (msg) SELECT test.events(2500);
INSERT INTO test.published (msg, expected) VALUES ('{"bad": 1}', 'missing_field');
SELECT test.publish();
SELECT test.wait_until($$SELECT count(*) = 2500 FROM centralcloud.routing_records$$, '30 s', 'ingested by the worker');
SELECT test.wait_until($$SELECT count(*) = 1 FROM centralcloud.routing_events_rejected$$, '10 s', 'dead letter by the worker');
SELECT test.empty('SELECT * FROM test.metrics_diff', 'worker metrics exact');
SELECT test.wait_until($$SELECT ingested_since_start = 2500 AND rejected_since_start = 1 AND last_ingest_at IS NOT NULL FROM centralcloud.worker_status$$, '10 s', 'status counters');
-- The worker also ran maintenance when it started: partitions for the next days exist.
SELECT test.eq(to_regclass('centralcloud.routing_records_p' || to_char((now() AT TIME ZONE 'UTC')::date + 2, 'YYYYMMDD')) IS NOT NULL,
               true, 'maintenance created partitions ahead');
-- A dashboard reader sees the running worker's state (not its own lack of privileges).
CREATE ROLE w01_dashboard IN ROLE centralcloud_reader;
GRANT USAGE ON SCHEMA test TO w01_dashboard;
SET ROLE w01_dashboard;
SELECT test.eq((SELECT state IN ('idle', 'ingesting') FROM centralcloud.worker_status), true, 'reader sees the worker');
SELECT test.eq((SELECT worker_state IN ('idle', 'ingesting') FROM centralcloud.ingest_health), true, 'reader sees it in ingest_health');
RESET ROLE;
REVOKE USAGE ON SCHEMA test FROM w01_dashboard;
DROP ROLE w01_dashboard;

-- Learning on its interval (shortened, and with a lower sample minimum, through SIGHUP).
ALTER SYSTEM SET centralcloud.learn_interval_s = 1;
ALTER SYSTEM SET centralcloud.min_samples_for_learning = 10;
SELECT pg_reload_conf();
SELECT test.wait_until($$SELECT count(*) > 0 FROM centralcloud.score_history$$, '30 s', 'learning ran on its interval');
SELECT test.wait_until($$SELECT last_learn_at IS NOT NULL FROM centralcloud.worker_status$$, '10 s', 'learn time recorded');

-- Killed, it comes back, and nothing is lost or counted twice.
SELECT pg_terminate_backend(:first_pid);
INSERT INTO test.published (msg) SELECT test.events(1500, 100000);
SELECT test.publish();
SELECT test.wait_until(format($$SELECT pid <> %s AND state IN ('idle', 'ingesting') FROM centralcloud.worker_status$$, :first_pid), '30 s', 'worker restarted');
SELECT test.wait_until($$SELECT count(*) = 4000 FROM centralcloud.routing_records$$, '30 s', 'ingested after the restart');
SELECT test.empty('SELECT * FROM test.metrics_diff', 'metrics exact after the restart');
SELECT test.eq((SELECT count(DISTINCT msg_id) FROM centralcloud.routing_records), 4000::bigint, 'no message twice');

-- A batch that raises an error (a failing trigger on the metrics) is rolled back and logged;
-- the worker keeps running, and the events are ingested once the cause is gone.
CREATE FUNCTION test.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'metrics are read-only for a moment'; END $$;
CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON centralcloud.model_routing_metrics
    FOR EACH ROW EXECUTE FUNCTION test.refuse();
INSERT INTO test.published (msg) SELECT test.events(300, 200000);
SELECT test.publish();
SELECT test.wait_until($$SELECT state = 'error' AND last_error LIKE '%metrics are read-only for a moment%' FROM centralcloud.worker_status$$, '30 s', 'error recorded');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records), 4000::bigint, 'failed batches rolled back');
DROP TRIGGER refuse ON centralcloud.model_routing_metrics;
SELECT test.wait_until($$SELECT count(*) = 4300 FROM centralcloud.routing_records$$, '30 s', 'ingested once the cause is gone');
SELECT test.empty('SELECT * FROM test.metrics_diff', 'metrics exact after the errors');
SELECT test.wait_until($$SELECT state IN ('idle', 'ingesting') FROM centralcloud.worker_status$$, '10 s', 'worker healthy again');

-- worker_enabled = off pauses it without a restart; on resumes it.
ALTER SYSTEM SET centralcloud.worker_enabled = off;
SELECT pg_reload_conf();
SELECT test.wait_until($$SELECT state = 'disabled' FROM centralcloud.worker_status$$, '10 s', 'disabled by SIGHUP');
SELECT pid AS same_pid FROM centralcloud.worker_status \gset
ALTER SYSTEM SET centralcloud.worker_enabled = on;
SELECT pg_reload_conf();
SELECT test.wait_until($$SELECT state = 'idle' FROM centralcloud.worker_status$$, '10 s', 'enabled again');
SELECT test.eq((SELECT pid FROM centralcloud.worker_status), :same_pid, 'no restart for a reload');

-- SIGTERM ends it promptly (the postmaster then restarts it: it is not a crash).
SELECT pg_terminate_backend(:same_pid);
SELECT test.wait_until(format('SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)', :same_pid), '5 s', 'worker ended on SIGTERM');

ALTER SYSTEM RESET ALL;
SELECT pg_reload_conf();

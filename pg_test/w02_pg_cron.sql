-- pg_cron scheduling (worker paused so the jobs do the work): jobs are created idempotently,
-- the job body drains the backlog batch by batch, cron itself runs it and records success,
-- and unscheduling removes the jobs.
\ir lib.sql
SET client_min_messages = notice;
ALTER SYSTEM SET centralcloud.worker_enabled = off;
SELECT pg_reload_conf();
SELECT test.wait_until($$SELECT state = 'disabled' FROM centralcloud.worker_status$$, '10 s', 'worker paused');
TRUNCATE centralcloud.routing_records, centralcloud.model_routing_metrics, centralcloud.routing_events_rejected;
TRUNCATE test.published;

SELECT * FROM centralcloud.schedule_with_pg_cron();
SELECT * FROM centralcloud.schedule_with_pg_cron();
SELECT test.eq((SELECT string_agg(jobname || ' ' || schedule || ' ' || command || ' ' || database, '; ' ORDER BY jobname) FROM cron.job),
    'centralcloud-ingest * * * * * CALL centralcloud.drain_routing_events() postgres; '
    || 'centralcloud-learn */5 * * * * SELECT count(*) FROM centralcloud.learn_complexity_scores() postgres; '
    || 'centralcloud-maintenance 17 * * * * SELECT count(*) FROM centralcloud.run_maintenance() postgres',
    'jobs created once');

-- The job body, run directly: drains a backlog larger than a batch, committing per batch.
INSERT INTO test.published (msg) SELECT test.events(3500);
SELECT test.publish();
SET centralcloud.batch_size = 1000;
CALL centralcloud.drain_routing_events();
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records), 3500::bigint, 'drained by the job body');
SELECT test.eq(test.queue_length(), 0::bigint, 'queue empty');

-- cron itself runs the job within a minute and records success.
INSERT INTO test.published (msg) SELECT test.events(100, 50000);
SELECT test.publish();
SELECT test.wait_until($$SELECT EXISTS (SELECT 1 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                                          WHERE j.jobname = 'centralcloud-ingest' AND d.status = 'succeeded')$$,
                       '90 s', 'cron ran the ingest job');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records), 3600::bigint, 'cron ingested');
SELECT test.empty('SELECT * FROM test.metrics_diff', 'metrics exact');

SELECT test.eq(centralcloud.unschedule_pg_cron(), 3, 'unscheduled');
SELECT test.eq((SELECT count(*) FROM cron.job), 0::bigint, 'jobs removed');

ALTER SYSTEM RESET ALL;
SELECT pg_reload_conf();

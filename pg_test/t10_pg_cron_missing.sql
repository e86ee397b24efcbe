-- Without pg_cron, scheduling says so clearly; the worker status says the worker is not preloaded.
\ir lib.sql
DO $$
BEGIN
    PERFORM centralcloud.schedule_with_pg_cron();
    RAISE EXCEPTION 'FAILED: scheduled without pg_cron';
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    PERFORM test.eq(SQLERRM, 'centralcloud: pg_cron is not installed in this database', 'pg_cron missing');
END $$;
SELECT test.fails_with('SELECT centralcloud.unschedule_pg_cron()', '55000', 'unschedule without pg_cron');
SELECT test.eq((SELECT state FROM centralcloud.worker_status), 'not preloaded: schedule with pg_cron or call ingest yourself', 'not preloaded');

-- centralcloud 0.1.0 -> 0.2.0
--
-- Why: the security and reliability fixes of 0.2.0.
-- - routing_records is partitioned by the time ingest claims a message (received_at), which only
--   the server sets; pgmq's enqueue time moves to a new column enqueued_at and, with msg_id,
--   still names a message for duplicate detection. add_routing_partition() moves rows of the
--   new day out of the default partition instead of failing.
-- - Publishers get exactly what pgmq.send needs on the event queue (no OVERRIDING SYSTEM VALUE,
--   no enqueued_at, vt of others, read_ct): grant_queue_privileges(). Score-update queues get
--   one reader each, with column-restricted rights (existing subscriptions are tightened here).
-- - check_invariants() runs with its caller's rights (its regclass argument is the caller's).
-- - drain_routing_events() pins its search_path in each of its transactions.
-- - Dead letters keep a bounded prefix of huge messages (with length and SHA-256) and have a
--   retention (drop_expired_dead_letters()).
-- - routing_records (with its default partition and sequence) is no longer a member of the
--   extension: pg_dump dumps the audit trail whole and a dump restores without errors.
-- - Learning policy bayes: each cell's prior score and regime start, the change points it
--   detects (learning_changes, view learning_changes_recent).
-- - Health of providers and models (health_outcomes, health_states, health_history, views
--   model_health and health_updates_recent, evaluate_model_health()), published to every
--   subscribed instance; capabilities and prices; each cell's p50/p95; recommend_model() and
--   the table of its candidates (recommend_candidates, kept by triggers).
-- - Consensus across instances (instance_anomaly_episodes, view instance_anomalies), a snapshot
--   for new subscribers, instance_sync; dashboards in one unit per quantity (percent(), ms(),
--   score4()), time series (routing_hourly, routing_timeseries(), latency_sketch_quantiles()),
--   dead letters counted per reason (dead_letter_counts) for Prometheus.
-- - Ingest's batch statement judges each message once and inserts the validator's values as
--   typed columns (routing_event_check(), routing_event_rows(): internal, not PUBLIC).
-- - The rollup summed over instances (routing_rollup_hourly_fleet), which fleet-wide time series
--   read; ingest, learning and health evaluation run without JIT.
\echo Use "ALTER EXTENSION centralcloud UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------------------------------
-- routing_records: enqueued_at; received_at becomes the claim time (new rows). Rows of 0.1.0
-- were partitioned by their enqueue time, which is what enqueued_at now holds.
-- ---------------------------------------------------------------------------------------
ALTER TABLE routing_records ADD COLUMN enqueued_at TIMESTAMPTZ;
UPDATE routing_records SET enqueued_at = received_at;
ALTER TABLE routing_records ALTER COLUMN enqueued_at SET NOT NULL;

COMMENT ON TABLE routing_records_default IS
  'Catch-all partition of routing_records for records outside the daily partitions (only if a partition was dropped by hand: ingest creates today''s before it writes). Normally empty; add_routing_partition() moves its rows into a new partition, and retention deletes its expired rows.';

COMMENT ON TABLE routing_records IS
  'Audit trail: one row per routing event ingested from the pgmq queue (seed columns plus msg_id, user_model_request, received_at, enqueued_at). Written only by ingest_routing_events(). Partitioned by day (UTC) of received_at: routing_records_pYYYYMMDD, created ahead by run_maintenance() and dropped whole after centralcloud.routing_records_retention.';

COMMENT ON COLUMN routing_records.msg_id IS 'pgmq msg_id of the message; (msg_id, enqueued_at) names it, and ingest records it once.';

COMMENT ON COLUMN routing_records.received_at IS 'When ingest claimed the message from the queue (server time): the partition key.';

COMMENT ON COLUMN routing_records.enqueued_at IS 'When pgmq received the message (its enqueued_at).';


COMMENT ON COLUMN worker_state.state IS 'idle, ingesting, disabled, error, or waiting for ALTER EXTENSION centralcloud UPDATE (a new library over an older catalog).';
COMMENT ON VIEW worker_status IS
  'The background worker, for dashboards: pid, state (idle, ingesting, disabled, error, waiting for ALTER EXTENSION centralcloud UPDATE, not running, not served (this database is not in centralcloud.database), not preloaded, or standby (a hot standby: the other columns are the primary''s worker''s, as last replayed)), last ingest and learn, events ingested and rejected since it started, last error and when.';

-- The audit trail leaves the extension, so that pg_dump dumps it whole and a dump restores
-- (see schema.sql); the partitions view finds it by name.
CREATE OR REPLACE VIEW routing_record_partitions AS
SELECT c.relname::text AS partition_name, to_date(substr(c.relname, 18), 'YYYYMMDD') AS day,
       c.reltuples::bigint AS estimated_rows
  FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
  -- By name, not a regclass constant: the view must not depend on routing_records, which is
  -- not a member of the extension (a restore creates it after the view).
  JOIN pg_catalog.pg_class parent ON parent.oid = i.inhparent
 WHERE parent.relname = 'routing_records' AND parent.relnamespace = '@extschema@'::regnamespace
   AND c.relname ~ '^routing_records_p[0-9]{8}$';
ALTER EXTENSION centralcloud DROP TABLE routing_records;
ALTER EXTENSION centralcloud DROP TABLE routing_records_default;
ALTER EXTENSION centralcloud DROP SEQUENCE routing_records_id_seq;

-- ---------------------------------------------------------------------------------------
-- Dead letters: bounded size, length and hash, retention.
-- ---------------------------------------------------------------------------------------
ALTER TABLE routing_events_rejected ADD COLUMN message_prefix TEXT;
ALTER TABLE routing_events_rejected ADD COLUMN message_bytes INTEGER;
ALTER TABLE routing_events_rejected ADD COLUMN message_sha256 BYTEA;
UPDATE routing_events_rejected
   SET message_bytes = octet_length(message::text), message_sha256 = sha256(convert_to(message::text, 'UTF8'))
 WHERE message IS NOT NULL;

COMMENT ON TABLE routing_events_rejected IS
  'Dead letters: messages that failed validation, were delivered twice, or kept failing processing (after centralcloud.max_retries reads). A message larger than centralcloud.dead_letter_max_bytes is kept as a prefix with its length and hash. run_maintenance() deletes dead letters older than centralcloud.dead_letter_retention.';

COMMENT ON COLUMN routing_events_rejected.message IS 'The raw message, as published, when it is at most centralcloud.dead_letter_max_bytes long (else NULL, see message_prefix).';

COMMENT ON COLUMN routing_events_rejected.reason_code IS 'Stable code: null_message, unparseable, not_an_object, missing_field, wrong_type, empty_string, too_long, too_many, not_allowed, out_of_range, bad_timestamp, too_many_models, duplicate, processing_error.';

COMMENT ON COLUMN routing_events_rejected.message_prefix IS 'The first centralcloud.dead_letter_max_bytes characters of a message too large to keep whole (NULL when message holds it).';

COMMENT ON COLUMN routing_events_rejected.message_bytes IS 'Length of the message as text, in bytes (NULL for a NULL message).';

COMMENT ON COLUMN routing_events_rejected.message_sha256 IS 'SHA-256 of the message as text: identifies a truncated message.';


CREATE FUNCTION dead_letter_body(message jsonb)
RETURNS TABLE (kept jsonb, prefix text, bytes integer, sha256 bytea)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $body$
    SELECT CASE WHEN b.bytes <= b.cap THEN message END,
           CASE WHEN b.bytes > b.cap THEN left(b.body, b.cap) END,
           b.bytes, sha256(convert_to(b.body, 'UTF8'))
      FROM (SELECT message::text AS body, octet_length(message::text) AS bytes,
                   current_setting('centralcloud.dead_letter_max_bytes')::integer AS cap) AS b
$body$;

COMMENT ON FUNCTION dead_letter_body(jsonb) IS
  'What ingest stores of a dead-lettered message: kept (the message, if at most centralcloud.dead_letter_max_bytes long), prefix (its first that many characters otherwise), bytes and sha256 of its text.';


CREATE FUNCTION drop_expired_dead_letters(cutoff timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $drop$
DECLARE
    removed bigint;
BEGIN
    DELETE FROM @extschema@.routing_events_rejected WHERE rejected_at < cutoff;
    GET DIAGNOSTICS removed = ROW_COUNT;
    IF removed > 0 THEN
        INSERT INTO @extschema@.retention_log (partition_name, range_until, rows_removed)
        VALUES ('routing_events_rejected', cutoff, removed);
    END IF;
    RETURN removed;
END
$drop$;

COMMENT ON FUNCTION drop_expired_dead_letters(timestamptz) IS
  'Retention of dead letters: deletes those rejected before cutoff, logs it in retention_log (as routing_events_rejected), returns how many. run_maintenance() calls it with now() - centralcloud.dead_letter_retention.';

COMMENT ON TABLE retention_log IS
  'What retention removed: one row per dropped daily partition of routing_records, one per sweep of expired rows from routing_records_default, and one per sweep of expired dead letters (routing_events_rejected). Metrics and rollups keep counting these events.';

COMMENT ON COLUMN retention_log.partition_name IS 'The dropped partition, or routing_records_default / routing_events_rejected for a sweep.';


-- ---------------------------------------------------------------------------------------
-- Partitions: a new day's rows move out of the default partition.
-- ---------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION add_routing_partition(day date)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $add$
DECLARE
    partition_name text := 'routing_records_p' || to_char(day, 'YYYYMMDD');
    range_from timestamptz := day::timestamp AT TIME ZONE 'UTC';
    range_until timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    -- Concurrent ingests may both find a partition missing; one creates it.
    PERFORM pg_advisory_xact_lock(hashtext('centralcloud.routing_records partitions'));
    IF to_regclass(format('@extschema@.%I', partition_name)) IS NOT NULL THEN
        RETURN partition_name;
    END IF;
    -- Created apart and attached: ATTACH takes SHARE UPDATE EXCLUSIVE on routing_records, so
    -- concurrent ingest and dashboards go on (CREATE ... PARTITION OF would block them).
    EXECUTE format('CREATE TABLE @extschema@.%I (LIKE @extschema@.routing_records INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   partition_name);
    -- Rows of that day in the default partition would make ATTACH fail ("would be violated"):
    -- they move into the new table first. ATTACH locks the default partition exclusively
    -- anyway; taking that lock now keeps new rows of the day from slipping in between.
    IF EXISTS (SELECT 1 FROM @extschema@.routing_records_default d
                WHERE d.received_at >= range_from AND d.received_at < range_until) THEN
        LOCK TABLE @extschema@.routing_records_default IN ACCESS EXCLUSIVE MODE;
        EXECUTE format('WITH moved AS (DELETE FROM @extschema@.routing_records_default d
                                        WHERE d.received_at >= $1 AND d.received_at < $2 RETURNING d.*)
                        INSERT INTO @extschema@.%I SELECT * FROM moved', partition_name)
          USING range_from, range_until;
    END IF;
    EXECUTE format('ALTER TABLE @extschema@.routing_records ATTACH PARTITION @extschema@.%I FOR VALUES FROM (%L) TO (%L)',
                   partition_name, range_from, range_until);
    EXECUTE format('COMMENT ON TABLE @extschema@.%I IS %L', partition_name,
                   format('Partition of routing_records: events received from %s to %s (UTC). Dropped whole by retention.',
                          day, day + 1));
    RETURN partition_name;
END
$add$;

COMMENT ON FUNCTION add_routing_partition(date) IS
  'Creates the routing_records partition for one UTC day (routing_records_pYYYYMMDD) unless it exists, moving that day''s rows out of routing_records_default; returns its name. run_maintenance() and ingest call it; call it yourself to backfill history.';


-- ---------------------------------------------------------------------------------------
-- drain_routing_events(): search_path pinned in each of its transactions.
-- ---------------------------------------------------------------------------------------
CREATE OR REPLACE PROCEDURE drain_routing_events(time_budget_s integer DEFAULT 50)
LANGUAGE plpgsql
AS $drain$
DECLARE
    batch record;
    deadline timestamptz;
    done boolean;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    deadline := clock_timestamp() + make_interval(secs => time_budget_s);
    LOOP
        SELECT * INTO batch FROM centralcloud.ingest_routing_events(NULL, 1);
        done := batch.read < current_setting('centralcloud.batch_size')::integer
                OR clock_timestamp() >= deadline;
        COMMIT;
        EXIT WHEN done;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    END LOOP;
END
$drain$;


ALTER FUNCTION counter_summary(bigint, bigint, bigint, bigint, bigint, integer, integer, bytea)
    SET search_path = @extschema@, pg_catalog, pg_temp;

-- ---------------------------------------------------------------------------------------
-- pg_cron: errors with SQLSTATEs (pg_cron missing is object_not_in_prerequisite_state), and
-- jobs for a database other than pg_cron's (pg_cron_statements()).
-- ---------------------------------------------------------------------------------------
-- pg_cron keeps its jobs in one database (cron.database_name) and runs each in the database it
-- names. Job names are unique per user across databases, so a job for another database than
-- pg_cron's carries that database's name; pg_cron's own database keeps 0.1.0's names.
CREATE FUNCTION pg_cron_jobs(ingest_schedule text, learn_schedule text, maintenance_schedule text)
RETURNS TABLE (jobname text, schedule text, command text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $jobs$
    SELECT 'centralcloud-' || job.name
               || CASE WHEN current_database() = current_setting('cron.database_name', true) THEN ''
                       ELSE '@' || current_database() END,
           job.schedule, job.command
      FROM (VALUES ('ingest', ingest_schedule, 'CALL centralcloud.drain_routing_events()'),
                   ('learn', learn_schedule, 'SELECT count(*) FROM centralcloud.learn_complexity_scores()'),
                   ('maintenance', maintenance_schedule, 'SELECT count(*) FROM centralcloud.run_maintenance()'))
           AS job (name, schedule, command)
$jobs$;
COMMENT ON FUNCTION pg_cron_jobs(text, text, text) IS
  'The pg_cron jobs of this database: name (centralcloud-ingest, -learn, -maintenance, with @database appended unless pg_cron runs in this database), schedule and command.';

CREATE OR REPLACE FUNCTION schedule_with_pg_cron(ingest_schedule text DEFAULT '* * * * *',
                                      learn_schedule text DEFAULT '*/5 * * * *',
                                      maintenance_schedule text DEFAULT '17 * * * *')
RETURNS TABLE (jobid bigint, jobname text, schedule text, command text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $schedule$
DECLARE
    cron_database text := current_setting('cron.database_name', true);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        IF cron_database IS NOT NULL AND cron_database <> current_database() THEN
            RAISE EXCEPTION 'centralcloud: pg_cron runs in database "%", not in this one', cron_database
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = format('Run the statements of centralcloud.pg_cron_statements() in database %I, e.g. psql -d %I -XAtc ''SELECT statement FROM centralcloud.pg_cron_statements()'' | psql -d %I',
                                    cron_database, current_database(), cron_database);
        END IF;
        RAISE EXCEPTION 'centralcloud: pg_cron is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name, and CREATE EXTENSION pg_cron; or use the centralcloud background worker.';
    END IF;
    PERFORM cron.schedule_in_database(j.jobname, j.schedule, j.command, current_database())
       FROM centralcloud.pg_cron_jobs(ingest_schedule, learn_schedule, maintenance_schedule) AS j;
    RETURN QUERY SELECT c.jobid, c.jobname::text, c.schedule::text, c.command::text FROM cron.job c
                  WHERE c.database = current_database()
                    AND c.jobname IN (SELECT j.jobname FROM centralcloud.pg_cron_jobs(NULL, NULL, NULL) AS j)
                  ORDER BY c.jobname;
END
$schedule$;
COMMENT ON FUNCTION schedule_with_pg_cron(text, text, text) IS
  'Creates (or updates, by job name) the pg_cron jobs centralcloud-ingest (CALL drain_routing_events()), centralcloud-learn and centralcloud-maintenance (run_maintenance(): partitions ahead, retention), in this database. For sites that do not preload centralcloud. Clear error if pg_cron is missing, or runs in another database (then use pg_cron_statements()).';

CREATE FUNCTION pg_cron_statements(ingest_schedule text DEFAULT '* * * * *',
                                   learn_schedule text DEFAULT '*/5 * * * *',
                                   maintenance_schedule text DEFAULT '17 * * * *')
RETURNS TABLE (jobname text, statement text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $statements$
    SELECT j.jobname, format('SELECT cron.schedule_in_database(%L, %L, %L, %L);',
                             j.jobname, j.schedule, j.command, current_database())
      FROM centralcloud.pg_cron_jobs(ingest_schedule, learn_schedule, maintenance_schedule) AS j
     ORDER BY j.jobname
$statements$;
COMMENT ON FUNCTION pg_cron_statements(text, text, text) IS
  'The statements that schedule this database''s pg_cron jobs, to run in the database where pg_cron runs (cron.database_name) when that is another one; idempotent, by job name.';

CREATE OR REPLACE FUNCTION unschedule_pg_cron()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $unschedule$
DECLARE
    removed integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'centralcloud: pg_cron is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT count(*) INTO removed FROM cron.job c, LATERAL cron.unschedule(c.jobid) AS gone
     WHERE c.database = current_database()
       AND c.jobname IN (SELECT j.jobname FROM centralcloud.pg_cron_jobs(NULL, NULL, NULL) AS j) AND gone;
    RETURN removed;
END
$unschedule$;
COMMENT ON FUNCTION unschedule_pg_cron() IS 'Removes the pg_cron jobs schedule_with_pg_cron() created in this database; returns how many.';
REVOKE ALL ON FUNCTION pg_cron_jobs(text, text, text), pg_cron_statements(text, text, text) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------
-- Several databases: worker_status says when the worker does not serve this one.
-- ---------------------------------------------------------------------------------------
-- The parsing of centralcloud.database the launcher does (guc::database_list): comma-separated,
-- trimmed, empty meaning postgres.
CREATE FUNCTION served_databases()
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $served$
    SELECT coalesce(array_agg(DISTINCT name), ARRAY['postgres'])
      FROM unnest(string_to_array(current_setting('centralcloud.database', true), ',')) AS d,
           LATERAL btrim(d) AS name
     WHERE name <> ''
$served$;
COMMENT ON FUNCTION served_databases() IS
  'The databases the background worker serves: centralcloud.database as the launcher reads it (comma-separated, trimmed; empty means postgres).';
REVOKE ALL ON FUNCTION served_databases() FROM PUBLIC;

-- Runs as the owner: reading shared_preload_libraries needs pg_read_all_settings
-- and seeing another user's backend in pg_stat_activity needs pg_read_all_stats, which
-- dashboard readers do not have. On a hot standby worker_state is the primary's row as last
-- replayed (its pid names a process of the primary) and no worker runs until promotion, so
-- the server's role is the answer there.
CREATE OR REPLACE FUNCTION worker_liveness(worker_pid integer)
RETURNS text
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $liveness$
    SELECT CASE
               WHEN pg_is_in_recovery()
                   THEN 'standby: read-only; the worker runs on the primary, and here once promoted'
               WHEN NOT current_setting('shared_preload_libraries') ~ '(^|[ ,])"?centralcloud"?($|[ ,])'
                   THEN 'not preloaded: schedule with pg_cron or call ingest yourself'
               WHEN NOT current_database() = ANY (served_databases())
                   THEN 'not served: add this database to centralcloud.database'
               WHEN worker_pid IS NULL THEN 'starting'
               WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                                 WHERE a.pid = worker_pid AND a.backend_type = 'centralcloud worker')
                   THEN 'not running'
               ELSE 'running'
           END
$liveness$;
COMMENT ON FUNCTION worker_liveness(integer) IS
  'For worker_status: whether this server is a standby, whether centralcloud is preloaded, whether this database is one the worker serves, and whether the worker process that last wrote worker_state (its pid) is alive: standby, not preloaded, not served, starting, not running, or running.';

-- ---------------------------------------------------------------------------------------
-- check_invariants(): the caller's rights (CREATE OR REPLACE without SECURITY DEFINER); counter_summary pins search_path.
-- ---------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION check_invariants(published regclass DEFAULT NULL, queue_name text DEFAULT NULL)
RETURNS TABLE (problem text, msg_id bigint, detail text)
LANGUAGE plpgsql
SET search_path = @extschema@, pg_catalog, pg_temp
AS $check$
DECLARE
    queue text := coalesce(queue_name, nullif(current_setting('centralcloud.queue_name', true), ''),
                           'model_routing_decisions');
    queue_table text;
    queue_created timestamptz;
BEGIN
    SELECT m.created_at INTO queue_created FROM pgmq.meta m WHERE m.queue_name = queue;
    IF queue_created IS NULL THEN
        RAISE EXCEPTION 'centralcloud: pgmq queue "%" does not exist', queue USING ERRCODE = 'undefined_table';
    END IF;
    queue_table := pgmq.format_table_name(queue, 'q');

    -- Each message is in one place: recorded, dead-lettered (a duplicate delivery may be both:
    -- its record is the first delivery), or still queued. Only this generation of the queue
    -- (received since it was created). With the msg_ids the caller published (a table or view
    -- with a msg_id column), every one of them must be somewhere, and nothing else may be:
    -- msg_ids alone cannot tell, since a sequence skips values after a crash or a rolled-back
    -- send.
    RETURN QUERY EXECUTE format($places$
        WITH place AS MATERIALIZED (
            SELECT r.msg_id, 'recorded' AS place FROM @extschema@.routing_records r
             WHERE r.received_at >= $1
            UNION ALL
            SELECT x.msg_id, 'dead-lettered (' || x.reason_code || ')' FROM @extschema@.routing_events_rejected x
             WHERE x.reason_code <> 'duplicate' AND (x.enqueued_at IS NULL OR x.enqueued_at >= $1)
            UNION ALL
            SELECT q.msg_id, 'queued' FROM pgmq.%I q),
        sent AS MATERIALIZED (SELECT DISTINCT s.msg_id::bigint AS msg_id FROM %s s)
        SELECT 'more than once', p.msg_id, string_agg(p.place, ', ' ORDER BY p.place)
          FROM place p GROUP BY p.msg_id HAVING count(*) > 1
        UNION ALL
        SELECT 'missing', s.msg_id, 'published to ' || $2 || ' but neither recorded, dead-lettered nor queued'
          FROM sent s
         WHERE NOT EXISTS (SELECT 1 FROM place p WHERE p.msg_id = s.msg_id)
           AND NOT EXISTS (SELECT 1 FROM @extschema@.retention_log)
        UNION ALL
        SELECT 'not published', p.msg_id, 'recorded, dead-lettered or queued, but not in ' || $3
          FROM place p
         WHERE $3 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM sent s WHERE s.msg_id = p.msg_id)
        $places$, queue_table, coalesce(published::text, '(SELECT NULL::bigint AS msg_id WHERE false)'))
        USING queue_created, queue, published::text;

    -- Metrics and rollups equal what routing_records alone gives (unless retention removed
    -- records, not just dead letters: then the kept counters are larger, by design). One recount at the rollup's
    -- grain; the metrics' recount merges it (sketches merge exactly).
    IF NOT EXISTS (SELECT 1 FROM retention_log l WHERE l.partition_name <> 'routing_events_rejected') THEN
        RETURN QUERY
        WITH recount AS MATERIALIZED (
            SELECT date_trunc('hour', r."timestamp", 'UTC') AS hour, r.instance_id, r.model,
                   r.complexity, r.provider,
                   count(*) FILTER (WHERE r.outcome = 'routed') AS routed,
                   count(*) FILTER (WHERE r.outcome = 'success') AS success,
                   count(*) FILTER (WHERE r.outcome = 'failure') AS failure,
                   count(r.response_time_ms) AS lat_count,
                   coalesce(sum(r.response_time_ms), 0) AS lat_sum,
                   min(r.response_time_ms) AS lat_min, max(r.response_time_ms) AS lat_max,
                   latency_sketch_agg(r.response_time_ms) AS sketch
              FROM routing_records r GROUP BY 1, 2, 3, 4, 5),
        recount_cells AS (
            SELECT c.model, c.complexity, sum(c.routed)::bigint AS routed, sum(c.success)::bigint AS success,
                   sum(c.failure)::bigint AS failure, sum(c.lat_count)::bigint AS lat_count,
                   sum(c.lat_sum)::bigint AS lat_sum,
                   min(c.lat_min) AS lat_min, max(c.lat_max) AS lat_max,
                   latency_sketch_union(c.sketch) AS sketch
              FROM recount c GROUP BY 1, 2),
        compared AS (
            SELECT 'metrics' AS problem,
                   coalesce(m.model_name, c.model) || '/' || coalesce(m.complexity_level, c.complexity) AS what,
                   counter_summary(m.usage_count, m.success_count, m.failure_count, m.response_time_count,
                                   m.response_time_sum, m.response_time_min, m.response_time_max,
                                   m.latency_sketch) AS stored,
                   counter_summary(c.routed, c.success, c.failure, c.lat_count, c.lat_sum, c.lat_min,
                                   c.lat_max, c.sketch) AS recounted
              FROM model_routing_metrics m
              FULL JOIN recount_cells c ON c.model = m.model_name AND c.complexity = m.complexity_level
             -- A cell with no events at all has nothing to recount.
             WHERE c.model IS NOT NULL OR m.usage_count + m.success_count + m.failure_count > 0
            UNION ALL
            SELECT 'rollup',
                   format('%s %s %s/%s/%s', coalesce(h.hour, c.hour), coalesce(h.instance_id, c.instance_id),
                          coalesce(h.model, c.model), coalesce(h.complexity, c.complexity),
                          coalesce(h.provider, c.provider)),
                   counter_summary(h.usage_count, h.success_count, h.failure_count, h.response_time_count,
                                   h.response_time_sum, h.response_time_min, h.response_time_max,
                                   h.latency_sketch),
                   counter_summary(c.routed, c.success, c.failure, c.lat_count, c.lat_sum, c.lat_min,
                                   c.lat_max, c.sketch)
              FROM routing_rollup_hourly h
              FULL JOIN recount c ON c.hour = h.hour AND c.instance_id = h.instance_id AND c.model = h.model
                                 AND c.complexity = h.complexity AND c.provider = h.provider)
        SELECT x.problem, NULL::bigint, format('%s: stored %s, recomputed %s', x.what, x.stored, x.recounted)
          FROM compared x
         WHERE x.stored IS DISTINCT FROM x.recounted;
    END IF;

    -- The fleet rollup is the rollup summed over instances (on a central server of the
    -- scale-out: as of its last refresh_metrics_from_rollup()).
    RETURN QUERY
    WITH summed AS (
        SELECT r.model, r.complexity, r.hour, r.provider,
               counter_summary(sum(r.usage_count)::bigint, sum(r.success_count)::bigint,
                               sum(r.failure_count)::bigint, sum(r.response_time_count)::bigint,
                               sum(r.response_time_sum)::bigint, min(r.response_time_min),
                               max(r.response_time_max), latency_sketch_union(r.latency_sketch)) AS summary
          FROM routing_rollup_hourly r
         GROUP BY r.model, r.complexity, r.hour, r.provider)
    SELECT 'fleet', NULL::bigint,
           format('%s %s/%s/%s: stored %s, summed over instances %s', coalesce(f.hour, s.hour),
                  coalesce(f.model, s.model), coalesce(f.complexity, s.complexity),
                  coalesce(f.provider, s.provider),
                  counter_summary(f.usage_count, f.success_count, f.failure_count, f.response_time_count,
                                  f.response_time_sum, f.response_time_min, f.response_time_max,
                                  f.latency_sketch),
                  s.summary)
      FROM routing_rollup_hourly_fleet f
      FULL JOIN summed s ON (s.model, s.complexity, s.hour, s.provider) = (f.model, f.complexity, f.hour, f.provider)
     WHERE counter_summary(f.usage_count, f.success_count, f.failure_count, f.response_time_count,
                           f.response_time_sum, f.response_time_min, f.response_time_max, f.latency_sketch)
           IS DISTINCT FROM s.summary;

    -- Learning never consumed more evidence than there is, and every cell has a score.
    RETURN QUERY
    SELECT 'watermark', NULL::bigint,
           format('%s/%s: learned (%s, %s, %s) > counted (%s, %s, %s)', s.model_name, s.complexity_level,
                  s.learned_success_count, s.learned_failure_count, s.learned_response_time_count,
                  m.success_count, m.failure_count, m.response_time_count)
      FROM model_complexity_scores s JOIN model_routing_metrics m USING (model_name, complexity_level)
     WHERE s.learned_success_count > m.success_count OR s.learned_failure_count > m.failure_count
        OR s.learned_response_time_count > m.response_time_count;
    RETURN QUERY
    SELECT 'no score', NULL::bigint, m.model_name || '/' || m.complexity_level || ' has metrics but no score'
      FROM model_routing_metrics m
     WHERE NOT EXISTS (SELECT 1 FROM model_complexity_scores s
                        WHERE s.model_name = m.model_name AND s.complexity_level = m.complexity_level);

    -- recommend_model()'s table of candidates equals its sources.
    RETURN QUERY
    SELECT 'candidate', NULL::bigint,
           format('%s/%s/%s: stored %s, from the sources %s', coalesce(c.complexity_level, v.complexity_level),
                  coalesce(c.model, v.model), coalesce(c.provider, v.provider),
                  (c.score, c.successes, c.failures, c.p50_ms, c.p95_ms, c.cost_usd, c.model_state, c.provider_state, c.capabilities),
                  (v.score, v.successes, v.failures, v.p50_ms, v.p95_ms, v.cost_usd, v.model_state, v.provider_state, v.capabilities))
      FROM recommend_candidates c
      FULL JOIN recommend_candidates_source v
        ON v.complexity_level = c.complexity_level AND v.model = c.model AND v.provider = c.provider
     WHERE (c.score, c.successes, c.failures, c.p50_ms, c.p95_ms, c.cost_usd, c.model_state, c.provider_state, c.capabilities)
           IS DISTINCT FROM
           (v.score, v.successes, v.failures, v.p50_ms, v.p95_ms, v.cost_usd, v.model_state, v.provider_state, v.capabilities);
END
$check$;

COMMENT ON FUNCTION check_invariants(regclass, text) IS
  'The exact-accounting check: every message of the queue (this generation of it) is recorded, dead-lettered or still queued, exactly once; given published (a table with the msg_ids sent), each of those is somewhere and nothing else is; model_routing_metrics and routing_rollup_hourly equal a recount of routing_records (counts, sums, min, max, sketch sample count, p50/p99); routing_rollup_hourly_fleet equals the rollup summed over instances; learning watermarks never exceed the counts; every cell has a score; recommend_candidates equals its sources. One row per difference, none when all holds. The missing check is skipped once retention has removed records or dead letters, the recount once it removed records. Runs with the caller''s rights (operators: centralcloud_operator). Take a quiet moment or a REPEATABLE READ snapshot for an exact answer while ingest runs.';


-- ---------------------------------------------------------------------------------------
-- Event timestamps are judged against a window around the server's time.
-- ---------------------------------------------------------------------------------------
COMMENT ON FUNCTION routing_event_verdict(text) IS
  'Ingest''s verdict on one routing event (JSON text): {NULL, NULL, timestamp normalised to UTC, score, response_time_ms rounded to whole ms, whether the timestamp had no offset (read as UTC), instance_id, complexity, model, provider, outcome, capabilities as a text[] literal, prefer, user_model_request} when valid (the values ingest stores), otherwise {reason_code, reason}. Timestamps are judged against the transaction''s start (centralcloud.max_event_age, centralcloud.max_event_clock_skew), like now().';

-- ---------------------------------------------------------------------------------------
-- Ingest judges each message once (routing_event_check) and hands the valid ones to the
-- INSERT as typed columns (routing_event_rows): no text array PostgreSQL parses again.
-- ---------------------------------------------------------------------------------------
CREATE FUNCTION routing_event_check(
	"msg_id" bigint,
	"enqueued_at" timestamp with time zone,
	"body" jsonb
) RETURNS TEXT[]
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'routing_event_check_wrapper';
CREATE FUNCTION routing_event_rows(
	"msg_ids" bigint[]
) RETURNS TABLE (
	"msg_id" bigint,
	"timestamp" timestamp with time zone,
	"instance_id" TEXT,
	"complexity" TEXT,
	"model" TEXT,
	"provider" TEXT,
	"score" double precision,
	"outcome" TEXT,
	"response_time_ms" INT,
	"capabilities_required" TEXT[],
	"preference" TEXT,
	"user_model_request" TEXT,
	"enqueued_at" timestamp with time zone,
	"timestamp_without_offset" bool
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'routing_event_rows_wrapper';
COMMENT ON FUNCTION routing_event_check(bigint, timestamptz, jsonb) IS
  'Internal to ingest''s batch statement: NULL when the message is a valid routing event, otherwise {reason_code, reason} (as routing_event_verdict()); inside a batch it keeps the valid event in the backend for routing_event_rows(). Not executable by PUBLIC.';
COMMENT ON FUNCTION routing_event_rows(bigint[]) IS
  'Internal to ingest''s batch statement: the events routing_event_check() kept in this batch for these msg_ids, as the typed columns of routing_records (the validator''s values; capabilities_required NULL for none). Not executable by PUBLIC.';
-- Internal to ingest's batch statement (they keep and hand over this backend's judged events).
REVOKE ALL ON FUNCTION routing_event_check(bigint, timestamptz, jsonb), routing_event_rows(bigint[]) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------
-- Learning policy bayes: each cell's prior (the reported or operator score) and regime start,
-- the detected change points, and their view. A cell's prior is the last operator score, else
-- the score it entered with (the first change's old score), else its current score.
-- ---------------------------------------------------------------------------------------
ALTER TABLE model_complexity_scores ADD COLUMN prior_score FLOAT CHECK (prior_score >= 0 AND prior_score <= 5);
ALTER TABLE model_complexity_scores ADD COLUMN regime_start TIMESTAMPTZ;
UPDATE model_complexity_scores s
   SET prior_score = coalesce(
           (SELECT h.new_score FROM score_history h
             WHERE h.model_name = s.model_name AND h.complexity_level = s.complexity_level AND h.policy = 'operator'
             ORDER BY h.id DESC LIMIT 1),
           (SELECT h.old_score FROM score_history h
             WHERE h.model_name = s.model_name AND h.complexity_level = s.complexity_level
             ORDER BY h.id LIMIT 1),
           s.score);
ALTER TABLE model_complexity_scores ALTER COLUMN prior_score SET NOT NULL;
COMMENT ON COLUMN model_complexity_scores.prior_score IS 'The score instances reported for the cell or an operator set last: the prior of the bayes policy (learned changes do not move it).';
COMMENT ON COLUMN model_complexity_scores.regime_start IS 'Event hour of the last change the bayes policy detected in the cell: it learns only from evidence since then (NULL: all of it).';

-- Change points the bayes policy detected, one row each (the cell's regime_start moves to it).
CREATE TABLE learning_changes (
    id               BIGSERIAL PRIMARY KEY,
    model_name       VARCHAR NOT NULL,
    complexity_level VARCHAR NOT NULL,
    change_hour      TIMESTAMPTZ NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('success_rate', 'latency')),
    before_value     FLOAT NOT NULL,
    after_value      FLOAT NOT NULL,
    statistic        FLOAT NOT NULL,
    detected_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_learning_changes_cell ON learning_changes (model_name, complexity_level, change_hour DESC);
COMMENT ON TABLE learning_changes IS
  'Changes in a cell''s success rate or latency that the bayes learning policy detected: from then on it learns only from the new regime.';
COMMENT ON COLUMN learning_changes.model_name IS 'Model.';
COMMENT ON COLUMN learning_changes.complexity_level IS 'Task complexity.';
COMMENT ON COLUMN learning_changes.change_hour IS 'Event hour (UTC) the new regime starts at.';
COMMENT ON COLUMN learning_changes.kind IS 'success_rate or latency.';
COMMENT ON COLUMN learning_changes.before_value IS 'Success rate (0..1) or median latency (ms) before the change.';
COMMENT ON COLUMN learning_changes.after_value IS 'The same after it.';
COMMENT ON COLUMN learning_changes.statistic IS 'Log-likelihood ratio (success_rate) or latency ratio (latency) of the change.';
COMMENT ON COLUMN learning_changes.detected_at IS 'When learning detected it.';
SELECT pg_catalog.pg_extension_config_dump('learning_changes', '');
SELECT pg_catalog.pg_extension_config_dump('learning_changes_id_seq', '');

CREATE VIEW learning_changes_recent AS
SELECT detected_at, model_name AS model, complexity_level, change_hour, kind, before_value, after_value, statistic
  FROM learning_changes
 ORDER BY detected_at DESC, id DESC
 LIMIT 100;
COMMENT ON VIEW learning_changes_recent IS
  'The latest 100 changes of a cell''s success rate or latency that learning (policy bayes) detected, newest first.';
GRANT SELECT ON learning_changes_recent TO centralcloud_reader;
COMMENT ON FUNCTION learn_complexity_scores(boolean) IS
  'Applies centralcloud.learning_policy to every cell: bayes scores all of a cell''s evidence in its current regime (decayed in event time; records detected changes in learning_changes) and applies a score only when it moves by centralcloud.min_score_change; seed applies its steps to the evidence since the cell''s last learning step. Records each change in score_history and publishes the seed''s model_score_update event to every subscribed instance, in the same transaction. One row per cell considered, with the reason (n, rate, bound, p95, change; or e.g. insufficient data: 37 < 100). dry_run: same rows, nothing changed or published.';

-- ---------------------------------------------------------------------------------------
-- Queue privileges.
-- ---------------------------------------------------------------------------------------
CREATE FUNCTION grant_queue_privileges()
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $grant$
DECLARE
    queue text := coalesce(nullif(current_setting('centralcloud.queue_name', true), ''), 'model_routing_decisions');
    queue_table text := pgmq.format_table_name(queue, 'q');
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgmq.meta m WHERE m.queue_name = queue) THEN
        RAISE EXCEPTION 'centralcloud: pgmq queue "%" does not exist', queue
            USING ERRCODE = 'undefined_table', HINT = format('Create it with SELECT pgmq.create(%L).', queue);
    END IF;
    EXECUTE format('REVOKE ALL ON pgmq.%I FROM centralcloud_publisher, centralcloud_operator', queue_table);
    EXECUTE format('GRANT INSERT (vt, message, headers), SELECT (msg_id) ON pgmq.%I TO centralcloud_publisher', queue_table);
    EXECUTE format('GRANT SELECT (msg_id) ON pgmq.%I TO centralcloud_operator', queue_table);
    RETURN queue_table;
END
$grant$;

COMMENT ON FUNCTION grant_queue_privileges() IS
  'Grants centralcloud_publisher exactly what pgmq.send and pgmq.send_batch need on the routing-event queue (centralcloud.queue_name), and centralcloud_operator its msg_ids; returns the queue table. Ingest calls it when it finds the queue re-created; call it after pointing centralcloud.queue_name at another queue.';

COMMENT ON FUNCTION subscribe_instance(text, text) IS
  'Creates the instance''s own score-update queue (cc_scores_<slug>_<hash>), binds it to the score and health update topics, and lets reader (a role; default the centralcloud_publisher group) read, delete and archive its messages, and nobody else (a role given replaces every earlier reader, the group included); returns the queue name. Idempotent.';

REVOKE ALL ON FUNCTION grant_queue_privileges() FROM PUBLIC;
REVOKE ALL ON FUNCTION drop_expired_dead_letters(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION check_invariants(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION grant_queue_privileges() TO centralcloud_operator;
GRANT USAGE ON SCHEMA pgmq TO centralcloud_operator;
GRANT SELECT ON pgmq.meta TO centralcloud_operator;
-- 0.1.0 gave SELECT on every new table to the operator (GRANT ... ON ALL TABLES at install).
GRANT SELECT ON ALL TABLES IN SCHEMA @extschema@ TO centralcloud_operator;

-- The event queue: table-level INSERT becomes what pgmq.send needs.
DO $queue$
BEGIN
    IF EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = coalesce(nullif(current_setting('centralcloud.queue_name', true), ''), 'model_routing_decisions')) THEN
        PERFORM @extschema@.grant_queue_privileges();
    END IF;
END
$queue$;

-- Each subscription remembers its queue's reader (instance_dead_letters shows a router its own
-- instances' dead letters); filled below from the queue's grants.
ALTER TABLE score_subscriptions ADD COLUMN reader_role TEXT;
COMMENT ON COLUMN score_subscriptions.reader_role IS 'The role that reads its queue (subscribe_instance''s reader; centralcloud_publisher when none was given): its members see the instance''s dead letters in instance_dead_letters.';

-- Score-update queues: 0.1.0 let each reader UPDATE whole rows and read the archive. Each queue
-- keeps one reader (a role given to subscribe_instance() over the publisher group), with the
-- rights pgmq.read, pgmq.delete and pgmq.archive need.
DO $subscriptions$
DECLARE
    sub record;
    readers text[];
    reader text;
BEGIN
    FOR sub IN SELECT s.queue_name, pgmq.format_table_name(s.queue_name, 'q') AS q,
                      pgmq.format_table_name(s.queue_name, 'a') AS a
                 FROM @extschema@.score_subscriptions s
                 JOIN pgmq.meta m ON m.queue_name = s.queue_name
    LOOP
        SELECT array_agg(DISTINCT pg_catalog.pg_get_userbyid(acl.grantee)) INTO readers
          FROM pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) acl
         WHERE c.relnamespace = 'pgmq'::regnamespace AND c.relname IN (sub.q, sub.a)
           AND acl.grantee NOT IN (c.relowner, 0, 'pg_monitor'::regrole);
        FOREACH reader IN ARRAY coalesce(readers, '{}')
        LOOP
            EXECUTE format('REVOKE ALL ON pgmq.%I, pgmq.%I FROM %I', sub.q, sub.a, reader);
        END LOOP;
        -- The role named at subscription wins over the shared default group.
        SELECT r INTO reader FROM unnest(readers) AS r ORDER BY r = 'centralcloud_publisher', r LIMIT 1;
        IF reader IS NOT NULL THEN
            EXECUTE format('GRANT SELECT, DELETE, UPDATE (vt, read_ct, last_read_at) ON pgmq.%I TO %I', sub.q, reader);
            EXECUTE format('GRANT INSERT, SELECT (msg_id) ON pgmq.%I TO %I', sub.a, reader);
            EXECUTE format('GRANT SELECT ON SEQUENCE %s TO %I',
                           pg_catalog.pg_get_serial_sequence(format('pgmq.%I', sub.q), 'msg_id'), reader);
            UPDATE @extschema@.score_subscriptions SET reader_role = reader WHERE queue_name = sub.queue_name;
        END IF;
    END LOOP;
END
$subscriptions$;

-- The seed's ScoreUpdater polls the shared model_score_updates queue: publishers may read,
-- delete and archive its messages (what pgmq.read, pop, delete and archive need) and read its
-- metrics, never rewrite an update. Each message goes to one reader, so per-instance queues
-- (subscribe_instance) are the way for a fleet.
CREATE FUNCTION grant_shared_score_queue()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $shared$
DECLARE
    queue_table text := pgmq.format_table_name('model_score_updates', 'q');
BEGIN
    EXECUTE format('GRANT SELECT, DELETE, UPDATE (vt, read_ct, last_read_at) ON pgmq.%I TO centralcloud_publisher', queue_table);
    EXECUTE format('GRANT INSERT, SELECT (msg_id) ON pgmq.%I TO centralcloud_publisher',
                   pgmq.format_table_name('model_score_updates', 'a'));
    EXECUTE format('GRANT SELECT ON SEQUENCE %s TO centralcloud_publisher',
                   pg_get_serial_sequence(format('pgmq.%I', queue_table), 'msg_id'));
END
$shared$;
COMMENT ON FUNCTION grant_shared_score_queue() IS
  'Lets centralcloud_publisher read the shared model_score_updates queue, as the seed''s consumers do (CREATE EXTENSION and the update call it).';
REVOKE ALL ON FUNCTION grant_shared_score_queue() FROM PUBLIC;
SELECT grant_shared_score_queue();
-- ---------------------------------------------------------------------------------------
-- Phase 5 and failure detection: the health of providers and models (with its events to
-- every subscribed instance), capabilities and prices, each cell's p50 and p95, and
-- recommend_model().
-- ---------------------------------------------------------------------------------------
-- ---------------------------------------------------------------------------------------
-- Health of providers and models (src/health/rules.rs), and what recommend_model() reads
-- besides scores and metrics: the capabilities and prices of each (provider, model).
-- ---------------------------------------------------------------------------------------
CREATE TABLE health_outcomes (
    second        TIMESTAMPTZ NOT NULL,
    provider      VARCHAR NOT NULL,
    model         VARCHAR NOT NULL,
    routed_count  BIGINT NOT NULL DEFAULT 0,
    success_count BIGINT NOT NULL DEFAULT 0,
    failure_count BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (second, provider, model)
);
COMMENT ON TABLE health_outcomes IS
  'Health evidence: per second of server receive time (the ingesting transaction''s start, received_at) and (provider, model), the events ingest recorded. Written by ingest in the batch''s transaction; health evaluation reads the last centralcloud.health_window of it and deletes the rest. Not dumped: it is minutes of evidence.';
COMMENT ON COLUMN health_outcomes.second IS 'The second (server time) ingest received the events in.';
COMMENT ON COLUMN health_outcomes.provider IS 'Provider.';
COMMENT ON COLUMN health_outcomes.model IS 'Model.';
COMMENT ON COLUMN health_outcomes.routed_count IS 'Routing decisions (they make the pair known to recommend_model()).';
COMMENT ON COLUMN health_outcomes.success_count IS 'Outcome events with outcome success.';
COMMENT ON COLUMN health_outcomes.failure_count IS 'Outcome events with outcome failure.';

CREATE TABLE health_states (
    provider               VARCHAR NOT NULL,
    model                  VARCHAR,
    state                  TEXT NOT NULL DEFAULT 'healthy' CHECK (state IN ('healthy', 'degraded', 'down')),
    since                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    evidence_from          TIMESTAMPTZ,
    strikes                INTEGER NOT NULL DEFAULT 0,
    last_recovered_at      TIMESTAMPTZ,
    long_run_success_count BIGINT NOT NULL DEFAULT 0,
    long_run_failure_count BIGINT NOT NULL DEFAULT 0,
    long_run_hour          TIMESTAMPTZ,
    failure_rate           FLOAT,
    outcomes               BIGINT,
    reason                 TEXT NOT NULL DEFAULT 'first seen',
    CONSTRAINT health_states_provider_model_key UNIQUE NULLS NOT DISTINCT (provider, model)
);
CREATE INDEX idx_health_states_model ON health_states (model);
COMMENT ON TABLE health_states IS
  'The health of every (provider, model) pair ingest has seen, and of every provider (model NULL): healthy, degraded or down, since when and why. Changed only by health evaluation (after each ingest call, or evaluate_model_health()), which records each change in health_history and publishes it. Read it through model_health.';
COMMENT ON COLUMN health_states.provider IS 'Provider.';
COMMENT ON COLUMN health_states.model IS 'Model; NULL: the provider as a whole (down when its models fail together).';
COMMENT ON COLUMN health_states.state IS 'healthy, degraded or down.';
COMMENT ON COLUMN health_states.since IS 'When the current state began (first seen, for a pair that never changed).';
COMMENT ON COLUMN health_states.evidence_from IS 'First second of outcomes that count for the current state (the second after it began; NULL: all).';
COMMENT ON COLUMN health_states.strikes IS 'Times the pair got worse within a window of its last recovery: each doubles the good time a recovery needs (centralcloud.health_min_recovery).';
COMMENT ON COLUMN health_states.last_recovered_at IS 'When the pair last became healthy again.';
COMMENT ON COLUMN health_states.long_run_success_count IS 'Successes over centralcloud.health_baseline_window of the hourly rollup (up to the previous hour): its long-run rate.';
COMMENT ON COLUMN health_states.long_run_failure_count IS 'Failures over the same hours.';
COMMENT ON COLUMN health_states.long_run_hour IS 'The hour the long-run counts were computed in (they are refreshed once an hour).';
COMMENT ON COLUMN health_states.failure_rate IS 'Failure rate of the outcomes the last change rested on.';
COMMENT ON COLUMN health_states.outcomes IS 'How many outcomes those were.';
COMMENT ON COLUMN health_states.reason IS 'Why the state last changed.';

CREATE TABLE health_history (
    id             BIGSERIAL PRIMARY KEY,
    provider       VARCHAR NOT NULL,
    model          VARCHAR,
    state          TEXT NOT NULL,
    previous_state TEXT NOT NULL,
    failure_rate   FLOAT,
    outcomes       BIGINT NOT NULL,
    window_s       INTEGER NOT NULL,
    since          TIMESTAMPTZ NOT NULL,
    reason         TEXT NOT NULL,
    published_to   INTEGER NOT NULL,
    changed_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_health_history_changed_at ON health_history (changed_at DESC);
COMMENT ON TABLE health_history IS
  'One row per health change of a pair or a provider, as published (model_health_update events), with how many queues it went to (same transaction as the change).';
COMMENT ON COLUMN health_history.provider IS 'Provider.';
COMMENT ON COLUMN health_history.model IS 'Model (NULL: the provider).';
COMMENT ON COLUMN health_history.state IS 'The new state.';
COMMENT ON COLUMN health_history.previous_state IS 'The state before.';
COMMENT ON COLUMN health_history.failure_rate IS 'Failure rate of the outcomes the change rested on.';
COMMENT ON COLUMN health_history.outcomes IS 'How many outcomes those were.';
COMMENT ON COLUMN health_history.window_s IS 'centralcloud.health_window at the time, in seconds.';
COMMENT ON COLUMN health_history.since IS 'When the new state began (the evaluation''s time).';
COMMENT ON COLUMN health_history.reason IS 'Why, as published.';
COMMENT ON COLUMN health_history.published_to IS 'Queues the event went to (subscribed instances plus model_score_updates).';
COMMENT ON COLUMN health_history.changed_at IS 'The evaluating transaction''s time.';

CREATE TABLE model_capabilities (
    provider      VARCHAR NOT NULL,
    model         VARCHAR NOT NULL,
    capability    VARCHAR NOT NULL CHECK (capability <> ''),
    supported     BOOLEAN NOT NULL DEFAULT true,
    source        TEXT NOT NULL DEFAULT 'operator' CHECK (source IN ('learned', 'operator')),
    successes     BIGINT NOT NULL DEFAULT 0,
    first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at  TIMESTAMPTZ,
    PRIMARY KEY (provider, model, capability)
);
CREATE INDEX idx_model_capabilities_capability ON model_capabilities (capability);
COMMENT ON TABLE model_capabilities IS
  'What each (provider, model) supports, for recommend_model(capabilities => ...). Ingest learns a capability when a request that required it succeeded on the pair (source learned); operators add rows (source operator) and set supported = false to deny one, which ingest never changes back. Deleting a learned row lets the next success learn it again.';
COMMENT ON COLUMN model_capabilities.provider IS 'Provider.';
COMMENT ON COLUMN model_capabilities.model IS 'Model.';
COMMENT ON COLUMN model_capabilities.capability IS 'A capabilities_required value, e.g. vision, function_calling.';
COMMENT ON COLUMN model_capabilities.supported IS 'Whether recommend_model() may count on it; operators set it, ingest only inserts true.';
COMMENT ON COLUMN model_capabilities.source IS 'learned (by ingest) or operator.';
COMMENT ON COLUMN model_capabilities.successes IS 'Successful requests that required it.';
COMMENT ON COLUMN model_capabilities.first_seen_at IS 'When the row was added.';
COMMENT ON COLUMN model_capabilities.last_seen_at IS 'Last successful request that required it.';

CREATE TABLE model_prices (
    provider                      VARCHAR NOT NULL,
    model                         VARCHAR NOT NULL,
    usd_per_request               NUMERIC CHECK (usd_per_request >= 0),
    usd_per_million_input_tokens  NUMERIC CHECK (usd_per_million_input_tokens >= 0),
    usd_per_million_output_tokens NUMERIC CHECK (usd_per_million_output_tokens >= 0),
    typical_input_tokens          INTEGER NOT NULL DEFAULT 1000 CHECK (typical_input_tokens >= 0),
    typical_output_tokens         INTEGER NOT NULL DEFAULT 500 CHECK (typical_output_tokens >= 0),
    PRIMARY KEY (provider, model),
    CHECK (usd_per_request IS NOT NULL OR usd_per_million_input_tokens IS NOT NULL
           OR usd_per_million_output_tokens IS NOT NULL)
);
COMMENT ON TABLE model_prices IS
  'Operator-maintained prices, for recommend_model(prefer => ''cost''): a request costs usd_per_request plus typical_input_tokens and typical_output_tokens at the per-million-token prices (a missing price counts as 0). Routing events carry no cost.';
COMMENT ON COLUMN model_prices.provider IS 'Provider.';
COMMENT ON COLUMN model_prices.model IS 'Model.';
COMMENT ON COLUMN model_prices.usd_per_request IS 'USD per request (flat fee).';
COMMENT ON COLUMN model_prices.usd_per_million_input_tokens IS 'USD per million input tokens.';
COMMENT ON COLUMN model_prices.usd_per_million_output_tokens IS 'USD per million output tokens.';
COMMENT ON COLUMN model_prices.typical_input_tokens IS 'Input tokens of a typical request.';
COMMENT ON COLUMN model_prices.typical_output_tokens IS 'Output tokens of a typical request.';


SELECT pg_catalog.pg_extension_config_dump('health_states', '');
SELECT pg_catalog.pg_extension_config_dump('health_history', '');
SELECT pg_catalog.pg_extension_config_dump('health_history_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('model_capabilities', '');
SELECT pg_catalog.pg_extension_config_dump('model_prices', '');
-- Every pair the rollup knows is a candidate of recommend_model() from the start: healthy until
-- health evaluation says otherwise.
INSERT INTO health_states (provider, model)
SELECT DISTINCT provider, model FROM routing_rollup_hourly
UNION
SELECT DISTINCT provider, NULL::varchar FROM routing_rollup_hourly;

-- ---------------------------------------------------------------------------------------
-- Each cell's latency percentiles, kept with the row (recommend_model() ranks by p95 on every
-- call; reading them from the sketch there would decode one per candidate).
-- ---------------------------------------------------------------------------------------
ALTER TABLE model_routing_metrics
    ADD COLUMN p50_ms FLOAT GENERATED ALWAYS AS (latency_quantile(latency_sketch, 0.5)) STORED,
    ADD COLUMN p95_ms FLOAT GENERATED ALWAYS AS (latency_quantile(latency_sketch, 0.95)) STORED;
COMMENT ON COLUMN model_routing_metrics.p50_ms IS 'Median response time in ms, from latency_sketch (within 1%).';
COMMENT ON COLUMN model_routing_metrics.p95_ms IS '95th percentile response time in ms, from latency_sketch (within 1%).';

-- The Rust functions (as pgrx defines them in a fresh install).
CREATE  FUNCTION "evaluate_model_health"() RETURNS TABLE (
	"provider" TEXT,  /* String */
	"model" TEXT,  /* Option < String > */
	"state" TEXT,  /* String */
	"previous_state" TEXT,  /* String */
	"failure_rate" double precision,  /* Option < f64 > */
	"outcomes" bigint,  /* i64 */
	"reason" TEXT  /* String */
)
STRICT SECURITY DEFINER
SET search_path TO @extschema@, pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'evaluate_model_health_wrapper';

CREATE  FUNCTION "recommend_model"(
	"complexity" TEXT, /* Option < & str > */
	"capabilities" TEXT[] DEFAULT '{}', /* :: std :: option :: Option < Vec < Option < String > > > */
	"prefer" TEXT DEFAULT NULL, /* Option < & str > */
	"exclude" TEXT[] DEFAULT '{}' /* :: std :: option :: Option < Vec < Option < String > > > */
) RETURNS TABLE (
	"rank" INT,  /* i32 */
	"model" TEXT,  /* String */
	"provider" TEXT,  /* String */
	"score" double precision,  /* f64 */
	"success_rate" double precision,  /* Option < f64 > */
	"success_rate_lower" double precision,  /* Option < f64 > */
	"samples" bigint,  /* i64 */
	"p50_ms" double precision,  /* Option < f64 > */
	"p95_ms" double precision,  /* Option < f64 > */
	"cost_per_request_usd" double precision,  /* Option < f64 > */
	"health" TEXT,  /* String */
	"reason" TEXT  /* String */
)
STABLE SECURITY DEFINER
SET search_path TO @extschema@, pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'recommend_model_wrapper';

CREATE  FUNCTION "latency_sketch_quantiles"(
	"sketch" bytea, /* & [u8] */
	"qs" double precision[] /* Vec < Option < f64 > > */
) RETURNS double precision[] /* Vec < Option < f64 > > */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'latency_sketch_quantiles_wrapper';

COMMENT ON FUNCTION recommend_model(text, text[], text, text[]) IS
  'The ranked candidates for a task of this complexity, now: model, provider, score, success rate with its lower bound and sample count, p50 and p95, estimated cost per request, health, and why. Skips down models and providers (an error, no_data_found, when that leaves nothing), honours exclude (model or provider names), keeps models known to support every capability asked for; prefer speed or cost picks the fastest or cheapest within centralcloud.recommend_tolerance of the best score. Unknown complexity, capability or preference: an error. At most centralcloud.recommend_max_candidates rows.';
COMMENT ON FUNCTION evaluate_model_health() IS
  'Evaluates the health of every provider and model now (ingest does it after each call): records each change in health_history and publishes a model_health_update event to every subscribed instance, in this transaction. Returns the changes.';
COMMENT ON FUNCTION latency_sketch_quantiles(bytea, double precision[]) IS 'Several quantiles of one latency sketch, decoded once: latency_quantile(sketch, q) for each q, in order.';

REVOKE ALL ON FUNCTION recommend_model(text, text[], text, text[]), evaluate_model_health() FROM PUBLIC;
-- Routers ask recommend_model() (it runs as the owner); the schema's USAGE lets them name it,
-- and shows them nothing else.
GRANT USAGE ON SCHEMA @extschema@ TO centralcloud_publisher;
GRANT EXECUTE ON FUNCTION recommend_model(text, text[], text, text[]) TO centralcloud_reader, centralcloud_publisher;
-- A router calls it on every request: its statements are planned once per session. With custom
-- plans PostgreSQL would plan them again on every call (their estimates beat the generic
-- plan's), which costs more than running them.
ALTER FUNCTION recommend_model(text, text[], text, text[]) SET plan_cache_mode = force_generic_plan;
-- Its generic plans misjudge how many candidates pass the request's filters (capabilities,
-- exclusions) as about one, and would sort that one instead of reading an index in order and
-- stopping after the rows it needs: with many candidates tied, the sort reads them all.
ALTER FUNCTION recommend_model(text, text[], text, text[]) SET enable_sort = off;
GRANT EXECUTE ON FUNCTION evaluate_model_health() TO centralcloud_operator;
GRANT SELECT ON health_outcomes, health_states, health_history, model_capabilities, model_prices
   TO centralcloud_operator;
-- Capabilities and prices are the operators' to maintain: a capability row added by hand is
-- theirs (source defaults to operator), and only they set supported.
GRANT INSERT, UPDATE, DELETE ON model_prices TO centralcloud_operator;
GRANT INSERT (provider, model, capability, supported), UPDATE (supported), DELETE ON model_capabilities
   TO centralcloud_operator;
COMMENT ON ROLE centralcloud_publisher IS 'centralcloud: router instances. Sends routing events to the model_routing_decisions queue, reads its score-update queue, calls recommend_model(); nothing else.';
COMMENT ON ROLE centralcloud_reader IS 'centralcloud: dashboards. SELECT on the dashboard views, recommend_model().';

-- Subscribed instances get health events in their score-update queue.
SELECT pgmq.bind_topic('centralcloud.model_health_update', s.queue_name)
  FROM @extschema@.score_subscriptions s JOIN pgmq.meta m ON m.queue_name = s.queue_name;

-- pg_dump leaves out privileges equal to an extension's initial ones (pg_init_privs). The grants
-- made above on pgmq's schema, its meta table and the event queue (handed back to pgmq, so no
-- member of anything) were recorded as initial ones and would be missing from every dump; a
-- restore would leave publishers unable to send. They are taken out of pg_init_privs, so
-- pg_dump dumps them like any grant.
DELETE FROM pg_catalog.pg_init_privs p
 WHERE p.classoid = 'pg_catalog.pg_class'::regclass
   AND p.objoid IN (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = 'pgmq'::regnamespace)
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = p.objoid AND d.deptype = 'e');
UPDATE pg_catalog.pg_init_privs p
   SET initprivs = ARRAY(SELECT a FROM unnest(p.initprivs) AS a
                          WHERE a::text !~ '^"?centralcloud_(publisher|reader|operator)"?=')
 WHERE EXISTS (SELECT 1 FROM unnest(p.initprivs) AS a WHERE a::text ~ '^"?centralcloud_(publisher|reader|operator)"?=')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d, pg_catalog.pg_extension e
                    WHERE d.classid = p.classoid AND d.objid = p.objoid AND d.refobjid = e.oid
                      AND d.deptype = 'e' AND e.extname = 'centralcloud');

-- ---------------------------------------------------------------------------------------
-- Lenient where the seed allows: a timestamp without offset is read as UTC, recorded as such
-- and counted in ingest_health (a response_time_ms with a fraction is rounded: no schema change).
-- ---------------------------------------------------------------------------------------
ALTER TABLE routing_records ADD COLUMN timestamp_without_offset BOOLEAN NOT NULL DEFAULT false;
COMMENT ON COLUMN routing_records.timestamp_without_offset IS 'The event''s timestamp had no UTC offset and was read as UTC.';
-- Rare: what ingest_health counts stays a small index scan.
CREATE INDEX idx_routing_records_without_offset ON routing_records (received_at)
    WHERE timestamp_without_offset;
-- Owner's rights (dashboards cannot read the audit trail), the rare rows through their partial
-- index. PL/pgSQL, so nothing binds it to routing_records, which a restore creates after the
-- extension (routing_records is not a member).
CREATE FUNCTION timestamps_without_offset(since timestamptz)
RETURNS bigint
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $without_offset$
BEGIN
    RETURN (SELECT count(*) FROM routing_records WHERE timestamp_without_offset AND received_at > since);
END
$without_offset$;
COMMENT ON FUNCTION timestamps_without_offset(timestamptz) IS
  'Events ingested since then whose timestamp had no UTC offset (read as UTC). Read it through ingest_health.';

CREATE OR REPLACE VIEW ingest_health AS
SELECT coalesce(q.queue_name, current_setting('centralcloud.queue_name', true)) AS queue_name,
       q.queue_length,
       q.queue_visible_length,
       q.oldest_msg_age_sec,
       q.newest_msg_age_sec,
       q.total_messages AS messages_ever_sent,
       (SELECT count(*) FROM routing_events_rejected
         WHERE rejected_at > now() - interval '1 hour') AS dead_letters_last_hour,
       (SELECT count(*) FROM routing_events_rejected) AS dead_letters_total,
       (SELECT max(updated_at) FROM model_routing_metrics) AS last_ingest_at,
       w.state AS worker_state,
       w.last_error AS worker_last_error,
       w.last_error_at AS worker_last_error_at,
       timestamps_without_offset(now() - interval '24 hours') AS timestamps_without_offset_24h
  FROM worker_status w
  LEFT JOIN queue_health() q ON true;
COMMENT ON VIEW ingest_health IS
  'One row: the routing-event queue''s depth (all and visible) and its oldest and newest message age in seconds, dead letters in the last hour and in total, the last ingest that recorded events, the background worker''s state and last error, and the events of the last 24 hours whose timestamp had no UTC offset (read as UTC: routing_records.timestamp_without_offset says which).';
REVOKE ALL ON FUNCTION timestamps_without_offset(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION timestamps_without_offset(timestamptz) TO centralcloud_reader;

-- ---------------------------------------------------------------------------------------
-- The router's view (granted to centralcloud_publisher in security.sql), and which instances
-- are in sync.
-- ---------------------------------------------------------------------------------------
CREATE FUNCTION score_snapshot()
RETURNS TABLE (model text, complexity text, score double precision, changed_at timestamptz,
               change_source text, reason text)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $snapshot$
    SELECT s.model_name::text, s.complexity_level::text, s.score, s.changed_at, s.change_source,
           s.change_reason
      FROM model_complexity_scores s
     ORDER BY s.model_name, s.complexity_level
$snapshot$;
COMMENT ON FUNCTION score_snapshot() IS
  'The whole score catalog, for a router that starts up: model, complexity, current score, when, by whom (reported, learned, operator) and why it last changed. The updates that follow arrive in the instance''s queue.';

CREATE FUNCTION instance_queue(instance_id text)
RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $queue$
DECLARE
    queue text;
BEGIN
    SELECT s.queue_name INTO queue FROM score_subscriptions s WHERE s.instance_id = instance_queue.instance_id;
    IF queue IS NULL THEN
        RAISE EXCEPTION 'centralcloud: instance "%" is not subscribed to score updates', instance_queue.instance_id
            USING ERRCODE = 'undefined_object',
                  HINT = 'An operator subscribes it with centralcloud.subscribe_instance(instance_id, reader_role).';
    END IF;
    RETURN queue;
END
$queue$;
COMMENT ON FUNCTION instance_queue(text) IS
  'The score-update queue of a subscribed instance (cc_scores_<slug>_<hash>); undefined_object when it is not subscribed.';

-- A row is shown to members of the role that reads the instance's queue: what a router may see
-- of its own dead letters, not other instances'. security_barrier: the filter runs before any
-- function of the caller's.
CREATE VIEW instance_dead_letters WITH (security_barrier) AS
SELECT s.instance_id, r.msg_id, r.reason_code, r.reason, r.rejected_at
  FROM routing_events_rejected r
  JOIN score_subscriptions s ON s.instance_id = r.message ->> 'instance_id'
 WHERE pg_has_role(to_regrole(quote_ident(s.reader_role)), 'MEMBER');
COMMENT ON VIEW instance_dead_letters IS
  'Dead letters of the subscribed instances whose queue the current role reads (a member of its reader_role): instance, msg_id, reason code, reason, when. Messages too broken to name an instance are not shown (operators read routing_events_rejected).';
COMMENT ON COLUMN instance_dead_letters.instance_id IS 'Instance the dead letter names.';
COMMENT ON COLUMN instance_dead_letters.msg_id IS 'pgmq msg_id of the message.';
COMMENT ON COLUMN instance_dead_letters.reason_code IS 'Stable reason code.';
COMMENT ON COLUMN instance_dead_letters.reason IS 'The reason, naming the field.';
COMMENT ON COLUMN instance_dead_letters.rejected_at IS 'When it was dead-lettered.';

-- Owner's rights: the queues' metrics and the audit trail are not the dashboards'. PL/pgSQL, so
-- nothing binds it to routing_records (created after the extension by a restore).
CREATE FUNCTION instance_sync_state(recent interval)
RETURNS TABLE (instance_id text, queue_name text, unread_updates bigint, oldest_unread_age_s integer,
               last_ingested_at timestamptz, recent_events bigint, stale_events bigint,
               stale_rate double precision)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $sync$
BEGIN
    RETURN QUERY
    WITH routed AS (
        -- Events of the recent window that came at least a minute after their cell's last
        -- change (time to apply it), and those routed with another score than the current one.
        SELECT r.instance_id::text AS instance_id, count(*) AS events,
               count(*) FILTER (WHERE abs(r.score - c.score) > 0.001) AS stale
          FROM routing_records r
          JOIN model_complexity_scores c ON c.model_name = r.model AND c.complexity_level = r.complexity
         WHERE r."timestamp" > now() - recent AND r."timestamp" > c.changed_at + interval '1 minute'
         GROUP BY r.instance_id)
    SELECT s.instance_id, s.queue_name, m.queue_length, m.oldest_msg_age_sec,
           (SELECT max(h.updated_at) FROM routing_rollup_hourly h WHERE h.instance_id = s.instance_id),
           coalesce(e.events, 0), coalesce(e.stale, 0), percent(e.stale, e.events)
      FROM score_subscriptions s
      CROSS JOIN LATERAL pgmq.metrics(s.queue_name) m
      LEFT JOIN routed e ON e.instance_id = s.instance_id
     ORDER BY s.instance_id;
END
$sync$;
COMMENT ON FUNCTION instance_sync_state(interval) IS
  'For instance_sync: per subscribed instance, its unread score updates and the age of the oldest, when its events were last ingested, and of its events of the recent window (event time, at least a minute after their cell''s last change) how many were routed with a score more than 0.001 from the catalog''s.';

CREATE VIEW instance_sync AS
SELECT * FROM instance_sync_state(interval '15 minutes');
COMMENT ON VIEW instance_sync IS
  'Which instances apply their score updates: per subscribed instance, unread updates, age of the oldest (s), last ingest of its events, and in the last 15 minutes (event time) its events, those routed with a stale score, and their rate in percent.';
COMMENT ON COLUMN instance_sync.instance_id IS 'Subscribed instance.';
COMMENT ON COLUMN instance_sync.queue_name IS 'Its score-update queue.';
COMMENT ON COLUMN instance_sync.unread_updates IS 'Score updates in its queue.';
COMMENT ON COLUMN instance_sync.oldest_unread_age_s IS 'Age of the oldest, s.';
COMMENT ON COLUMN instance_sync.last_ingested_at IS 'When its events were last ingested.';
COMMENT ON COLUMN instance_sync.recent_events IS 'Its events of the last 15 minutes (event time) that came at least a minute after their cells last change.';
COMMENT ON COLUMN instance_sync.stale_events IS 'Those routed with a score more than 0.001 from the catalogs.';
COMMENT ON COLUMN instance_sync.stale_rate IS 'stale_events / recent_events, percent (2 decimals).';

REVOKE ALL ON FUNCTION score_snapshot(), instance_queue(text), instance_sync_state(interval) FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO centralcloud_publisher;
-- The router's view (a router logs in as a member of centralcloud_publisher): check an event
-- (routing_event_rejection, PUBLIC), start from the current scores, find its queue, see its own
-- dead letters.
GRANT EXECUTE ON FUNCTION score_snapshot() TO centralcloud_publisher, centralcloud_reader;
GRANT EXECUTE ON FUNCTION instance_queue(text) TO centralcloud_publisher, centralcloud_operator;
GRANT SELECT ON instance_dead_letters TO centralcloud_publisher;
GRANT SELECT ON instance_sync TO centralcloud_reader;
GRANT EXECUTE ON FUNCTION instance_sync_state(interval) TO centralcloud_reader;
GRANT SELECT ON instance_dead_letters, instance_sync TO centralcloud_operator;

-- ---------------------------------------------------------------------------------------
-- Dashboards: one unit per quantity (rates in percent, ms to 0.1, scores to 4 decimals, as
-- double precision), every view column documented, and time series for Grafana. The views
-- whose column types change are dropped and created again, with their grants.
-- ---------------------------------------------------------------------------------------
DROP VIEW model_success_rates, model_response_times, model_usage_by_instance, model_rankings,
          score_updates_recent, learning_changes_recent;
DROP FUNCTION latency_quantiles(text, text, timestamptz, timestamptz);
-- ---------------------------------------------------------------------------------------
-- One unit per quantity in every view and function: rates in percent (0-100) rounded to 2
-- decimals, as the seed's dashboard shows them; milliseconds rounded to 0.1; scores to 4
-- decimals. Rounded values are double precision, so they print without trailing zeros.
-- (Prometheus gets ratios 0-1 and seconds, its convention: prometheus/queries.yaml.)
-- No SET search_path on these three: their SQL-standard bodies are bound when created (no name
-- is looked up when they run), and a function with a SET clause is never inlined: views and
-- routing_timeseries() would pay a call with a GUC save and restore per value (2.5 us each, a
-- fifth of a 30-day hourly series).
-- ---------------------------------------------------------------------------------------
CREATE FUNCTION percent(part numeric, whole numeric)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN round(part * 100 / nullif(whole, 0), 2)::double precision;
COMMENT ON FUNCTION percent(numeric, numeric) IS
  'part / whole in percent, rounded to 2 decimals; NULL when whole is 0 (the views'' rates).';

CREATE FUNCTION ms(value double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN round(value::numeric, 1)::double precision;
COMMENT ON FUNCTION ms(double precision) IS
  'Milliseconds rounded to 0.1 (the views'' latencies).';

CREATE FUNCTION score4(value double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN round(value::numeric, 4)::double precision;
COMMENT ON FUNCTION score4(double precision) IS
  'A score (or a change of one) rounded to 4 decimals (the views'' scores).';

-- ---------------------------------------------------------------------------------------
-- The seed's dashboard queries 2 and 3, corrected (the seed selects a column "model" that
-- model_routing_metrics does not have, calls ROUND(double precision, integer), which does
-- not exist, and divides successes by all events).
-- ---------------------------------------------------------------------------------------
CREATE VIEW model_success_rates AS
SELECT model_name AS model,
       complexity_level,
       percent(success_count, success_count + failure_count) AS success_rate,
       success_count + failure_count AS outcome_count,
       usage_count
  FROM model_routing_metrics
 ORDER BY success_rate DESC NULLS LAST, model, complexity_level;
COMMENT ON VIEW model_success_rates IS
  'Seed dashboard "Success rates", corrected: success_rate = success / (success + failure) in percent, with its sample size (outcome_count) and the number of routing decisions (usage_count).';
COMMENT ON COLUMN model_success_rates.model IS 'Model.';
COMMENT ON COLUMN model_success_rates.complexity_level IS 'Task complexity: simple, medium or complex.';
COMMENT ON COLUMN model_success_rates.success_rate IS 'success / (success + failure), in percent (2 decimals); NULL without outcomes.';
COMMENT ON COLUMN model_success_rates.outcome_count IS 'Outcomes (success + failure): the sample size of success_rate.';
COMMENT ON COLUMN model_success_rates.usage_count IS 'Routing decisions (outcome routed).';

CREATE VIEW model_response_times AS
SELECT model_name AS model,
       complexity_level,
       ms(avg_response_time) AS avg_ms,
       ms(latency_quantile(latency_sketch, 0.50)) AS p50_ms,
       ms(latency_quantile(latency_sketch, 0.95)) AS p95_ms,
       ms(latency_quantile(latency_sketch, 0.99)) AS p99_ms,
       response_time_max AS max_ms,
       response_time_count AS samples
  FROM model_routing_metrics
 WHERE response_time_count > 0
 ORDER BY avg_ms DESC, model, complexity_level;
COMMENT ON VIEW model_response_times IS
  'Seed dashboard "Response time trends", corrected: exact average and maximum, and p50/p95/p99 read from the latency sketch (within 1% relative error), per model and complexity.';
COMMENT ON COLUMN model_response_times.model IS 'Model.';
COMMENT ON COLUMN model_response_times.complexity_level IS 'Task complexity.';
COMMENT ON COLUMN model_response_times.avg_ms IS 'Exact average response time, ms (0.1).';
COMMENT ON COLUMN model_response_times.p50_ms IS 'Median response time from the sketch, ms (0.1, within 1%).';
COMMENT ON COLUMN model_response_times.p95_ms IS '95th percentile, ms (0.1, within 1%).';
COMMENT ON COLUMN model_response_times.p99_ms IS '99th percentile, ms (0.1, within 1%).';
COMMENT ON COLUMN model_response_times.max_ms IS 'Largest response time, ms.';
COMMENT ON COLUMN model_response_times.samples IS 'Events that reported a response time.';

-- ---------------------------------------------------------------------------------------
-- The seed's query 1 ("Models used per instance") over the rollup instead of the audit trail.
-- ---------------------------------------------------------------------------------------
CREATE VIEW model_usage_by_instance AS
SELECT instance_id,
       model,
       sum(usage_count)::bigint AS usage_count,
       sum(success_count)::bigint AS success_count,
       sum(failure_count)::bigint AS failure_count,
       sum(usage_count + success_count + failure_count)::bigint AS events
  FROM routing_rollup_hourly
 WHERE hour >= date_trunc('hour', now() - interval '23 hours', 'UTC')
 GROUP BY instance_id, model
 ORDER BY usage_count DESC, instance_id, model;
COMMENT ON VIEW model_usage_by_instance IS
  'Seed dashboard "Models used per instance", last 24 hours (the current UTC hour and the 23 before it, by event timestamp), from routing_rollup_hourly: routing decisions (usage_count), outcomes, and all events, per instance and model.';
COMMENT ON COLUMN model_usage_by_instance.instance_id IS 'Router instance.';
COMMENT ON COLUMN model_usage_by_instance.model IS 'Model.';
COMMENT ON COLUMN model_usage_by_instance.usage_count IS 'Routing decisions, last 24 hours.';
COMMENT ON COLUMN model_usage_by_instance.success_count IS 'Successful outcomes, last 24 hours.';
COMMENT ON COLUMN model_usage_by_instance.failure_count IS 'Failed outcomes, last 24 hours.';
COMMENT ON COLUMN model_usage_by_instance.events IS 'All events (decisions and outcomes), last 24 hours.';

CREATE VIEW model_rankings AS
SELECT s.complexity_level,
       rank() OVER (PARTITION BY s.complexity_level ORDER BY s.score DESC) AS rank,
       s.model_name AS model,
       score4(s.score) AS score,
       percent(m.success_count, m.success_count + m.failure_count) AS success_rate,
       m.success_count + m.failure_count AS outcome_count,
       m.usage_count,
       ms(latency_quantile(m.latency_sketch, 0.95)) AS p95_ms,
       score4(last_change.old_score) AS previous_score,
       s.change_source AS last_change_source,
       s.change_reason AS last_change_reason,
       s.changed_at AS last_changed_at
  FROM model_complexity_scores s
  LEFT JOIN model_routing_metrics m
         ON m.model_name = s.model_name AND m.complexity_level = s.complexity_level
  LEFT JOIN LATERAL (SELECT h.old_score FROM score_history h
                      WHERE h.model_name = s.model_name AND h.complexity_level = s.complexity_level
                      ORDER BY h.changed_at DESC, h.id DESC LIMIT 1) AS last_change ON true
 ORDER BY array_position(ARRAY['simple', 'medium', 'complex']::varchar[], s.complexity_level),
          rank, model;
COMMENT ON VIEW model_rankings IS
  'The seed''s shared model rankings: per complexity, models ranked by their current (learned) score, with success rate and its sample size, routing decisions, p95 latency, the score before the last change, and who changed it, why and when.';
COMMENT ON COLUMN model_rankings.complexity_level IS 'Task complexity.';
COMMENT ON COLUMN model_rankings.rank IS 'Rank by current score within the complexity (1 = best).';
COMMENT ON COLUMN model_rankings.model IS 'Model.';
COMMENT ON COLUMN model_rankings.score IS 'Current score, 0-5 (4 decimals).';
COMMENT ON COLUMN model_rankings.success_rate IS 'Lifetime success rate, percent (2 decimals).';
COMMENT ON COLUMN model_rankings.outcome_count IS 'Lifetime outcomes: the sample size of success_rate.';
COMMENT ON COLUMN model_rankings.usage_count IS 'Lifetime routing decisions.';
COMMENT ON COLUMN model_rankings.p95_ms IS 'Lifetime p95 response time, ms (0.1).';
COMMENT ON COLUMN model_rankings.previous_score IS 'Score before the last change (4 decimals).';
COMMENT ON COLUMN model_rankings.last_change_source IS 'reported, learned or operator.';
COMMENT ON COLUMN model_rankings.last_change_reason IS 'Why the score last changed.';
COMMENT ON COLUMN model_rankings.last_changed_at IS 'When it last changed.';

CREATE VIEW score_updates_recent AS
SELECT changed_at,
       model_name AS model,
       complexity_level,
       score4(old_score) AS old_score,
       score4(new_score) AS new_score,
       score4(new_score - old_score) AS change,
       policy,
       reason,
       samples,
       round(success_rate::numeric * 100, 2)::double precision AS success_rate,
       ms(avg_response_time_ms) AS avg_response_time_ms,
       published_to
  FROM score_history
 ORDER BY changed_at DESC, id DESC
 LIMIT 100;
COMMENT ON VIEW score_updates_recent IS
  'The latest 100 score changes (learned or by an operator), newest first, with the evidence, the reason and how many queues the update went to.';
COMMENT ON COLUMN score_updates_recent.changed_at IS 'When the score changed.';
COMMENT ON COLUMN score_updates_recent.model IS 'Model.';
COMMENT ON COLUMN score_updates_recent.complexity_level IS 'Task complexity.';
COMMENT ON COLUMN score_updates_recent.old_score IS 'Score before (4 decimals; NULL for a new cell).';
COMMENT ON COLUMN score_updates_recent.new_score IS 'Score after (4 decimals).';
COMMENT ON COLUMN score_updates_recent.change IS 'new_score - old_score (4 decimals).';
COMMENT ON COLUMN score_updates_recent.policy IS 'Learning policy (bayes, seed) or operator.';
COMMENT ON COLUMN score_updates_recent.reason IS 'Why, with the numbers.';
COMMENT ON COLUMN score_updates_recent.samples IS 'Outcomes the decision rests on.';
COMMENT ON COLUMN score_updates_recent.success_rate IS 'Success rate the decision rests on, percent (2 decimals).';
COMMENT ON COLUMN score_updates_recent.avg_response_time_ms IS 'Average response time of that evidence, ms (0.1).';
COMMENT ON COLUMN score_updates_recent.published_to IS 'Queues the score update went to.';

CREATE VIEW learning_changes_recent AS
SELECT detected_at, model_name AS model, complexity_level, change_hour, kind,
       CASE kind WHEN 'success_rate' THEN round(before_value::numeric * 100, 2)::double precision
                 ELSE ms(before_value) END AS before_value,
       CASE kind WHEN 'success_rate' THEN round(after_value::numeric * 100, 2)::double precision
                 ELSE ms(after_value) END AS after_value,
       round(statistic::numeric, 1)::double precision AS statistic
  FROM learning_changes
 ORDER BY detected_at DESC, id DESC
 LIMIT 100;
COMMENT ON VIEW learning_changes_recent IS
  'The latest 100 changes of a cell''s success rate or latency that learning (policy bayes) detected, newest first.';
COMMENT ON COLUMN learning_changes_recent.detected_at IS 'When learning detected it.';
COMMENT ON COLUMN learning_changes_recent.model IS 'Model.';
COMMENT ON COLUMN learning_changes_recent.complexity_level IS 'Task complexity.';
COMMENT ON COLUMN learning_changes_recent.change_hour IS 'Event hour the new regime starts at.';
COMMENT ON COLUMN learning_changes_recent.kind IS 'success_rate or latency.';
COMMENT ON COLUMN learning_changes_recent.before_value IS 'Before the change: success rate in percent (2 decimals), or p50 latency in ms (0.1).';
COMMENT ON COLUMN learning_changes_recent.after_value IS 'After the change, in the same unit.';
COMMENT ON COLUMN learning_changes_recent.statistic IS 'Log-likelihood ratio (success rate) or p50 ratio (latency), 1 decimal.';

-- ---------------------------------------------------------------------------------------
-- The rollup summed over instances, for fleet-wide time series and windows (a twentieth of the
-- rows with twenty instances), filled here from the rollup as it stands.
-- ---------------------------------------------------------------------------------------
CREATE TABLE routing_rollup_hourly_fleet (
    hour                TIMESTAMPTZ NOT NULL,
    model               VARCHAR NOT NULL,
    complexity          VARCHAR NOT NULL,
    provider            VARCHAR NOT NULL,
    usage_count         BIGINT NOT NULL DEFAULT 0,
    success_count       BIGINT NOT NULL DEFAULT 0,
    failure_count       BIGINT NOT NULL DEFAULT 0,
    response_time_count BIGINT NOT NULL DEFAULT 0,
    response_time_sum   BIGINT NOT NULL DEFAULT 0,
    response_time_min   INTEGER,
    response_time_max   INTEGER,
    latency_sketch      BYTEA,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (model, complexity, hour, provider)
);
COMMENT ON TABLE routing_rollup_hourly_fleet IS
  'routing_rollup_hourly summed over instances: one row per (hour, model, complexity, provider), the same counters and the merged sketch. Written by ingest with the rollup; on a central server that receives rollups by replication, refresh_metrics_from_rollup() recounts it. check_invariants() compares it with the rollup.';
COMMENT ON COLUMN routing_rollup_hourly_fleet.hour IS 'Start of the hour (UTC) of the events'' own timestamp.';
COMMENT ON COLUMN routing_rollup_hourly_fleet.model IS 'Model.';
COMMENT ON COLUMN routing_rollup_hourly_fleet.complexity IS 'Task complexity.';
COMMENT ON COLUMN routing_rollup_hourly_fleet.provider IS 'Provider of the model.';
COMMENT ON COLUMN routing_rollup_hourly_fleet.usage_count IS 'Routing decisions (outcome routed), all instances.';
COMMENT ON COLUMN routing_rollup_hourly_fleet.success_count IS 'Outcome events with outcome success, all instances.';
COMMENT ON COLUMN routing_rollup_hourly_fleet.failure_count IS 'Outcome events with outcome failure, all instances.';
COMMENT ON COLUMN routing_rollup_hourly_fleet.response_time_count IS 'Events that reported response_time_ms.';
COMMENT ON COLUMN routing_rollup_hourly_fleet.response_time_sum IS 'Sum of reported response_time_ms.';
COMMENT ON COLUMN routing_rollup_hourly_fleet.response_time_min IS 'Smallest reported response_time_ms.';
COMMENT ON COLUMN routing_rollup_hourly_fleet.response_time_max IS 'Largest reported response_time_ms.';
COMMENT ON COLUMN routing_rollup_hourly_fleet.latency_sketch IS 'The instances'' sketches of the hour, merged.';
COMMENT ON COLUMN routing_rollup_hourly_fleet.updated_at IS 'Last batch or recount that changed the row.';
SELECT pg_catalog.pg_extension_config_dump('routing_rollup_hourly_fleet', '');
GRANT SELECT ON routing_rollup_hourly_fleet TO centralcloud_operator;
DO $fill_fleet$
BEGIN
    INSERT INTO routing_rollup_hourly_fleet
           (model, complexity, hour, provider, usage_count, success_count, failure_count,
            response_time_count, response_time_sum, response_time_min, response_time_max,
            latency_sketch, updated_at)
    SELECT r.model, r.complexity, r.hour, r.provider, sum(r.usage_count), sum(r.success_count),
           sum(r.failure_count), sum(r.response_time_count), sum(r.response_time_sum),
           min(r.response_time_min), max(r.response_time_max), latency_sketch_union(r.latency_sketch),
           max(r.updated_at)
      FROM routing_rollup_hourly r
     GROUP BY r.model, r.complexity, r.hour, r.provider;
END
$fill_fleet$;

-- ---------------------------------------------------------------------------------------
-- Any window, from the rollup.
-- ---------------------------------------------------------------------------------------
CREATE FUNCTION latency_quantiles(model text, complexity text, since timestamptz,
                                  until timestamptz DEFAULT now())
RETURNS TABLE (samples bigint, avg_ms double precision, p50_ms double precision, p95_ms double precision,
               p99_ms double precision, min_ms integer, max_ms integer)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $quantiles$
    SELECT w.samples, w.avg_ms, ms(latency_quantile(w.sketch, 0.50)), ms(latency_quantile(w.sketch, 0.95)),
           ms(latency_quantile(w.sketch, 0.99)), w.min_ms, w.max_ms
      FROM (SELECT coalesce(sum(r.response_time_count), 0)::bigint AS samples,
                   ms(sum(r.response_time_sum)::double precision / NULLIF(sum(r.response_time_count), 0)) AS avg_ms,
                   min(r.response_time_min) AS min_ms,
                   max(r.response_time_max) AS max_ms,
                   latency_sketch_union(r.latency_sketch) AS sketch
              FROM routing_rollup_hourly_fleet r
             WHERE (latency_quantiles.model IS NULL OR r.model = latency_quantiles.model)
               AND (latency_quantiles.complexity IS NULL OR r.complexity = latency_quantiles.complexity)
               AND r.hour >= date_trunc('hour', latency_quantiles.since, 'UTC')
               AND r.hour < latency_quantiles.until) AS w
$quantiles$;
COMMENT ON FUNCTION latency_quantiles(text, text, timestamptz, timestamptz) IS
  'Latency of a model and complexity (NULL: all) over a window, merged from the hourly rollup sketches: samples, exact average, p50/p95/p99 (within 1%), min and max. Hour-granular: every rollup hour that starts in [date_trunc(''hour'', since), until).';

-- ---------------------------------------------------------------------------------------
-- Time series for Grafana (its PostgreSQL data source plots a first column named time): the
-- rollup per hour as it is, and any bucket of whole hours per model and complexity (optionally
-- per provider and instance), merging the hourly sketches.
-- ---------------------------------------------------------------------------------------
CREATE VIEW routing_hourly AS
SELECT h.hour AS "time", h.model, h.complexity, h.provider, h.instance_id,
       h.usage_count AS decisions, h.success_count AS successes, h.failure_count AS failures,
       percent(h.success_count, h.success_count + h.failure_count) AS success_rate,
       ms(h.response_time_sum::double precision / nullif(h.response_time_count, 0)) AS avg_ms,
       ms(latency_quantile(h.latency_sketch, 0.50)) AS p50_ms,
       ms(latency_quantile(h.latency_sketch, 0.95)) AS p95_ms,
       ms(latency_quantile(h.latency_sketch, 0.99)) AS p99_ms,
       h.response_time_count AS latency_samples
  FROM routing_rollup_hourly h;
COMMENT ON VIEW routing_hourly IS
  'The hourly rollup as a time series: one row per (hour of the events'' timestamps, model, complexity, provider, instance) with decisions, outcomes, success rate and latency. Filter on time (Grafana: WHERE $__timeFilter(time)); routing_timeseries() aggregates over instances and providers and any bucket.';
COMMENT ON COLUMN routing_hourly."time" IS 'Hour of the events timestamps (UTC).';
COMMENT ON COLUMN routing_hourly.model IS 'Model.';
COMMENT ON COLUMN routing_hourly.complexity IS 'Task complexity.';
COMMENT ON COLUMN routing_hourly.provider IS 'Provider.';
COMMENT ON COLUMN routing_hourly.instance_id IS 'Router instance.';
COMMENT ON COLUMN routing_hourly.decisions IS 'Routing decisions.';
COMMENT ON COLUMN routing_hourly.successes IS 'Successful outcomes.';
COMMENT ON COLUMN routing_hourly.failures IS 'Failed outcomes.';
COMMENT ON COLUMN routing_hourly.success_rate IS 'success / (success + failure), percent (2 decimals).';
COMMENT ON COLUMN routing_hourly.avg_ms IS 'Exact average response time, ms (0.1).';
COMMENT ON COLUMN routing_hourly.p50_ms IS 'Median response time, ms (0.1, within 1%).';
COMMENT ON COLUMN routing_hourly.p95_ms IS '95th percentile, ms (0.1, within 1%).';
COMMENT ON COLUMN routing_hourly.p99_ms IS '99th percentile, ms (0.1, within 1%).';
COMMENT ON COLUMN routing_hourly.latency_samples IS 'Events that reported a response time.';

CREATE FUNCTION routing_timeseries(since timestamptz, until timestamptz DEFAULT now(),
                                   bucket interval DEFAULT '1 hour', model_name text DEFAULT NULL,
                                   complexity_level text DEFAULT NULL, per_provider boolean DEFAULT false,
                                   per_instance boolean DEFAULT false)
RETURNS TABLE ("time" timestamptz, model text, complexity text, provider text, instance_id text,
               decisions bigint, successes bigint, failures bigint, success_rate double precision,
               avg_ms double precision, p50_ms double precision, p95_ms double precision,
               p99_ms double precision, latency_samples bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
-- Planned for each call's arguments: a generic plan cannot make index conditions of the model
-- and complexity filters (either may be NULL), so it reads every row of the window.
SET plan_cache_mode = force_custom_plan
AS $series$
BEGIN
    IF bucket < interval '1 hour' OR extract(epoch FROM bucket)::numeric % 3600 <> 0 THEN
        RAISE EXCEPTION 'centralcloud: bucket must be a whole number of hours (the rollup is hourly), got %', bucket
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF since IS NULL OR until IS NULL OR until < since THEN
        RAISE EXCEPTION 'centralcloud: need since <= until, got [%, %)', since, until
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The three quantiles come from one decode of the merged sketch (an array of them).
    RETURN QUERY
    SELECT b.bin, b.model, b.complexity, b.provider, b.instance_id, b.decisions::bigint,
           b.successes::bigint, b.failures::bigint, percent(b.successes, b.outcomes),
           ms(b.latency_sum::double precision / nullif(b.latency_samples, 0)),
           ms(b.quantiles[1]), ms(b.quantiles[2]), ms(b.quantiles[3]), b.latency_samples::bigint
      FROM (SELECT date_bin(bucket, h.hour, timestamptz '2000-01-01 00:00:00+00') AS bin,
                   h.model::text AS model, h.complexity::text AS complexity,
                   CASE WHEN per_provider THEN h.provider::text END AS provider,
                   CASE WHEN per_instance THEN h.instance_id::text END AS instance_id,
                   sum(h.usage_count) AS decisions, sum(h.success_count) AS successes,
                   sum(h.failure_count) AS failures, sum(h.success_count + h.failure_count) AS outcomes,
                   sum(h.response_time_sum) AS latency_sum, sum(h.response_time_count) AS latency_samples,
                   latency_sketch_quantiles(latency_sketch_union(h.latency_sketch), '{0.50, 0.95, 0.99}') AS quantiles
              -- Per instance from the rollup, otherwise from its sum over instances (a custom
              -- plan keeps only the branch the call needs).
              FROM (SELECT r.hour, r.model, r.complexity, r.provider, r.instance_id, r.usage_count,
                           r.success_count, r.failure_count, r.response_time_sum,
                           r.response_time_count, r.latency_sketch
                      FROM routing_rollup_hourly r
                     WHERE per_instance
                    UNION ALL
                    SELECT f.hour, f.model, f.complexity, f.provider, NULL, f.usage_count,
                           f.success_count, f.failure_count, f.response_time_sum,
                           f.response_time_count, f.latency_sketch
                      FROM routing_rollup_hourly_fleet f
                     WHERE NOT per_instance) h
             WHERE h.hour >= date_bin(bucket, since, timestamptz '2000-01-01 00:00:00+00') AND h.hour < until
               AND (model_name IS NULL OR h.model = model_name)
               AND (complexity_level IS NULL OR h.complexity = complexity_level)
             GROUP BY 1, 2, 3, 4, 5) b
     ORDER BY 1, 2, 3, 4, 5;
END
$series$;
COMMENT ON FUNCTION routing_timeseries(timestamptz, timestamptz, interval, text, text, boolean, boolean) IS
  'Time series of decisions, outcomes, success rate (%) and latency (ms: average, p50/p95/p99 from the merged hourly sketches) per bucket (whole hours, aligned to 2000-01-01 UTC) and model and complexity, optionally per provider and per instance, over [since, until) by event hour; model_name or complexity_level NULL: all. For Grafana: SELECT time, model, p95_ms FROM centralcloud.routing_timeseries($__timeFrom(), $__timeTo(), ''1 hour'', complexity_level => ''complex'').';
GRANT SELECT ON model_usage_by_instance, model_success_rates, model_response_times, model_rankings,
                score_updates_recent, learning_changes_recent, routing_hourly
   TO centralcloud_reader, centralcloud_operator;
REVOKE ALL ON FUNCTION latency_quantiles(text, text, timestamptz, timestamptz),
                       routing_timeseries(timestamptz, timestamptz, interval, text, text, boolean, boolean)
   FROM PUBLIC;
GRANT EXECUTE ON FUNCTION latency_quantiles(text, text, timestamptz, timestamptz),
                          routing_timeseries(timestamptz, timestamptz, interval, text, text, boolean, boolean)
   TO centralcloud_reader;
COMMENT ON COLUMN ingest_health.queue_name IS 'The routing-event queue (centralcloud.queue_name).';
COMMENT ON COLUMN ingest_health.queue_length IS 'Messages in it.';
COMMENT ON COLUMN ingest_health.queue_visible_length IS 'Messages visible now (not being read).';
COMMENT ON COLUMN ingest_health.oldest_msg_age_sec IS 'Age of the oldest message, s.';
COMMENT ON COLUMN ingest_health.newest_msg_age_sec IS 'Age of the newest message, s.';
COMMENT ON COLUMN ingest_health.messages_ever_sent IS 'Messages ever sent to the queue.';
COMMENT ON COLUMN ingest_health.dead_letters_last_hour IS 'Dead letters written in the last hour.';
COMMENT ON COLUMN ingest_health.dead_letters_total IS 'Dead letters kept (see dead_letter_retention).';
COMMENT ON COLUMN ingest_health.last_ingest_at IS 'Last time ingest recorded events.';
COMMENT ON COLUMN ingest_health.worker_state IS 'The background workers state (worker_status).';
COMMENT ON COLUMN ingest_health.worker_last_error IS 'The workers last error.';
COMMENT ON COLUMN ingest_health.worker_last_error_at IS 'When it happened.';
COMMENT ON COLUMN ingest_health.timestamps_without_offset_24h IS 'Events ingested in the last 24 hours whose timestamp had no UTC offset (read as UTC).';
COMMENT ON COLUMN worker_status.pid IS 'Process id of the worker that last wrote its state.';
COMMENT ON COLUMN worker_status.state IS 'idle, ingesting, disabled, error, waiting for ..., not running, not served, not preloaded, or standby.';
COMMENT ON COLUMN worker_status.started_at IS 'When that worker process started.';
COMMENT ON COLUMN worker_status.last_ingest_at IS 'Its last batch that ingested something.';
COMMENT ON COLUMN worker_status.last_learn_at IS 'Its last successful learning run.';
COMMENT ON COLUMN worker_status.ingested_since_start IS 'Events it ingested.';
COMMENT ON COLUMN worker_status.rejected_since_start IS 'Events it dead-lettered.';
COMMENT ON COLUMN worker_status.last_error IS 'Last error it caught (and rolled back).';
COMMENT ON COLUMN worker_status.last_error_at IS 'When.';
COMMENT ON COLUMN worker_status.updated_at IS 'Last write of its state.';
COMMENT ON COLUMN routing_record_partitions.partition_name IS 'routing_records_pYYYYMMDD.';
COMMENT ON COLUMN routing_record_partitions.day IS 'The UTC day it holds (by received_at).';
COMMENT ON COLUMN routing_record_partitions.estimated_rows IS 'Rows, as the planner estimates them (reltuples).';

-- ---------------------------------------------------------------------------------------
-- Prometheus: counters since installation (dead letters per reason, from the ones kept now;
-- events per outcome from the metrics), readable by dashboards.
-- ---------------------------------------------------------------------------------------
-- Dead letters counted per reason since installation, never decreasing (retention deletes dead
-- letters): what Prometheus counters need. Kept by a statement trigger, so every path that
-- writes a dead letter counts. A dump's script (row_security off: see the queue block) restores
-- the counts with the dead letters, so the trigger leaves those rows alone.
CREATE TABLE dead_letter_counts (
    reason_code      TEXT PRIMARY KEY,
    total            BIGINT NOT NULL,
    last_rejected_at TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE dead_letter_counts IS 'Dead letters written per reason code since installation (retention does not decrease them).';
COMMENT ON COLUMN dead_letter_counts.reason_code IS 'Reason code (see routing_events_rejected.reason_code).';
COMMENT ON COLUMN dead_letter_counts.total IS 'Dead letters ever written with it.';
COMMENT ON COLUMN dead_letter_counts.last_rejected_at IS 'When the last one was written.';

CREATE FUNCTION count_dead_letters()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = @extschema@, pg_catalog, pg_temp
AS $count$
BEGIN
    IF current_setting('row_security') = 'on' THEN
        INSERT INTO dead_letter_counts AS c (reason_code, total, last_rejected_at)
        SELECT n.reason_code, count(*), max(n.rejected_at) FROM new_dead_letters n GROUP BY n.reason_code
        ON CONFLICT (reason_code) DO UPDATE
           SET total = c.total + EXCLUDED.total,
               last_rejected_at = greatest(c.last_rejected_at, EXCLUDED.last_rejected_at);
    END IF;
    RETURN NULL;
END
$count$;
COMMENT ON FUNCTION count_dead_letters() IS 'Trigger: adds each statement''s new dead letters to dead_letter_counts.';
CREATE TRIGGER count_dead_letters AFTER INSERT ON routing_events_rejected
    REFERENCING NEW TABLE AS new_dead_letters FOR EACH STATEMENT EXECUTE FUNCTION count_dead_letters();

INSERT INTO dead_letter_counts (reason_code, total, last_rejected_at)
SELECT reason_code, count(*), max(rejected_at) FROM routing_events_rejected GROUP BY reason_code;
SELECT pg_catalog.pg_extension_config_dump('dead_letter_counts', '');
REVOKE ALL ON FUNCTION count_dead_letters() FROM PUBLIC;
-- ---------------------------------------------------------------------------------------
-- Counters since installation, for Prometheus (prometheus/queries.yaml) and dashboards.
-- ---------------------------------------------------------------------------------------
CREATE VIEW events_by_outcome AS
SELECT o.outcome, o.events
  FROM (SELECT sum(usage_count)::bigint AS routed, sum(success_count)::bigint AS success,
               sum(failure_count)::bigint AS failure
          FROM model_routing_metrics) AS m,
       LATERAL (VALUES ('routed', coalesce(m.routed, 0)), ('success', coalesce(m.success, 0)),
                       ('failure', coalesce(m.failure, 0))) AS o(outcome, events);
COMMENT ON VIEW events_by_outcome IS
  'Events ingested since installation, per outcome (routed decisions, successes, failures); retention of the audit trail does not decrease them.';
COMMENT ON COLUMN events_by_outcome.outcome IS 'routed, success or failure.';
COMMENT ON COLUMN events_by_outcome.events IS 'Events ingested with it.';

CREATE VIEW dead_letters_by_reason AS
SELECT reason_code, total, last_rejected_at FROM dead_letter_counts ORDER BY reason_code;
COMMENT ON VIEW dead_letters_by_reason IS
  'Dead letters written since installation, per reason code; retention of dead letters does not decrease them.';
COMMENT ON COLUMN dead_letters_by_reason.reason_code IS 'Reason code.';
COMMENT ON COLUMN dead_letters_by_reason.total IS 'Dead letters ever written with it.';
COMMENT ON COLUMN dead_letters_by_reason.last_rejected_at IS 'When the last one was written.';

GRANT SELECT ON events_by_outcome, dead_letters_by_reason TO centralcloud_reader;
GRANT SELECT ON dead_letter_counts, events_by_outcome, dead_letters_by_reason TO centralcloud_operator;

-- ---------------------------------------------------------------------------------------
-- Past one server: a central server's metrics from the union of replicated regional rollups.
-- ---------------------------------------------------------------------------------------
CREATE FUNCTION refresh_metrics_from_rollup()
RETURNS TABLE (cells_added bigint, cells_changed bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $refresh$
DECLARE
    added bigint;
    changed bigint;
BEGIN
    -- Under REPEATABLE READ the recount would come from a snapshot older than the lock below,
    -- and would overwrite what an ingest committed in between.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'centralcloud: refresh_metrics_from_rollup() needs READ COMMITTED isolation, the transaction is %',
                        current_setting('transaction_isolation')
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    -- Ingest adds its deltas to the metrics under ROW EXCLUSIVE: it waits for this lock, and the
    -- recount (a statement after it, so a newer snapshot) includes every ingest committed before.
    LOCK TABLE model_routing_metrics IN SHARE ROW EXCLUSIVE MODE;
    LOCK TABLE routing_rollup_hourly_fleet IN SHARE ROW EXCLUSIVE MODE;
    -- The fleet rollup likewise (its lock second: ingest writes it after the metrics), recounted
    -- first: the metrics are then merged from its rows, a twentieth of the rollup's with twenty
    -- instances, instead of reading the rollup twice.
    WITH recount AS (
        SELECT r.model, r.complexity, r.hour, r.provider,
               sum(r.usage_count)::bigint AS routed, sum(r.success_count)::bigint AS success,
               sum(r.failure_count)::bigint AS failure, sum(r.response_time_count)::bigint AS lat_count,
               sum(r.response_time_sum)::bigint AS lat_sum, min(r.response_time_min) AS lat_min,
               max(r.response_time_max) AS lat_max, latency_sketch_union(r.latency_sketch) AS sketch
          FROM routing_rollup_hourly r
         GROUP BY r.model, r.complexity, r.hour, r.provider),
    refreshed AS (
        INSERT INTO routing_rollup_hourly_fleet AS f
               (model, complexity, hour, provider, usage_count, success_count, failure_count,
                response_time_count, response_time_sum, response_time_min, response_time_max,
                latency_sketch, updated_at)
        SELECT c.model, c.complexity, c.hour, c.provider, c.routed, c.success, c.failure, c.lat_count,
               c.lat_sum, c.lat_min, c.lat_max, c.sketch, now()
          FROM recount c
         ORDER BY c.model, c.complexity, c.hour, c.provider
        ON CONFLICT (model, complexity, hour, provider) DO UPDATE SET
               usage_count = EXCLUDED.usage_count, success_count = EXCLUDED.success_count,
               failure_count = EXCLUDED.failure_count, response_time_count = EXCLUDED.response_time_count,
               response_time_sum = EXCLUDED.response_time_sum, response_time_min = EXCLUDED.response_time_min,
               response_time_max = EXCLUDED.response_time_max, latency_sketch = EXCLUDED.latency_sketch,
               updated_at = now()
         WHERE (f.usage_count, f.success_count, f.failure_count, f.response_time_count, f.response_time_sum)
               IS DISTINCT FROM (EXCLUDED.usage_count, EXCLUDED.success_count, EXCLUDED.failure_count,
                                 EXCLUDED.response_time_count, EXCLUDED.response_time_sum))
    -- Rows whose rollup rows were deleted (replicated deletes) go too.
    DELETE FROM routing_rollup_hourly_fleet f
     WHERE NOT EXISTS (SELECT 1 FROM recount c
                        WHERE (c.model, c.complexity, c.hour, c.provider) = (f.model, f.complexity, f.hour, f.provider));
    WITH recount AS (
        SELECT r.model, r.complexity,
               sum(r.usage_count)::bigint AS routed, sum(r.success_count)::bigint AS success,
               sum(r.failure_count)::bigint AS failure, sum(r.response_time_count)::bigint AS lat_count,
               sum(r.response_time_sum)::bigint AS lat_sum, min(r.response_time_min) AS lat_min,
               max(r.response_time_max) AS lat_max, latency_sketch_union(r.latency_sketch) AS sketch
          FROM routing_rollup_hourly_fleet r
         GROUP BY r.model, r.complexity),
    refreshed AS (
        INSERT INTO model_routing_metrics AS m
               (model_name, complexity_level, usage_count, success_count, failure_count,
                response_time_count, response_time_sum, response_time_min, response_time_max,
                avg_response_time, latency_sketch, updated_at)
        SELECT c.model, c.complexity, c.routed, c.success, c.failure, c.lat_count, c.lat_sum,
               c.lat_min, c.lat_max, c.lat_sum::float8 / NULLIF(c.lat_count, 0), c.sketch, now()
          FROM recount c
         ORDER BY c.model, c.complexity
        ON CONFLICT (model_name, complexity_level) DO UPDATE SET
               usage_count = EXCLUDED.usage_count, success_count = EXCLUDED.success_count,
               failure_count = EXCLUDED.failure_count, response_time_count = EXCLUDED.response_time_count,
               response_time_sum = EXCLUDED.response_time_sum, response_time_min = EXCLUDED.response_time_min,
               response_time_max = EXCLUDED.response_time_max, avg_response_time = EXCLUDED.avg_response_time,
               latency_sketch = EXCLUDED.latency_sketch, updated_at = now()
         WHERE (m.usage_count, m.success_count, m.failure_count, m.response_time_count, m.response_time_sum)
               IS DISTINCT FROM (EXCLUDED.usage_count, EXCLUDED.success_count, EXCLUDED.failure_count,
                                 EXCLUDED.response_time_count, EXCLUDED.response_time_sum)
        RETURNING 1),
    -- A rollup carries no reported complexity_score: a new cell enters at the midpoint.
    entered AS (
        INSERT INTO model_complexity_scores AS s
               (model_name, complexity_level, score, prior_score, change_source, change_reason)
        SELECT c.model, c.complexity, 2.5, 2.5, 'reported',
               'initial: first seen in the replicated rollups, which carry no reported score; the midpoint 2.5'
          FROM recount c
         ORDER BY c.model, c.complexity
        ON CONFLICT (model_name, complexity_level) DO NOTHING
        RETURNING 1)
    SELECT (SELECT count(*) FROM entered), (SELECT count(*) FROM refreshed) INTO added, changed;
    RETURN QUERY SELECT added, changed;
END
$refresh$;
COMMENT ON FUNCTION refresh_metrics_from_rollup() IS
  'For a central server whose routing_rollup_hourly receives regional rollups by logical replication (docs/scale-out.md): makes model_routing_metrics and routing_rollup_hourly_fleet equal a recount of the rollup (counters, min, max, merged sketch) and enters each cell seen for the first time in the score catalog at 2.5. Returns the cells added and the metrics rows changed. Schedule it like learning (e.g. every minute with pg_cron); policy bayes reads the rollup itself, so new evidence of known cells needs no refresh.';
REVOKE ALL ON FUNCTION refresh_metrics_from_rollup() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION refresh_metrics_from_rollup() TO centralcloud_operator;

-- ---------------------------------------------------------------------------------------
-- Consensus among instances (issue 14, items 1 and 2): anomaly episodes, their view, and the
-- learning function's comment.
-- ---------------------------------------------------------------------------------------
-- Anomaly episodes: an instance whose outcomes for a cell through a provider deviated from the
-- rest of the fleet's (learn_complexity_scores' outlier test), from when it was flagged to
-- when it matched again. Its evidence in [since, cleared_hour] is left out of learning.
CREATE TABLE instance_anomaly_episodes (
    id                    BIGSERIAL PRIMARY KEY,
    instance_id           TEXT NOT NULL,
    model_name            VARCHAR NOT NULL,
    complexity_level      VARCHAR NOT NULL,
    provider              VARCHAR NOT NULL,
    kind                  TEXT NOT NULL CHECK (kind IN ('success_rate', 'latency')),
    instance_failure_rate FLOAT NOT NULL,
    fleet_failure_rate    FLOAT NOT NULL,
    instance_outcomes     BIGINT NOT NULL,
    fleet_outcomes        BIGINT NOT NULL,
    instance_p50_ms       FLOAT,
    fleet_p50_ms          FLOAT,
    statistic             FLOAT NOT NULL,
    since                 TIMESTAMPTZ NOT NULL,
    flagged_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    cleared_at            TIMESTAMPTZ,
    cleared_hour          TIMESTAMPTZ,
    advisory              JSONB NOT NULL,
    advised_at            TIMESTAMPTZ,
    advised_queue         TEXT,
    CHECK ((cleared_at IS NULL) = (cleared_hour IS NULL)),
    CHECK ((advised_at IS NULL) = (advised_queue IS NULL))
);
-- One open episode per source; learning reads a chunk's cells.
CREATE UNIQUE INDEX instance_anomaly_episodes_open
    ON instance_anomaly_episodes (model_name, complexity_level, instance_id, provider) WHERE cleared_at IS NULL;
CREATE INDEX idx_instance_anomaly_episodes_cell ON instance_anomaly_episodes (model_name, complexity_level);
COMMENT ON TABLE instance_anomaly_episodes IS
  'Episodes of an instance whose outcomes for a cell through a provider deviate from the rest of the fleet''s (the outlier test of learn_complexity_scores()): its evidence from since to cleared_hour is left out of learning, and it is sent one instance_advisory. Open episodes: view instance_anomalies.';
COMMENT ON COLUMN instance_anomaly_episodes.instance_id IS 'Router instance.';
COMMENT ON COLUMN instance_anomaly_episodes.model_name IS 'Model.';
COMMENT ON COLUMN instance_anomaly_episodes.complexity_level IS 'Task complexity.';
COMMENT ON COLUMN instance_anomaly_episodes.provider IS 'Provider through which it deviates.';
COMMENT ON COLUMN instance_anomaly_episodes.kind IS 'Which test flagged it: success_rate (binomial log-likelihood ratio) or latency (median test).';
COMMENT ON COLUMN instance_anomaly_episodes.instance_failure_rate IS 'Its failure rate in the consensus window, at the last learning run of the episode.';
COMMENT ON COLUMN instance_anomaly_episodes.fleet_failure_rate IS 'The rest of the fleet''s (the instances not flagged before it) in the same window.';
COMMENT ON COLUMN instance_anomaly_episodes.instance_outcomes IS 'Its outcomes in the window.';
COMMENT ON COLUMN instance_anomaly_episodes.fleet_outcomes IS 'The rest of the fleet''s outcomes in the window.';
COMMENT ON COLUMN instance_anomaly_episodes.instance_p50_ms IS 'Its median latency in the window (NULL: none reported).';
COMMENT ON COLUMN instance_anomaly_episodes.fleet_p50_ms IS 'The rest of the fleet''s median latency in the window.';
COMMENT ON COLUMN instance_anomaly_episodes.statistic IS 'The test statistic (a log-likelihood ratio; centralcloud.outlier_threshold flags).';
COMMENT ON COLUMN instance_anomaly_episodes.since IS 'Event hour (UTC) from which its evidence is left out: its first hour in the window that flagged it.';
COMMENT ON COLUMN instance_anomaly_episodes.flagged_at IS 'When learning flagged it.';
COMMENT ON COLUMN instance_anomaly_episodes.updated_at IS 'Last learning run that judged it.';
COMMENT ON COLUMN instance_anomaly_episodes.cleared_at IS 'When the episode ended (NULL: open).';
COMMENT ON COLUMN instance_anomaly_episodes.cleared_hour IS 'Last event hour (UTC) of its left-out evidence: the newest event hour when the episode ended.';
COMMENT ON COLUMN instance_anomaly_episodes.advisory IS 'The instance_advisory event of the episode.';
COMMENT ON COLUMN instance_anomaly_episodes.advised_at IS 'When the advisory was sent (NULL: not yet, the instance is not subscribed).';
COMMENT ON COLUMN instance_anomaly_episodes.advised_queue IS 'The instance''s own queue it was sent to.';
SELECT pg_catalog.pg_extension_config_dump('instance_anomaly_episodes', '');
SELECT pg_catalog.pg_extension_config_dump('instance_anomaly_episodes_id_seq', '');
CREATE VIEW instance_anomalies AS
SELECT instance_id, model_name AS model, complexity_level, provider, kind,
       round(instance_failure_rate::numeric * 100, 2)::double precision AS instance_failure_rate,
       round(fleet_failure_rate::numeric * 100, 2)::double precision AS fleet_failure_rate,
       instance_outcomes, fleet_outcomes, ms(instance_p50_ms) AS instance_p50_ms,
       ms(fleet_p50_ms) AS fleet_p50_ms, round(statistic::numeric, 1)::double precision AS statistic,
       since, flagged_at, updated_at, advised_at
  FROM instance_anomaly_episodes
 WHERE cleared_at IS NULL
 ORDER BY flagged_at DESC, id DESC;
COMMENT ON VIEW instance_anomalies IS
  'Instances whose outcomes for a cell through a provider deviate from the rest of the fleet''s now (open anomaly episodes): their failure rate (and median latency) against the fleet''s, the test statistic, since when their evidence is left out of learning, and when they were advised (NULL: not subscribed).';
COMMENT ON COLUMN instance_anomalies.instance_id IS 'The deviating instance.';
COMMENT ON COLUMN instance_anomalies.model IS 'Model.';
COMMENT ON COLUMN instance_anomalies.complexity_level IS 'Task complexity.';
COMMENT ON COLUMN instance_anomalies.provider IS 'Provider it deviates through.';
COMMENT ON COLUMN instance_anomalies.kind IS 'success_rate or latency.';
COMMENT ON COLUMN instance_anomalies.instance_failure_rate IS 'Its failure rate in the window, percent (2 decimals).';
COMMENT ON COLUMN instance_anomalies.fleet_failure_rate IS 'The rest of the fleet''s, percent (2 decimals).';
COMMENT ON COLUMN instance_anomalies.instance_outcomes IS 'Its outcomes in the window.';
COMMENT ON COLUMN instance_anomalies.fleet_outcomes IS 'The rest of the fleet''s.';
COMMENT ON COLUMN instance_anomalies.instance_p50_ms IS 'Its median latency, ms (0.1).';
COMMENT ON COLUMN instance_anomalies.fleet_p50_ms IS 'The rest of the fleet''s, ms (0.1).';
COMMENT ON COLUMN instance_anomalies.statistic IS 'Test statistic (log-likelihood ratio), 1 decimal.';
COMMENT ON COLUMN instance_anomalies.since IS 'Event hour from which its evidence is left out of learning.';
COMMENT ON COLUMN instance_anomalies.flagged_at IS 'When learning flagged it.';
COMMENT ON COLUMN instance_anomalies.updated_at IS 'Last time learning judged it.';
COMMENT ON COLUMN instance_anomalies.advised_at IS 'When its instance_advisory was sent (NULL: not subscribed yet).';
GRANT SELECT ON instance_anomalies TO centralcloud_reader;
GRANT SELECT ON instance_anomaly_episodes, instance_anomalies TO centralcloud_operator;
COMMENT ON FUNCTION learn_complexity_scores(boolean) IS
  'Applies centralcloud.learning_policy to every cell: bayes scores all of a cell''s evidence in its current regime (decayed in event time; records detected changes in learning_changes) and applies a score only when it moves by centralcloud.min_score_change; seed applies its steps to the evidence since the cell''s last learning step. Consensus, with either policy: an instance whose outcomes for a cell through a provider deviate from the rest of the fleet''s is left out (instance_anomalies; one instance_advisory to its own queue), and a change needs the agreement of centralcloud.min_agreeing_instances reporting instances. Records each change in score_history and publishes the seed''s model_score_update event to every subscribed instance, in the same transaction. One row per cell considered, with the reason (n, rate, bound, p95, change, left out, agreement; or e.g. insufficient data: 37 < 100). dry_run: same rows, nothing changed or published.';

-- ---------------------------------------------------------------------------------------
-- Health views (here, after the units' functions they use): model_health, health_updates_recent.
-- ---------------------------------------------------------------------------------------
CREATE VIEW model_health AS
WITH recent AS (
    SELECT o.provider, o.model, sum(o.success_count) AS successes, sum(o.failure_count) AS failures
      FROM health_outcomes o
     WHERE o.second > now() - coalesce(nullif(current_setting('centralcloud.health_window', true), '')::interval,
                                       interval '300 seconds')
     GROUP BY GROUPING SETS ((o.provider, o.model), (o.provider))
)
SELECT h.provider::text AS provider,
       h.model::text AS model,
       h.state,
       h.since,
       percent(r.failures, r.successes + r.failures) AS failure_rate,
       coalesce(r.successes + r.failures, 0)::bigint AS outcomes,
       percent(l.failures, l.successes + l.failures) AS long_run_failure_rate,
       coalesce(l.successes + l.failures, 0)::bigint AS long_run_outcomes,
       h.reason
  FROM health_states h
  LEFT JOIN recent r ON r.provider = h.provider AND r.model IS NOT DISTINCT FROM h.model
 CROSS JOIN LATERAL (SELECT sum(x.long_run_success_count)::numeric AS successes,
                            sum(x.long_run_failure_count)::numeric AS failures
                       FROM health_states x
                      WHERE x.provider = h.provider
                        AND (x.model = h.model OR (h.model IS NULL AND x.model IS NOT NULL))) AS l
 ORDER BY h.provider, h.model NULLS FIRST;
COMMENT ON VIEW model_health IS
  'Health of every provider (model NULL) and (provider, model): state (healthy, degraded, down), since when, the failure rate and count of outcomes received in the last centralcloud.health_window, the long-run failure rate it is judged against (hourly rollup over centralcloud.health_baseline_window; a provider''s over its models) and its outcomes, and why the state last changed.';
COMMENT ON COLUMN model_health.provider IS 'Provider.';
COMMENT ON COLUMN model_health.model IS 'Model (NULL: the provider as a whole).';
COMMENT ON COLUMN model_health.state IS 'healthy, degraded or down.';
COMMENT ON COLUMN model_health.since IS 'When it entered that state.';
COMMENT ON COLUMN model_health.failure_rate IS 'Failure rate of the outcomes received in the last centralcloud.health_window, percent (2 decimals).';
COMMENT ON COLUMN model_health.outcomes IS 'Those outcomes.';
COMMENT ON COLUMN model_health.long_run_failure_rate IS 'The long-run failure rate it is judged against, percent (2 decimals).';
COMMENT ON COLUMN model_health.long_run_outcomes IS 'The outcomes of that long run.';
COMMENT ON COLUMN model_health.reason IS 'Why the state last changed.';

CREATE VIEW health_updates_recent AS
SELECT changed_at, provider::text AS provider, model::text AS model, previous_state, state,
       round(failure_rate::numeric * 100, 2)::double precision AS failure_rate,
       outcomes, reason, published_to
  FROM health_history
 ORDER BY changed_at DESC, id DESC
 LIMIT 100;
COMMENT ON VIEW health_updates_recent IS
  'The latest 100 health changes of providers and models, newest first, as published to every instance.';
COMMENT ON COLUMN health_updates_recent.changed_at IS 'When the state changed.';
COMMENT ON COLUMN health_updates_recent.provider IS 'Provider.';
COMMENT ON COLUMN health_updates_recent.model IS 'Model (NULL: the provider).';
COMMENT ON COLUMN health_updates_recent.previous_state IS 'State before.';
COMMENT ON COLUMN health_updates_recent.state IS 'State after.';
COMMENT ON COLUMN health_updates_recent.failure_rate IS 'Failure rate the change rested on, percent (2 decimals).';
COMMENT ON COLUMN health_updates_recent.outcomes IS 'Outcomes it rested on.';
COMMENT ON COLUMN health_updates_recent.reason IS 'Why.';
COMMENT ON COLUMN health_updates_recent.published_to IS 'Queues the model_health_update event went to.';
GRANT SELECT ON model_health, health_updates_recent TO centralcloud_reader, centralcloud_operator;

-- ---------------------------------------------------------------------------------------
-- recommend_model()'s candidates: one row per (complexity, model, provider) with everything it
-- ranks by, so that a call reads one table through one index. A router calls it on every
-- request; joining each candidate to its health, metrics and price cost ~10 ms a call when a
-- thousand candidates tie within the tolerance. Kept by triggers on the tables it comes from,
-- each writing only its own columns, so concurrent writers (ingest, learning, health
-- evaluation, operators) never put back a value another one replaced. Not dumped: a restore's
-- COPY into the sources fires the triggers again. check_invariants() compares it with
-- recommend_candidates_source.
-- ---------------------------------------------------------------------------------------
-- The Wilson lower bound of a success rate at z = 1.645 (one-sided 95%), NULL without outcomes:
-- what recommend_model() shows and breaks ties on score with, stored with each candidate so an
-- index holds the whole ranking order (the test fixtures' stats::wilson_lower is the same).
CREATE FUNCTION success_lower_bound(successes bigint, failures bigint)
RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $bound$
    SELECT CASE WHEN b.n > 0 THEN
               greatest(0::float8, least(1::float8,
                   (b.p + b.z2 / (2 * b.n) - b.z * sqrt(b.p * (1 - b.p) / b.n + b.z2 / (4 * b.n * b.n)))
                   / (1 + b.z2 / b.n)))
           END
      FROM (SELECT successes / n AS p, n, 1.645::float8 AS z, 1.645::float8 * 1.645::float8 AS z2
              FROM (SELECT nullif(successes + failures, 0)::float8 AS n) AS c) AS b
$bound$;
COMMENT ON FUNCTION success_lower_bound(bigint, bigint) IS
  'Wilson lower bound of successes / (successes + failures) at z = 1.645 (one-sided 95%); NULL without outcomes.';

CREATE TABLE recommend_candidates (
    complexity_level VARCHAR NOT NULL,
    model            VARCHAR NOT NULL,
    provider         VARCHAR NOT NULL,
    score            FLOAT NOT NULL,
    successes        BIGINT NOT NULL,
    failures         BIGINT NOT NULL,
    p50_ms           FLOAT,
    p95_ms           FLOAT,
    cost_usd         FLOAT,
    model_state      TEXT NOT NULL,
    provider_state   TEXT NOT NULL,
    state            TEXT NOT NULL GENERATED ALWAYS AS (
                         CASE WHEN 'down' IN (model_state, provider_state) THEN 'down'
                              WHEN 'degraded' IN (model_state, provider_state) THEN 'degraded'
                              ELSE 'healthy' END) STORED,
    success_lower    FLOAT GENERATED ALWAYS AS (success_lower_bound(successes, failures)) STORED,
    capabilities     TEXT[] NOT NULL,
    PRIMARY KEY (complexity_level, model, provider)
);
-- A health group of one complexity in each ranking order (score, p95 for prefer speed, cost for
-- prefer cost; then rank.rs's by_quality), whole, so a segment reads only the rows it returns.
CREATE INDEX idx_recommend_candidates_score ON recommend_candidates
    (complexity_level, state, score DESC, success_lower DESC NULLS LAST, model COLLATE "C", provider COLLATE "C");
CREATE INDEX idx_recommend_candidates_p95 ON recommend_candidates
    (complexity_level, state, p95_ms, score DESC, success_lower DESC NULLS LAST, model COLLATE "C", provider COLLATE "C")
    WHERE p95_ms IS NOT NULL;
CREATE INDEX idx_recommend_candidates_cost ON recommend_candidates
    (complexity_level, state, cost_usd, score DESC, success_lower DESC NULLS LAST, model COLLATE "C", provider COLLATE "C")
    WHERE cost_usd IS NOT NULL;
CREATE INDEX idx_recommend_candidates_pair ON recommend_candidates (provider, model);
COMMENT ON TABLE recommend_candidates IS
  'What recommend_model() ranks: each (complexity, model, provider) with a score and a pair known to the health catalog, with its cell''s outcomes and percentiles, the estimated cost of a request, health and supported capabilities. Derived, kept by triggers on model_complexity_scores, model_routing_metrics, health_states, model_prices and model_capabilities.';
COMMENT ON COLUMN recommend_candidates.complexity_level IS 'Task complexity.';
COMMENT ON COLUMN recommend_candidates.model IS 'Model.';
COMMENT ON COLUMN recommend_candidates.provider IS 'Provider.';
COMMENT ON COLUMN recommend_candidates.score IS 'The cell''s score (model_complexity_scores).';
COMMENT ON COLUMN recommend_candidates.successes IS 'The cell''s successes (model_routing_metrics, every provider).';
COMMENT ON COLUMN recommend_candidates.failures IS 'The cell''s failures.';
COMMENT ON COLUMN recommend_candidates.p50_ms IS 'The cell''s median response time, ms.';
COMMENT ON COLUMN recommend_candidates.p95_ms IS 'The cell''s 95th percentile, ms.';
COMMENT ON COLUMN recommend_candidates.cost_usd IS 'Estimated cost of a typical request at model_prices (NULL: no price).';
COMMENT ON COLUMN recommend_candidates.model_state IS 'Health of the pair.';
COMMENT ON COLUMN recommend_candidates.provider_state IS 'Health of the provider (healthy when it has no row).';
COMMENT ON COLUMN recommend_candidates.state IS 'The worse of the two.';
COMMENT ON COLUMN recommend_candidates.success_lower IS 'success_lower_bound(successes, failures).';
COMMENT ON COLUMN recommend_candidates.capabilities IS 'The pair''s supported capabilities, sorted.';

CREATE VIEW recommend_candidates_source AS
SELECT s.complexity_level, h.model, h.provider, s.score,
       coalesce(m.success_count, 0) AS successes,
       coalesce(m.failure_count, 0) AS failures,
       m.p50_ms, m.p95_ms,
       CASE WHEN p.provider IS NOT NULL THEN
           (coalesce(p.usd_per_request, 0)
            + p.typical_input_tokens * coalesce(p.usd_per_million_input_tokens, 0) / 1000000
            + p.typical_output_tokens * coalesce(p.usd_per_million_output_tokens, 0) / 1000000)::float8
       END AS cost_usd,
       h.state AS model_state,
       coalesce(ph.state, 'healthy') AS provider_state,
       coalesce(c.capabilities, ARRAY[]::text[]) AS capabilities
  FROM model_complexity_scores s
  JOIN health_states h ON h.model = s.model_name
  LEFT JOIN health_states ph ON ph.provider = h.provider AND ph.model IS NULL
  LEFT JOIN model_routing_metrics m ON m.model_name = s.model_name AND m.complexity_level = s.complexity_level
  LEFT JOIN model_prices p ON p.provider = h.provider AND p.model = h.model
  LEFT JOIN LATERAL (SELECT array_agg(x.capability::text ORDER BY x.capability) AS capabilities
                       FROM model_capabilities x
                      WHERE x.provider = h.provider AND x.model = h.model AND x.supported) c ON true;
COMMENT ON VIEW recommend_candidates_source IS
  'recommend_candidates computed from its sources (what its triggers insert; check_invariants() compares the two).';
COMMENT ON COLUMN recommend_candidates_source.complexity_level IS 'Task complexity.';
COMMENT ON COLUMN recommend_candidates_source.model IS 'Model.';
COMMENT ON COLUMN recommend_candidates_source.provider IS 'Provider.';
COMMENT ON COLUMN recommend_candidates_source.score IS 'The cell''s score.';
COMMENT ON COLUMN recommend_candidates_source.successes IS 'The cell''s successes.';
COMMENT ON COLUMN recommend_candidates_source.failures IS 'The cell''s failures.';
COMMENT ON COLUMN recommend_candidates_source.p50_ms IS 'The cell''s median response time, ms.';
COMMENT ON COLUMN recommend_candidates_source.p95_ms IS 'The cell''s 95th percentile, ms.';
COMMENT ON COLUMN recommend_candidates_source.cost_usd IS 'Estimated cost of a typical request (NULL: no price).';
COMMENT ON COLUMN recommend_candidates_source.model_state IS 'Health of the pair.';
COMMENT ON COLUMN recommend_candidates_source.provider_state IS 'Health of the provider.';
COMMENT ON COLUMN recommend_candidates_source.capabilities IS 'Supported capabilities, sorted.';

-- Adds the candidates of these models that are missing, from their sources.
CREATE FUNCTION recommend_candidates_add(models varchar[])
RETURNS void
LANGUAGE sql
SET search_path = @extschema@, pg_catalog, pg_temp
AS $add$
    INSERT INTO recommend_candidates
           (complexity_level, model, provider, score, successes, failures, p50_ms, p95_ms, cost_usd,
            model_state, provider_state, capabilities)
    SELECT v.complexity_level, v.model, v.provider, v.score, v.successes, v.failures, v.p50_ms, v.p95_ms,
           v.cost_usd, v.model_state, v.provider_state, v.capabilities
      FROM recommend_candidates_source v
     WHERE v.model = ANY (models)
    ON CONFLICT DO NOTHING
$add$;
COMMENT ON FUNCTION recommend_candidates_add(varchar[]) IS
  'Adds the missing recommend_candidates rows of these models (their triggers call it for new cells and pairs).';

-- The triggers run as the owner: operators edit prices and capabilities, and may not write
-- recommend_candidates themselves.
CREATE FUNCTION recommend_candidates_from_scores()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $scores$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM recommend_candidates_add(ARRAY(SELECT DISTINCT n.model_name FROM new_cells n));
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE recommend_candidates c SET score = n.score
          FROM new_cells n
         WHERE c.complexity_level = n.complexity_level AND c.model = n.model_name AND c.score <> n.score;
    ELSE
        DELETE FROM recommend_candidates c USING old_cells o
         WHERE c.complexity_level = o.complexity_level AND c.model = o.model_name;
    END IF;
    RETURN NULL;
END
$scores$;
CREATE TRIGGER recommend_candidates_insert AFTER INSERT ON model_complexity_scores
    REFERENCING NEW TABLE AS new_cells FOR EACH STATEMENT EXECUTE FUNCTION recommend_candidates_from_scores();
CREATE TRIGGER recommend_candidates_update AFTER UPDATE ON model_complexity_scores
    REFERENCING NEW TABLE AS new_cells FOR EACH STATEMENT EXECUTE FUNCTION recommend_candidates_from_scores();
CREATE TRIGGER recommend_candidates_delete AFTER DELETE ON model_complexity_scores
    REFERENCING OLD TABLE AS old_cells FOR EACH STATEMENT EXECUTE FUNCTION recommend_candidates_from_scores();

CREATE FUNCTION recommend_candidates_from_metrics()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $metrics$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE recommend_candidates c SET successes = 0, failures = 0, p50_ms = NULL, p95_ms = NULL
          FROM old_cells o
         WHERE c.complexity_level = o.complexity_level AND c.model = o.model_name;
    ELSE
        UPDATE recommend_candidates c
           SET successes = n.success_count, failures = n.failure_count, p50_ms = n.p50_ms, p95_ms = n.p95_ms
          FROM new_cells n
         WHERE c.complexity_level = n.complexity_level AND c.model = n.model_name
           AND (c.successes, c.failures, c.p50_ms, c.p95_ms)
               IS DISTINCT FROM (n.success_count, n.failure_count, n.p50_ms, n.p95_ms);
    END IF;
    RETURN NULL;
END
$metrics$;
CREATE TRIGGER recommend_candidates_insert AFTER INSERT ON model_routing_metrics
    REFERENCING NEW TABLE AS new_cells FOR EACH STATEMENT EXECUTE FUNCTION recommend_candidates_from_metrics();
CREATE TRIGGER recommend_candidates_update AFTER UPDATE ON model_routing_metrics
    REFERENCING NEW TABLE AS new_cells FOR EACH STATEMENT EXECUTE FUNCTION recommend_candidates_from_metrics();
CREATE TRIGGER recommend_candidates_delete AFTER DELETE ON model_routing_metrics
    REFERENCING OLD TABLE AS old_cells FOR EACH STATEMENT EXECUTE FUNCTION recommend_candidates_from_metrics();

CREATE FUNCTION recommend_candidates_from_health()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $health$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM recommend_candidates_add(ARRAY(SELECT DISTINCT n.model FROM new_states n WHERE n.model IS NOT NULL));
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE recommend_candidates c SET model_state = n.state
          FROM new_states n
         WHERE c.provider = n.provider AND c.model = n.model AND c.model_state <> n.state;
        UPDATE recommend_candidates c SET provider_state = n.state
          FROM new_states n
         WHERE n.model IS NULL AND c.provider = n.provider AND c.provider_state <> n.state;
    ELSE
        DELETE FROM recommend_candidates c USING old_states o
         WHERE c.provider = o.provider AND c.model = o.model;
        UPDATE recommend_candidates c SET provider_state = 'healthy'
          FROM old_states o
         WHERE o.model IS NULL AND c.provider = o.provider;
    END IF;
    RETURN NULL;
END
$health$;
CREATE TRIGGER recommend_candidates_insert AFTER INSERT ON health_states
    REFERENCING NEW TABLE AS new_states FOR EACH STATEMENT EXECUTE FUNCTION recommend_candidates_from_health();
CREATE TRIGGER recommend_candidates_update AFTER UPDATE ON health_states
    REFERENCING NEW TABLE AS new_states FOR EACH STATEMENT EXECUTE FUNCTION recommend_candidates_from_health();
CREATE TRIGGER recommend_candidates_delete AFTER DELETE ON health_states
    REFERENCING OLD TABLE AS old_states FOR EACH STATEMENT EXECUTE FUNCTION recommend_candidates_from_health();

-- Prices and capabilities change rarely (operators, and ingest the first time a pair succeeds
-- with a capability): each changed row refreshes its pair's column, before and after an edit
-- of the pair itself.
CREATE FUNCTION recommend_candidates_from_pair()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $pair$
DECLARE
    pair record;
BEGIN
    FOR pair IN SELECT DISTINCT x.provider, x.model
                  FROM (SELECT OLD.provider, OLD.model WHERE TG_OP <> 'INSERT'
                        UNION ALL SELECT NEW.provider, NEW.model WHERE TG_OP <> 'DELETE') AS x(provider, model)
    LOOP
        IF TG_TABLE_NAME = 'model_prices' THEN
            UPDATE recommend_candidates c SET cost_usd = v.cost_usd
              FROM recommend_candidates_source v
             WHERE c.provider = pair.provider AND c.model = pair.model
               AND v.provider = c.provider AND v.model = c.model AND v.complexity_level = c.complexity_level
               AND c.cost_usd IS DISTINCT FROM v.cost_usd;
        ELSE
            UPDATE recommend_candidates c SET capabilities = v.capabilities
              FROM recommend_candidates_source v
             WHERE c.provider = pair.provider AND c.model = pair.model
               AND v.provider = c.provider AND v.model = c.model AND v.complexity_level = c.complexity_level
               AND c.capabilities <> v.capabilities;
        END IF;
    END LOOP;
    RETURN NULL;
END
$pair$;
CREATE TRIGGER recommend_candidates AFTER INSERT OR UPDATE OR DELETE ON model_prices
    FOR EACH ROW EXECUTE FUNCTION recommend_candidates_from_pair();
-- Ingest's upsert of a known capability changes only its counters: no trigger.
CREATE TRIGGER recommend_candidates AFTER INSERT OR DELETE OR UPDATE OF provider, model, capability, supported
    ON model_capabilities FOR EACH ROW EXECUTE FUNCTION recommend_candidates_from_pair();
COMMENT ON FUNCTION recommend_candidates_from_scores() IS 'Trigger: new, changed and removed scores into recommend_candidates.';
COMMENT ON FUNCTION recommend_candidates_from_metrics() IS 'Trigger: each changed cell''s outcomes and percentiles into recommend_candidates.';
COMMENT ON FUNCTION recommend_candidates_from_health() IS 'Trigger: new and removed pairs, and health changes of pairs and providers, into recommend_candidates.';
COMMENT ON FUNCTION recommend_candidates_from_pair() IS 'Trigger: a pair''s cost (model_prices) or supported capabilities (model_capabilities) into recommend_candidates.';
REVOKE ALL ON FUNCTION recommend_candidates_add(varchar[]), recommend_candidates_from_scores(),
                       recommend_candidates_from_metrics(), recommend_candidates_from_health(),
                       recommend_candidates_from_pair() FROM PUBLIC;
-- The candidates of the catalog as the upgrade leaves it.
SELECT recommend_candidates_add(ARRAY(SELECT DISTINCT model FROM health_states WHERE model IS NOT NULL));
GRANT SELECT ON recommend_candidates, recommend_candidates_source TO centralcloud_operator;

-- ---------------------------------------------------------------------------------------
-- No JIT for ingest, learning and health: past a few weeks of data their statements are
-- estimated past jit_above_cost, and compiling cost more than running (security.sql).
-- ---------------------------------------------------------------------------------------
ALTER FUNCTION ingest_routing_events(integer, integer) SET jit = off;
ALTER FUNCTION learn_complexity_scores(boolean) SET jit = off;
ALTER FUNCTION evaluate_model_health() SET jit = off;
-- Ingest's batch statement keeps one generic plan per call (security.sql).
ALTER FUNCTION ingest_routing_events(integer, integer) SET plan_cache_mode = force_generic_plan;
-- What ingest writes, and how it judges events, changed.
COMMENT ON FUNCTION ingest_routing_events(integer, integer) IS
  'Drains the routing-event queue (centralcloud.queue_name) batch by batch: valid events go to routing_records, model_routing_metrics, routing_rollup_hourly and routing_rollup_hourly_fleet, invalid ones to routing_events_rejected, all in the caller''s transaction (each batch in a subtransaction). batch_size NULL = centralcloud.batch_size; max_batches NULL = until the queue has no visible message. Returns what it did.';
COMMENT ON FUNCTION routing_event_rejection(text) IS
  'Validates one routing event (JSON text) against the event schema and limits ingest applies: NULL when valid, otherwise ARRAY[reason_code, reason]. For checking an event by hand (ingest itself judges with routing_event_check(), which also applies a call''s admission of new models).';

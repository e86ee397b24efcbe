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
--   subscribed instance; capabilities and prices; each cell's p50/p95; recommend_model().
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
  'The background worker, for dashboards: pid, state (idle, ingesting, disabled, error, waiting for ALTER EXTENSION centralcloud UPDATE, not running, or not preloaded), last ingest and learn, events ingested and rejected since it started, last error and when.';

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
-- Errors with SQLSTATEs: pg_cron missing is object_not_in_prerequisite_state.
-- ---------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION schedule_with_pg_cron(ingest_schedule text DEFAULT '* * * * *',
                                      learn_schedule text DEFAULT '*/5 * * * *',
                                      maintenance_schedule text DEFAULT '17 * * * *')
RETURNS TABLE (jobid bigint, jobname text, schedule text, command text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $schedule$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'centralcloud: pg_cron is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name, and CREATE EXTENSION pg_cron; or use the centralcloud background worker.';
    END IF;
    PERFORM cron.schedule_in_database('centralcloud-ingest', ingest_schedule,
                                      'CALL centralcloud.drain_routing_events()', current_database());
    PERFORM cron.schedule_in_database('centralcloud-learn', learn_schedule,
                                      'SELECT count(*) FROM centralcloud.learn_complexity_scores()',
                                      current_database());
    PERFORM cron.schedule_in_database('centralcloud-maintenance', maintenance_schedule,
                                      'SELECT count(*) FROM centralcloud.run_maintenance()',
                                      current_database());
    RETURN QUERY SELECT j.jobid, j.jobname::text, j.schedule::text, j.command::text FROM cron.job j
                  WHERE j.jobname IN ('centralcloud-ingest', 'centralcloud-learn', 'centralcloud-maintenance')
                  ORDER BY j.jobname;
END
$schedule$;

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
    SELECT count(*) INTO removed FROM cron.job j, LATERAL cron.unschedule(j.jobid) AS gone
     WHERE j.jobname IN ('centralcloud-ingest', 'centralcloud-learn', 'centralcloud-maintenance') AND gone;
    RETURN removed;
END
$unschedule$;

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
END
$check$;

COMMENT ON FUNCTION check_invariants(regclass, text) IS
  'The exact-accounting check: every message of the queue (this generation of it) is recorded, dead-lettered or still queued, exactly once; given published (a table with the msg_ids sent), each of those is somewhere and nothing else is; model_routing_metrics and routing_rollup_hourly equal a recount of routing_records (counts, sums, min, max, sketch sample count, p50/p99); learning watermarks never exceed the counts; every cell has a score. One row per difference, none when all holds. The missing check is skipped once retention has removed records or dead letters, the recount once it removed records. Runs with the caller''s rights (operators: centralcloud_operator). Take a quiet moment or a REPEATABLE READ snapshot for an exact answer while ingest runs.';


-- ---------------------------------------------------------------------------------------
-- Event timestamps are judged against a window around the server's time.
-- ---------------------------------------------------------------------------------------
COMMENT ON FUNCTION routing_event_verdict(text) IS
  'Ingest''s verdict on one routing event (JSON text): {NULL, NULL, timestamp normalised to UTC, score} when valid (the values ingest stores), otherwise {reason_code, reason}. Timestamps are judged against the transaction''s start (centralcloud.max_event_age, centralcloud.max_event_clock_skew), like now().';

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
        END IF;
    END LOOP;
END
$subscriptions$;

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

-- recommend_model() reads a complexity's cells best score first.
CREATE INDEX idx_model_complexity_scores_rank ON model_complexity_scores (complexity_level, score DESC, model_name);

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

-- ---------------------------------------------------------------------------------------
-- Health of providers and models.
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
       ROUND(r.failures / NULLIF(r.successes + r.failures, 0), 4) AS failure_rate,
       coalesce(r.successes + r.failures, 0)::bigint AS outcomes,
       ROUND(l.failures / NULLIF(l.successes + l.failures, 0), 4) AS long_run_failure_rate,
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

CREATE VIEW health_updates_recent AS
SELECT changed_at, provider::text AS provider, model::text AS model, previous_state, state, failure_rate,
       outcomes, reason, published_to
  FROM health_history
 ORDER BY changed_at DESC, id DESC
 LIMIT 100;
COMMENT ON VIEW health_updates_recent IS
  'The latest 100 health changes of providers and models, newest first, as published to every instance.';

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

COMMENT ON FUNCTION recommend_model(text, text[], text, text[]) IS
  'The ranked candidates for a task of this complexity, now: model, provider, score, success rate with its lower bound and sample count, p50 and p95, estimated cost per request, health, and why. Skips down models and providers (an error, no_data_found, when that leaves nothing), honours exclude (model or provider names), keeps models known to support every capability asked for; prefer speed or cost picks the fastest or cheapest within centralcloud.recommend_tolerance of the best score. Unknown complexity, capability or preference: an error. At most centralcloud.recommend_max_candidates rows.';
COMMENT ON FUNCTION evaluate_model_health() IS
  'Evaluates the health of every provider and model now (ingest does it after each call): records each change in health_history and publishes a model_health_update event to every subscribed instance, in this transaction. Returns the changes.';

REVOKE ALL ON FUNCTION recommend_model(text, text[], text, text[]), evaluate_model_health() FROM PUBLIC;
GRANT SELECT ON model_health, health_updates_recent TO centralcloud_reader;
-- Routers ask recommend_model() (it runs as the owner); the schema's USAGE lets them name it,
-- and shows them nothing else.
GRANT USAGE ON SCHEMA @extschema@ TO centralcloud_publisher;
GRANT EXECUTE ON FUNCTION recommend_model(text, text[], text, text[]) TO centralcloud_reader, centralcloud_publisher;
-- A router calls it on every request: its statements are planned once per session. With custom
-- plans PostgreSQL would plan them again on every call (their estimates beat the generic
-- plan's), which costs more than running them.
ALTER FUNCTION recommend_model(text, text[], text, text[]) SET plan_cache_mode = force_generic_plan;
GRANT EXECUTE ON FUNCTION evaluate_model_health() TO centralcloud_operator;
GRANT SELECT ON health_outcomes, health_states, health_history, model_capabilities, model_prices,
                model_health, health_updates_recent
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

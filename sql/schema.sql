-- centralcloud schema: the audit trail, per-cell metrics, dead letters, and the seed's
-- dashboard queries. Runs at the end of CREATE EXTENSION (after the Rust functions exist).

-- ---------------------------------------------------------------------------------------
-- The queue routers publish to, and the seed's plain score-update queue (bound to the score
-- update topic, for consumers written to the seed). Created through pgmq's own API when
-- missing. Objects that
-- pgmq creates during our CREATE EXTENSION would otherwise become members of centralcloud
-- (DROP EXTENSION centralcloud would drop the queue's tables behind pgmq's back), so they
-- are handed back.
-- ---------------------------------------------------------------------------------------
DO $queue$
DECLARE
    member record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = 'model_routing_decisions') THEN
        PERFORM pgmq.create('model_routing_decisions');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = 'model_score_updates') THEN
        PERFORM pgmq.create('model_score_updates');
    END IF;
    PERFORM pgmq.bind_topic('centralcloud.model_score_update', 'model_score_updates');
    FOR member IN
        SELECT c.oid::regclass AS rel, c.relkind
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class c ON c.oid = d.objid
         WHERE d.classid = 'pg_catalog.pg_class'::regclass
           AND d.refclassid = 'pg_catalog.pg_extension'::regclass
           AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'centralcloud')
           AND d.deptype = 'e'
           AND c.relnamespace = 'pgmq'::regnamespace
           AND c.relkind IN ('r', 'S')
    LOOP
        EXECUTE format('ALTER EXTENSION centralcloud DROP %s %s',
                       CASE member.relkind WHEN 'r' THEN 'TABLE' ELSE 'SEQUENCE' END, member.rel);
    END LOOP;
END
$queue$;

-- ---------------------------------------------------------------------------------------
-- Audit trail: one row per ingested routing event.
-- ---------------------------------------------------------------------------------------
CREATE TABLE routing_records (
    id                    BIGSERIAL PRIMARY KEY,
    msg_id                BIGINT NOT NULL CONSTRAINT routing_records_msg_id_key UNIQUE,
    "timestamp"           TIMESTAMPTZ NOT NULL,
    instance_id           VARCHAR NOT NULL,
    complexity            VARCHAR NOT NULL CHECK (complexity IN ('simple', 'medium', 'complex')),
    model                 VARCHAR NOT NULL,
    provider              VARCHAR NOT NULL,
    score                 FLOAT NOT NULL CHECK (score >= 0 AND score <= 5),
    outcome               VARCHAR NOT NULL CHECK (outcome IN ('routed', 'success', 'failure')),
    response_time_ms      INTEGER CHECK (response_time_ms >= 0),
    capabilities_required TEXT[] NOT NULL DEFAULT '{}',
    preference            VARCHAR CHECK (preference IN ('speed', 'cost')),
    user_model_request    VARCHAR,
    received_at           TIMESTAMPTZ NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_routing_records_model_complexity ON routing_records (model, complexity);
CREATE INDEX idx_routing_records_timestamp ON routing_records ("timestamp" DESC);

COMMENT ON TABLE routing_records IS
  'Audit trail: one row per routing event ingested from the pgmq queue (seed columns plus msg_id, user_model_request, received_at). Written only by ingest_routing_events().';
COMMENT ON COLUMN routing_records.msg_id IS 'pgmq msg_id of the message; unique, so the same message never lands twice.';
COMMENT ON COLUMN routing_records."timestamp" IS 'When the instance made the decision (event timestamp, normalised to UTC).';
COMMENT ON COLUMN routing_records.instance_id IS 'Router instance that published the event.';
COMMENT ON COLUMN routing_records.complexity IS 'Task complexity: simple, medium or complex.';
COMMENT ON COLUMN routing_records.model IS 'routing_decision.selected_model.';
COMMENT ON COLUMN routing_records.provider IS 'routing_decision.selected_provider.';
COMMENT ON COLUMN routing_records.score IS 'routing_decision.complexity_score the instance routed with, in [0, 5].';
COMMENT ON COLUMN routing_records.outcome IS 'routed (the decision), success or failure (its outcome).';
COMMENT ON COLUMN routing_records.response_time_ms IS 'Response time in ms when the instance reported one.';
COMMENT ON COLUMN routing_records.capabilities_required IS 'Capability filters applied (empty when none).';
COMMENT ON COLUMN routing_records.preference IS 'routing_decision.prefer: speed, cost or NULL.';
COMMENT ON COLUMN routing_records.user_model_request IS 'Model the user explicitly asked for, if any.';
COMMENT ON COLUMN routing_records.received_at IS 'When pgmq received the message (its enqueued_at).';
COMMENT ON COLUMN routing_records.created_at IS 'When ingest wrote the row.';

-- ---------------------------------------------------------------------------------------
-- Per (model, complexity) metrics, maintained by ingest once per batch per cell.
-- ---------------------------------------------------------------------------------------
CREATE TABLE model_routing_metrics (
    id                  BIGSERIAL PRIMARY KEY,
    model_name          VARCHAR NOT NULL,
    complexity_level    VARCHAR NOT NULL,
    usage_count         BIGINT NOT NULL DEFAULT 0,
    success_count       BIGINT NOT NULL DEFAULT 0,
    failure_count       BIGINT NOT NULL DEFAULT 0,
    avg_response_time   FLOAT,
    response_time_count BIGINT NOT NULL DEFAULT 0,
    response_time_sum   BIGINT NOT NULL DEFAULT 0,
    response_time_min   INTEGER,
    response_time_max   INTEGER,
    latency_sketch      BYTEA,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (model_name, complexity_level)
);

COMMENT ON TABLE model_routing_metrics IS
  'One row per (model_name, complexity_level), created on first sight. Counting semantics: usage_count = routing decisions (outcome routed); success_count / failure_count = outcome events; success rate = success_count / (success_count + failure_count); latency columns cover every event that reported response_time_ms. The seed''s unbounded response_times array is replaced by latency_sketch.';
COMMENT ON COLUMN model_routing_metrics.model_name IS 'Model (routing_decision.selected_model).';
COMMENT ON COLUMN model_routing_metrics.complexity_level IS 'Task complexity: simple, medium or complex.';
COMMENT ON COLUMN model_routing_metrics.usage_count IS 'Routing decisions: events with outcome = routed.';
COMMENT ON COLUMN model_routing_metrics.success_count IS 'Outcome events with outcome = success.';
COMMENT ON COLUMN model_routing_metrics.failure_count IS 'Outcome events with outcome = failure.';
COMMENT ON COLUMN model_routing_metrics.avg_response_time IS 'response_time_sum / response_time_count, in ms (exact, not a running float average).';
COMMENT ON COLUMN model_routing_metrics.response_time_count IS 'Events that reported response_time_ms.';
COMMENT ON COLUMN model_routing_metrics.response_time_sum IS 'Sum of reported response_time_ms.';
COMMENT ON COLUMN model_routing_metrics.response_time_min IS 'Smallest reported response_time_ms.';
COMMENT ON COLUMN model_routing_metrics.response_time_max IS 'Largest reported response_time_ms.';
COMMENT ON COLUMN model_routing_metrics.latency_sketch IS 'DDSketch of response_time_ms (1% relative accuracy, at most 2048 bins: a few KiB whatever the volume). Read with latency_quantile(latency_sketch, 0.95).';
COMMENT ON COLUMN model_routing_metrics.updated_at IS 'Last batch that changed the row.';

-- ---------------------------------------------------------------------------------------
-- Dead letters: every message ingest could not turn into a record, with the reason.
-- ---------------------------------------------------------------------------------------
CREATE TABLE routing_events_rejected (
    id          BIGSERIAL PRIMARY KEY,
    msg_id      BIGINT NOT NULL,
    message     JSONB,
    reason_code TEXT NOT NULL,
    reason      TEXT NOT NULL,
    read_ct     INTEGER NOT NULL,
    enqueued_at TIMESTAMPTZ,
    rejected_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_routing_events_rejected_msg_id ON routing_events_rejected (msg_id);
CREATE INDEX idx_routing_events_rejected_rejected_at ON routing_events_rejected (rejected_at DESC);

COMMENT ON TABLE routing_events_rejected IS
  'Dead letters: messages that failed validation, were delivered twice, or kept failing processing (after centralcloud.max_retries reads). Kept, never dropped.';
COMMENT ON COLUMN routing_events_rejected.msg_id IS 'pgmq msg_id of the rejected message.';
COMMENT ON COLUMN routing_events_rejected.message IS 'The raw message, as published.';
COMMENT ON COLUMN routing_events_rejected.reason_code IS 'Stable code: null_message, unparseable, not_an_object, missing_field, wrong_type, empty_string, too_long, too_many, not_allowed, out_of_range, bad_timestamp, duplicate, processing_error.';
COMMENT ON COLUMN routing_events_rejected.reason IS 'Precise reason, naming the field and the rule it broke.';
COMMENT ON COLUMN routing_events_rejected.read_ct IS 'pgmq read_ct of the message when it was rejected: 0 when ingest rejected it on first delivery, the number of pgmq.read deliveries for one that kept failing.';
COMMENT ON COLUMN routing_events_rejected.enqueued_at IS 'When pgmq received the message.';
COMMENT ON COLUMN routing_events_rejected.rejected_at IS 'When ingest rejected it.';

-- ---------------------------------------------------------------------------------------
-- The score catalog: the current complexity score of each (model, complexity), and the
-- learning watermark (the counters its last learning step consumed).
-- ---------------------------------------------------------------------------------------
CREATE TABLE model_complexity_scores (
    model_name                  VARCHAR NOT NULL,
    complexity_level            VARCHAR NOT NULL CHECK (complexity_level IN ('simple', 'medium', 'complex')),
    score                       FLOAT NOT NULL CHECK (score >= 0 AND score <= 5),
    learned_success_count       BIGINT NOT NULL DEFAULT 0,
    learned_failure_count       BIGINT NOT NULL DEFAULT 0,
    learned_response_time_count BIGINT NOT NULL DEFAULT 0,
    learned_response_time_sum   BIGINT NOT NULL DEFAULT 0,
    learned_at                  TIMESTAMPTZ,
    change_source               TEXT NOT NULL CHECK (change_source IN ('reported', 'learned', 'operator')),
    change_reason               TEXT NOT NULL,
    changed_at                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, complexity_level)
);
COMMENT ON TABLE model_complexity_scores IS
  'Score catalog: the current complexity score (0-5) of each (model, complexity), when and why it last changed. A cell enters when its first event is ingested, at the complexity_score instances reported for it; learn_complexity_scores() and set_complexity_score() change it.';
COMMENT ON COLUMN model_complexity_scores.model_name IS 'Model.';
COMMENT ON COLUMN model_complexity_scores.complexity_level IS 'Task complexity: simple, medium or complex.';
COMMENT ON COLUMN model_complexity_scores.score IS 'Current score, 0.0 to 5.0: what instances should route with.';
COMMENT ON COLUMN model_complexity_scores.learned_success_count IS 'Watermark: success_count consumed by the last learning step. Learning uses only model_routing_metrics counts above the watermark, so repeated runs do not drift.';
COMMENT ON COLUMN model_complexity_scores.learned_failure_count IS 'Watermark: failure_count consumed by the last learning step.';
COMMENT ON COLUMN model_complexity_scores.learned_response_time_count IS 'Watermark: response_time_count consumed by the last learning step.';
COMMENT ON COLUMN model_complexity_scores.learned_response_time_sum IS 'Watermark: response_time_sum consumed by the last learning step.';
COMMENT ON COLUMN model_complexity_scores.learned_at IS 'Last learning step (NULL: never enough evidence yet).';
COMMENT ON COLUMN model_complexity_scores.change_source IS 'Who set the score: reported (initial), learned, operator.';
COMMENT ON COLUMN model_complexity_scores.change_reason IS 'Why the score last changed.';
COMMENT ON COLUMN model_complexity_scores.changed_at IS 'When the score last changed.';

CREATE TABLE score_history (
    id                   BIGSERIAL PRIMARY KEY,
    model_name           VARCHAR NOT NULL,
    complexity_level     VARCHAR NOT NULL,
    old_score            FLOAT,
    new_score            FLOAT NOT NULL,
    samples              BIGINT,
    success_rate         FLOAT,
    avg_response_time_ms FLOAT,
    policy               TEXT NOT NULL,
    reason               TEXT NOT NULL,
    published_to         INTEGER NOT NULL,
    changed_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_score_history_cell ON score_history (model_name, complexity_level, changed_at DESC);
COMMENT ON TABLE score_history IS
  'One row per score change (learned or set by an operator): old and new score, the evidence behind it, the policy, the reason, and how many queues the update was published to (same transaction as the change).';
COMMENT ON COLUMN score_history.model_name IS 'Model.';
COMMENT ON COLUMN score_history.complexity_level IS 'Task complexity.';
COMMENT ON COLUMN score_history.old_score IS 'Score before the change (NULL: the cell had none).';
COMMENT ON COLUMN score_history.new_score IS 'Score after the change.';
COMMENT ON COLUMN score_history.samples IS 'Outcome samples the learning step used (NULL for operator changes).';
COMMENT ON COLUMN score_history.success_rate IS 'success / (success + failure) over those samples.';
COMMENT ON COLUMN score_history.avg_response_time_ms IS 'Average response time over the evidence (NULL: none reported).';
COMMENT ON COLUMN score_history.policy IS 'Learning policy (centralcloud.learning_policy), or operator.';
COMMENT ON COLUMN score_history.reason IS 'Human-readable reason, as published.';
COMMENT ON COLUMN score_history.published_to IS 'Queues the model_score_update event was sent to (subscribed instances plus model_score_updates).';
COMMENT ON COLUMN score_history.changed_at IS 'When the change was made.';

CREATE TABLE score_subscriptions (
    instance_id   TEXT PRIMARY KEY,
    queue_name    TEXT NOT NULL UNIQUE,
    subscribed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE score_subscriptions IS
  'Router instances subscribed to score updates, each with its own pgmq queue bound to the centralcloud.model_score_update topic (subscribe_instance / unsubscribe_instance).';
COMMENT ON COLUMN score_subscriptions.instance_id IS 'Router instance id, as it publishes it.';
COMMENT ON COLUMN score_subscriptions.queue_name IS 'Its pgmq queue: cc_scores_<slug>_<hash of the id>.';
COMMENT ON COLUMN score_subscriptions.subscribed_at IS 'When it subscribed.';

-- ---------------------------------------------------------------------------------------
-- Running by itself: the background worker's status, and pg_cron scheduling.
-- ---------------------------------------------------------------------------------------
CREATE TABLE worker_state (
    singleton            BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    pid                  INTEGER,
    state                TEXT NOT NULL,
    started_at           TIMESTAMPTZ,
    last_ingest_at       TIMESTAMPTZ,
    last_learn_at        TIMESTAMPTZ,
    ingested_since_start BIGINT NOT NULL DEFAULT 0,
    rejected_since_start BIGINT NOT NULL DEFAULT 0,
    last_error           TEXT,
    last_error_at        TIMESTAMPTZ,
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE worker_state IS 'Written by the background worker when something changes; read it through worker_status.';
COMMENT ON COLUMN worker_state.singleton IS 'One row per database.';
COMMENT ON COLUMN worker_state.pid IS 'Process id of the worker that wrote the row.';
COMMENT ON COLUMN worker_state.state IS 'idle, ingesting, disabled or error.';
COMMENT ON COLUMN worker_state.started_at IS 'When this worker process started.';
COMMENT ON COLUMN worker_state.last_ingest_at IS 'Last batch that ingested something.';
COMMENT ON COLUMN worker_state.last_learn_at IS 'Last successful learning run.';
COMMENT ON COLUMN worker_state.ingested_since_start IS 'Events ingested by this worker process.';
COMMENT ON COLUMN worker_state.rejected_since_start IS 'Events dead-lettered by this worker process.';
COMMENT ON COLUMN worker_state.last_error IS 'Last error caught (and rolled back) by the worker.';
COMMENT ON COLUMN worker_state.last_error_at IS 'When it happened.';
COMMENT ON COLUMN worker_state.updated_at IS 'Last write.';

CREATE VIEW worker_status AS
SELECT w.pid,
       CASE
           WHEN NOT current_setting('shared_preload_libraries') ~ '(^|[ ,])"?centralcloud"?($|[ ,])'
               THEN 'not preloaded: schedule with pg_cron or call ingest yourself'
           WHEN w.pid IS NULL THEN 'starting'
           WHEN a.pid IS NULL THEN 'not running'
           ELSE w.state
       END AS state,
       w.started_at, w.last_ingest_at, w.last_learn_at, w.ingested_since_start,
       w.rejected_since_start, w.last_error, w.last_error_at, w.updated_at
  FROM (SELECT 1) AS one
  LEFT JOIN worker_state w ON true
  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = w.pid AND a.backend_type = 'centralcloud worker';
COMMENT ON VIEW worker_status IS
  'The background worker, for dashboards: pid, state (idle, ingesting, disabled, error, not running, or not preloaded), last ingest and learn, events ingested and rejected since it started, last error and when.';

-- No SET clause: a procedure with one cannot COMMIT. Every name in it is schema-qualified.
CREATE PROCEDURE drain_routing_events(time_budget_s integer DEFAULT 50)
LANGUAGE plpgsql
AS $drain$
DECLARE
    batch record;
    deadline timestamptz := clock_timestamp() + make_interval(secs => time_budget_s);
BEGIN
    LOOP
        SELECT * INTO batch FROM centralcloud.ingest_routing_events(NULL, 1);
        COMMIT;
        EXIT WHEN batch.read < current_setting('centralcloud.batch_size')::integer
               OR clock_timestamp() >= deadline;
    END LOOP;
END
$drain$;
COMMENT ON PROCEDURE drain_routing_events(integer) IS
  'Drains the queue with ingest_routing_events(), one batch per transaction (COMMIT after each), until the queue has no full batch or time_budget_s has passed. The pg_cron ingest job: pg_cron 1.4 runs at most once a minute, so one run must drain the whole backlog.';

CREATE FUNCTION schedule_with_pg_cron(ingest_schedule text DEFAULT '* * * * *',
                                      learn_schedule text DEFAULT '*/5 * * * *')
RETURNS TABLE (jobid bigint, jobname text, schedule text, command text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $schedule$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'centralcloud: pg_cron is not installed in this database'
            USING HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name, and CREATE EXTENSION pg_cron; or use the centralcloud background worker.';
    END IF;
    PERFORM cron.schedule_in_database('centralcloud-ingest', ingest_schedule,
                                      'CALL centralcloud.drain_routing_events()', current_database());
    PERFORM cron.schedule_in_database('centralcloud-learn', learn_schedule,
                                      'SELECT count(*) FROM centralcloud.learn_complexity_scores()',
                                      current_database());
    RETURN QUERY SELECT j.jobid, j.jobname::text, j.schedule::text, j.command::text FROM cron.job j
                  WHERE j.jobname IN ('centralcloud-ingest', 'centralcloud-learn') ORDER BY j.jobname;
END
$schedule$;
COMMENT ON FUNCTION schedule_with_pg_cron(text, text) IS
  'Creates (or updates, by job name) the pg_cron jobs centralcloud-ingest (CALL drain_routing_events()) and centralcloud-learn, in this database. For sites that do not preload centralcloud. Clear error if pg_cron is missing.';

CREATE FUNCTION unschedule_pg_cron()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $unschedule$
DECLARE
    removed integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'centralcloud: pg_cron is not installed in this database';
    END IF;
    SELECT count(*) INTO removed FROM cron.job j, LATERAL cron.unschedule(j.jobid) AS gone
     WHERE j.jobname IN ('centralcloud-ingest', 'centralcloud-learn') AND gone;
    RETURN removed;
END
$unschedule$;
COMMENT ON FUNCTION unschedule_pg_cron() IS 'Removes the pg_cron jobs schedule_with_pg_cron() created; returns how many.';

-- pg_dump keeps the data of extension tables only when they are registered.
SELECT pg_catalog.pg_extension_config_dump('routing_records', '');
SELECT pg_catalog.pg_extension_config_dump('routing_records_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('model_routing_metrics', '');
SELECT pg_catalog.pg_extension_config_dump('model_routing_metrics_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('routing_events_rejected', '');
SELECT pg_catalog.pg_extension_config_dump('routing_events_rejected_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('model_complexity_scores', '');
SELECT pg_catalog.pg_extension_config_dump('score_history', '');
SELECT pg_catalog.pg_extension_config_dump('score_history_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('score_subscriptions', '');

-- ---------------------------------------------------------------------------------------
-- The seed's dashboard queries 2 and 3, corrected (the seed selects a column "model" that
-- model_routing_metrics does not have, calls ROUND(double precision, integer), which does
-- not exist, and divides successes by all events).
-- ---------------------------------------------------------------------------------------
CREATE VIEW model_success_rates AS
SELECT model_name AS model,
       complexity_level,
       ROUND(success_count::numeric / NULLIF(success_count + failure_count, 0) * 100, 2) AS success_rate,
       success_count + failure_count AS outcome_count,
       usage_count
  FROM model_routing_metrics
 ORDER BY success_rate DESC NULLS LAST, model, complexity_level;
COMMENT ON VIEW model_success_rates IS
  'Seed dashboard "Success rates", corrected: success_rate = success / (success + failure) in percent, with its sample size (outcome_count) and the number of routing decisions (usage_count).';

CREATE VIEW model_response_times AS
SELECT model_name AS model,
       complexity_level,
       ROUND(avg_response_time::numeric, 0) AS avg_ms,
       latency_quantile(latency_sketch, 0.50) AS p50_ms,
       latency_quantile(latency_sketch, 0.95) AS p95_ms,
       latency_quantile(latency_sketch, 0.99) AS p99_ms,
       response_time_max AS max_ms,
       response_time_count AS samples
  FROM model_routing_metrics
 WHERE response_time_count > 0
 ORDER BY avg_ms DESC, model, complexity_level;
COMMENT ON VIEW model_response_times IS
  'Seed dashboard "Response time trends", corrected: exact average and maximum, and p50/p95/p99 read from the latency sketch (within 1% relative error), per model and complexity.';

-- ---------------------------------------------------------------------------------------
-- Functions: documentation and privileges. Ingest mutates; PUBLIC may not run it.
-- ---------------------------------------------------------------------------------------
COMMENT ON FUNCTION ingest_routing_events(integer, integer) IS
  'Drains the routing-event queue (centralcloud.queue_name) batch by batch: valid events go to routing_records and model_routing_metrics, invalid ones to routing_events_rejected, all in the caller''s transaction (each batch in a subtransaction). batch_size NULL = centralcloud.batch_size; max_batches NULL = until the queue has no visible message. Returns what it did.';
COMMENT ON FUNCTION routing_event_rejection(text) IS
  'Validates one routing event (JSON text): NULL when valid, otherwise ARRAY[reason_code, reason]. Ingest calls it for every message; call it to check an event by hand.';
COMMENT ON FUNCTION latency_sketch_merge(bytea, bytea) IS 'Merges two latency sketches (NULL = empty).';
COMMENT ON FUNCTION latency_quantile(bytea, double precision) IS 'q-quantile (0..1) in ms from a latency sketch, within 1% relative error.';
COMMENT ON FUNCTION latency_sketch_count(bytea) IS 'Number of samples in a latency sketch.';

COMMENT ON FUNCTION learn_complexity_scores(boolean) IS
  'Applies centralcloud.learning_policy to every cell with the evidence since its last learning step; records each change in score_history and publishes the seed''s model_score_update event to every subscribed instance, in the same transaction. One row per cell considered, with the reason (e.g. insufficient data: 37 < 100). dry_run: same rows, nothing changed or published.';
COMMENT ON FUNCTION set_complexity_score(text, text, double precision, text) IS
  'Sets a cell''s score by hand (validated), recorded and published like a learned change. False when the score already had that value.';
COMMENT ON FUNCTION subscribe_instance(text) IS
  'Creates the instance''s own score-update queue (cc_scores_<slug>_<hash>) and binds it to the score update topic; returns the queue name. Idempotent.';
COMMENT ON FUNCTION unsubscribe_instance(text, boolean) IS
  'Unbinds the instance''s score-update queue and, unless drop_queue is false, drops it. False if it was not subscribed.';

REVOKE ALL ON FUNCTION ingest_routing_events(integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION learn_complexity_scores(boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION set_complexity_score(text, text, double precision, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION subscribe_instance(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION unsubscribe_instance(text, boolean) FROM PUBLIC;
REVOKE ALL ON PROCEDURE drain_routing_events(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION schedule_with_pg_cron(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION unschedule_pg_cron() FROM PUBLIC;

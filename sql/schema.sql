-- centralcloud schema: the queues, the audit trail (partitioned by day), per-cell metrics,
-- hourly rollups, dead letters, the score catalog, and the SQL-only functions that run it.
-- Runs first in CREATE EXTENSION (bootstrap); dashboards.sql and security.sql follow the Rust
-- functions.

-- ---------------------------------------------------------------------------------------
-- The queue routers publish to, and the seed's plain score-update queue (bound to the score
-- update topic, for consumers written to the seed). Created through pgmq's own API when
-- missing. Objects that
-- pgmq creates during our CREATE EXTENSION would otherwise become members of centralcloud
-- (DROP EXTENSION centralcloud would drop the queue's tables behind pgmq's back), so they
-- are handed back.
-- ---------------------------------------------------------------------------------------
-- pg_dump's scripts (plain, or replayed by pg_restore) bring the queues, their topic bindings
-- and grants, the audit trail and its partitions with them: creating any of these here too
-- would collide with what the dump restores. Both run with row_security off (extension scripts
-- keep the session's value of it, unlike check_function_bodies or search_path, which they
-- reset), so under row_security = off this script creates the extension's own objects only.
DO $queue$
DECLARE
    member record;
BEGIN
    IF current_setting('row_security') = 'off' THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = 'model_routing_decisions') THEN
        PERFORM pgmq.create('model_routing_decisions');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = 'model_score_updates') THEN
        PERFORM pgmq.create('model_score_updates');
    END IF;
    PERFORM pgmq.bind_topic('centralcloud.model_score_update', 'model_score_updates');
    -- Queues of instances subscribed to an earlier installation (DROP EXTENSION leaves pgmq's
    -- queues and bindings): this one has no subscriptions yet, so none of them may keep
    -- receiving updates, of scores or of health.
    PERFORM pgmq.unbind_topic(b.pattern, b.queue_name)
       FROM pgmq.topic_bindings b
      WHERE b.pattern IN ('centralcloud.model_score_update', 'centralcloud.model_health_update')
        AND b.queue_name <> 'model_score_updates';
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
-- Audit trail: one row per ingested routing event, partitioned by day (UTC) of received_at so
-- retention drops whole partitions. received_at is when ingest claimed the message (the
-- claiming transaction's start): only the server sets it, so every record lands in a partition
-- ingest made sure of, whatever a publisher or an instance's clock says. A message is named by
-- (msg_id, enqueued_at): a queue that is dropped and recreated reuses msg_ids, but not with the
-- same enqueue time; ingest dead-letters a second delivery of the same pair as a duplicate.
-- ---------------------------------------------------------------------------------------
--
-- The audit trail is not a member of the extension: pg_dump dumps it whole (the parent, its
-- daily partitions, their indexes, constraints and rows), so a dump restores. (With the parent
-- a member, CREATE EXTENSION would make it, with its primary key, before the dump's partitions,
-- and attaching them would clash with their own keys.) DROP EXTENSION therefore leaves it.
DO $records$
BEGIN
    IF current_setting('row_security') = 'off' THEN
        RETURN;  -- restoring a dump (see the queue block above): it brings the audit trail
    END IF;
    IF to_regclass('@extschema@.routing_records') IS NOT NULL THEN
        RAISE EXCEPTION 'centralcloud: @extschema@.routing_records exists (the audit trail of an earlier installation)'
            USING ERRCODE = 'duplicate_table',
                  HINT = 'DROP EXTENSION leaves it. Rename it (ALTER TABLE centralcloud.routing_records RENAME TO ...) or drop it (DROP TABLE centralcloud.routing_records), then CREATE EXTENSION again.';
    END IF;
    CREATE TABLE routing_records (
        id                    BIGSERIAL NOT NULL,
        msg_id                BIGINT NOT NULL,
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
        created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
        enqueued_at           TIMESTAMPTZ NOT NULL,
        timestamp_without_offset BOOLEAN NOT NULL DEFAULT false,
        CONSTRAINT routing_records_pkey PRIMARY KEY (msg_id, received_at)
    ) PARTITION BY RANGE (received_at);
    CREATE INDEX idx_routing_records_timestamp ON routing_records ("timestamp" DESC);
    -- Rare: what ingest_health counts stays a small index scan.
    CREATE INDEX idx_routing_records_without_offset ON routing_records (received_at)
        WHERE timestamp_without_offset;
    CREATE TABLE routing_records_default PARTITION OF routing_records DEFAULT;
    COMMENT ON TABLE routing_records_default IS
      'Catch-all partition of routing_records for records outside the daily partitions (only if a partition was dropped by hand: ingest creates today''s before it writes). Normally empty; add_routing_partition() moves its rows into a new partition, and retention deletes its expired rows.';

    COMMENT ON TABLE routing_records IS
      'Audit trail: one row per routing event ingested from the pgmq queue (seed columns plus msg_id, user_model_request, received_at, enqueued_at). Written only by ingest_routing_events(). Partitioned by day (UTC) of received_at: routing_records_pYYYYMMDD, created ahead by run_maintenance() and dropped whole after centralcloud.routing_records_retention.';
    COMMENT ON COLUMN routing_records.id IS 'Row number, in ingest order.';
    COMMENT ON COLUMN routing_records.msg_id IS 'pgmq msg_id of the message; (msg_id, enqueued_at) names it, and ingest records it once.';
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
    COMMENT ON COLUMN routing_records.received_at IS 'When ingest claimed the message from the queue (server time): the partition key.';
    COMMENT ON COLUMN routing_records.created_at IS 'When ingest wrote the row.';
    COMMENT ON COLUMN routing_records.enqueued_at IS 'When pgmq received the message (its enqueued_at).';
    COMMENT ON COLUMN routing_records.timestamp_without_offset IS 'The event''s timestamp had no UTC offset and was read as UTC.';
    ALTER EXTENSION centralcloud DROP TABLE routing_records;
    ALTER EXTENSION centralcloud DROP TABLE routing_records_default;
    ALTER EXTENSION centralcloud DROP SEQUENCE routing_records_id_seq;
END
$records$;

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
-- Hourly rollup, maintained by ingest in the same transaction as the records: what
-- per-instance and time-window dashboards read instead of the audit trail. Kept by retention.
-- ---------------------------------------------------------------------------------------
CREATE TABLE routing_rollup_hourly (
    hour                TIMESTAMPTZ NOT NULL,
    instance_id         VARCHAR NOT NULL,
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
    PRIMARY KEY (hour, instance_id, model, complexity, provider)
);
CREATE INDEX idx_routing_rollup_hourly_cell ON routing_rollup_hourly (model, complexity, hour);
COMMENT ON TABLE routing_rollup_hourly IS
  'One row per (hour of the event timestamp in UTC, instance, model, complexity, provider): the same counters as model_routing_metrics, and a mergeable latency sketch. Written by ingest in the batch''s transaction; dashboards merge it over any window (latency_quantiles(), latency_sketch_union()). Retention does not touch it.';
COMMENT ON COLUMN routing_rollup_hourly.hour IS 'Start of the hour (UTC) of the events'' own timestamp.';
COMMENT ON COLUMN routing_rollup_hourly.instance_id IS 'Router instance.';
COMMENT ON COLUMN routing_rollup_hourly.model IS 'Model.';
COMMENT ON COLUMN routing_rollup_hourly.complexity IS 'Task complexity.';
COMMENT ON COLUMN routing_rollup_hourly.provider IS 'Provider of the model.';
COMMENT ON COLUMN routing_rollup_hourly.usage_count IS 'Routing decisions (outcome routed).';
COMMENT ON COLUMN routing_rollup_hourly.success_count IS 'Outcome events with outcome success.';
COMMENT ON COLUMN routing_rollup_hourly.failure_count IS 'Outcome events with outcome failure.';
COMMENT ON COLUMN routing_rollup_hourly.response_time_count IS 'Events that reported response_time_ms.';
COMMENT ON COLUMN routing_rollup_hourly.response_time_sum IS 'Sum of reported response_time_ms.';
COMMENT ON COLUMN routing_rollup_hourly.response_time_min IS 'Smallest reported response_time_ms.';
COMMENT ON COLUMN routing_rollup_hourly.response_time_max IS 'Largest reported response_time_ms.';
COMMENT ON COLUMN routing_rollup_hourly.latency_sketch IS 'DDSketch of the hour''s response times; merge with latency_sketch_union().';
COMMENT ON COLUMN routing_rollup_hourly.updated_at IS 'Last batch that changed the row.';

-- The rollup summed over instances: what a fleet-wide time series or window reads, a twentieth
-- of the rows with twenty instances. Ingest adds to it with the rollup; a central server of the
-- scale-out, whose rollup arrives by replication, recounts it (refresh_metrics_from_rollup()).
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
    rejected_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    message_prefix TEXT,
    message_bytes  INTEGER,
    message_sha256 BYTEA
);
CREATE INDEX idx_routing_events_rejected_msg_id ON routing_events_rejected (msg_id);
CREATE INDEX idx_routing_events_rejected_rejected_at ON routing_events_rejected (rejected_at DESC);

COMMENT ON TABLE routing_events_rejected IS
  'Dead letters: messages that failed validation, were delivered twice, or kept failing processing (after centralcloud.max_retries reads). A message larger than centralcloud.dead_letter_max_bytes is kept as a prefix with its length and hash. run_maintenance() deletes dead letters older than centralcloud.dead_letter_retention.';
COMMENT ON COLUMN routing_events_rejected.msg_id IS 'pgmq msg_id of the rejected message.';
COMMENT ON COLUMN routing_events_rejected.message IS 'The raw message, as published, when it is at most centralcloud.dead_letter_max_bytes long (else NULL, see message_prefix).';
COMMENT ON COLUMN routing_events_rejected.reason_code IS 'Stable code: null_message, unparseable, not_an_object, missing_field, wrong_type, empty_string, too_long, too_many, not_allowed, out_of_range, bad_timestamp, too_many_models, duplicate, processing_error.';
COMMENT ON COLUMN routing_events_rejected.reason IS 'Precise reason, naming the field and the rule it broke.';
COMMENT ON COLUMN routing_events_rejected.read_ct IS 'pgmq read_ct of the message when it was rejected: 0 when ingest rejected it on first delivery, the number of pgmq.read deliveries for one that kept failing.';
COMMENT ON COLUMN routing_events_rejected.enqueued_at IS 'When pgmq received the message.';
COMMENT ON COLUMN routing_events_rejected.rejected_at IS 'When ingest rejected it.';
COMMENT ON COLUMN routing_events_rejected.message_prefix IS 'The first centralcloud.dead_letter_max_bytes characters of a message too large to keep whole (NULL when message holds it).';
COMMENT ON COLUMN routing_events_rejected.message_bytes IS 'Length of the message as text, in bytes (NULL for a NULL message).';
COMMENT ON COLUMN routing_events_rejected.message_sha256 IS 'SHA-256 of the message as text: identifies a truncated message.';

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

-- What a dead letter keeps of a message: all of it up to centralcloud.dead_letter_max_bytes,
-- else a prefix; always its length and hash. One publisher's 5 MB messages must not become
-- gigabytes of dead letters.
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
    prior_score                 FLOAT NOT NULL CHECK (prior_score >= 0 AND prior_score <= 5),
    regime_start                TIMESTAMPTZ,
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
CREATE INDEX idx_score_history_changed_at ON score_history (changed_at DESC);
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
    subscribed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    reader_role   TEXT
);
COMMENT ON TABLE score_subscriptions IS
  'Router instances subscribed to score updates, each with its own pgmq queue bound to the centralcloud.model_score_update topic (subscribe_instance / unsubscribe_instance).';
COMMENT ON COLUMN score_subscriptions.instance_id IS 'Router instance id, as it publishes it.';
COMMENT ON COLUMN score_subscriptions.queue_name IS 'Its pgmq queue: cc_scores_<slug>_<hash of the id>.';
COMMENT ON COLUMN score_subscriptions.subscribed_at IS 'When it subscribed.';
COMMENT ON COLUMN score_subscriptions.reader_role IS 'The role that reads its queue (subscribe_instance''s reader; centralcloud_publisher when none was given): its members see the instance''s dead letters in instance_dead_letters.';

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
COMMENT ON COLUMN worker_state.state IS 'idle, ingesting, disabled, error, or waiting for ALTER EXTENSION centralcloud UPDATE (a new library over an older catalog).';
COMMENT ON COLUMN worker_state.started_at IS 'When this worker process started.';
COMMENT ON COLUMN worker_state.last_ingest_at IS 'Last batch that ingested something.';
COMMENT ON COLUMN worker_state.last_learn_at IS 'Last successful learning run.';
COMMENT ON COLUMN worker_state.ingested_since_start IS 'Events ingested by this worker process.';
COMMENT ON COLUMN worker_state.rejected_since_start IS 'Events dead-lettered by this worker process.';
COMMENT ON COLUMN worker_state.last_error IS 'Last error caught (and rolled back) by the worker.';
COMMENT ON COLUMN worker_state.last_error_at IS 'When it happened.';
COMMENT ON COLUMN worker_state.updated_at IS 'Last write.';

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

-- Runs as the owner: reading shared_preload_libraries needs pg_read_all_settings
-- and seeing another user's backend in pg_stat_activity needs pg_read_all_stats, which
-- dashboard readers do not have. On a hot standby worker_state is the primary's row as last
-- replayed (its pid names a process of the primary) and no worker runs until promotion, so
-- the server's role is the answer there.
CREATE FUNCTION worker_liveness(worker_pid integer)
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

CREATE VIEW worker_status AS
SELECT w.pid,
       CASE l.liveness WHEN 'running' THEN w.state ELSE l.liveness END AS state,
       w.started_at, w.last_ingest_at, w.last_learn_at, w.ingested_since_start,
       w.rejected_since_start, w.last_error, w.last_error_at, w.updated_at
  FROM (SELECT 1) AS one
  LEFT JOIN worker_state w ON true
 CROSS JOIN LATERAL (SELECT worker_liveness(w.pid) AS liveness) AS l;
COMMENT ON VIEW worker_status IS
  'The background worker, for dashboards: pid, state (idle, ingesting, disabled, error, waiting for ALTER EXTENSION centralcloud UPDATE, not running, not served (this database is not in centralcloud.database), not preloaded, or standby (a hot standby: the other columns are the primary''s worker''s, as last replayed)), last ingest and learn, events ingested and rejected since it started, last error and when.';
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

-- A procedure with a SET clause cannot COMMIT, so this one pins search_path itself, first thing
-- in each of its transactions (set_config(..., true) ends with the transaction): the pg_cron job
-- runs it as a superuser, and a look-alike such as public.make_interval(integer) planted by
-- anyone with CREATE on a schema of the caller's search_path must never run there. Until the
-- pin, only schema-qualified names and literals are evaluated.
CREATE PROCEDURE drain_routing_events(time_budget_s integer DEFAULT 50)
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
COMMENT ON PROCEDURE drain_routing_events(integer) IS
  'Drains the queue with ingest_routing_events(), one batch per transaction (COMMIT after each), until the queue has no full batch or time_budget_s has passed. The pg_cron ingest job: pg_cron 1.4 runs at most once a minute, so one run must drain the whole backlog.';

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

CREATE FUNCTION schedule_with_pg_cron(ingest_schedule text DEFAULT '* * * * *',
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

CREATE FUNCTION unschedule_pg_cron()
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

-- ---------------------------------------------------------------------------------------
-- Partitions of routing_records and retention. Native partitioning: one daily range
-- partition per UTC day, named routing_records_pYYYYMMDD (the name gives the day, so no bound
-- parsing). pg_partman would add a dependency and a second scheduler for three small
-- functions; run_maintenance() (worker or pg_cron) calls these.
-- ---------------------------------------------------------------------------------------
CREATE TABLE retention_log (
    id             BIGSERIAL PRIMARY KEY,
    partition_name TEXT NOT NULL,
    range_from     TIMESTAMPTZ,
    range_until    TIMESTAMPTZ NOT NULL,
    rows_removed   BIGINT NOT NULL,
    removed_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE retention_log IS
  'What retention removed: one row per dropped daily partition of routing_records, one per sweep of expired rows from routing_records_default, and one per sweep of expired dead letters (routing_events_rejected). Metrics and rollups keep counting these events.';
COMMENT ON COLUMN retention_log.partition_name IS 'The dropped partition, or routing_records_default / routing_events_rejected for a sweep.';
COMMENT ON COLUMN retention_log.range_from IS 'Start of the partition''s range (NULL for the default partition).';
COMMENT ON COLUMN retention_log.range_until IS 'End of the range removed (exclusive): the partition''s upper bound, or the cutoff.';
COMMENT ON COLUMN retention_log.rows_removed IS 'Records removed.';
COMMENT ON COLUMN retention_log.removed_at IS 'When.';

CREATE VIEW routing_record_partitions AS
SELECT c.relname::text AS partition_name, to_date(substr(c.relname, 18), 'YYYYMMDD') AS day,
       c.reltuples::bigint AS estimated_rows
  FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
  -- By name, not a regclass constant: the view must not depend on routing_records, which is
  -- not a member of the extension (a restore creates it after the view).
  JOIN pg_catalog.pg_class parent ON parent.oid = i.inhparent
 WHERE parent.relname = 'routing_records' AND parent.relnamespace = '@extschema@'::regnamespace
   AND c.relname ~ '^routing_records_p[0-9]{8}$';
COMMENT ON VIEW routing_record_partitions IS
  'The daily partitions of routing_records: name, UTC day (from the name), planner''s row estimate. The default partition is not listed.';
COMMENT ON COLUMN routing_record_partitions.partition_name IS 'routing_records_pYYYYMMDD.';
COMMENT ON COLUMN routing_record_partitions.day IS 'The UTC day it holds (by received_at).';
COMMENT ON COLUMN routing_record_partitions.estimated_rows IS 'Rows, as the planner estimates them (reltuples).';

CREATE FUNCTION add_routing_partition(day date)
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

CREATE FUNCTION ensure_routing_partitions(days_ahead integer DEFAULT 1)
RETURNS SETOF text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $ensure$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    newest date;
    day date;
BEGIN
    -- The common case, on every ingest call: the furthest partition exists already.
    IF to_regclass('@extschema@.routing_records_p' || to_char(today + days_ahead, 'YYYYMMDD')) IS NOT NULL THEN
        RETURN;
    END IF;
    -- From the day after the newest partition up to today: the days nobody ingested during
    -- (up to 60) get theirs too, so their late messages do not land in the default partition.
    SELECT max(p.day) INTO newest FROM @extschema@.routing_record_partitions p WHERE p.day <= today;
    FOR day IN SELECT d::date FROM generate_series(greatest(least(coalesce(newest + 1, today), today), today - 60),
                                                   today + days_ahead, interval '1 day') AS d
    LOOP
        IF to_regclass('@extschema@.routing_records_p' || to_char(day, 'YYYYMMDD')) IS NULL THEN
            RETURN NEXT @extschema@.add_routing_partition(day);
        END IF;
    END LOOP;
END
$ensure$;
COMMENT ON FUNCTION ensure_routing_partitions(integer) IS
  'Makes sure routing_records has a partition for today and the next days_ahead days (UTC), filling any gap since the newest one; returns the partitions it created. A lookup when they exist: ingest calls it on every call.';

CREATE FUNCTION drop_expired_routing_partitions(cutoff timestamptz)
RETURNS TABLE (partition_name text, rows_removed bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $drop$
DECLARE
    expired record;
    removed bigint;
BEGIN
    FOR expired IN
        SELECT p.partition_name AS name, p.day FROM @extschema@.routing_record_partitions p
         WHERE (p.day + 1)::timestamp AT TIME ZONE 'UTC' <= cutoff
         ORDER BY p.day
    LOOP
        EXECUTE format('SELECT count(*) FROM @extschema@.%I', expired.name) INTO removed;
        EXECUTE format('DROP TABLE @extschema@.%I', expired.name);
        INSERT INTO @extschema@.retention_log (partition_name, range_from, range_until, rows_removed)
        VALUES (expired.name, expired.day::timestamp AT TIME ZONE 'UTC',
                (expired.day + 1)::timestamp AT TIME ZONE 'UTC', removed);
        partition_name := expired.name;
        rows_removed := removed;
        RETURN NEXT;
    END LOOP;
    -- Stragglers in the default partition: normally none, so a plain DELETE.
    DELETE FROM @extschema@.routing_records_default WHERE received_at < cutoff;
    GET DIAGNOSTICS removed = ROW_COUNT;
    IF removed > 0 THEN
        INSERT INTO @extschema@.retention_log (partition_name, range_until, rows_removed)
        VALUES ('routing_records_default', cutoff, removed);
        partition_name := 'routing_records_default';
        rows_removed := removed;
        RETURN NEXT;
    END IF;
END
$drop$;
COMMENT ON FUNCTION drop_expired_routing_partitions(timestamptz) IS
  'Retention: drops every daily partition of routing_records that ends at or before cutoff (whole tables, no row-by-row DELETE), deletes older rows from the default partition, logs each in retention_log, and returns them. run_maintenance() calls it with now() - centralcloud.routing_records_retention.';

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

-- pg_dump keeps the data of extension tables only when they are registered.
SELECT pg_catalog.pg_extension_config_dump('routing_rollup_hourly', '');
SELECT pg_catalog.pg_extension_config_dump('routing_rollup_hourly_fleet', '');
SELECT pg_catalog.pg_extension_config_dump('retention_log', '');
SELECT pg_catalog.pg_extension_config_dump('retention_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('model_routing_metrics', '');
SELECT pg_catalog.pg_extension_config_dump('model_routing_metrics_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('routing_events_rejected', '');
SELECT pg_catalog.pg_extension_config_dump('routing_events_rejected_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('model_complexity_scores', '');
SELECT pg_catalog.pg_extension_config_dump('score_history', '');
SELECT pg_catalog.pg_extension_config_dump('score_history_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('score_subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('learning_changes', '');
SELECT pg_catalog.pg_extension_config_dump('learning_changes_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dead_letter_counts', '');
SELECT pg_catalog.pg_extension_config_dump('instance_anomaly_episodes', '');
SELECT pg_catalog.pg_extension_config_dump('instance_anomaly_episodes_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('health_states', '');
SELECT pg_catalog.pg_extension_config_dump('health_history', '');
SELECT pg_catalog.pg_extension_config_dump('health_history_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('model_capabilities', '');
SELECT pg_catalog.pg_extension_config_dump('model_prices', '');


-- The first partitions (unless restoring a dump, which brings its own). Created by this script,
-- they would be members of the extension; like every later partition they are plain tables
-- attached to routing_records.
DO $members$
DECLARE
    member record;
BEGIN
    IF current_setting('row_security') = 'off' THEN
        RETURN;
    END IF;
    PERFORM ensure_routing_partitions(2);
    FOR member IN
        SELECT c.oid::regclass AS rel
          FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class c ON c.oid = d.objid
         WHERE d.classid = 'pg_catalog.pg_class'::regclass
           AND d.refclassid = 'pg_catalog.pg_extension'::regclass
           AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'centralcloud')
           AND d.deptype = 'e'
           AND c.relname ~ '^routing_records_p[0-9]{8}$'
    LOOP
        EXECUTE format('ALTER EXTENSION centralcloud DROP TABLE %s', member.rel);
    END LOOP;
END
$members$;

-- centralcloud dashboards: sketch aggregates, the views dashboards read, and the window
-- functions behind them. Per-instance and time-window views read the hourly rollup, never the
-- audit trail; the others read the per-cell metrics and the score catalog (one row per cell).

-- ---------------------------------------------------------------------------------------
-- Latency sketch aggregates (state functions in src/sketch_sql.rs). The state is a decoded
-- sketch; combine and serial/deserial functions make them parallel safe, so partial states
-- merge across parallel workers.
-- ---------------------------------------------------------------------------------------
CREATE AGGREGATE latency_sketch_union(bytea) (
    SFUNC = latency_sketch_union_trans,
    STYPE = internal,
    COMBINEFUNC = latency_sketch_combine,
    SERIALFUNC = latency_sketch_serialize,
    DESERIALFUNC = latency_sketch_deserialize,
    FINALFUNC = latency_sketch_final,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE latency_sketch_union(bytea) IS
  'Merges latency sketches (e.g. routing_rollup_hourly.latency_sketch over any window) into one; NULL when none. Read it with latency_quantile().';

CREATE AGGREGATE latency_sketch_agg(integer) (
    SFUNC = latency_sketch_add_trans,
    STYPE = internal,
    COMBINEFUNC = latency_sketch_combine,
    SERIALFUNC = latency_sketch_serialize,
    DESERIALFUNC = latency_sketch_deserialize,
    FINALFUNC = latency_sketch_final,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE latency_sketch_agg(integer) IS
  'Builds a latency sketch from response times in ms (NULLs skipped); NULL when none. The same sketch ingest maintains, e.g. to recompute metrics from routing_records.';

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

-- ---------------------------------------------------------------------------------------
-- Ingest health: queue depth and age (pgmq.metrics, through a SECURITY DEFINER function so
-- dashboard readers need no rights on pgmq), dead letters, last ingest, worker state.
-- ---------------------------------------------------------------------------------------
CREATE FUNCTION queue_health()
RETURNS SETOF pgmq.metrics_result
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $health$
    SELECT m.*
      FROM pgmq.meta q, LATERAL pgmq.metrics(q.queue_name) AS m
     WHERE q.queue_name = coalesce(nullif(current_setting('centralcloud.queue_name', true), ''),
                                   'model_routing_decisions')
$health$;
COMMENT ON FUNCTION queue_health() IS
  'pgmq.metrics() of the routing-event queue (centralcloud.queue_name); no row if the queue does not exist. Read it through ingest_health.';

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

CREATE VIEW ingest_health AS
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

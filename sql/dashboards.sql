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

CREATE VIEW model_rankings AS
SELECT s.complexity_level,
       rank() OVER (PARTITION BY s.complexity_level ORDER BY s.score DESC) AS rank,
       s.model_name AS model,
       s.score,
       ROUND(m.success_count::numeric / NULLIF(m.success_count + m.failure_count, 0) * 100, 2) AS success_rate,
       m.success_count + m.failure_count AS outcome_count,
       m.usage_count,
       latency_quantile(m.latency_sketch, 0.95) AS p95_ms,
       last_change.old_score AS previous_score,
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

CREATE VIEW score_updates_recent AS
SELECT changed_at,
       model_name AS model,
       complexity_level,
       old_score,
       new_score,
       ROUND((new_score - old_score)::numeric, 4) AS change,
       policy,
       reason,
       samples,
       success_rate,
       avg_response_time_ms,
       published_to
  FROM score_history
 ORDER BY changed_at DESC, id DESC
 LIMIT 100;
COMMENT ON VIEW score_updates_recent IS
  'The latest 100 score changes (learned or by an operator), newest first, with the evidence, the reason and how many queues the update went to.';

CREATE VIEW learning_changes_recent AS
SELECT detected_at, model_name AS model, complexity_level, change_hour, kind, before_value, after_value, statistic
  FROM learning_changes
 ORDER BY detected_at DESC, id DESC
 LIMIT 100;
COMMENT ON VIEW learning_changes_recent IS
  'The latest 100 changes of a cell''s success rate or latency that learning (policy bayes) detected, newest first.';

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

-- ---------------------------------------------------------------------------------------
-- Any window, from the rollup.
-- ---------------------------------------------------------------------------------------
CREATE FUNCTION latency_quantiles(model text, complexity text, since timestamptz,
                                  until timestamptz DEFAULT now())
RETURNS TABLE (samples bigint, avg_ms numeric, p50_ms double precision, p95_ms double precision,
               p99_ms double precision, min_ms integer, max_ms integer)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $quantiles$
    SELECT w.samples, w.avg_ms, latency_quantile(w.sketch, 0.50), latency_quantile(w.sketch, 0.95),
           latency_quantile(w.sketch, 0.99), w.min_ms, w.max_ms
      FROM (SELECT coalesce(sum(r.response_time_count), 0)::bigint AS samples,
                   ROUND(sum(r.response_time_sum)::numeric / NULLIF(sum(r.response_time_count), 0), 1) AS avg_ms,
                   min(r.response_time_min) AS min_ms,
                   max(r.response_time_max) AS max_ms,
                   latency_sketch_union(r.latency_sketch) AS sketch
              FROM routing_rollup_hourly r
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

-- Owner's rights: the queues' metrics and the audit trail are not the dashboards'. PL/pgSQL, so
-- nothing binds it to routing_records (created after the extension by a restore).
CREATE FUNCTION instance_sync_state(recent interval)
RETURNS TABLE (instance_id text, queue_name text, unread_updates bigint, oldest_unread_age_s integer,
               last_ingested_at timestamptz, recent_events bigint, stale_events bigint,
               stale_share numeric)
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
           coalesce(e.events, 0), coalesce(e.stale, 0), round(e.stale::numeric / nullif(e.events, 0), 4)
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
  'Which instances apply their score updates: per subscribed instance, unread updates, age of the oldest (s), last ingest of its events, and in the last 15 minutes (event time) its events, those routed with a stale score, and their share.';

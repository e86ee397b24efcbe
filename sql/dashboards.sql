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
       w.last_error_at AS worker_last_error_at
  FROM worker_status w
  LEFT JOIN queue_health() q ON true;
COMMENT ON VIEW ingest_health IS
  'One row: the routing-event queue''s depth (all and visible) and its oldest and newest message age in seconds, dead letters in the last hour and in total, the last ingest that recorded events, and the background worker''s state and last error.';

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

-- centralcloud invariants: what "nothing lost, nothing counted twice" means, as one function
-- tests, the stress suites and operators run.

-- The counters of a metrics cell or rollup row, as text, for comparing stored with recounted.
CREATE FUNCTION counter_summary(routed bigint, success bigint, failure bigint, lat_count bigint,
                                lat_sum bigint, lat_min integer, lat_max integer, sketch bytea)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = @extschema@, pg_catalog, pg_temp
AS $summary$
    SELECT format('(routed %s, success %s, failure %s, latencies %s, sum %s, min %s, max %s, sketch n %s p50 %s p99 %s)',
                  routed, success, failure, lat_count, lat_sum, lat_min, lat_max,
                  @extschema@.latency_sketch_count(sketch), @extschema@.latency_quantile(sketch, 0.5),
                  @extschema@.latency_quantile(sketch, 0.99))
$summary$;
COMMENT ON FUNCTION counter_summary(bigint, bigint, bigint, bigint, bigint, integer, integer, bytea) IS
  'The counters of a metrics cell or rollup row as one text (counts, latency sum/min/max, sketch sample count, p50, p99): what check_invariants() compares between stored and recounted.';

CREATE FUNCTION check_invariants(published regclass DEFAULT NULL, queue_name text DEFAULT NULL)
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

-- centralcloud invariants: what "nothing lost, nothing counted twice" means, as one function
-- tests, the stress suites and operators run.

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
        RAISE EXCEPTION 'centralcloud: pgmq queue "%" does not exist', queue;
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
            SELECT q.msg_id, 'queued' FROM pgmq.%I q)
        SELECT 'more than once', p.msg_id, string_agg(p.place, ', ' ORDER BY p.place)
          FROM place p GROUP BY p.msg_id HAVING count(*) > 1
        $places$, queue_table) USING queue_created;
    IF published IS NOT NULL THEN
        RETURN QUERY EXECUTE format($published$
            WITH place AS MATERIALIZED (
                SELECT r.msg_id FROM @extschema@.routing_records r WHERE r.received_at >= $1
                UNION ALL
                SELECT x.msg_id FROM @extschema@.routing_events_rejected x
                 WHERE x.reason_code <> 'duplicate' AND (x.enqueued_at IS NULL OR x.enqueued_at >= $1)
                UNION ALL
                SELECT q.msg_id FROM pgmq.%I q),
            sent AS MATERIALIZED (SELECT DISTINCT s.msg_id::bigint AS msg_id FROM %s s)
            SELECT 'missing', s.msg_id, 'published to ' || $2 || ' but neither recorded, dead-lettered nor queued'
              FROM sent s
             WHERE NOT EXISTS (SELECT 1 FROM place p WHERE p.msg_id = s.msg_id)
               AND NOT EXISTS (SELECT 1 FROM @extschema@.retention_log)
            UNION ALL
            SELECT 'not published', p.msg_id, 'recorded, dead-lettered or queued, but not in ' || $3
              FROM place p
             WHERE NOT EXISTS (SELECT 1 FROM sent s WHERE s.msg_id = p.msg_id)
            $published$, queue_table, published) USING queue_created, queue, published::text;
    END IF;

    -- Metrics and rollups equal what routing_records alone gives (unless retention removed
    -- records: then the kept counters are larger, by design).
    IF NOT EXISTS (SELECT 1 FROM retention_log) THEN
        RETURN QUERY
        WITH recomputed AS (
            SELECT r.model, r.complexity,
                   count(*) FILTER (WHERE r.outcome = 'routed') AS routed,
                   count(*) FILTER (WHERE r.outcome = 'success') AS success,
                   count(*) FILTER (WHERE r.outcome = 'failure') AS failure,
                   count(r.response_time_ms) AS lat_count,
                   coalesce(sum(r.response_time_ms), 0) AS lat_sum,
                   min(r.response_time_ms) AS lat_min, max(r.response_time_ms) AS lat_max,
                   latency_sketch_agg(r.response_time_ms) AS sketch
              FROM routing_records r GROUP BY 1, 2),
        stored AS (
            SELECT m.model_name AS model, m.complexity_level AS complexity, m.usage_count AS routed,
                   m.success_count AS success, m.failure_count AS failure,
                   m.response_time_count AS lat_count, m.response_time_sum AS lat_sum,
                   m.response_time_min AS lat_min, m.response_time_max AS lat_max, m.latency_sketch AS sketch
              FROM model_routing_metrics m)
        SELECT 'metrics', NULL::bigint,
               format('%s/%s: stored %s, recomputed %s', coalesce(s.model, c.model), coalesce(s.complexity, c.complexity),
                      (s.routed, s.success, s.failure, s.lat_count, s.lat_sum, s.lat_min, s.lat_max,
                       latency_sketch_count(s.sketch), latency_quantile(s.sketch, 0.5), latency_quantile(s.sketch, 0.99)),
                      (c.routed, c.success, c.failure, c.lat_count, c.lat_sum, c.lat_min, c.lat_max,
                       latency_sketch_count(c.sketch), latency_quantile(c.sketch, 0.5), latency_quantile(c.sketch, 0.99)))
          FROM stored s FULL JOIN recomputed c ON c.model = s.model AND c.complexity = s.complexity
         WHERE (s.routed, s.success, s.failure, s.lat_count, s.lat_sum, s.lat_min, s.lat_max,
                latency_sketch_count(s.sketch), latency_quantile(s.sketch, 0.5), latency_quantile(s.sketch, 0.99))
               IS DISTINCT FROM
               (c.routed, c.success, c.failure, c.lat_count, c.lat_sum, c.lat_min, c.lat_max,
                latency_sketch_count(c.sketch), latency_quantile(c.sketch, 0.5), latency_quantile(c.sketch, 0.99))
           AND (coalesce(s.routed + s.success + s.failure, 0) > 0 OR c.model IS NOT NULL);

        RETURN QUERY
        WITH recomputed AS (
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
        stored AS (
            SELECT h.hour, h.instance_id, h.model, h.complexity, h.provider, h.usage_count AS routed,
                   h.success_count AS success, h.failure_count AS failure,
                   h.response_time_count AS lat_count, h.response_time_sum AS lat_sum,
                   h.response_time_min AS lat_min, h.response_time_max AS lat_max, h.latency_sketch AS sketch
              FROM routing_rollup_hourly h)
        SELECT 'rollup', NULL::bigint,
               format('%s %s %s/%s/%s: stored %s, recomputed %s', coalesce(s.hour, c.hour),
                      coalesce(s.instance_id, c.instance_id), coalesce(s.model, c.model),
                      coalesce(s.complexity, c.complexity), coalesce(s.provider, c.provider),
                      (s.routed, s.success, s.failure, s.lat_count, s.lat_sum, s.lat_min, s.lat_max,
                       latency_sketch_count(s.sketch), latency_quantile(s.sketch, 0.5), latency_quantile(s.sketch, 0.99)),
                      (c.routed, c.success, c.failure, c.lat_count, c.lat_sum, c.lat_min, c.lat_max,
                       latency_sketch_count(c.sketch), latency_quantile(c.sketch, 0.5), latency_quantile(c.sketch, 0.99)))
          FROM stored s
          FULL JOIN recomputed c ON c.hour = s.hour AND c.instance_id = s.instance_id AND c.model = s.model
                                AND c.complexity = s.complexity AND c.provider = s.provider
         WHERE (s.routed, s.success, s.failure, s.lat_count, s.lat_sum, s.lat_min, s.lat_max,
                latency_sketch_count(s.sketch), latency_quantile(s.sketch, 0.5), latency_quantile(s.sketch, 0.99))
               IS DISTINCT FROM
               (c.routed, c.success, c.failure, c.lat_count, c.lat_sum, c.lat_min, c.lat_max,
                latency_sketch_count(c.sketch), latency_quantile(c.sketch, 0.5), latency_quantile(c.sketch, 0.99));
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
  'The exact-accounting check: every message of the queue (this generation of it) is recorded, dead-lettered or still queued, exactly once; given published (a table with the msg_ids sent), each of those is somewhere and nothing else is; model_routing_metrics and routing_rollup_hourly equal a recount of routing_records (counts, sums, min, max, sketch sample count, p50/p99); learning watermarks never exceed the counts; every cell has a score. One row per difference, none when all holds. The missing and recount checks are skipped once retention has removed records. Take a quiet moment or a REPEATABLE READ snapshot for an exact answer while ingest runs.';

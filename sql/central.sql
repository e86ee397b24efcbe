-- centralcloud past one server (docs/scale-out.md): a central server that learns over the union
-- of regional servers' hourly rollups. Each region's routing_rollup_hourly arrives here through
-- PostgreSQL's built-in logical replication, into this server's routing_rollup_hourly: the rollup
-- key holds the router instance, so the rows of instances publishing to different regions sit
-- side by side. Policy bayes reads its evidence straight from the rollup; the per-cell metrics
-- (dashboards, policy seed, the cells learning walks) are made equal to a recount of it here.

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

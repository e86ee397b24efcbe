-- The consensus window of a chunk's cells: one row per (cell, hour, instance, provider) with
-- outcomes, hours $3..$4, without the hours of ended anomaly episodes (left out for good).
SELECT h.model::text AS model, h.complexity::text AS complexity, h.instance_id::text AS instance,
       h.provider::text AS provider, (extract(epoch FROM h.hour) / 3600)::int8 AS hour,
       h.success_count AS successes, h.failure_count AS failures,
       h.response_time_count AS latency_count, h.response_time_sum AS latency_sum,
       h.latency_sketch AS sketch
  FROM unnest($1::text[], $2::text[]) AS c(model, complexity)
  JOIN centralcloud.routing_rollup_hourly h
    ON h.model = c.model AND h.complexity = c.complexity
   AND h.hour >= to_timestamp($3 * 3600) AND h.hour <= to_timestamp($4 * 3600)
 WHERE h.success_count + h.failure_count > 0
   AND NOT EXISTS (SELECT 1 FROM centralcloud.instance_anomaly_episodes e
                    WHERE e.model_name = h.model AND e.complexity_level = h.complexity
                      AND e.instance_id = h.instance_id AND e.provider = h.provider
                      AND e.cleared_at IS NOT NULL AND h.hour BETWEEN e.since AND e.cleared_hour)

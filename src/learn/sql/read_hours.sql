-- Policy bayes's evidence before the consensus window: each cell's rollup per event hour since
-- its regime start (or the oldest hour read, $4) and before the window's first hour ($5; the
-- window's hours come from the rows consensus read), summed over instances and providers,
-- sketches merged. Left out: the hours of ended anomaly episodes (for good), and the sources
-- left out in this run ($6-$11: model, complexity, instance, provider, first and last hour),
-- which the table may not hold yet.
SELECT h.model::text AS model, h.complexity::text AS complexity,
       (extract(epoch FROM h.hour) / 3600)::int8 AS hour,
       sum(h.success_count)::int8 AS successes, sum(h.failure_count)::int8 AS failures,
       centralcloud.latency_sketch_union(h.latency_sketch) AS sketch
  FROM unnest($1::text[], $2::text[], $3::int8[]) AS c(model, complexity, regime_start)
  JOIN centralcloud.routing_rollup_hourly h
    ON h.model = c.model AND h.complexity = c.complexity
   AND h.hour >= to_timestamp(greatest(c.regime_start, $4) * 3600)
   AND h.hour < to_timestamp($5 * 3600)
 WHERE NOT EXISTS (SELECT 1 FROM centralcloud.instance_anomaly_episodes e
                    WHERE e.model_name = h.model AND e.complexity_level = h.complexity
                      AND e.instance_id = h.instance_id AND e.provider = h.provider
                      AND e.cleared_at IS NOT NULL AND h.hour BETWEEN e.since AND e.cleared_hour)
   AND NOT EXISTS (SELECT 1 FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::int8[], $11::int8[])
                                 AS x(model, complexity, instance, provider, since, until)
                    WHERE x.model = h.model AND x.complexity = h.complexity AND x.instance = h.instance_id
                      AND x.provider = h.provider
                      AND h.hour BETWEEN to_timestamp(x.since * 3600) AND to_timestamp(x.until * 3600))
 GROUP BY 1, 2, 3

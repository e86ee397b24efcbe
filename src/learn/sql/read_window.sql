-- The consensus window of a chunk's cells: one row per (cell, hour, instance, provider), hours
-- $3..$4, without the hours of ended anomaly episodes (left out for good). Rows without
-- outcomes too: consensus skips them, but they are part of policy bayes's evidence of the
-- window's hours, which learning takes from these rows rather than reading them again.
-- $5..$6: the chunk's first and last model. A chunk is a range of cells in key order, and
-- bounding the rollup's model by it lets the planner read that range of the cell index;
-- without it the hour condition alone looked selective and it scanned and sorted the whole
-- rollup once per chunk (150 ms of a 1,000-cell chunk's 280 ms).
-- The ended episodes are looked up per row only when the chunk's model range has any (the
-- first EXISTS does not depend on the row: evaluated once, and AND stops at false): as an
-- anti-join the planner rescanned the episodes once per row even with none (6 of the
-- statement's 8.5 ms per 1,000 cells).
-- Each row names its cell by its place in $1/$2 (1-based): the names, read as text for each of
-- a chunk's ~8,000 rows and hashed to find the cell, are in the arrays already.
-- The fixed-width columns come first: a column after a variable-width one has no cached offset,
-- and reading it walks the row from its start (each column of each row is read on its own).
SELECT c.n AS cell, (extract(epoch FROM h.hour) / 3600)::int8 AS hour,
       h.success_count AS successes, h.failure_count AS failures,
       h.response_time_count AS latency_count, h.response_time_sum AS latency_sum,
       h.instance_id::text AS instance, h.provider::text AS provider,
       h.latency_sketch AS sketch
  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS c(model, complexity, n)
  JOIN centralcloud.routing_rollup_hourly h
    ON h.model = c.model AND h.complexity = c.complexity
   AND h.hour >= to_timestamp($3 * 3600) AND h.hour <= to_timestamp($4 * 3600)
   AND h.model::text BETWEEN $5 AND $6
 WHERE NOT (EXISTS (SELECT 1 FROM centralcloud.instance_anomaly_episodes e
                     WHERE e.cleared_at IS NOT NULL AND e.model_name BETWEEN $5 AND $6)
            AND EXISTS (SELECT 1 FROM centralcloud.instance_anomaly_episodes e
                         WHERE e.model_name = h.model AND e.complexity_level = h.complexity
                           AND e.instance_id = h.instance_id AND e.provider = h.provider
                           AND e.cleared_at IS NOT NULL AND h.hour BETWEEN e.since AND e.cleared_hour))

-- Each model cell's long-run outcomes, refreshed once an hour: the hourly rollup (event time)
-- from $2 up to $3, which leaves out the current and the previous hour so an outage going on
-- does not pull its own baseline down. $1: the current hour (the refresh's mark). All three in
-- seconds since the epoch.
UPDATE centralcloud.health_states h
   SET long_run_success_count = b.successes,
       long_run_failure_count = b.failures,
       long_run_hour = to_timestamp($1)
  FROM (SELECT c.provider, c.model,
               coalesce(sum(r.success_count), 0)::int8 AS successes,
               coalesce(sum(r.failure_count), 0)::int8 AS failures
          FROM centralcloud.health_states c
          LEFT JOIN centralcloud.routing_rollup_hourly r
                 ON r.model = c.model AND r.provider = c.provider AND r.hour >= to_timestamp($2) AND r.hour < to_timestamp($3)
         WHERE c.model IS NOT NULL AND c.long_run_hour IS DISTINCT FROM to_timestamp($1)
         GROUP BY c.provider, c.model) AS b
 WHERE h.provider = b.provider AND h.model = b.model

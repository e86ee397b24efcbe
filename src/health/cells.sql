-- The model cells health evaluates: every (provider, model) with outcomes in the window, and
-- every one that is not healthy (it may expire or recover), each with the window's seconds in
-- order. $1: the window's start (exclusive), in seconds since the epoch.
WITH window_seconds AS (
    SELECT o.provider, o.model,
           array_agg((extract(epoch FROM o.second))::int8 ORDER BY o.second) AS seconds,
           array_agg(o.success_count ORDER BY o.second) AS successes,
           array_agg(o.failure_count ORDER BY o.second) AS failures
      FROM centralcloud.health_outcomes o
     WHERE o.second > to_timestamp($1)
     GROUP BY o.provider, o.model
)
SELECT h.provider::text AS provider,
       h.model::text AS model,
       h.state,
       (extract(epoch FROM h.since))::int8 AS since,
       (extract(epoch FROM h.evidence_from))::int8 AS evidence_from,
       h.strikes,
       (extract(epoch FROM h.last_recovered_at))::int8 AS last_recovered_at,
       h.long_run_success_count AS long_run_successes,
       h.long_run_failure_count AS long_run_failures,
       coalesce(w.seconds, '{}') AS seconds,
       coalesce(w.successes, '{}') AS successes,
       coalesce(w.failures, '{}') AS failures
  FROM centralcloud.health_states h
  LEFT JOIN window_seconds w ON w.provider = h.provider AND w.model = h.model
 WHERE h.model IS NOT NULL
   AND (w.provider IS NOT NULL OR h.state <> 'healthy')
 ORDER BY h.provider, h.model

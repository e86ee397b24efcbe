-- One learning step of a chunk's learned cells, one statement (each row is written once, not
-- once for its watermark and again for its score): $1 models, $2 complexities, $3-$6 the
-- evidence consumed (added to the watermarks), $7 the new score and $8 its reason, NULL where
-- the score did not change; $9..$10 their first and last model. A learned score does not move
-- the prior. The model range lets the planner read the chunk's range of the primary key: without
-- it, it hashed the whole catalog once per chunk (10,000 rows for 1,000 cells here, growing with
-- the catalog: quadratic over a run).
UPDATE centralcloud.model_complexity_scores AS s
   SET learned_success_count = learned_success_count + u.successes,
       learned_failure_count = learned_failure_count + u.failures,
       learned_response_time_count = learned_response_time_count + u.latency_count,
       learned_response_time_sum = learned_response_time_sum + u.latency_sum,
       learned_at = now(),
       score = coalesce(u.score, s.score),
       change_source = CASE WHEN u.score IS NULL THEN s.change_source ELSE 'learned' END,
       change_reason = coalesce(u.reason, s.change_reason),
       changed_at = CASE WHEN u.score IS NULL THEN s.changed_at ELSE now() END
  FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[],
              $7::float8[], $8::text[])
       AS u(model, complexity, successes, failures, latency_count, latency_sum, score, reason)
 WHERE s.model_name = u.model AND s.complexity_level = u.complexity
   AND s.model_name BETWEEN $9 AND $10

-- The history rows of a batch of changes, in the order given (ids ascending: the order every
-- subscribed instance received their events in): $1 models, $2 complexities, $3 old scores,
-- $4 new scores, $5 samples, $6 success rates, $7 average latencies, $8 policies, $9 reasons,
-- $10 how many queues each event went to.
INSERT INTO centralcloud.score_history
       (model_name, complexity_level, old_score, new_score, samples, success_rate,
        avg_response_time_ms, policy, reason, published_to)
SELECT h.model, h.complexity, h.old_score, h.new_score, h.samples, h.success_rate,
       h.avg_response_time_ms, h.policy, h.reason, h.published_to
  FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::int8[], $6::float8[],
              $7::float8[], $8::text[], $9::text[], $10::int4[])
       WITH ORDINALITY AS h(model, complexity, old_score, new_score, samples, success_rate,
                            avg_response_time_ms, policy, reason, published_to, n)
 ORDER BY h.n

-- recommend_model()'s candidates of one health group of a complexity, one segment (rank.rs,
-- Segment) at a time: $1 complexity, $2 health state, $3 capabilities every candidate must
-- support, $4 excluded models or providers, $5 the preference's floor (NULL: none), $6 at most
-- this many rows (NULL: all). The statement's segment appends its condition and an order that
-- one of recommend_candidates' indexes holds whole (mod.rs).
SELECT c.model::text AS model, c.provider::text AS provider, c.score, c.successes, c.failures,
       c.success_lower, c.p50_ms, c.p95_ms, c.cost_usd, c.state
  FROM centralcloud.recommend_candidates c
 WHERE c.complexity_level = $1 AND c.state = $2
   AND c.capabilities @> $3
   AND NOT (c.model = ANY ($4) OR c.provider = ANY ($4))

-- recommend_model()'s candidates for one complexity, best score first, a page at a time: each
-- (model, provider) pair the health catalog knows for a cell of the score catalog, excluded
-- neither by model nor by provider, known to support every capability asked for; with the
-- model's and its provider's health, the cell's outcomes and latency, and the estimated cost
-- of a request (per-request price plus the typical tokens at the per-token prices).
-- $1 complexity, $2 capabilities, $3 excluded models or providers, $4..$6 the last row read
-- (score, model, provider; $4 NULL: from the top), $7 page size (NULL: no limit), $8 lowest
-- score wanted (NULL: any).
SELECT s.model_name::text AS model,
       h.provider::text AS provider,
       s.score,
       coalesce(m.success_count, 0) AS successes,
       coalesce(m.failure_count, 0) AS failures,
       m.p50_ms,
       m.p95_ms,
       CASE WHEN p.provider IS NOT NULL THEN
           (coalesce(p.usd_per_request, 0)
            + p.typical_input_tokens * coalesce(p.usd_per_million_input_tokens, 0) / 1000000
            + p.typical_output_tokens * coalesce(p.usd_per_million_output_tokens, 0) / 1000000)::float8
       END AS cost_usd,
       h.state AS model_state,
       coalesce(ph.state, 'healthy') AS provider_state
  FROM centralcloud.model_complexity_scores s
  JOIN centralcloud.health_states h ON h.model = s.model_name
  LEFT JOIN centralcloud.health_states ph ON ph.provider = h.provider AND ph.model IS NULL
  LEFT JOIN centralcloud.model_routing_metrics m
         ON m.model_name = s.model_name AND m.complexity_level = s.complexity_level
  LEFT JOIN centralcloud.model_prices p ON p.provider = h.provider AND p.model = h.model
 WHERE s.complexity_level = $1
   -- The score bounds as they are, so the index scan starts and stops at them; the keyset's
   -- tie-break on top.
   AND s.score <= coalesce($4::float8, 'infinity') AND s.score >= coalesce($8::float8, '-infinity')
   AND ($4 IS NULL OR s.score < $4 OR (s.model_name::text, h.provider::text) > ($5, $6))
   AND NOT (s.model_name = ANY ($3) OR h.provider = ANY ($3))
   AND NOT EXISTS (SELECT 1 FROM unnest($2::text[]) AS wanted(capability)
                    WHERE NOT EXISTS (SELECT 1 FROM centralcloud.model_capabilities c
                                       WHERE c.provider = h.provider AND c.model = h.model
                                         AND c.capability = wanted.capability AND c.supported))
 ORDER BY s.score DESC, s.model_name, h.provider
 LIMIT $7

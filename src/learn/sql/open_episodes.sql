-- The open anomaly episodes of a chunk's cells.
SELECT e.id, e.model_name::text AS model, e.complexity_level::text AS complexity,
       e.instance_id AS instance, e.provider::text AS provider,
       (extract(epoch FROM e.since) / 3600)::int8 AS since_hour
  FROM unnest($1::text[], $2::text[]) AS c(model, complexity)
  JOIN centralcloud.instance_anomaly_episodes e
    ON e.model_name = c.model AND e.complexity_level = c.complexity
 WHERE e.cleared_at IS NULL

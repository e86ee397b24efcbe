-- Opens an episode per new outlier, or brings an open one's numbers up to date (its since and
-- advisory stay those of its start).
INSERT INTO centralcloud.instance_anomaly_episodes AS e
       (model_name, complexity_level, instance_id, provider, kind, instance_failure_rate,
        fleet_failure_rate, instance_outcomes, fleet_outcomes, instance_p50_ms, fleet_p50_ms,
        statistic, since, advisory)
SELECT model, complexity, instance, provider, kind, instance_rate, fleet_rate, instance_n, fleet_n,
       instance_p50, fleet_p50, statistic, to_timestamp(since * 3600), advisory::jsonb
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::float8[],
              $8::int8[], $9::int8[], $10::float8[], $11::float8[], $12::float8[], $13::int8[], $14::text[])
       AS o(model, complexity, instance, provider, kind, instance_rate, fleet_rate, instance_n, fleet_n,
            instance_p50, fleet_p50, statistic, since, advisory)
ON CONFLICT (model_name, complexity_level, instance_id, provider) WHERE cleared_at IS NULL DO UPDATE
   SET kind = EXCLUDED.kind, instance_failure_rate = EXCLUDED.instance_failure_rate,
       fleet_failure_rate = EXCLUDED.fleet_failure_rate, instance_outcomes = EXCLUDED.instance_outcomes,
       fleet_outcomes = EXCLUDED.fleet_outcomes, instance_p50_ms = EXCLUDED.instance_p50_ms,
       fleet_p50_ms = EXCLUDED.fleet_p50_ms, statistic = EXCLUDED.statistic, updated_at = now()

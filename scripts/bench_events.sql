-- 200,000 seed-format events for the benchmarks (scripts/bench_worker.sh, bench_scale.sh): 8
-- instances, 5 models, 3 complexities, decisions and successes with latencies.
CREATE SCHEMA bench;
CREATE TABLE bench.events AS
SELECT i AS k, jsonb_build_object(
    'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'instance_id', 'singularity-' || (i % 8),
    'routing_decision', jsonb_build_object(
        'complexity', (ARRAY['simple', 'medium', 'complex'])[1 + i % 3],
        'selected_model', (ARRAY['gpt-4o', 'claude-3.5-sonnet', 'llama-3-70b', 'mistral-large', 'gemini-1.5-flash'])[1 + (i / 3) % 5],
        'selected_provider', 'github_models', 'complexity_score', 2.5,
        'outcome', CASE WHEN i % 2 = 0 THEN 'routed' ELSE 'success' END,
        'response_time_ms', CASE WHEN i % 2 = 1 THEN 100 + i % 3000 END,
        'capabilities_required', '[]'::jsonb)) AS msg
FROM generate_series(1, 200000) AS i;

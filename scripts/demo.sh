#!/usr/bin/env bash
# The main job: a throwaway cluster of its own with centralcloud preloaded (its background
# worker ingests and learns by itself), pgmq + centralcloud, a realistic stream of routing
# events from several simulated router instances (with some malformed ones), and what an
# operator wants to see afterwards.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/common.sh"

export CLUSTER_DIR="${DEMO_DIR:-/tmp/centralcloud-demo}"
export CLUSTER_PORT="${DEMO_PORT:-28816}"
DECISIONS="${DECISIONS:-6000}"

log "starting a throwaway PostgreSQL 15 cluster in $CLUSTER_DIR (port $CLUSTER_PORT)"
# The settings a site puts in postgresql.conf to run centralcloud by itself.
cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" "shared_preload_libraries = 'centralcloud'" \
  "centralcloud.database = 'demo'" "centralcloud.learn_interval_s = 5"
trap 'cluster_stop "$CLUSTER_DIR"' EXIT
cpsql -d postgres -c "CREATE DATABASE demo" >/dev/null
cpsql -d demo -c "CREATE EXTENSION centralcloud CASCADE" 2>/dev/null
cpsql -d demo -At -c "SELECT 'installed: ' || string_agg(extname || ' ' || extversion, ', ' ORDER BY extname) FROM pg_extension WHERE extname IN ('pgmq', 'centralcloud')"

log "publishing $DECISIONS routing decisions and their outcomes from 4 instances, plus malformed events"
cpsql -d demo -v decisions="$DECISIONS" <<'SQL'
SELECT setseed(0.42) \g /dev/null
CREATE TEMP TABLE model (name text, provider text, success_p float8, base_ms float8, score float8);
INSERT INTO model VALUES
    ('gpt-4o',            'github_models', 0.97,  900, 4.6),
    ('claude-3.5-sonnet', 'anthropic',     0.98, 1100, 4.8),
    ('llama-3-70b',       'groq',          0.90,  300, 3.2),
    ('mistral-large',     'mistral',       0.93,  700, 3.8),
    ('gemini-1.5-flash',  'google',        0.95,  400, 3.0);
CREATE TEMP TABLE complexity (level text, latency_factor float8, score_offset float8);
INSERT INTO complexity VALUES ('simple', 0.6, -1.5), ('medium', 1.0, -0.7), ('complex', 2.2, 0.0);

-- One decision = a "routed" event now and an outcome event a little later.
CREATE TEMP TABLE decision AS
SELECT i,
       (ARRAY['singularity-us-west-1', 'singularity-us-east-1', 'singularity-eu-1', 'singularity-ap-1'])[1 + floor(random() * 4)::int] AS instance,
       (SELECT m FROM model m ORDER BY random() + i * 0 LIMIT 1) AS m,
       (SELECT c FROM complexity c ORDER BY random() + i * 0 LIMIT 1) AS c,
       random() AS roll,
       -- log-normal-ish latency: exp of a sum of uniforms
       exp((random() + random() + random() - 1.5) * 0.8) AS spread,
       now() - make_interval(secs => random() * 86400 * 2) AS at
  FROM generate_series(1, :decisions) AS i;

CREATE TEMP TABLE stream (seq bigserial, msg jsonb);
INSERT INTO stream (msg)
SELECT jsonb_build_object(
         'timestamp', to_char((at + make_interval(secs => phase)) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
         'instance_id', instance,
         'routing_decision', jsonb_build_object(
             'complexity', (c).level,
             'selected_model', (m).name,
             'selected_provider', (m).provider,
             'complexity_score', round(greatest(0, least(5, (m).score + (c).score_offset))::numeric, 1),
             'outcome', CASE WHEN phase = 0 THEN 'routed' WHEN roll < (m).success_p THEN 'success' ELSE 'failure' END,
             'response_time_ms', CASE WHEN phase = 0 THEN NULL ELSE round((m).base_ms * (c).latency_factor * spread)::int END,
             'capabilities_required', CASE WHEN i % 7 = 0 THEN '["vision"]'::jsonb WHEN i % 11 = 0 THEN '["function_calling"]' ELSE '[]' END,
             'prefer', CASE i % 5 WHEN 0 THEN 'speed' WHEN 1 THEN 'cost' END,
             'user_model_request', CASE WHEN i % 50 = 0 THEN (m).name END))
  FROM decision, LATERAL (VALUES (0), (1)) AS p(phase)
 ORDER BY at, phase;

-- What buggy or hostile publishers send too.
INSERT INTO stream (msg) VALUES
    ('"routed gpt-4o"'),
    ('{"timestamp": "2025-10-27T06:55:00Z", "instance_id": "singularity-eu-1"}'),
    ('{"timestamp": "2025-10-27T06:55:00Z", "instance_id": "singularity-eu-1", "routing_decision": {"complexity": "complex", "selected_model": "gpt-4o", "selected_provider": "github_models", "complexity_score": 7.5, "outcome": "routed"}}'),
    ('{"timestamp": "2025-10-27T06:55:00Z", "instance_id": "singularity-eu-1", "routing_decision": {"complexity": "complex", "selected_model": "gpt-4o", "selected_provider": "github_models", "complexity_score": "NaN", "outcome": "routed"}}'),
    ('{"timestamp": "2025-10-27T06:55:00Z", "instance_id": "singularity-ap-1", "routing_decision": {"complexity": "extreme", "selected_model": "gpt-4o", "selected_provider": "github_models", "complexity_score": 4.8, "outcome": "routed"}}'),
    ('{"timestamp": "2025-10-27T06:55:00Z", "instance_id": "singularity-ap-1", "routing_decision": {"complexity": "simple", "selected_model": "gpt-4o", "selected_provider": "github_models", "complexity_score": 2.0, "outcome": "success", "response_time_ms": -40}}'),
    ('{"timestamp": "last tuesday", "instance_id": "singularity-ap-1", "routing_decision": {"complexity": "simple", "selected_model": "gpt-4o", "selected_provider": "github_models", "complexity_score": 2.0, "outcome": "routed"}}'),
    ('{"timestamp": "2025-10-27T06:55:00Z", "instance_id": "singularity-us-west-1", "routing_decision": {"complexity": "medium", "selected_model": "llama-3-70b", "selected_provider": "groq", "complexity_score": 3.0, "outcome": "timeout", "response_time_ms": 30000}}');
INSERT INTO stream (msg)
SELECT jsonb_build_object('timestamp', '2025-10-27T06:55:00Z', 'instance_id', repeat('x', 100000),
       'routing_decision', '{"complexity": "simple", "selected_model": "m", "selected_provider": "p", "complexity_score": 1, "outcome": "routed"}'::jsonb);
-- Current timestamps: an old one would be rejected first (out_of_range, centralcloud.max_event_age),
-- hiding the fault each of these shows.
UPDATE stream SET msg = jsonb_set(msg, '{timestamp}', to_jsonb(to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
 WHERE msg->>'timestamp' = '2025-10-27T06:55:00Z';

SELECT count(*) AS published FROM pgmq.send_batch('model_routing_decisions', ARRAY(SELECT msg FROM stream ORDER BY seq));
SQL

cpsql -d demo -c "SELECT queue_name, queue_length, oldest_msg_age_sec FROM pgmq.metrics('model_routing_decisions')"

log "instance singularity-eu-1 subscribes to score updates (its own pgmq queue, bound to the topic)"
cpsql -d demo -c "SELECT centralcloud.subscribe_instance('singularity-eu-1') AS its_queue"

log "the background worker ingests them (no manual call); waiting for the queue to drain"
wait_for demo "SELECT queue_length = 0 FROM pgmq.metrics('model_routing_decisions')" 60
wait_for demo "SELECT count(*) = $((2 * DECISIONS + 9)) FROM (SELECT 1 FROM centralcloud.routing_records UNION ALL SELECT 1 FROM centralcloud.routing_events_rejected) x" 30
cpsql -d demo -x -c "SELECT * FROM centralcloud.worker_status"

log "what is where now"
cpsql -d demo <<'SQL'
SELECT (SELECT count(*) FROM centralcloud.routing_records) AS audit_records,
       (SELECT count(*) FROM centralcloud.routing_events_rejected) AS dead_letters,
       (SELECT queue_length FROM pgmq.metrics('model_routing_decisions')) AS still_queued;
SQL

log "metrics per model and complexity (usage = routing decisions; success rate = success / outcomes)"
cpsql -d demo <<'SQL'
SELECT s.model, s.complexity_level AS complexity, s.usage_count AS decisions, s.outcome_count AS outcomes,
       s.success_rate AS "success %", r.avg_ms, round(r.p50_ms) AS p50_ms, round(r.p95_ms) AS p95_ms,
       round(r.p99_ms) AS p99_ms, r.max_ms
  FROM centralcloud.model_success_rates s
  JOIN centralcloud.model_response_times r USING (model, complexity_level)
 ORDER BY s.model, array_position(ARRAY['simple', 'medium', 'complex'], s.complexity_level::text);
SQL

log "dead letters, by reason"
cpsql -d demo <<'SQL'
SELECT reason_code, count(*), left(min(reason), 90) AS example
  FROM centralcloud.routing_events_rejected GROUP BY reason_code ORDER BY count(*) DESC, reason_code;
SQL

log "the worker learns every centralcloud.learn_interval_s (5 s here; policy bayes); its score changes:"
wait_for demo "SELECT count(*) = 15 FROM centralcloud.model_complexity_scores WHERE learned_at IS NOT NULL" 60
cpsql -d demo <<'SQL'
SELECT model_name AS model, complexity_level AS complexity, samples,
       round(success_rate::numeric * 100, 1) AS "success %", round(avg_response_time_ms::numeric) AS avg_ms,
       old_score, new_score, reason
  FROM centralcloud.score_history
 ORDER BY model_name, array_position(ARRAY['simple', 'medium', 'complex'], complexity_level::text);
SQL

log "learning again changes nothing (the same evidence gives the same scores): a dry run"
cpsql -d demo -c "SELECT count(*) FILTER (WHERE changed) AS changes, min(reason) AS reason FROM centralcloud.learn_complexity_scores(dry_run => true)"

log "what singularity-eu-1 received (first 3 of its queue, the seed's event shape)"
cpsql -d demo <<'SQL'
SELECT msg_id, jsonb_pretty(message) AS message
  FROM pgmq.read((SELECT queue_name FROM centralcloud.score_subscriptions WHERE instance_id = 'singularity-eu-1'), 30, 3);
SELECT queue_name, queue_length FROM pgmq.metrics_all()
 WHERE queue_name IN ('model_score_updates', (SELECT queue_name FROM centralcloud.score_subscriptions));
SQL

log "the seed's dashboard query 'Models used per instance' (last day), verbatim, on the audit trail"
cpsql -d demo <<'SQL'
SET search_path = centralcloud, public;
SELECT instance_id, model, COUNT(*) as usage_count
FROM routing_records
WHERE timestamp > NOW() - INTERVAL '1 day'
GROUP BY instance_id, model
ORDER BY usage_count DESC
LIMIT 5;
SQL

log "the dashboards, as the centralcloud_reader role sees them (views over rollups and metrics)"
cpsql -d demo <<'SQL'
CREATE ROLE demo_dashboard LOGIN IN ROLE centralcloud_reader;
SET ROLE demo_dashboard;
\echo '-- centralcloud.model_usage_by_instance (last 24 h, from the hourly rollup)'
SELECT * FROM centralcloud.model_usage_by_instance LIMIT 8;
\echo '-- centralcloud.model_success_rates'
SELECT * FROM centralcloud.model_success_rates LIMIT 8;
\echo '-- centralcloud.model_response_times'
SELECT model, complexity_level, avg_ms, round(p50_ms) AS p50_ms, round(p95_ms) AS p95_ms,
       round(p99_ms) AS p99_ms, max_ms, samples
  FROM centralcloud.model_response_times LIMIT 8;
\echo '-- centralcloud.model_rankings'
SELECT complexity_level, rank, model, score, success_rate, outcome_count, round(p95_ms) AS p95_ms,
       previous_score, last_change_source, left(last_change_reason, 50) AS last_change_reason
  FROM centralcloud.model_rankings;
\echo '-- centralcloud.score_updates_recent'
SELECT changed_at::time(0), model, complexity_level, old_score, new_score, change, left(reason, 60) AS reason
  FROM centralcloud.score_updates_recent LIMIT 6;
\echo '-- centralcloud.latency_quantiles(model, complexity, since): any window, from the rollup'
SELECT * FROM centralcloud.latency_quantiles('gpt-4o', 'complex', now() - interval '1 hour');
\echo '-- centralcloud.model_health (the demo''s models fail 1-10%: healthy against their own long run)'
SELECT provider, model, state, failure_rate, outcomes, long_run_failure_rate, left(reason, 60) AS reason
  FROM centralcloud.model_health;
\echo '-- centralcloud.recommend_model(''complex'', prefer => ''speed'')'
SELECT rank, model, provider, round(score::numeric, 2) AS score, round(p95_ms) AS p95_ms, health, reason
  FROM centralcloud.recommend_model('complex', prefer => 'speed') LIMIT 5;
\echo '-- centralcloud.ingest_health'
\x on
SELECT * FROM centralcloud.ingest_health;
\x off
\echo '-- the reader sees the views, not the audit trail:'
\set ON_ERROR_STOP 0
SELECT count(*) FROM centralcloud.routing_records;
SQL
log "demo done (cluster in $CLUSTER_DIR is stopped on exit)"

#!/usr/bin/env bash
# Prometheus: the real postgres_exporter (Debian's prometheus-postgres-exporter) with
# prometheus/queries.yaml, logged in as a role that is only in centralcloud_reader, on a
# loopback port; /metrics scraped, and every centralcloud metric checked against SQL.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/common.sh"
db="$TEST_DB"
exporter=/usr/bin/prometheus-postgres-exporter
[[ -x "$exporter" ]] || die "no $exporter (scripts/setup.sh installs prometheus-postgres-exporter)"
port=$((CLUSTER_PORT + 1000))

(cd "$here" && cpsql -d "$db" <<'SQL'
\ir lib.sql
CREATE ROLE t24_exporter LOGIN IN ROLE centralcloud_reader;
INSERT INTO test.published (msg) SELECT test.events(600);
INSERT INTO test.published (msg)
VALUES (jsonb_set(test.event('x-1', 'gpt-4o', 'simple', 'routed'), '{routing_decision,outcome}', '"maybe"')),
       (jsonb_set(test.event('x-1', 'gpt-4o', 'simple', 'routed'), '{routing_decision,outcome}', '"later"')),
       ('{"instance_id": 7}');
SELECT test.publish();
SELECT FROM centralcloud.ingest_routing_events();
-- Retention of dead letters does not decrease the counter.
DELETE FROM centralcloud.routing_events_rejected WHERE reason_code = 'missing_field';
SELECT centralcloud.set_complexity_score('gpt-4o', 'simple', 3.25, 't24');
SELECT pgmq.send('model_routing_decisions', test.event('x-1', 'gpt-4o', 'simple', 'routed'));
-- A pair down and an open anomaly, set as the owner (health and consensus have their own tests).
UPDATE centralcloud.health_states SET state = 'down'
 WHERE (provider, model) = (SELECT provider, model FROM centralcloud.health_states WHERE model IS NOT NULL ORDER BY 1, 2 LIMIT 1);
INSERT INTO centralcloud.instance_anomaly_episodes
       (instance_id, model_name, complexity_level, provider, kind, instance_failure_rate, fleet_failure_rate,
        instance_outcomes, fleet_outcomes, statistic, since, advisory)
VALUES ('x-2', 'gpt-4o', 'simple', 'openai', 'success_rate', 0.9, 0.05, 80, 900, 41.25, now(), '{}');
SQL
) >/dev/null

export DATA_SOURCE_NAME="host=$CLUSTER_DIR port=$CLUSTER_PORT user=t24_exporter dbname=$db sslmode=disable"
"$exporter" --web.listen-address="127.0.0.1:$port" --extend.query-path="$ROOT/prometheus/queries.yaml" \
  --disable-default-metrics --disable-settings-metrics >"$CLUSTER_DIR/exporter.log" 2>&1 &
exporter_pid=$!
trap 'kill $exporter_pid 2>/dev/null || true' EXIT

# The scrape, once the exporter answers with our metrics (wait-until, 30 s).
metrics=""
for _ in $(seq 300); do
  metrics="$(python3 -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$port/metrics', timeout=5).read().decode())" 2>/dev/null || true)"
  [[ "$metrics" == *centralcloud_model_latency_seconds* ]] && break
  sleep 0.1
done
scraped_at=$SECONDS
[[ "$metrics" == *centralcloud_* ]] || { cat "$CLUSTER_DIR/exporter.log"; die "exporter did not serve centralcloud metrics"; }

# Each metric sample, as "name{labels} value" in the exporter's label order, against SQL that
# prints the same lines.
# (The exporter adds a server label: the connection's host and port.)
scraped="$(grep '^centralcloud_' <<<"$metrics" | sed -E 's/server="[^"]*",?//; s/,\}/}/; s/\{\}//' | sort)"
[[ -z "${PRINT_METRICS:-}" ]] || echo "$scraped" >"$PRINT_METRICS"
expected="$(cpsql -d "$db" -At <<'SQL' | sort
SELECT format('centralcloud_events_ingested_total{outcome="%s"} %s', outcome, events) FROM centralcloud.events_by_outcome
UNION ALL
SELECT format('centralcloud_events_rejected_total{reason="%s"} %s', reason_code, total) FROM centralcloud.dead_letter_counts
UNION ALL
SELECT format('centralcloud_queue_messages{queue="%s"} %s', queue_name, queue_length) FROM centralcloud.ingest_health
UNION ALL
SELECT format('centralcloud_model_score{complexity="%s",model="%s"} %s', complexity_level, model_name, score)
  FROM centralcloud.model_complexity_scores
UNION ALL
SELECT format('centralcloud_worker_up{state="%s"} 0', state) FROM centralcloud.worker_status
UNION ALL
SELECT format('centralcloud_health_in_state{model="%s",provider="%s",state="%s"} %s', coalesce(h.model, ''), h.provider, s.state,
              (h.state = s.state)::int)
  FROM centralcloud.health_states h CROSS JOIN (VALUES ('healthy'), ('degraded'), ('down')) AS s(state)
UNION ALL
SELECT format('centralcloud_instance_anomaly_statistic{complexity="%s",instance="%s",kind="%s",model="%s",provider="%s"} %s',
              complexity_level, instance_id, kind, model, provider, statistic)
  FROM centralcloud.instance_anomalies;
SQL
)"
missing="$(comm -13 <(echo "$scraped") <(echo "$expected"))"
[[ -z "$missing" ]] || { echo "FAILED: expected samples not scraped:"; echo "$missing"; echo "scraped:"; grep -v "^centralcloud_model" <<<"$scraped"; tail -5 "$CLUSTER_DIR/exporter.log"; exit 1; }

# Ratios and seconds: the last hours' success ratio and p95 of one cell, to the printed precision.
check_close() { # name-regex sql label
  local got want
  got="$(grep -E "^$1 " <<<"$scraped" | awk '{print $2}')"
  want="$(cpsql -d "$db" -At -c "$2")"
  python3 -c "import sys; g, w = float('$got' or 'nan'), float('$want'); sys.exit(0 if abs(g - w) <= 1e-9 * max(1, abs(w)) else 1)" \
    || { echo "FAILED $3: scraped '$got', SQL '$want'"; exit 1; }
  echo "ok $3: $got"
}
check_close 'centralcloud_model_recent_success_ratio\{complexity="simple",model="gpt-4o"\}' \
  "SELECT sum(success_count)::float8 / sum(success_count + failure_count) FROM centralcloud.routing_rollup_hourly
    WHERE model = 'gpt-4o' AND complexity = 'simple' AND hour >= date_trunc('hour', now() - interval '1 hour')" \
  "success ratio (0-1)"
check_close 'centralcloud_model_latency_seconds\{complexity="simple",model="gpt-4o",quantile="0.95"\}' \
  "SELECT p95_ms / 1000.0 FROM centralcloud.latency_quantiles('gpt-4o', 'simple', date_trunc('hour', now() - interval '1 hour'))" \
  "p95 in seconds"
check_close 'centralcloud_instance_anomaly_instance_failure_ratio\{complexity="simple",instance="x-2",kind="success_rate",model="gpt-4o",provider="openai"\}' \
  "SELECT 0.9" "an anomaly's failure ratio (0-1)"
check_close 'centralcloud_health_window_state_since_timestamp_seconds\{model="gpt-4o",provider="github_models"\}' \
  "SELECT extract(epoch FROM since) FROM centralcloud.health_states WHERE (provider, model) = ('github_models', 'gpt-4o')" \
  "when a pair's state began"
grep -q '^centralcloud_health_in_state{[^}]*state="down"} 1$' <<<"$scraped" || { echo "FAILED: no pair down"; exit 1; }
# The age grows between the scrape and the query: scraped <= SQL <= scraped + the seconds since.
age="$(grep -E '^centralcloud_queue_oldest_message_age_seconds\{queue="model_routing_decisions"\} ' <<<"$scraped" | awk '{print $2}')"
age_sql="$(cpsql -d "$db" -At -c "SELECT oldest_msg_age_sec FROM centralcloud.ingest_health")"
((age <= age_sql && age_sql <= age + SECONDS - scraped_at + 1)) \
  || { echo "FAILED oldest message age: scraped '$age', SQL '$age_sql'"; exit 1; }
echo "ok oldest message age: $age"
grep -q '^centralcloud_events_rejected_total{reason="missing_field"} 1$' <<<"$scraped" \
  || { echo "FAILED: the counter kept the deleted dead letter"; exit 1; }
grep -q '^# TYPE centralcloud_events_ingested_total counter$' <<<"$metrics" \
  || { echo "FAILED: ingested is not a counter"; exit 1; }
echo "prometheus: ok"

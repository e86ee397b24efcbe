#!/usr/bin/env bash
# Ingest benchmark. On a throwaway cluster, publishes EVENTS seed-format events (RUNS times each)
# and times, alternating (a) and (b) so the machine's drift hits both alike:
#   (a) centralcloud.ingest_routing_events() draining them;
#   (b) the bare drain: one DELETE ... RETURNING from the queue table into an identical audit
#       table, no validation, no metrics (the floor any consumer pays);
#   (c) a seed-faithful consumer: per event one pgmq.read of one message, the seed's INSERT and
#       UPDATEs (response_times array included), one pgmq.delete, COMMIT.
# Prints min/median/max events/s of (a) and (b) and of the ratio of each pair, (c) once, and the
# peak private memory (RssAnon) of the backend running (a) with a backlog of EVENTS/10 and of
# EVENTS. PROFILE_A=1 records (a)'s backend with perf (perf.data in the cluster directory).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/common.sh"

export CLUSTER_DIR="${BENCH_DIR:-/tmp/centralcloud-bench}"
export CLUSTER_PORT="${BENCH_PORT:-28817}"
EVENTS="${EVENTS:-200000}"
SEED_EVENTS="${SEED_EVENTS:-20000}"
BATCH="${BATCH:-1000}"
RUNS="${RUNS:-5}"

cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" "shared_buffers = 1GB" "max_wal_size = 8GB" \
  "checkpoint_timeout = 30min" "work_mem = 64MB"
trap 'cluster_stop "$CLUSTER_DIR"' EXIT
cpsql -d postgres -c "CREATE DATABASE bench" >/dev/null
cpsql -d bench -c "CREATE EXTENSION centralcloud CASCADE" 2>/dev/null

log "generating $EVENTS seed-format events"
cpsql -d bench -v events="$EVENTS" <<'SQL'
CREATE SCHEMA bench;
SELECT setseed(0.7) \g /dev/null
CREATE TABLE bench.events AS
SELECT i AS k, jsonb_build_object(
    'timestamp', to_char((now() - make_interval(secs => i % 86400)) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'instance_id', 'router-' || (i % 20),
    'routing_decision', jsonb_build_object(
        'complexity', (ARRAY['simple', 'medium', 'complex'])[1 + i % 3],
        'selected_model', 'model-' || ((i / 3) % 12),
        'selected_provider', (ARRAY['openai', 'anthropic', 'google', 'mistral'])[1 + (i / 3) % 12 % 4],
        'complexity_score', round((random() * 5)::numeric, 2),
        'outcome', CASE WHEN i % 2 = 0 THEN 'routed' WHEN random() < 0.95 THEN 'success' ELSE 'failure' END,
        'response_time_ms', CASE WHEN i % 2 = 1 THEN (50 + random() * 3000)::int END,
        'capabilities_required', CASE WHEN i % 7 = 0 THEN '["vision", "function_calling"]'::jsonb ELSE '[]' END,
        'prefer', CASE i % 3 WHEN 0 THEN 'speed' WHEN 1 THEN 'cost' END,
        'user_model_request', NULL)) AS msg
FROM generate_series(1, :events) AS i;

-- (b)'s target: identical to routing_records (columns, defaults, constraints, indexes).
CREATE TABLE bench.audit_copy (LIKE centralcloud.routing_records INCLUDING ALL);

-- (c)'s tables: the seed's schema, verbatim, with the metric rows present (the seed's UPDATEs
-- silently do nothing otherwise).
CREATE TABLE bench.seed_routing_records (
  id BIGSERIAL PRIMARY KEY, timestamp TIMESTAMPTZ NOT NULL, instance_id VARCHAR NOT NULL,
  complexity VARCHAR NOT NULL, model VARCHAR NOT NULL, provider VARCHAR NOT NULL, score FLOAT NOT NULL,
  outcome VARCHAR NOT NULL, response_time_ms INTEGER, capabilities_required TEXT[], preference VARCHAR,
  created_at TIMESTAMPTZ DEFAULT NOW());
CREATE INDEX ON bench.seed_routing_records (model, complexity);
CREATE INDEX ON bench.seed_routing_records (timestamp DESC);
CREATE TABLE bench.seed_metrics (
  id BIGSERIAL PRIMARY KEY, model_name VARCHAR NOT NULL, complexity_level VARCHAR NOT NULL,
  usage_count BIGINT DEFAULT 0, success_count BIGINT DEFAULT 0, response_times INTEGER[] DEFAULT '{}',
  avg_response_time FLOAT, response_time_count BIGINT DEFAULT 0, updated_at TIMESTAMPTZ DEFAULT NOW(),
  UNIQUE(model_name, complexity_level));
INSERT INTO bench.seed_metrics (model_name, complexity_level)
SELECT DISTINCT msg #>> '{routing_decision,selected_model}', msg #>> '{routing_decision,complexity}' FROM bench.events;

CREATE PROCEDURE bench.publish(n bigint) LANGUAGE plpgsql AS $$
DECLARE
    chunk bigint := 10000;
BEGIN
    FOR start IN 0 .. n - 1 BY chunk LOOP
        PERFORM pgmq.send_batch('model_routing_decisions',
            ARRAY(SELECT msg FROM bench.events WHERE k > start AND k <= least(start + chunk, n) ORDER BY k));
        COMMIT;
    END LOOP;
END $$;

CREATE PROCEDURE bench.seed_consumer() LANGUAGE plpgsql AS $$
DECLARE
    m record;
    d jsonb;
    rt int;
BEGIN
    LOOP
        SELECT * INTO m FROM pgmq.read('model_routing_decisions', 30, 1);
        EXIT WHEN NOT FOUND;
        d := m.message -> 'routing_decision';
        rt := (d ->> 'response_time_ms')::int;
        INSERT INTO bench.seed_routing_records (timestamp, instance_id, complexity, model, provider, score,
                                                outcome, response_time_ms, capabilities_required, preference)
        VALUES ((m.message ->> 'timestamp')::timestamptz, m.message ->> 'instance_id', d ->> 'complexity',
                d ->> 'selected_model', d ->> 'selected_provider', (d ->> 'complexity_score')::float8,
                d ->> 'outcome', rt, ARRAY(SELECT jsonb_array_elements_text(d -> 'capabilities_required')),
                d ->> 'prefer');
        UPDATE bench.seed_metrics SET usage_count = usage_count + 1, updated_at = NOW()
         WHERE model_name = d ->> 'selected_model' AND complexity_level = d ->> 'complexity';
        IF d ->> 'outcome' = 'success' THEN
            UPDATE bench.seed_metrics SET success_count = success_count + 1, updated_at = NOW()
             WHERE model_name = d ->> 'selected_model' AND complexity_level = d ->> 'complexity';
        END IF;
        IF rt IS NOT NULL THEN
            UPDATE bench.seed_metrics
               SET response_times = array_append(response_times, rt),
                   avg_response_time = (COALESCE(avg_response_time, 0) * response_time_count + rt) / (response_time_count + 1),
                   response_time_count = response_time_count + 1, updated_at = NOW()
             WHERE model_name = d ->> 'selected_model' AND complexity_level = d ->> 'complexity';
        END IF;
        PERFORM pgmq.delete('model_routing_decisions', m.msg_id);
        COMMIT;
    END LOOP;
END $$;
SQL

now() { date +%s.%N; }
rate() { echo "scale=0; $1 / ($3 - $2)" | bc; }
queue_length() { cpsql -d bench -At -c "SELECT queue_length FROM pgmq.metrics('model_routing_decisions')"; }
publish() { cpsql -d bench -c "CALL bench.publish($1)"; cpsql -d bench -c "VACUUM ANALYZE pgmq.q_model_routing_decisions" 2>/dev/null; }

# Runs SQL in a session whose backend's RssAnon is sampled every 20 ms; prints the peak in KiB.
peak_rss_of() {
  local sql="$1" pidfile="$CLUSTER_DIR/backend.pid" peak=0 pid rss
  rm -f "$pidfile"
  printf 'SELECT pg_backend_pid() \\g %s\n%s \\g /dev/null\n' "$pidfile" "$sql" | cpsql -d bench -At &
  local job=$!
  while [[ ! -s "$pidfile" ]]; do
    kill -0 "$job" 2>/dev/null || die "session for the memory probe ended early"
    sleep 0.01
  done
  pid="$(head -1 "$pidfile")"
  local perf_pid=""
  if [[ "${PERF_RECORD:-0}" == 1 ]]; then
    perf record -g -p "$pid" -o "$CLUSTER_DIR/perf.data" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  while kill -0 "$job" 2>/dev/null; do
    rss="$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)"
    [[ -n "$rss" && "$rss" -gt "$peak" ]] && peak="$rss"
    sleep 0.02
  done
  wait "$job"
  [[ -z "$perf_pid" ]] || { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
  echo "$peak"
}

small=$((EVENTS / 10))
log "memory: ingest of a $small backlog (batch $BATCH)"
publish "$small" >/dev/null
rss_small="$(peak_rss_of "SELECT * FROM centralcloud.ingest_routing_events($BATCH)")"

# Each run starts from the same table sizes: the records and the audit copy emptied (metrics,
# rollups and scores stay: later batches update them, as in production).
reset_tables() {
  cpsql -d bench -q -c "TRUNCATE centralcloud.routing_records, centralcloud.routing_events_rejected, bench.audit_copy"
  cpsql -d bench -q -c "CHECKPOINT"
}

run_a() {
  publish "$EVENTS" >/dev/null
  [[ "$(queue_length)" == "$EVENTS" ]] || die "queue does not hold $EVENTS events"
  reset_tables
  local t0 t1
  t0=$(now)
  if [[ $1 == 1 ]]; then
    # The first run also measures memory (and with PROFILE_A=1 records a profile).
    PERF_RECORD="${PROFILE_A:-0}" peak_rss_of "SELECT * FROM centralcloud.ingest_routing_events($BATCH)" >"$CLUSTER_DIR/rss_large"
  else
    cpsql -d bench -c "SELECT * FROM centralcloud.ingest_routing_events($BATCH)" >/dev/null
  fi
  t1=$(now)
  [[ "$(queue_length)" == 0 ]] || die "ingest left messages behind"
  local ingested
  ingested="$(cpsql -d bench -At -c "SELECT count(*) FROM centralcloud.routing_records")"
  [[ "$ingested" == "$EVENTS" ]] || die "ingested $ingested of $EVENTS"
  rate "$EVENTS" "$t0" "$t1"
}

run_b() {
  publish "$EVENTS" >/dev/null
  reset_tables
  local t0 t1
  t0=$(now)
  cpsql -d bench -c "
  WITH drained AS (DELETE FROM pgmq.q_model_routing_decisions RETURNING msg_id, enqueued_at, message)
  INSERT INTO bench.audit_copy (msg_id, \"timestamp\", instance_id, complexity, model, provider, score, outcome,
                                response_time_ms, capabilities_required, preference, user_model_request, received_at, enqueued_at)
  SELECT msg_id, (message ->> 'timestamp')::timestamptz, message ->> 'instance_id',
         message #>> '{routing_decision,complexity}', message #>> '{routing_decision,selected_model}',
         message #>> '{routing_decision,selected_provider}', (message #>> '{routing_decision,complexity_score}')::float8,
         message #>> '{routing_decision,outcome}', (message #>> '{routing_decision,response_time_ms}')::int,
         ARRAY(SELECT jsonb_array_elements_text(message #> '{routing_decision,capabilities_required}')),
         message #>> '{routing_decision,prefer}', message #>> '{routing_decision,user_model_request}', now(), enqueued_at
    FROM drained" >/dev/null
  t1=$(now)
  rate "$EVENTS" "$t0" "$t1"
}

rates_a=() rates_b=() ratios=()
for run in $(seq "$RUNS"); do
  log "run $run of $RUNS: (a) ingest_routing_events() draining $EVENTS events, then (b) the bare drain"
  a="$(run_a "$run")"
  b="$(run_b)"
  rates_a+=("$a") rates_b+=("$b") ratios+=("$(echo "scale=3; $a / $b" | bc)")
  log "  (a) $a events/s, (b) $b events/s, (a)/(b) ${ratios[-1]}"
done

log "(c) seed-faithful consumer over $SEED_EVENTS events (one read, UPDATEs, delete, COMMIT per event)"
publish "$SEED_EVENTS" >/dev/null
t0=$(now)
cpsql -d bench -c "CALL bench.seed_consumer()" >/dev/null
t1=$(now)
rate_c=$(rate "$SEED_EVENTS" "$t0" "$t1")

# min / median / max of a list of numbers.
summary() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "min %s, median %s, max %s", v[1], v[int((NR + 1) / 2)], v[NR]}'; }
median_ratio="$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')"
median_a="$(printf '%s\n' "${rates_a[@]}" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')"
ratio_ac=$(echo "scale=1; $median_a / $rate_c" | bc)
met=$(echo "$median_ratio >= 0.7" | bc)
cat <<REPORT

ingest benchmark: $EVENTS events (20 instances, 12 models, 4 providers, 24 hours), batch $BATCH, $(nproc) cores, $RUNS alternating runs
  (a) ingest_routing_events()         events/s: $(summary "${rates_a[@]}")
  (b) bare DELETE ... RETURNING drain events/s: $(summary "${rates_b[@]}")
  (a)/(b) per run: ${ratios[*]}
  (a)/(b): $(summary "${ratios[@]}")   (target median >= 0.7: $([[ $met == 1 ]] && echo met || echo NOT met))
  (c) seed-faithful consumer          $rate_c events/s   (over $SEED_EVENTS events; median (a)/(c) = $ratio_ac)
  peak backend RssAnon during (a): $rss_small KiB with a $small backlog, $(cat "$CLUSTER_DIR/rss_large") KiB with a $EVENTS backlog
  load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)
REPORT

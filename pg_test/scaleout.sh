#!/usr/bin/env bash
# Past one server (docs/scale-out.md), on this machine: two regional clusters (eu, us) with the
# worker ingest their own routers' events; each publishes its routing_rollup_hourly, and a central
# cluster subscribes to both with PostgreSQL's built-in logical replication and learns over the
# union. Checked: every regional rollup row arrives at the central server exactly once (row for
# row, sketches byte for byte), across a crash of the central server mid-stream; the central
# metrics after refresh_metrics_from_rollup() equal the sum of the regions' (each region's
# check_invariants() clean); central learning counts every regional outcome once; a regional
# change reaches an instance subscribed at the central server. Prints the delays measured.
#
# Usage: pg_test/scaleout.sh   (SCALEOUT_DIR, SCALEOUT_PORT: eu, us and central on 3 ports)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/common.sh"

base_dir="${SCALEOUT_DIR:-/tmp/centralcloud-scaleout}"
port="${SCALEOUT_PORT:-28850}"
regions=(eu us)
declare -A dir=([eu]="$base_dir/eu" [us]="$base_dir/us" [central]="$base_dir/central")
declare -A prt=([eu]="$port" [us]=$((port + 1)) [central]=$((port + 2)))
# Events per region in the first phase (1% malformed).
EVENTS="${SCALEOUT_EVENTS:-20000}"

on() { local c="$1"; shift; CLUSTER_DIR="${dir[$c]}" CLUSTER_PORT="${prt[$c]}" "$@"; }
q() { on "$1" cpsql -d postgres -At -c "$2"; }
fail() { echo "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
ms() { printf '%.0f' "$(echo "($1) * 1000" | bc)"; }
cleanup() { for c in eu us central; do cluster_stop "${dir[$c]}"; done; }
trap cleanup EXIT

mkdir -p "$base_dir"
cleanup
common=("shared_preload_libraries = 'centralcloud'" "centralcloud.database = 'postgres'"
        "centralcloud.ingest_interval_ms = 50")
for r in "${regions[@]}"; do
  log "region $r on ${prt[$r]}: centralcloud with the worker, publishing its hourly rollup"
  cluster_start "${dir[$r]}" "${prt[$r]}" "${common[@]}" "wal_level = logical" || fail "start $r"
  q "$r" "CREATE EXTENSION centralcloud CASCADE" >/dev/null
  (cd "$here" && on "$r" cpsql -d postgres -f lib.sql >/dev/null)
  on "$r" cpsql -d postgres >/dev/null <<SQL || fail "setting up $r"
CREATE TABLE test.sent (msg_id bigint PRIMARY KEY);
-- The region's routers: instances named after it, 1% malformed (dead letters stay regional).
CREATE FUNCTION test.region_events(n int, seed int) RETURNS SETOF jsonb LANGUAGE sql AS \$\$
    SELECT CASE WHEN i % 100 = 0 THEN jsonb_build_object('instance_id', '$r-broken')
                ELSE jsonb_set(e, '{instance_id}', to_jsonb('$r-' || (i % 3))) END
      FROM test.events(n, seed) WITH ORDINALITY AS x(e, i)
\$\$;
-- What the central server needs: the rollup, through a replication role that reads only it.
CREATE ROLE central_sync LOGIN REPLICATION;
GRANT USAGE ON SCHEMA centralcloud TO central_sync;
GRANT SELECT ON centralcloud.routing_rollup_hourly TO central_sync;
CREATE PUBLICATION centralcloud_rollups FOR TABLE centralcloud.routing_rollup_hourly;
SQL
done
log "central on ${prt[central]}: subscribed to both regions, learning every second"
cluster_start "${dir[central]}" "${prt[central]}" "${common[@]}" "centralcloud.learn_interval_s = 1" \
  || fail "start central"
q central "CREATE EXTENSION centralcloud CASCADE" >/dev/null
(cd "$here" && on central cpsql -d postgres -f lib.sql >/dev/null)
for r in "${regions[@]}"; do
  q central "CREATE SUBSCRIPTION region_$r CONNECTION 'host=${dir[$r]} port=${prt[$r]} dbname=postgres user=central_sync' PUBLICATION centralcloud_rollups" \
    >/dev/null 2>&1 || fail "subscribing to $r"
done
on central cpsql -d postgres <<'SQL' >/dev/null || fail "central test tables"
-- What the regions have, copied here for the checks (scaleout_check.sql).
CREATE TABLE test.regional_rollup (
    region text, hour timestamptz, instance_id text, model text, complexity text, provider text,
    usage_count bigint, success_count bigint, failure_count bigint, response_time_count bigint,
    response_time_sum bigint, response_time_min int, response_time_max int, sketch_md5 text);
CREATE TABLE test.regional_metrics (
    region text, model text, complexity text, usage_count bigint, success_count bigint,
    failure_count bigint, response_time_count bigint, response_time_sum bigint, response_time_min int,
    response_time_max int, sketch_count bigint, p50 float8, p99 float8);
SQL
q central "CREATE ROLE edge_eu_1 LOGIN IN ROLE centralcloud_publisher"
edge_queue="$(q central "SELECT centralcloud.subscribe_instance('eu-1', 'edge_eu_1')")"

rollup_total="SELECT coalesce(sum(usage_count + success_count + failure_count), 0) FROM centralcloud.routing_rollup_hourly"
# wait_shipped: until the central rollup holds every event the regions' rollups hold.
wait_shipped() {
  local expected=0 r
  for r in "${regions[@]}"; do
    on "$r" wait_for postgres "SELECT queue_length = 0 FROM pgmq.metrics('model_routing_decisions')" 120
    expected=$((expected + $(q "$r" "$rollup_total")))
  done
  on central wait_for postgres "SELECT ($rollup_total) = $expected" "${1:-60}"
}

# ------------------------------------------------------------------------------------------------
log "phase 1: $EVENTS events per region; the central server is stopped with -m immediate mid-stream"
for r in "${regions[@]}"; do
  q "$r" "INSERT INTO test.sent SELECT * FROM pgmq.send_batch('model_routing_decisions', ARRAY(SELECT test.region_events($EVENTS, 0)))" &
done
wait
on central wait_for postgres "SELECT ($rollup_total) > 0" 60
sudo -u postgres "$PG_BIN/pg_ctl" -D "${dir[central]}/data" -m immediate -w stop >/dev/null
echo "  central stopped at $(q eu "$rollup_total") + $(q us "$rollup_total") regional events ingested so far"
sudo -u postgres "$PG_BIN/pg_ctl" -D "${dir[central]}/data" -l "${dir[central]}/server.log" -w -t 60 start >/dev/null \
  || fail "restarting central"
wait_shipped 120
q central "SELECT * FROM centralcloud.refresh_metrics_from_rollup()" >/dev/null

# Every regional rollup row is at the central server once, with the same counters and sketch.
rollup_rows="SELECT hour, instance_id, model, complexity, provider, usage_count, success_count, failure_count,
                    response_time_count, response_time_sum, response_time_min, response_time_max, md5(latency_sketch)
               FROM centralcloud.routing_rollup_hourly"
metrics_rows="SELECT model_name, complexity_level, usage_count, success_count, failure_count, response_time_count,
                     response_time_sum, response_time_min, response_time_max,
                     centralcloud.latency_sketch_count(latency_sketch), centralcloud.latency_quantile(latency_sketch, 0.5),
                     centralcloud.latency_quantile(latency_sketch, 0.99)
                FROM centralcloud.model_routing_metrics"
for r in "${regions[@]}"; do
  [[ "$(q "$r" "SELECT count(*) FROM centralcloud.check_invariants('test.sent')")" == 0 ]] \
    || fail "$r: check_invariants: $(q "$r" "SELECT * FROM centralcloud.check_invariants('test.sent') LIMIT 5")"
  for what in rollup metrics; do
    rows="${what}_rows"
    on "$r" cpsql -d postgres -c "\\copy (SELECT '$r', * FROM (${!rows}) t) TO STDOUT" \
      | on central cpsql -d postgres -c "\\copy test.regional_$what FROM STDIN" || fail "copying $r's $what"
  done
done
(cd "$here" && on central cpsql -d postgres -f scaleout_check.sql) || fail "central: the union"

# ------------------------------------------------------------------------------------------------
log "delays: one event at a time into a region, until the central rollup has it"
delays=()
for i in 1 2 3 4 5; do
  r="${regions[$((i % 2))]}"
  before="$(q central "$rollup_total")"
  sent_at="$(now)"
  q "$r" "INSERT INTO test.sent SELECT pgmq.send('model_routing_decisions', test.event('$r-0', 'gpt-4o', 'simple', 'success', 100))" >/dev/null
  on central wait_for postgres "SELECT ($rollup_total) > $before" 30
  delays+=("$(ms "$(now) - $sent_at")")
done
echo "  send at a region -> in the central rollup: ${delays[*]} ms"

log "a regression seen only in region us reaches edge-1, subscribed at the central server"
last_update="$(q central "SELECT coalesce(max(msg_id), 0) FROM pgmq.q_$edge_queue")"
sent_at="$(now)"
q us "INSERT INTO test.sent SELECT * FROM pgmq.send_batch('model_routing_decisions', ARRAY(
        SELECT test.event('us-' || (i % 3), 'gpt-4o', 'medium', 'failure', 100) FROM generate_series(1, 3000) i))" >/dev/null
# The update that learned the drop: published after the send, a score only those failures give
# (the cell's other evidence, two successes in three, scores about 0.5).
on central wait_for postgres "SELECT EXISTS (SELECT 1 FROM pgmq.q_$edge_queue
                                             WHERE msg_id > $last_update AND message->>'model' = 'gpt-4o'
                                               AND message->>'complexity' = 'medium'
                                               AND (message->>'new_score')::float8 < 0.1)" 60
learned_ms="$(ms "$(now) - $sent_at")"
echo "  3000 failures sent to us -> score update in edge-1's queue at the central server: $learned_ms ms"
wait_shipped
for r in "${regions[@]}"; do
  [[ "$(q "$r" "SELECT count(*) FROM centralcloud.check_invariants('test.sent')")" == 0 ]] || fail "$r: check_invariants at the end"
done
echo "scaleout: ok; region -> central rollup ${delays[*]} ms; regional regression -> central score update at an instance $learned_ms ms"

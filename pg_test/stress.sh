#!/usr/bin/env bash
# Adversarial suites: every published event is recorded exactly once or dead-lettered with a
# reason, under crashes, concurrency, malformed input, poison and concurrent learning. Each
# scenario runs on a fresh cluster with the background worker (and pg_cron) preloaded, and
# ends with centralcloud.check_invariants(): every msg_id the queue issued is in exactly one of
# routing_records / routing_events_rejected / the queue, and metrics and rollups equal a
# recount of routing_records. Any difference fails the run.
#
# Usage: pg_test/stress.sh [quick|long] [scenario-filter]
#   quick (in make test): 5 crashes over 200k events each, 15 s of concurrency, 10k malformed.
#   long (make stress):  20 crashes, 60 s of concurrency, 50k malformed; prints the numbers.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/common.sh"

mode="${1:-quick}"
filter="${2:-}"
case "$mode" in
  quick) CRASHES=5 CRASH_EVENTS=200000 CONCURRENCY_S=15 MALFORMED=10000 ;;
  long) CRASHES=20 CRASH_EVENTS=200000 CONCURRENCY_S=60 MALFORMED=50000 ;;
  *) die "usage: $0 [quick|long] [scenario-filter]" ;;
esac
export CLUSTER_DIR="${STRESS_DIR:-/tmp/centralcloud-stress}"
export CLUSTER_PORT="${STRESS_PORT:-28820}"
db=postgres
summary=()
failed=0

# fresh_cluster [extra postgresql.conf lines...]
fresh_cluster() {
  cluster_stop "$CLUSTER_DIR"
  cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" \
    "shared_preload_libraries = 'pg_cron,centralcloud'" "cron.database_name = 'postgres'" \
    "cron.host = '$CLUSTER_DIR'" "centralcloud.database = 'postgres'" \
    "centralcloud.ingest_interval_ms = 50" "centralcloud.learn_interval_s = 1" \
    "max_wal_size = 4GB" "deadlock_timeout = 200ms" "log_lock_waits = on" "$@"
  cpsql -d "$db" -c "CREATE EXTENSION pg_cron" -c "CREATE EXTENSION centralcloud CASCADE" >/dev/null 2>&1
  (cd "$here" && cpsql -d "$db" -f lib.sql >/dev/null)
  cpsql -d "$db" -f "$here/stress_lib.sql" >/dev/null
}

restart_after_crash() {
  sudo -u postgres "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w -t 120 start >/dev/null \
    || die "could not restart after the crash"
}

q() { cpsql -d "$db" -At -c "$1"; }

# Waits until the worker has emptied the queue (nothing visible or invisible left).
wait_drained() {
  wait_for "$db" "SELECT queue_length = 0 FROM pgmq.metrics('model_routing_decisions')" "${1:-300}"
}

# check NAME: runs the invariant checker, prints what it found, records the scenario's line.
check() {
  local name="$1" extra="${2:-}" published="${3:-test.sent}" differences events dead
  differences="$(q "SELECT count(*) FROM centralcloud.check_invariants('$published')")"
  events="$(q "SELECT (SELECT count(*) FROM centralcloud.routing_records) + (SELECT count(*) FROM centralcloud.routing_events_rejected)")"
  dead="$(q "SELECT count(*) FROM centralcloud.routing_events_rejected")"
  if [[ "$differences" != 0 ]]; then
    echo "  differences:"; cpsql -d "$db" -c "SELECT * FROM centralcloud.check_invariants('$published') LIMIT 20"
    failed=$((failed + 1))
  fi
  summary+=("$(printf '%-24s events %9s  dead letters %7s  differences %3s  %s' "$name" "$events" "$dead" "$differences" "$extra")")
  echo "  $name: events $events, dead letters $dead, differences $differences $extra"
}

fail() { echo "  FAILED: $*"; failed=$((failed + 1)); }

selected() { [[ -z "$filter" || "$1" == *"$filter"* ]]; }

# ---------------------------------------------------------------------------------------------
# 1. Crash mid-ingest: publish CRASH_EVENTS, let the worker drain for a random moment, stop the
#    server with -m immediate (no shutdown checkpoint, backends killed), restart, go on; after
#    CRASHES crashes, drain and check.
# ---------------------------------------------------------------------------------------------
scenario_crash() {
  log "1. crash mid-ingest: $CRASHES immediate shutdowns while the worker drains"
  fresh_cluster
  local crash mid published=0 at
  for ((crash = 1; crash <= CRASHES; crash++)); do
    q "CALL test.publish_events($CRASH_EVENTS, $((crash * 250000)))" >/dev/null || { fail "publishing"; return; }
    published=$((published + CRASH_EVENTS))
    # A random moment while the worker drains (it takes ~4 s for 200k).
    at="$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.2 + rand() * 3.5 }')"
    sleep "$at"
    mid="$(q "SELECT count(*) FROM centralcloud.routing_records")"
    sudo -u postgres "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -m immediate -w stop >/dev/null
    echo "  crash $crash after ${at}s (about $mid of $published recorded)"
    restart_after_crash
  done
  wait_drained 600
  local total
  total="$(q "SELECT (SELECT count(*) FROM centralcloud.routing_records) + (SELECT count(*) FROM centralcloud.routing_events_rejected)")"
  [[ "$total" == "$published" ]] || fail "published $published, accounted for $total"
  check "crash" "crashes $CRASHES"
}

# ---------------------------------------------------------------------------------------------
# 2 and 5. Concurrency: two publishers, the worker, two sessions calling ingest in loops, the
#    pg_cron entry point (CALL drain_routing_events()) in a loop, and a session learning in a
#    loop, all at once for CONCURRENCY_S seconds. No errors, no deadlocks, exact accounting;
#    every score change published exactly once, in order, and no evidence learned twice.
# ---------------------------------------------------------------------------------------------
scenario_concurrency() {
  log "2+5. concurrency for ${CONCURRENCY_S}s: publishers, worker, 2 ingest loops, drain loop, learning loop"
  fresh_cluster
  local out="$CLUSTER_DIR/concurrency" pids=() name
  mkdir -p "$out"
  declare -A sessions=(
    [publisher1]="CALL test.publish_for($CONCURRENCY_S, 1)"
    [publisher2]="CALL test.publish_for($CONCURRENCY_S, 2)"
    [ingest1]="CALL test.ingest_for($CONCURRENCY_S)"
    [ingest2]="CALL test.ingest_for($CONCURRENCY_S)"
    [drain]="CALL test.drain_for($CONCURRENCY_S)"
    [learn]="CALL test.learn_for($CONCURRENCY_S)"
  )
  for name in "${!sessions[@]}"; do
    cpsql -d "$db" -c "${sessions[$name]}" >"$out/$name.out" 2>&1 &
    pids+=($!)
  done
  local pid errors=0
  for pid in "${pids[@]}"; do wait "$pid" || errors=$((errors + 1)); done
  for name in "${!sessions[@]}"; do
    if grep -q "ERROR" "$out/$name.out"; then
      fail "$name: $(grep -m1 ERROR "$out/$name.out")"
    fi
  done
  ((errors == 0)) || fail "$errors sessions failed"
  if grep -q "deadlock detected" "$CLUSTER_DIR/server.log"; then fail "deadlock: $(grep -m1 -A2 'deadlock detected' "$CLUSTER_DIR/server.log")"; fi
  wait_drained 300
  q "SELECT count(*) FROM centralcloud.learn_complexity_scores()" >/dev/null
  local learning
  learning="$(q "SELECT count(*) FROM test.learning_problems")"
  if [[ "$learning" != 0 ]]; then
    fail "learning: $learning problems"; cpsql -d "$db" -c "SELECT * FROM test.learning_problems LIMIT 10"
  fi
  check "concurrency" "$(q "SELECT 'ingest calls ' || (SELECT sum(calls) FROM test.loop_calls) || ', score changes ' || count(*) || ', learning problems $learning' FROM centralcloud.score_history")"
}

# ---------------------------------------------------------------------------------------------
# 3. Malformed input: MALFORMED generated mutations of valid events mixed with valid ones
#    (pg_test/malformed_events.py), sent with pgmq.send_batch while the worker runs. Every
#    invalid one has a reason (the one the generator expects), the worker never stops.
# ---------------------------------------------------------------------------------------------
scenario_malformed() {
  log "3. malformed input: $MALFORMED generated events through the worker"
  # The generator's valid timestamps span 1970..9999 and its valid events name thousands of
  # random models (its labels are the validator's alone), so the worker ingests here without
  # the server-time window and the new-model cap (t15 and t16 test those).
  fresh_cluster "centralcloud.max_event_age = 0" "centralcloud.max_event_clock_skew = 0" \
    "centralcloud.max_new_models_per_hour = 0"
  local pid_before
  pid_before="$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'centralcloud worker'")"
  python3 "$here/malformed_events.py" --count "$MALFORMED" --seed 20261126 >"$CLUSTER_DIR/malformed.jsonl" \
    || { fail "generator failed"; return; }
  cpsql -d "$db" -c "\\copy test.generated (line) FROM '$CLUSTER_DIR/malformed.jsonl' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')" >/dev/null \
    || { fail "loading generated events"; return; }
  q "CALL test.send_generated(500)" >/dev/null || { fail "sending generated events"; return; }
  wait_drained 300
  local wrong
  wrong="$(q "SELECT count(*) FROM test.generated_verdicts WHERE NOT as_expected")"
  if [[ "$wrong" != 0 ]]; then
    fail "$wrong events not handled as expected"
    cpsql -d "$db" -c "SELECT k, expect, code, got, left(reason, 100) FROM test.generated_verdicts WHERE NOT as_expected LIMIT 10"
  fi
  [[ "$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'centralcloud worker'")" == "$pid_before" ]] \
    || fail "the worker restarted"
  [[ "$(q "SELECT state FROM centralcloud.worker_status")" == idle ]] || fail "worker state: $(q "SELECT state, last_error FROM centralcloud.worker_status")"
  check "malformed" "$(q "SELECT 'valid ' || count(*) FILTER (WHERE expect = 'valid') || ', invalid ' || count(*) FILTER (WHERE expect = 'invalid') || ', reason codes ' || (SELECT count(DISTINCT reason_code) FROM centralcloud.routing_events_rejected) FROM test.generated_verdicts")" test.generated_sent
}

# ---------------------------------------------------------------------------------------------
# 4. Poison: a message whose processing fails unexpectedly (a trigger raising for it) is
#    dead-lettered by the worker after centralcloud.max_retries reads; the queue behind it keeps
#    moving meanwhile.
# ---------------------------------------------------------------------------------------------
scenario_poison() {
  log "4. poison: a message that makes processing fail, with the worker"
  fresh_cluster
  q "ALTER SYSTEM SET centralcloud.visibility_timeout_s = 1" >/dev/null
  q "ALTER SYSTEM SET centralcloud.max_retries = 3" >/dev/null
  q "SELECT pg_reload_conf()" >/dev/null
  q "CREATE TRIGGER explode BEFORE INSERT ON centralcloud.routing_records
       FOR EACH ROW EXECUTE FUNCTION test.explode()" >/dev/null || { fail "poison setup"; return; }
  cpsql -d "$db" -c "CALL test.publish_events(5000, 0)" \
    -c "INSERT INTO test.sent SELECT pgmq.send('model_routing_decisions', test.event('poison', 'gpt-4o', 'simple', 'success', 10))" \
    -c "CALL test.publish_events(5000, 5000)" >/dev/null || { fail "publishing"; return; }
  # The queue behind the poison moves at once; the poison is retried, then dead-lettered.
  wait_for "$db" "SELECT count(*) = 9900 FROM centralcloud.routing_records" 60
  wait_drained 60
  [[ "$(q "SELECT reason_code || ' ' || read_ct FROM centralcloud.routing_events_rejected WHERE message->>'instance_id' = 'poison'")" == "processing_error 3" ]] \
    || fail "poison not dead-lettered after 3 reads: $(q "SELECT reason_code, read_ct, reason FROM centralcloud.routing_events_rejected")"
  check "poison" "$(q "SELECT 'poison read ' || read_ct || ' times: ' || left(reason, 60) FROM centralcloud.routing_events_rejected WHERE message->>'instance_id' = 'poison'")"
}

trap 'cluster_stop "$CLUSTER_DIR"' EXIT
selected crash && scenario_crash
selected concurrency && scenario_concurrency
selected malformed && scenario_malformed
selected poison && scenario_poison
cluster_stop "$CLUSTER_DIR"

echo
echo "stress ($mode):"
for line in "${summary[@]}"; do echo "  $line"; done
echo "stress: $failed failures"
((failed == 0))

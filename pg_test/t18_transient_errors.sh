#!/usr/bin/env bash
# A transient error (here a lock timeout on today's routing_records partition) must never count
# against a message: more failed ingests than centralcloud.max_retries, each raising 55P03, and
# the drain procedure too, leave the 5 valid events in the queue unread (read_ct 0) and nothing
# dead-lettered; once the lock is gone, one ingest takes all 5.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/common.sh"
db="$TEST_DB"
app="t18_locker_$$"   # names the locking session in pg_stat_activity

(cd "$here" && cpsql -d "$db" -c "\\ir lib.sql" -c "INSERT INTO test.published (msg) SELECT test.events(5)" \
                     -c "SELECT test.publish()")
part="$(cpsql -d "$db" -At -c "SELECT partition_name FROM centralcloud.routing_record_partitions
                                WHERE day = (now() AT TIME ZONE 'UTC')::date")"
[[ -n "$part" ]] || die "no partition for today"
echo "locking centralcloud.$part"

# The lock holder: a second session that keeps the lock until it is terminated.
PGAPPNAME="$app" cpsql -d "$db" -c "BEGIN" -c "LOCK TABLE centralcloud.$part IN ACCESS EXCLUSIVE MODE" \
                       -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
locker=$!
release() {
  cpsql -d "$db" -At -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '$app'" \
    >/dev/null 2>&1 || true
  kill "$locker" 2>/dev/null || true
  wait "$locker" 2>/dev/null || true
}
trap release EXIT
wait_for "$db" "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                 WHERE a.application_name = '$app' AND l.relation = 'centralcloud.$part'::regclass
                   AND l.mode = 'AccessExclusiveLock' AND l.granted)" 30

# Each call a top-level statement in its own transaction, as the worker or a cron job makes
# it; psql's SQLSTATE variable tells the error's code.
{
  echo "\\i '$here/lib.sql'"
  echo "SET lock_timeout = '100ms';"
  echo "\\set ON_ERROR_STOP 0"
  for i in 1 2 3 4 5 6; do
    echo "SELECT * FROM centralcloud.ingest_routing_events();"
    echo "\\set ON_ERROR_STOP 1"
    echo "SELECT test.eq(:'SQLSTATE'::text, '55P03', 'ingest $i fails with lock_not_available');"
    echo "\\set ON_ERROR_STOP 0"
  done
  echo "CALL centralcloud.drain_routing_events(5);"
  echo "\\set ON_ERROR_STOP 1"
  echo "SELECT test.eq(:'SQLSTATE'::text, '55P03', 'drain fails with lock_not_available');"
  cat <<'SQL'
-- More failed calls than max_retries (the GUC exists once the library is loaded, by now).
SELECT test.eq(current_setting('centralcloud.max_retries')::int < 6, true, 'more calls than max_retries');
SELECT test.eq((SELECT array_agg(msg_id ORDER BY msg_id) FROM pgmq.q_model_routing_decisions),
               (SELECT array_agg(msg_id ORDER BY msg_id) FROM test.published), 'the 5 messages are still queued');
SELECT test.eq((SELECT max(read_ct) FROM pgmq.q_model_routing_decisions), 0, 'never read');
SELECT test.eq((SELECT count(*) FROM pgmq.q_model_routing_decisions WHERE vt > clock_timestamp()), 0::bigint, 'all visible');
SELECT test.empty('SELECT * FROM centralcloud.routing_events_rejected', 'nothing dead-lettered');
SQL
} > "$CLUSTER_DIR/t18_locked.sql"
cpsql -d "$db" -f "$CLUSTER_DIR/t18_locked.sql" 2>&1 | tee "$CLUSTER_DIR/t18_locked.out"
# The failures must have been the lock's: one 55P03 error per call, and no other error.
errors="$(grep -c 'ERROR' "$CLUSTER_DIR/t18_locked.out" || true)"
timeouts="$(grep -c 'ERROR:  canceling statement due to lock timeout' "$CLUSTER_DIR/t18_locked.out" || true)"
echo "errors while locked: $errors, lock timeouts: $timeouts"
[[ "$errors" -eq 7 && "$timeouts" -eq 7 ]] || { echo "FAILED: expected 7 lock timeouts and no other error"; exit 1; }

release
trap - EXIT
wait_for "$db" "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = '$app')" 30

(cd "$here" && cpsql -d "$db" <<'SQL'
\ir lib.sql
SELECT test.eq((SELECT (read, ingested, rejected, duplicates, retry_later, dead_lettered_on_error)::text
                  FROM centralcloud.ingest_routing_events()), '(5,5,0,0,0,0)', 'after the lock: all 5 ingested');
SELECT test.eq(test.queue_length(), 0::bigint, 'queue empty');
SELECT test.eq((SELECT array_agg(msg_id ORDER BY msg_id) FROM centralcloud.routing_records),
               (SELECT array_agg(msg_id ORDER BY msg_id) FROM test.published), 'each recorded once');
SELECT test.empty('SELECT * FROM centralcloud.routing_events_rejected', 'still nothing dead-lettered');
SELECT test.empty('SELECT * FROM test.metrics_diff', 'metrics match the published events');
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'invariants');
SQL
)
echo "transient errors: ok"

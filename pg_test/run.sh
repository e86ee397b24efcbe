#!/usr/bin/env bash
# SQL-level tests against a real PostgreSQL 15 cluster with real pgmq. t* tests each get a fresh
# database with CREATE EXTENSION centralcloud CASCADE. *.sql files run in one psql session
# (ON_ERROR_STOP: a failed assertion fails the test); *.sh files drive several sessions.
# w* tests then run on a second cluster with shared_preload_libraries = 'pg_cron,centralcloud'
# (the background worker and pg_cron), in its postgres database.
# Usage: pg_test/run.sh [name-filter]   (the extension must be installed: make install)
# With PG_TEST_FROM_VERSION=0.1.0 every database gets that release and ALTER EXTENSION UPDATE
# instead of a fresh install (pg_test/upgrade.sh; that release's script must be installed).
set -uo pipefail
shopt -s nullglob
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/common.sh"

export CLUSTER_DIR="${PG_TEST_DIR:-/tmp/centralcloud-pg_test}"
export CLUSTER_PORT="${PG_TEST_PORT:-28815}"
filter="${1:-}"

passed=0; failed=0; failures=()

# CREATE EXTENSION as a test database gets it: fresh, or the previous release updated.
create_extension() {
  if [[ -n "${PG_TEST_FROM_VERSION:-}" ]]; then
    cpsql -d "$1" -c "CREATE EXTENSION centralcloud VERSION '$PG_TEST_FROM_VERSION' CASCADE" \
          -c "ALTER EXTENSION centralcloud UPDATE"
  else
    cpsql -d "$1" -c "CREATE EXTENSION centralcloud CASCADE"
  fi
}

# run_test FILE DB: runs one test file against $CLUSTER_DIR/$CLUSTER_PORT and reports it.
run_test() {
  local test="$1" db="$2" name out start rc secs
  name="$(basename "$test")"
  out="$CLUSTER_DIR/$name.out"
  start=$(date +%s.%N)
  if [[ "$test" == *.sql ]]; then
    (cd "$here" && cpsql -d "$db" -f "$test") >"$out" 2>&1
  else
    TEST_DB="$db" bash "$test" >"$out" 2>&1
  fi
  rc=$?
  secs=$(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)")
  if [[ $rc -eq 0 ]]; then
    passed=$((passed + 1)); printf 'ok    %-40s %6ss\n' "$name" "$secs"
  else
    failed=$((failed + 1)); failures+=("$name"); printf 'FAIL  %-40s %6ss\n' "$name" "$secs"
    sed 's/^/      /' "$out" | tail -30
    grep -E "PANIC|terminated by signal|was terminated" "$CLUSTER_DIR/server.log" | sed 's/^/      server: /' | tail -5
  fi
}

selected() { [[ -z "$filter" || "$(basename "$1")" == *"$filter"* ]]; }

cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" "fsync = off" "max_locks_per_transaction = 256"
trap 'cluster_stop "$CLUSTER_DIR"' EXIT
for test in "$here"/t*.sql "$here"/t*.sh; do
  selected "$test" || continue
  name="$(basename "$test")"
  db="test_$(echo "${name%.*}" | tr -c 'a-z0-9\n' '_')"
  cpsql -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
  create_extension "$db" >/dev/null 2>&1
  run_test "$test" "$db"
done
cluster_stop "$CLUSTER_DIR"

# The preloaded cluster: the worker serves its postgres database, pg_cron runs there too.
worker_tests=()
for test in "$here"/w*.sql "$here"/w*.sh; do selected "$test" && worker_tests+=("$test"); done
if ((${#worker_tests[@]})); then
  export CLUSTER_DIR="$CLUSTER_DIR-worker" CLUSTER_PORT=$((CLUSTER_PORT + 1))
  cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" "fsync = off" \
    "shared_preload_libraries = 'pg_cron,centralcloud'" "cron.database_name = 'postgres'" \
    "centralcloud.database = 'postgres'" "centralcloud.ingest_interval_ms = 100" \
    "cron.host = '$CLUSTER_DIR'"
  trap 'cluster_stop "$CLUSTER_DIR"' EXIT
  cpsql -d postgres -c "CREATE EXTENSION pg_cron" >/dev/null 2>&1
  create_extension postgres >/dev/null 2>&1
  for test in "${worker_tests[@]}"; do run_test "$test" postgres; done
fi
echo
echo "pg_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]

#!/usr/bin/env bash
# SQL-level tests against a real PostgreSQL 15 cluster with real pgmq. Each test gets a fresh
# database with CREATE EXTENSION centralcloud CASCADE. *.sql files run in one psql session
# (ON_ERROR_STOP: a failed assertion fails the test); *.sh files drive several sessions.
# Usage: pg_test/run.sh [name-filter]   (the extension must be installed: make install)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/common.sh"

export CLUSTER_DIR="${PG_TEST_DIR:-/tmp/centralcloud-pg_test}"
export CLUSTER_PORT="${PG_TEST_PORT:-28815}"
filter="${1:-}"

cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" "fsync = off" "max_locks_per_transaction = 256"
trap 'cluster_stop "$CLUSTER_DIR"' EXIT

passed=0; failed=0; failures=()
for test in "$here"/t*.sql "$here"/t*.sh; do
  name="$(basename "$test")"
  [[ -n "$filter" && "$name" != *"$filter"* ]] && continue
  db="test_$(echo "${name%.*}" | tr -c 'a-z0-9\n' '_')"
  cpsql -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
  cpsql -d "$db" -c "CREATE EXTENSION centralcloud CASCADE" >/dev/null 2>&1
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
done
echo
echo "pg_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]

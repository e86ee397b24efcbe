#!/usr/bin/env bash
# The upgrade a DBA does: the previous release, built from its commit and filled with real
# traffic, gets the new library and a restart (its worker must wait, touching nothing, until
# the catalog is updated), then ALTER EXTENSION centralcloud UPDATE. Then:
#   - upgrade_check.sql: nothing lost or changed, queued events ingested once, the new rules hold;
#   - the catalog (pg_test/catalog.sql) equals a fresh install's, line for line;
#   - the SQL test suite passes on databases that got the previous release and the update.
# Leaves the new release installed. Usage: pg_test/upgrade.sh   (make upgrade_test)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/common.sh"

PREVIOUS_RELEASE=0.1.0
PREVIOUS_COMMIT=8c10bb3
export CLUSTER_DIR="${UPGRADE_TEST_DIR:-/tmp/centralcloud-upgrade}"
export CLUSTER_PORT="${UPGRADE_TEST_PORT:-28830}"
db=upgraded

# The previous release, as released: its source from git, built like ours. Its own target dir:
# in a shared one both releases' libraries are uplifted to the same target/<profile>/ path, and
# an up-to-date build of one leaves the other's file there.
install_previous_release() {
  local src="$CLUSTER_DIR-src" flags=()
  [[ "${PROFILE:-release}" == release ]] && flags+=(--release)
  rm -rf "$src" && mkdir -p "$src"
  git -C "$ROOT" archive "$PREVIOUS_COMMIT" | tar -x -C "$src"
  log "building and installing centralcloud $PREVIOUS_RELEASE from $PREVIOUS_COMMIT"
  (cd "$src" && CARGO_TARGET_DIR="$ROOT/target/previous-release" cargo pgrx install --pg-config "$PG_CONFIG" "${flags[@]}" >/dev/null)
  local lib
  lib="$("$PG_CONFIG" --pkglibdir)/centralcloud.so"
  cp "$lib" "$lib.new" && mv -f "$lib.new" "$lib"
  rm -rf "$src"
}

cluster_restart() {
  sudo -u postgres "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -m fast -w -t 60 restart >/dev/null
}

trap 'cluster_stop "$CLUSTER_DIR"' EXIT
install_previous_release
cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" "fsync = off" "max_locks_per_transaction = 256" \
  "shared_preload_libraries = 'centralcloud'" "centralcloud.database = '$db'" \
  "centralcloud.ingest_interval_ms = 100"
cpsql -d postgres -c "CREATE DATABASE $db" -c "CREATE DATABASE template_upgraded" \
  -c "CREATE ROLE upg_router LOGIN" >/dev/null
cpsql -d "$db" -c "CREATE EXTENSION centralcloud VERSION '$PREVIOUS_RELEASE' CASCADE" >/dev/null
cpsql -d template_upgraded -c "CREATE EXTENSION centralcloud VERSION '$PREVIOUS_RELEASE' CASCADE" >/dev/null
cpsql -d postgres -c "GRANT centralcloud_publisher TO upg_router" >/dev/null
# The previous release's own worker is running: stop it while we fill, so the queued events
# really wait for the new library.
cpsql -d postgres -c "ALTER SYSTEM SET centralcloud.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
(cd "$here" && cpsql -d "$db" -f upgrade_fill.sql >"$CLUSTER_DIR/fill.out" 2>&1) \
  || { tail -20 "$CLUSTER_DIR/fill.out"; die "filling release $PREVIOUS_RELEASE failed"; }
log "release $PREVIOUS_RELEASE filled: $(cpsql -d "$db" -At -c "SELECT format('%s records, %s queued, %s dead letters, %s partitions', records, queued, dead_letters, partitions) FROM test.before")"

# The new library over the old catalog, and a restart: the worker must wait, and say why.
install_extension
cpsql -d postgres -c "ALTER SYSTEM RESET centralcloud.worker_enabled" >/dev/null
cluster_restart
wait_for "$db" "SELECT state LIKE 'waiting for ALTER EXTENSION centralcloud UPDATE (installed $PREVIOUS_RELEASE, library %' FROM centralcloud.worker_status" 30
[[ "$(cpsql -d "$db" -At -c "SELECT count(*) FROM pgmq.q_model_routing_decisions WHERE read_ct = 0")" == \
   "$(cpsql -d "$db" -At -c "SELECT queued FROM test.before")" ]] || die "the new library touched the queue before the update"
if cpsql -d "$db" -c "SELECT * FROM centralcloud.ingest_routing_events()" >/dev/null 2>"$CLUSTER_DIR/early.err"; then
  die "ingest ran against the old catalog"
fi
grep -q "ALTER EXTENSION centralcloud UPDATE" "$CLUSTER_DIR/early.err" || die "unclear error before the update: $(cat "$CLUSTER_DIR/early.err")"
log "new library waits for the update: $(cpsql -d "$db" -At -c "SELECT state FROM centralcloud.worker_status")"

cpsql -d "$db" -c "ALTER EXTENSION centralcloud UPDATE" >/dev/null
cpsql -d template_upgraded -c "ALTER EXTENSION centralcloud UPDATE" >/dev/null
wait_for "$db" "SELECT NOT EXISTS (SELECT 1 FROM pgmq.q_model_routing_decisions)" 30
(cd "$here" && cpsql -d "$db" -f upgrade_check.sql >"$CLUSTER_DIR/check.out" 2>&1) \
  || { tail -20 "$CLUSTER_DIR/check.out"; die "the upgraded database fails its checks"; }
log "upgraded in place: records, dead letters, rollups, history kept; checks pass"

# The catalog: upgraded (filled, and empty) equals fresh.
cpsql -d postgres -c "CREATE DATABASE fresh" >/dev/null
cpsql -d fresh -c "CREATE EXTENSION centralcloud CASCADE" >/dev/null
for d in fresh "$db" template_upgraded; do cpsql -d "$d" -f "$here/catalog.sql" >"$CLUSTER_DIR/catalog.$d"; done
for d in "$db" template_upgraded; do
  if ! diff -u "$CLUSTER_DIR/catalog.fresh" "$CLUSTER_DIR/catalog.$d" >"$CLUSTER_DIR/catalog.diff"; then
    cat "$CLUSTER_DIR/catalog.diff"
    die "the catalog of $d differs from a fresh install (- fresh, + upgraded)"
  fi
done
log "catalog of the upgraded databases = fresh install ($(wc -l <"$CLUSTER_DIR/catalog.fresh") facts)"

# The SQL suite, every database made by installing the previous release and updating it.
cluster_stop "$CLUSTER_DIR"
trap - EXIT
log "the SQL test suite on updated databases"
PG_TEST_FROM_VERSION="$PREVIOUS_RELEASE" "$here/run.sh"

# Shared by the scripts: paths, logging, and a throwaway PostgreSQL cluster of our own
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# (own data directory, socket directory and port; never the machine's default cluster).
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_CONFIG="${PG_CONFIG:-$PG_BIN/pg_config}"
export PATH="$HOME/.cargo/bin:$PATH"
# Python with the pgmq client (scripts/setup.sh creates it).
VENV="${VENV:-$ROOT/.venv}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Builds and installs the extension into $PG_CONFIG's directories.
# PROFILE=release (default) or debug.
install_extension() {
  local flags=()
  [[ "${PROFILE:-release}" == release ]] && flags+=(--release)
  log "building and installing centralcloud (${PROFILE:-release})"
  (cd "$ROOT" && cargo pgrx install --pg-config "$PG_CONFIG" "${flags[@]}" >/dev/null)
  # cargo pgrx install may hard-link the library from target/; give the installed copy its own
  # inode so a later cargo build (of any profile) cannot change what PostgreSQL loads.
  local lib
  lib="$("$PG_CONFIG" --pkglibdir)/centralcloud.so"
  cp "$lib" "$lib.new" && mv -f "$lib.new" "$lib"
}

# cluster_start DIR PORT [extra postgresql.conf lines...]: initdb as postgres and start.
cluster_start() {
  local dir="$1" port="$2"; shift 2
  rm -rf "$dir"; mkdir -p "$dir"; chown postgres:postgres "$dir"
  sudo -u postgres "$PG_BIN/initdb" -D "$dir/data" --auth=trust -U postgres >/dev/null
  {
    echo "port = $port"
    echo "unix_socket_directories = '$dir'"
    echo "listen_addresses = ''"
    echo "max_connections = 50"
    echo "shared_buffers = 256MB"
    for line in "$@"; do echo "$line"; done
  } >> "$dir/data/postgresql.conf"
  sudo -u postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log" >&2; die "could not start PostgreSQL in $dir"; }
}

cluster_stop() {
  local dir="$1"
  [[ -f "$dir/data/postmaster.pid" ]] && sudo -u postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
}

# psql against the cluster in $CLUSTER_DIR on $CLUSTER_PORT.
cpsql() { psql -X -q -v ON_ERROR_STOP=1 -h "$CLUSTER_DIR" -p "$CLUSTER_PORT" -U postgres "$@"; }

# wait_for DB SQL TIMEOUT_S: polls until the query returns true (for work the worker does on
# its own schedule), failing after TIMEOUT_S seconds.
wait_for() {
  local db="$1" sql="$2" deadline=$((SECONDS + $3))
  until [[ "$(cpsql -d "$db" -At -c "$sql")" == t ]]; do
    ((SECONDS < deadline)) || die "timed out waiting for: $sql"
    sleep 0.1
  done
}

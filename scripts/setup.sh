#!/usr/bin/env bash
# Installs what centralcloud needs on a fresh Debian 12 machine (as root), skipping whatever is
# already there: Debian packages (PostgreSQL 15, pg_cron, clang, sudo), cargo-pgrx 0.18.1,
# pgrx's pg15 configuration, and pgmq 1.13 (its control file and SQL, taken from the pgmq
# crate on crates.io: nothing of pgmq is committed here).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/common.sh"

apt_packages=(postgresql-15 postgresql-server-dev-15 postgresql-15-cron clang libclang-dev sudo
              pkg-config make prometheus-postgres-exporter)
# The pgmq crate version whose src/install/embedded/ ships pgmq 1.13.0.
PGMQ_CRATE_VERSION="${PGMQ_CRATE_VERSION:-=0.34.0-alpha.7}"
PGMQ_VERSION="1.13.0"
PGMQ_PYTHON_VERSION="1.1.4"

install_apt_packages() {
  local missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

install_cargo_pgrx() {
  if ! cargo pgrx --version 2>/dev/null | grep -q "0.18.1"; then
    log "installing cargo-pgrx 0.18.1 (a few minutes)"
    cargo install cargo-pgrx --version 0.18.1 --locked --quiet
  fi
  if ! grep -qs "^pg15" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    log "configuring pgrx for PostgreSQL 15"
    cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
  fi
}

install_pgmq() {
  local extdir
  extdir="$("$PG_CONFIG" --sharedir)/extension"
  if [[ -f "$extdir/pgmq--$PGMQ_VERSION.sql" && -f "$extdir/pgmq.control" ]] \
     && grep -q "default_version = '$PGMQ_VERSION'" "$extdir/pgmq.control"; then
    return
  fi
  log "installing pgmq $PGMQ_VERSION from the pgmq crate ($PGMQ_CRATE_VERSION)"
  local work src
  work="$(mktemp -d)"
  mkdir -p "$work/src"
  touch "$work/src/lib.rs"
  cat > "$work/Cargo.toml" <<TOML
[package]
name = "fetch-pgmq"
version = "0.0.0"
edition = "2021"
[dependencies]
pgmq = { version = "$PGMQ_CRATE_VERSION", default-features = false }
TOML
  (cd "$work" && cargo fetch --quiet)
  src="$(cd "$work" && cargo metadata --format-version 1 \
        | python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="pgmq"))')"
  src="$(dirname "$src")/src/install/embedded"
  grep -q "default_version = '$PGMQ_VERSION'" "$src/pgmq.control" \
    || die "the pgmq crate $PGMQ_CRATE_VERSION does not ship pgmq $PGMQ_VERSION"
  install -m 644 "$src/pgmq.control" "$extdir/pgmq.control"
  install -m 644 "$src/sql/pgmq.sql" "$extdir/pgmq--$PGMQ_VERSION.sql"
  # Upgrade scripts too, so an older pgmq can ALTER EXTENSION pgmq UPDATE.
  for f in "$src"/sql/pgmq--*--*.sql; do install -m 644 "$f" "$extdir/"; done
  rm -rf "$work"
}

# The pgmq Python client, for the tests that act as a router does (PyPI's pgmq, with psycopg 3).
install_python_client() {
  if ! "$VENV/bin/python" -c 'import pgmq' 2>/dev/null; then
    log "installing the pgmq Python client ($PGMQ_PYTHON_VERSION) into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "pgmq==$PGMQ_PYTHON_VERSION"
  fi
}

install_apt_packages
install_cargo_pgrx
install_pgmq
install_python_client
log "setup complete"

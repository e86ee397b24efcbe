#!/usr/bin/env bash
# `make learn-eval`: replays 40 simulated hours of known ground truth through pgmq, ingest and
# learn_complexity_scores() once per run (default seed, seed+outlier, bayes, bayes+outlier,
# bayes+outlier+noconsensus), each in a fresh database of a throwaway cluster of its own, and
# prints how well the learned scores track the truth (scripts/learn_eval.py; its options pass
# through, e.g. --runs bayes,bayes+outlier --hours 60, --assert, --json PATH). Writes the score
# trajectories to $LEARN_EVAL_DIR/trajectories.png.
# Needs the extension installed (make install) and the venv (scripts/setup.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/common.sh"

export CLUSTER_DIR="${LEARN_EVAL_DIR:-/tmp/centralcloud-learn-eval}"
export CLUSTER_PORT="${LEARN_EVAL_PORT:-28880}"
[[ -x "$VENV/bin/python" ]] || die "no Python with psycopg at $VENV (scripts/setup.sh creates it)"
if ! "$VENV/bin/python" -c "import matplotlib" 2>/dev/null; then
  log "installing matplotlib into $VENV (for the trajectory plot)"
  "$VENV/bin/pip" install --quiet matplotlib || log "could not install matplotlib: the plot is skipped"
fi

log "starting a throwaway PostgreSQL 15 cluster in $CLUSTER_DIR (port $CLUSTER_PORT)"
cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" "fsync = off" "max_locks_per_transaction = 256"
trap 'cluster_stop "$CLUSTER_DIR"' EXIT

"$VENV/bin/python" "$here/learn_eval.py" --dsn-host "$CLUSTER_DIR" --dsn-port "$CLUSTER_PORT" \
  --plot "$CLUSTER_DIR/trajectories.png" "$@"

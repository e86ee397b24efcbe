#!/usr/bin/env bash
# Learning quality, deterministic: scripts/learn_eval.py replays 40 simulated hours (seed 11)
# of known ground truth through pgmq, ingest and learn_complexity_scores() in this test's fresh
# database with policy bayes, and fails unless every target is met: Kendall tau >= 0.9 per
# complexity, regression and recovery ranked within 450 outcomes, <= 1 false alarm per 100
# cell-hours, mean |score change| <= 0.05 once converged, the slow twin below its fast twin.
# LEARN_EVAL_POLICY=seed runs the same checks against another policy (seed fails them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/common.sh"
[[ -x "$VENV/bin/python" ]] || die "no Python with psycopg at $VENV (scripts/setup.sh creates it)"
policy="${LEARN_EVAL_POLICY:-bayes}"

"$VENV/bin/python" "$here/../scripts/learn_eval.py" \
  --dsn-host "$CLUSTER_DIR" --dsn-port "$CLUSTER_PORT" --database "$TEST_DB" --reuse-database \
  --policies "$policy" --hours 40 --seed 11 --quiet \
  --json "$CLUSTER_DIR/t19_learn_eval.json" --assert --assert-policy "$policy"

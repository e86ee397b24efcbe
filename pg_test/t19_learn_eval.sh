#!/usr/bin/env bash
# Learning quality, deterministic: scripts/learn_eval.py replays 40 simulated hours (seed 11,
# 5 instances) of known ground truth through pgmq, ingest and learn_complexity_scores() with
# policy bayes and consensus on, twice: as is, and with one instance whose path to one
# provider fails 90% of its outcomes from hour 12 (+outlier), each in a database of its own
# (<test db>_bayes, <test db>_bayes_outlier). It fails unless every target is met in both:
# Kendall tau >= 0.9 per complexity, regression and recovery ranked within 450 outcomes, <= 1
# false alarm per 100 cell-hours, mean |score change| <= 0.05 once converged, the slow twin
# below its fast twin, no instance flagged but the broken one; with the outlier, the broken
# instance flagged within 300 of its outcomes and still at the end, advised once in its own
# queue only, and the score the evidence gives its cell moved by it less than min_score_change
# (against the run without it). LEARN_EVAL_POLICY=seed runs the same checks against another
# policy (seed fails them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/common.sh"
[[ -x "$VENV/bin/python" ]] || die "no Python with psycopg at $VENV (scripts/setup.sh creates it)"
policy="${LEARN_EVAL_POLICY:-bayes}"

"$VENV/bin/python" "$here/../scripts/learn_eval.py" \
  --dsn-host "$CLUSTER_DIR" --dsn-port "$CLUSTER_PORT" --database "$TEST_DB" \
  --runs "$policy,$policy+outlier" --hours 40 --seed 11 --instances 5 --outlier-hour 12 --quiet \
  --json "$CLUSTER_DIR/t19_learn_eval.json" --assert --assert-policy "$policy"

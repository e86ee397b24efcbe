#!/usr/bin/env bash
# The README's router session ("How a router uses centralcloud") runs as written: it is taken
# from README.md and run in psql, then its effects are checked.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/common.sh"
session="$CLUSTER_DIR/t24.session.sql"
awk '/^-- Once, by an operator: the router/ {on = 1} on && /^```/ {exit} on {print}' "$here/../README.md" >"$session"
[[ $(wc -l <"$session") -gt 10 ]] || die "the router session was not found in README.md"
cpsql -d "$TEST_DB" -f "$session"
(cd "$here" && cpsql -d "$TEST_DB") <<'SQL'
\ir lib.sql
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records WHERE instance_id = 'router-eu-1'), 2::bigint, 'both events recorded');
SELECT test.eq((SELECT (source, successes)::text FROM centralcloud.model_capabilities WHERE model = 'gpt-4o'),
               '(learned,1)', 'vision learned from the success');
SELECT test.eq((SELECT queue_length FROM pgmq.metrics((SELECT queue_name FROM centralcloud.score_subscriptions
                                                        WHERE instance_id = 'router-eu-1'))), 0::bigint, 'the router emptied its queue');
SELECT test.eq((SELECT model FROM centralcloud.recommend_model('complex', '{vision}', prefer => 'speed') WHERE rank = 1),
               'gpt-4o', 'and gets a recommendation');
SQL

#!/usr/bin/env bash
# recommend_model() latency (issue 13): a catalog of MODELS models x 3 complexities (scores
# spread over 0..5, metrics with latency sketches, 20 providers, 2% of the models down and 3%
# degraded, capabilities, prices for 80% of them), then pgbench calling recommend_model() with
# CLIENTS clients for SECONDS s, the four kinds of call mixed equally (no preference, speed,
# cost, a capability), prepared statements as a router would use them. Prints p50/p99/max of
# the per-call latency from pgbench's per-transaction log. SCORES=tied gives every cell the same
# score (a fresh fleet reporting one complexity_score): the worst case of a preference, which
# must read every candidate within the tolerance.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/common.sh"

export CLUSTER_DIR="${BENCH_DIR:-/tmp/centralcloud-bench-recommend}"
export CLUSTER_PORT="${BENCH_PORT:-28820}"
MODELS="${MODELS:-1000}"
CLIENTS="${CLIENTS:-1}"
SECONDS_RUN="${SECONDS_RUN:-30}"
SCORES="${SCORES:-uniform}"

cluster_start "$CLUSTER_DIR" "$CLUSTER_PORT" "shared_buffers = 256MB"
trap 'cluster_stop "$CLUSTER_DIR"' EXIT
cpsql -d postgres -c "CREATE EXTENSION centralcloud CASCADE" 2>/dev/null

log "catalog: $MODELS models x 3 complexities"
cpsql -d postgres -v models="$MODELS" -v tied="$([[ $SCORES == tied ]] && echo true || echo false)" <<'SQL' >/dev/null
SELECT setseed(0.13);
CREATE TEMP TABLE m AS
SELECT i, 'model-' || i AS model, 'provider-' || (i % 20) AS provider FROM generate_series(1, :models) AS i;
INSERT INTO centralcloud.model_complexity_scores (model_name, complexity_level, score, prior_score, change_source, change_reason)
SELECT model, c, s, s, 'reported', 'bench'
  FROM (SELECT m.model, c, CASE WHEN :tied THEN 2.5 ELSE round((random() * 5)::numeric, 4)::float8 END AS s
          FROM m, unnest(ARRAY['simple', 'medium', 'complex']) AS c) AS r;
INSERT INTO centralcloud.model_routing_metrics (model_name, complexity_level, usage_count, success_count, failure_count,
                                                response_time_count, response_time_sum, latency_sketch)
SELECT m.model, c, 1000, 950, 50, 50, 50 * 1000,
       (SELECT centralcloud.latency_sketch_agg((100 + random() * 3000 * (1 + m.i % 5) + 0 * g)::int) FROM generate_series(1, 50) AS g)
  FROM m, unnest(ARRAY['simple', 'medium', 'complex']) AS c;
INSERT INTO centralcloud.health_states (provider, model, state)
SELECT provider, model, CASE WHEN i % 50 = 0 THEN 'down' WHEN i % 33 = 0 THEN 'degraded' ELSE 'healthy' END FROM m
UNION ALL
SELECT DISTINCT provider, NULL, 'healthy' FROM m;
INSERT INTO centralcloud.model_capabilities (provider, model, capability, source)
SELECT provider, model, cap, 'learned' FROM m, unnest(ARRAY['vision', 'tools', 'json']) AS cap WHERE (i + length(cap)) % 3 = 0;
INSERT INTO centralcloud.model_prices (provider, model, usd_per_million_input_tokens, usd_per_million_output_tokens)
SELECT provider, model, round((random() * 10)::numeric, 2), round((random() * 30)::numeric, 2) FROM m WHERE i % 5 <> 0;
VACUUM ANALYZE;
SQL

scripts="$CLUSTER_DIR/pgbench"
mkdir -p "$scripts"
cat >"$scripts/plain.sql" <<'PGB'
\set c random(1, 3)
SELECT * FROM centralcloud.recommend_model((ARRAY['simple', 'medium', 'complex'])[:c]);
PGB
cat >"$scripts/speed.sql" <<'PGB'
\set c random(1, 3)
SELECT * FROM centralcloud.recommend_model((ARRAY['simple', 'medium', 'complex'])[:c], '{}', 'speed');
PGB
cat >"$scripts/cost.sql" <<'PGB'
\set c random(1, 3)
SELECT * FROM centralcloud.recommend_model((ARRAY['simple', 'medium', 'complex'])[:c], '{}', 'cost');
PGB
cat >"$scripts/vision.sql" <<'PGB'
\set c random(1, 3)
SELECT * FROM centralcloud.recommend_model((ARRAY['simple', 'medium', 'complex'])[:c], '{vision}', 'speed', '{provider-3}');
PGB

log "pgbench: $CLIENTS client(s), $SECONDS_RUN s, prepared statements"
rm -f "$scripts"/log.*
(cd "$scripts" && "$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$SECONDS_RUN" -l --log-prefix=log \
   -f plain.sql -f speed.sql -f cost.sql -f vision.sql -h "$CLUSTER_DIR" -p "$CLUSTER_PORT" -U postgres postgres) \
  >"$scripts/pgbench.out"
grep -E "number of transactions actually processed|tps" "$scripts/pgbench.out" | sed 's/^/  /'
# Per-transaction log: client, transaction, latency (us), script, epoch, us.
cat "$scripts"/log.* | awk '{print $3}' | sort -n >"$scripts/latencies"
n=$(wc -l <"$scripts/latencies")
pick() { sed -n "$(( ($1 * n + 99) / 100 ))p" "$scripts/latencies"; }
p50=$(pick 50); p99=$(pick 99); max=$(tail -1 "$scripts/latencies")
per_script="$(cat "$scripts"/log.* | awk '{s[$4] += $3; c[$4]++} END {for (k in s) printf "script %d: avg %.0f us (%d calls)\n", k, s[k] / c[k], c[k]}' | sort)"

# The machine's own noise, measured the same way: a trivial call of a SECURITY DEFINER SQL
# function (latency_quantiles over an empty rollup) for the same time.
echo "SELECT * FROM centralcloud.latency_quantiles('model-1', 'complex', now() - interval '1 hour');" >"$scripts/trivial.sql"
rm -f "$scripts"/base.*
(cd "$scripts" && "$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$SECONDS_RUN" -l --log-prefix=base \
   -f trivial.sql -h "$CLUSTER_DIR" -p "$CLUSTER_PORT" -U postgres postgres) >/dev/null
cat "$scripts"/base.* | awk '{print $3}' | sort -n >"$scripts/base_latencies"
bn=$(wc -l <"$scripts/base_latencies")
base_pick() { sed -n "$(( ($1 * bn + 99) / 100 ))p" "$scripts/base_latencies"; }
rows="$(cpsql -d postgres -At -c "SELECT count(*) FROM centralcloud.recommend_model('complex', '{}', 'speed')")"

cat <<REPORT

recommend_model() benchmark, $(nproc) cores, $MODELS models x 3 complexities, scores $SCORES ($(cpsql -d postgres -At -c "SELECT count(*) FROM centralcloud.model_complexity_scores") cells), $CLIENTS client(s), $SECONDS_RUN s
  calls: $n (rows per call: $rows)
  latency per call: p50 $((p50)) us, p99 $((p99)) us, max $((max)) us   (target p99 < 1000 us: $( ((p99 < 1000)) && echo met || echo NOT met))
$(echo "$per_script" | sed 's/^script 0/  no preference/; s/^script 1/  prefer speed /; s/^script 2/  prefer cost  /; s/^script 3/  vision+speed+exclude/')
  the same pgbench on a trivial SECURITY DEFINER SQL function: p50 $(base_pick 50) us, p99 $(base_pick 99) us ($bn calls; load average $(cut -d' ' -f1-3 /proc/loadavg))
REPORT

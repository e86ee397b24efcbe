#!/usr/bin/env bash
# Two sessions ingest the same backlog at once; the totals equal one session's over the same
# events (and the events themselves): SKIP LOCKED gives disjoint batches, nothing is counted
# twice, nothing is lost, and the fixed upsert order means no deadlock.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/common.sh"
db="$TEST_DB"
single="${db}_single"

cpsql -d postgres -c "DROP DATABASE IF EXISTS $single" -c "CREATE DATABASE $single"
cpsql -d "$single" -c "CREATE EXTENSION centralcloud CASCADE"
for d in "$db" "$single"; do
  (cd "$here" && cpsql -d "$d" -f lib.sql -c "INSERT INTO test.published (msg) SELECT test.events(20000)" \
       -c "INSERT INTO test.published (msg, expected) SELECT '{\"oops\": 1}', 'missing_field' FROM generate_series(1, 100)" \
       -c "SELECT test.publish()")
done

# Two concurrent sessions, small batches so they interleave many times.
ingest="SELECT read, ingested, rejected, duplicates FROM centralcloud.ingest_routing_events(batch_size => 200)"
cpsql -d "$db" -At -c "$ingest" > "$CLUSTER_DIR/session1.out" &
p1=$!
cpsql -d "$db" -At -c "$ingest" > "$CLUSTER_DIR/session2.out" &
p2=$!
wait $p1; wait $p2
echo "session 1: $(cat "$CLUSTER_DIR/session1.out")"
echo "session 2: $(cat "$CLUSTER_DIR/session2.out")"
# Both got work (otherwise this would not test concurrency).
for f in session1 session2; do
  [[ "$(cut -d'|' -f1 "$CLUSTER_DIR/$f.out")" -gt 0 ]] || { echo "FAILED: $f read nothing"; exit 1; }
done
cpsql -d "$single" -At -c "$ingest"

summary="SELECT (SELECT count(*) FROM centralcloud.routing_records) || ' records, ' ||
                (SELECT count(*) FROM centralcloud.routing_events_rejected) || ' rejected, metrics ' ||
                (SELECT md5(string_agg((model_name, complexity_level, usage_count, success_count,
                        failure_count, response_time_count, response_time_sum, response_time_min,
                        response_time_max, centralcloud.latency_quantile(latency_sketch, 0.5),
                        centralcloud.latency_quantile(latency_sketch, 0.99))::text, ','
                        ORDER BY model_name, complexity_level))
                   FROM centralcloud.model_routing_metrics) || ', queue ' ||
                (SELECT queue_length FROM pgmq.metrics('model_routing_decisions'))"
two="$(cpsql -d "$db" -At -c "$summary")"
one="$(cpsql -d "$single" -At -c "$summary")"
echo "two sessions: $two"
echo "one session:  $one"
[[ "$two" == "$one" ]] || { echo "FAILED: totals differ"; exit 1; }
[[ "$two" == "20000 records, 100 rejected, "*", queue 0" ]] || { echo "FAILED: unexpected totals"; exit 1; }
(cd "$here" && cpsql -d "$db" -c "\\ir lib.sql" -c "SELECT test.empty('SELECT * FROM test.metrics_diff', 'metrics match published events')")
cpsql -d postgres -c "DROP DATABASE $single"
echo "concurrent ingest: ok"

#!/usr/bin/env bash
# Backup and restore: a database in use (records in several daily partitions, dead letters,
# sketches, learned and operator scores, a detected change, two subscribed instances with
# updates waiting, events still queued) is dumped with pg_dump and restored into a new database
# four ways: plain with psql, plain with psql --single-transaction, -Fc with pg_restore, -Fc with
# pg_restore --single-transaction; all with stop-on-error. Each restore must print no error and
# give back the same data, with check_invariants() clean; the restored queues take events and
# deliver score updates to the subscribed instance, whose role still reads only its queue.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/common.sh"
db="$TEST_DB"
dump_args=(-h "$CLUSTER_DIR" -p "$CLUSTER_PORT" -U postgres)

cpsql -d postgres -c "CREATE ROLE t21_router LOGIN IN ROLE centralcloud_publisher" \
      -c "CREATE ROLE t21_other LOGIN IN ROLE centralcloud_publisher" >/dev/null
(cd "$here" && cpsql -d "$db" >/dev/null) <<'SQL'
\ir lib.sql
SELECT centralcloud.subscribe_instance('dr-1', 't21_router');
SELECT centralcloud.subscribe_instance('dr-shared');
-- Records in three daily partitions and the default one, dead letters, a sketch per cell.
INSERT INTO test.published (msg) SELECT test.events(3000);
INSERT INTO test.published (msg, expected) VALUES ('{"not": "an event"}', 'missing_field');
SELECT test.publish();
SELECT * FROM centralcloud.ingest_routing_events();
SELECT centralcloud.add_routing_partition(current_date - 2);
UPDATE centralcloud.routing_records SET received_at = received_at - interval '2 days' WHERE msg_id % 3 = 0;
UPDATE centralcloud.routing_records SET received_at = received_at - interval '90 days' WHERE msg_id % 100 = 0;
-- Learning (bayes), an operator's score, and a change point: updates wait in both queues.
SET centralcloud.min_samples_for_learning = 20;
SELECT count(*) FROM centralcloud.learn_complexity_scores();
SELECT centralcloud.set_complexity_score('gpt-4o', 'simple', 4.4, 'operator: before the dump');
INSERT INTO centralcloud.learning_changes (model_name, complexity_level, change_hour, kind, before_value, after_value, statistic)
VALUES ('gpt-4o', 'simple', date_trunc('hour', now()), 'success_rate', 0.9, 0.7, 12.5);
-- Health (the test events fail a third of the time: degraded), a price, an operator's capability.
INSERT INTO centralcloud.model_prices (provider, model, usd_per_request) VALUES ('github_models', 'gpt-4o', 0.01);
INSERT INTO centralcloud.model_capabilities (provider, model, capability) VALUES ('github_models', 'gpt-4o', 'vision');
-- And events still queued.
INSERT INTO test.published (msg) SELECT test.events(40, 50000);
SELECT test.publish();
SQL

# What must survive, as text.
facts() {
  cpsql -d "$1" -At <<'SQL'
SELECT 'records by partition: ' || string_agg(p || '=' || n, ' ' ORDER BY p)
  FROM (SELECT regexp_replace(tableoid::regclass::text, '[0-9]{8}$', '') || (received_at::date - current_date) AS p, count(*) AS n
          FROM centralcloud.routing_records GROUP BY 1) x;
SELECT 'records: ' || md5(string_agg(r::text, '|' ORDER BY msg_id, received_at)) FROM centralcloud.routing_records r;
SELECT 'dead letters: ' || md5(string_agg(x::text, '|' ORDER BY id)) FROM centralcloud.routing_events_rejected x;
SELECT 'metrics: ' || md5(string_agg(m::text, '|' ORDER BY model_name, complexity_level)) FROM centralcloud.model_routing_metrics m;
SELECT 'rollups: ' || md5(string_agg(h::text, '|' ORDER BY hour, instance_id, model, complexity, provider)) FROM centralcloud.routing_rollup_hourly h;
SELECT 'scores: ' || md5(string_agg(s::text, '|' ORDER BY model_name, complexity_level)) FROM centralcloud.model_complexity_scores s;
SELECT 'history: ' || md5(string_agg(h::text, '|' ORDER BY id)) FROM centralcloud.score_history h;
SELECT 'changes: ' || md5(string_agg(c::text, '|' ORDER BY id)) FROM centralcloud.learning_changes c;
SELECT 'dead letter counts: ' || string_agg(reason_code || ' ' || total, ', ' ORDER BY reason_code) FROM centralcloud.dead_letter_counts;
SELECT 'health: ' || md5(string_agg(h::text, '|' ORDER BY provider, model)) FROM centralcloud.health_states h;
SELECT 'health history: ' || md5(string_agg(h::text, '|' ORDER BY id)) FROM centralcloud.health_history h;
SELECT 'capabilities: ' || md5(string_agg(c::text, '|' ORDER BY provider, model, capability)) FROM centralcloud.model_capabilities c;
SELECT 'prices: ' || md5(string_agg(p::text, '|' ORDER BY provider, model)) FROM centralcloud.model_prices p;
SELECT 'subscriptions: ' || string_agg(instance_id || '->' || queue_name, ' ' ORDER BY instance_id) FROM centralcloud.score_subscriptions;
SELECT 'queues: ' || string_agg(queue_name, ' ' ORDER BY queue_name) FROM pgmq.meta;
SELECT 'bindings: ' || string_agg(pattern || '->' || queue_name, ' ' ORDER BY queue_name) FROM pgmq.topic_bindings;
SELECT 'queued: ' || md5(string_agg(q.msg_id || ':' || q.message::text, '|' ORDER BY q.msg_id)) FROM pgmq.q_model_routing_decisions q;
SELECT 'queue depths: ' || string_agg(queue_name || '=' || queue_length, ' ' ORDER BY queue_name) FROM pgmq.metrics_all();
SELECT 'next msg_id: ' || (SELECT last_value FROM pgmq.q_model_routing_decisions_msg_id_seq);
SQL
}
facts "$db" >"$CLUSTER_DIR/t21.facts.original"

"$PG_BIN/pg_dump" "${dump_args[@]}" -d "$db" -f "$CLUSTER_DIR/t21.sql"
"$PG_BIN/pg_dump" "${dump_args[@]}" -d "$db" -Fc -f "$CLUSTER_DIR/t21.dump"

restore() {
  local mode="$1" target="$2"
  case "$mode" in
    plain)        psql -X -q -v ON_ERROR_STOP=1 "${dump_args[@]}" -d "$target" -f "$CLUSTER_DIR/t21.sql" ;;
    plain-single) psql -X -q -v ON_ERROR_STOP=1 --single-transaction "${dump_args[@]}" -d "$target" -f "$CLUSTER_DIR/t21.sql" ;;
    custom)       "$PG_BIN/pg_restore" --exit-on-error "${dump_args[@]}" -d "$target" "$CLUSTER_DIR/t21.dump" ;;
    custom-single) "$PG_BIN/pg_restore" --exit-on-error --single-transaction "${dump_args[@]}" -d "$target" "$CLUSTER_DIR/t21.dump" ;;
  esac
}

for mode in plain plain-single custom custom-single; do
  target="${db}_${mode//-/_}"
  cpsql -d postgres -c "DROP DATABASE IF EXISTS $target" -c "CREATE DATABASE $target" >/dev/null
  restore "$mode" "$target" >"$CLUSTER_DIR/t21.$mode.out" 2>&1 \
    || { cat "$CLUSTER_DIR/t21.$mode.out"; die "restore ($mode) failed"; }
  if grep -E "ERROR|error" "$CLUSTER_DIR/t21.$mode.out"; then die "restore ($mode) printed errors"; fi
  facts "$target" >"$CLUSTER_DIR/t21.facts.$mode"
  diff -u "$CLUSTER_DIR/t21.facts.original" "$CLUSTER_DIR/t21.facts.$mode" || die "restore ($mode) differs"
  (cd "$here" && cpsql -d "$target" >/dev/null) <<'SQL'
\ir lib.sql
GRANT USAGE ON SCHEMA test TO PUBLIC;
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'restored: exact');
-- The restored queue takes new events from the publisher role, and ingest drains it.
SET ROLE t21_router;
SELECT pgmq.send('model_routing_decisions', test.event('dr-1', 'gpt-4o', 'simple', 'success', 120));
RESET ROLE;
SELECT test.eq((SELECT (read, ingested) FROM centralcloud.ingest_routing_events())::text, '(41,41)', 'restored: ingest');
-- A subscribed instance keeps receiving updates, through its own role only.
SELECT centralcloud.set_complexity_score('gpt-4o', 'simple', 1.2, 'operator: after the restore');
CREATE TEMP TABLE dr_queue AS SELECT queue_name FROM centralcloud.score_subscriptions WHERE instance_id = 'dr-1';
GRANT SELECT ON dr_queue TO PUBLIC;
SET ROLE t21_router;
SELECT test.eq((SELECT count(*) FROM pgmq.read((SELECT queue_name FROM dr_queue), 30, 100)
                 WHERE message ->> 'reason' = 'operator: after the restore'), 1::bigint, 'restored: the instance receives updates');
SELECT test.eq((SELECT model FROM centralcloud.recommend_model('simple', '{vision}', 'cost')), 'gpt-4o', 'restored: recommendations');
RESET ROLE;
SET ROLE t21_other;
SELECT test.fails_with($$SELECT * FROM pgmq.read((SELECT queue_name FROM dr_queue), 0, 1)$$, '42501',
                       'restored: another instance cannot read it');
RESET ROLE;
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'restored: exact after new traffic');
SQL
  echo "restore ($mode): no errors, same data, exact, queues and subscriptions working"
done

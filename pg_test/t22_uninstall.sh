#!/usr/bin/env bash
# Uninstalling as the README says, with its statements as written: on a database in use (events
# ingested and queued, learning, two subscribed instances with updates waiting), the README's
# block leaves nothing of centralcloud (schema, queues, topic bindings); a new CREATE EXTENSION
# then starts clean. The block's DROP ROLE is left out: the roles are the cluster's, used by the
# other test databases.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/common.sh"
db="$TEST_DB"

# The README's block: the ```sql fence after "To remove everything".
statements="$(awk '/^To remove everything/ { found = 1; next }
                   found && /^```sql/ { inside = 1; next }
                   inside && /^```/ { exit }
                   inside' "$ROOT/README.md")"
[[ "$statements" == *"DROP EXTENSION centralcloud;"* ]] || die "no uninstall block found in README.md"
echo "$statements"

cpsql -d "$db" -f "$here/lib.sql" >/dev/null
cpsql -d "$db" >/dev/null <<'SQL'
SELECT centralcloud.subscribe_instance('eu-1');
SELECT centralcloud.subscribe_instance('us-1');
INSERT INTO test.published (msg) SELECT test.events(500);
SELECT test.publish();
SELECT * FROM centralcloud.ingest_routing_events();
SELECT centralcloud.set_complexity_score('gpt-4o', 'simple', 3.3, 'before uninstall');
SELECT pgmq.send('model_routing_decisions', test.event('queued', 'gpt-4o', 'simple', 'routed'));
DROP SCHEMA test CASCADE;
SQL

grep -v '^DROP ROLE' <<<"$statements" | cpsql -d "$db" >/dev/null

# What is left of centralcloud, in one line (lib.sql needs the extension, so plain SQL here).
left="$(cpsql -d "$db" -At -c "SELECT format('schema %s, extension %s, queues %s, bindings %s, queue tables %s',
    (SELECT count(*) FROM pg_namespace WHERE nspname = 'centralcloud'),
    (SELECT count(*) FROM pg_extension WHERE extname = 'centralcloud'),
    (SELECT count(*) FROM pgmq.meta), (SELECT count(*) FROM pgmq.topic_bindings),
    (SELECT count(*) FROM pg_class WHERE relnamespace = 'pgmq'::regnamespace AND relname ~ '^[aq]_'))")"
expected="schema 0, extension 0, queues 0, bindings 0, queue tables 0"
[[ "$left" == "$expected" ]] || { echo "FAILED nothing left: got '$left', expected '$expected'"; exit 1; }

# Installed again: empty, and it works.
cpsql -d "$db" -c "CREATE EXTENSION centralcloud" >/dev/null
cpsql -d "$db" -f "$here/lib.sql" >/dev/null
cpsql -d "$db" <<'SQL'
SELECT test.eq((SELECT count(*) FROM centralcloud.score_subscriptions), 0::bigint, 'no subscriptions');
SELECT test.eq((SELECT array_agg(queue_name::text ORDER BY queue_name) FROM pgmq.topic_bindings),
               ARRAY['model_score_updates'], 'only the seed queue bound');
SELECT test.eq(test.queue_length(), 0::bigint, 'empty event queue');
INSERT INTO test.published (msg) SELECT test.events(50);
SELECT test.publish();
SELECT test.eq((SELECT ingested FROM centralcloud.ingest_routing_events()), 50::bigint, 'ingests again');
SELECT test.empty('SELECT * FROM test.metrics_diff', 'metrics exact');
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'invariants');
SQL

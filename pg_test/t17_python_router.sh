#!/usr/bin/env bash
# A router's side with the real pgmq Python client, logged in as its own publisher role: it
# sends events (send, send_batch), reads and archives its score update, and every attack a
# publisher could try with a plain connection is refused (42501). Then ingest takes exactly the
# 11 events, and the event queue still accepts sends in msg_id order (nobody jammed it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/common.sh"
db="$TEST_DB"
[[ -x "$VENV/bin/python" ]] || die "no Python with the pgmq client at $VENV (scripts/setup.sh creates it)"

cpsql -d "$db" -c "CREATE ROLE router_a LOGIN IN ROLE centralcloud_publisher" \
               -c "CREATE ROLE router_b LOGIN IN ROLE centralcloud_publisher"
# The routers cannot read centralcloud.score_subscriptions, so they are told their queue names.
queue_a="$(cpsql -d "$db" -At -c "SELECT centralcloud.subscribe_instance('a-1', 'router_a')")"
queue_b="$(cpsql -d "$db" -At -c "SELECT centralcloud.subscribe_instance('b-1', 'router_b')")"
published="$(cpsql -d "$db" -At -c "SELECT centralcloud.set_complexity_score('gpt-4o', 'simple', 3.7, 'operator: t17')")"
[[ "$published" == t ]] || { echo "FAILED: set_complexity_score returned '$published'"; exit 1; }
echo "score-update queues: a-1 $queue_a, b-1 $queue_b"

export PGMQ_HOST="$CLUSTER_DIR" PGMQ_PORT="$CLUSTER_PORT" PGMQ_DB="$db" QUEUE_A="$queue_a" QUEUE_B="$queue_b"
"$VENV/bin/python" - <<'PY'
import os, sys
from datetime import datetime, timezone

import psycopg
from pgmq import PGMQueue

EVENTS = "model_routing_decisions"
qa, qb = os.environ["QUEUE_A"], os.environ["QUEUE_B"]


def check(ok, label):
    print(("ok      " if ok else "FAILED  ") + label, flush=True)
    if not ok:
        sys.exit(1)


def event(i):
    # The seed format, as test.event() in lib.sql builds it.
    return {
        "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "instance_id": "a-1",
        "routing_decision": {
            "complexity": ["simple", "medium", "complex"][i % 3],
            "selected_model": ["gpt-4o", "claude-3.5-sonnet"][i % 2],
            "selected_provider": "github_models",
            "complexity_score": 2.5,
            "outcome": ["routed", "success", "failure"][i % 3],
            "response_time_ms": None if i % 3 == 0 else 100 + i,
            "capabilities_required": [],
            "prefer": None,
            "user_model_request": None,
        },
    }


# Trust auth: the password is ignored, but the client insists on one.
queue = PGMQueue(host=os.environ["PGMQ_HOST"], port=os.environ["PGMQ_PORT"],
                 database=os.environ["PGMQ_DB"], username="router_a", password="x",
                 init_extension=False)

one = queue.send(EVENTS, event(0))
batch = queue.send_batch(EVENTS, [event(i) for i in range(1, 11)])
check(one > 0 and len(batch) == 10 and all(m > one for m in batch), f"send {one}, send_batch {batch}")

update = queue.read(qa, vt=30)
check(update is not None and update.message["model"] == "gpt-4o"
      and update.message["complexity"] == "simple" and abs(update.message["new_score"] - 3.7) < 1e-9,
      f"read own score update: {update and update.message}")
check(queue.archive(qa, update.msg_id) is True, "archive own score update")
# The queue is empty now; privileges are checked all the same.
check(queue.pop(qa) is None, "pop own queue (empty)")
check(queue.delete(qa, update.msg_id) is False, "delete on own queue (already archived)")


def denied(label, attempt):
    try:
        attempt()
    except psycopg.errors.InsufficientPrivilege as e:
        check(e.sqlstate == "42501", f"refused: {label} ({e.diag.message_primary})")
        return
    except psycopg.Error as e:
        check(False, f"{label}: expected 42501, got {e.sqlstate} {e}")
    check(False, f"{label}: allowed")


conn = psycopg.connect(queue.config.dsn, autocommit=True)
run = lambda sql: (lambda: conn.execute(sql))
denied("insert choosing msg_id 1000 and vt infinity (OVERRIDING SYSTEM VALUE)",
       run("INSERT INTO pgmq.q_model_routing_decisions (msg_id, vt, message) OVERRIDING SYSTEM VALUE "
           "VALUES (1000, 'infinity', '{}')"))
denied("insert with enqueued_at three days ahead",
       run("INSERT INTO pgmq.q_model_routing_decisions (enqueued_at, message) "
           "VALUES (now() + interval '3 days', '{}')"))
denied("update of the event queue",
       run("UPDATE pgmq.q_model_routing_decisions SET vt = 'infinity'"))
denied("pgmq read of b-1's queue (client)", lambda: queue.read(qb, vt=30))
denied("update of a message in b-1's queue",
       run(f"""UPDATE pgmq.q_{qb} SET message = jsonb_set(message, '{{new_score}}', '0')"""))
denied("insert into b-1's archive",
       run(f"""INSERT INTO pgmq.a_{qb} (msg_id, vt, message) VALUES (999, now(), '{{"new_score": 0}}')"""))
conn.close()
queue.close()
PY

# The superuser's side: exactly the 11 events, nothing dead-lettered, invariants hold.
(cd "$here" && cpsql -d "$db" <<'SQL'
\ir lib.sql
CREATE TEMP TABLE run AS SELECT * FROM centralcloud.ingest_routing_events();
SELECT test.eq((SELECT (read, ingested, rejected, duplicates, retry_later, dead_lettered_on_error)::text FROM run),
               '(11,11,0,0,0,0)', 'ingest takes the 11 events');
SELECT test.eq((SELECT count(*) FROM centralcloud.routing_records WHERE instance_id = 'a-1'), 11::bigint, 'recorded');
SELECT test.empty('SELECT * FROM centralcloud.routing_events_rejected', 'nothing dead-lettered');
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'invariants');
SQL
)

# Another router still sends, its msg_id after every earlier one, and ingest takes it.
before="$(cpsql -d "$db" -At -c "SELECT max(msg_id) FROM centralcloud.routing_records")"
after="$("$VENV/bin/python" - <<'PY'
import os
from datetime import datetime, timezone
from pgmq import PGMQueue
q = PGMQueue(host=os.environ["PGMQ_HOST"], port=os.environ["PGMQ_PORT"], database=os.environ["PGMQ_DB"],
             username="router_b", password="x", init_extension=False)
# What routers commonly write and the seed allows: a timestamp without offset (utcnow()) and a
# response time with a fraction (a float timer).
print(q.send("model_routing_decisions", {
    "timestamp": datetime.utcnow().isoformat(),
    "instance_id": "b-1",
    "routing_decision": {"complexity": "medium", "selected_model": "gpt-4o", "selected_provider": "github_models",
                         "complexity_score": 2.5, "outcome": "success", "response_time_ms": 15.51,
                         "capabilities_required": [], "prefer": None, "user_model_request": None}}))
q.close()
PY
)"
echo "router_b sent msg_id $after (highest before: $before)"
[[ "$after" =~ ^[0-9]+$ && "$after" -gt "$before" ]] || { echo "FAILED: router_b's send after the attacks"; exit 1; }
(cd "$here" && cpsql -d "$db" <<'SQL'
\ir lib.sql
SELECT test.eq((SELECT (read, ingested, rejected)::text FROM centralcloud.ingest_routing_events()), '(1,1,0)',
               'router_b''s event ingested');
SELECT test.eq((SELECT (response_time_ms, timestamp_without_offset, abs(extract(epoch FROM "timestamp" - now())) < 60)::text
                  FROM centralcloud.routing_records WHERE instance_id = 'b-1'),
               '(16,t,t)', 'utcnow() read as UTC, 15.51 ms rounded');
SELECT test.eq((SELECT timestamps_without_offset_24h FROM centralcloud.ingest_health), 1::bigint, 'counted in ingest_health');
SELECT test.empty('SELECT * FROM centralcloud.check_invariants()', 'invariants after router_b');
SQL
)
echo "python router: ok"

"""A router for pg_test/failover.sh: sends events with the real pgmq Python client until a stop
file appears, through a libpq connection string that names the primary and the standby with
target_session_attrs=read-write, so after a failover it reconnects to whichever was promoted.

Each event is tagged by (instance_id, timestamp): the router's name and BASE + seq microseconds.
It writes one line per event to its log: `ack SEQ MSG_ID UNIX_TIME` once the send returned (the
commit was acknowledged), `doubt SEQ UNIX_TIME` when the send failed with the connection (it may
or may not have committed). In-doubt events are not sent again, so that every event has one
msg_id. Every 100th event lacks routing_decision.complexity: a dead letter (missing_field).

Usage: failover_router.py NAME BATCH DSN BASE_EPOCH STOP_FILE LOG
       failover_router.py --edge   (EDGE_DSN, EDGE_QUEUE: the subscribed instance reads and
                                    archives its waiting score updates, printing msg_id,model,
                                    complexity,new_score)
"""
import os
import sys
import time
from datetime import datetime, timedelta, timezone

import psycopg
from pgmq import PGMQueue

EVENTS = "model_routing_decisions"
MODELS = ["gpt-4o", "claude-3.5-sonnet", "llama-3-70b"]
COMPLEXITIES = ["simple", "medium", "complex"]
OUTCOMES = ["routed", "success", "routed", "failure", "success"]
# A send that keeps failing with something other than a lost connection is a bug: stop.
MAX_ERRORS = 2000


class NoPool:
    """Every call gets the router's own connection (conn=...); the client needs no pool."""


def event(name, base, seq):
    rd = {
        "complexity": COMPLEXITIES[seq % 3],
        "selected_model": MODELS[(seq // 3) % 3],
        "selected_provider": "github_models",
        "complexity_score": 2.5,
        "outcome": OUTCOMES[(seq // 9) % 5],
        "response_time_ms": None if seq % 4 == 0 else 50 + (seq * 7919) % 3000,
        "capabilities_required": [],
        "prefer": None,
        "user_model_request": None,
    }
    if seq % 100 == 99:
        del rd["complexity"]
    ts = base + timedelta(microseconds=seq)
    return {"timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "instance_id": name, "routing_decision": rd}


def connect(dsn, stop_file):
    """Retries until a read-write server answers (or the stop file appears)."""
    while not os.path.exists(stop_file):
        try:
            return psycopg.connect(dsn, autocommit=True)
        except psycopg.OperationalError:
            time.sleep(0.05)
    return None


def read_score_updates():
    conn = psycopg.connect(os.environ["EDGE_DSN"], autocommit=True)
    queue = PGMQueue(pool=NoPool(), init_extension=False)
    name = os.environ["EDGE_QUEUE"]
    while updates := queue.read_batch(name, vt=30, batch_size=100, conn=conn):
        for u in updates:
            m = u.message
            print(f"{u.msg_id},{m['model']},{m['complexity']},{m['new_score']}")
            queue.archive(name, u.msg_id, conn=conn)
    conn.close()


def main():
    if sys.argv[1:] == ["--edge"]:
        return read_score_updates()
    name, batch, dsn, base_epoch, stop_file, log_path = sys.argv[1:7]
    batch = int(batch)
    base = datetime.fromtimestamp(float(base_epoch), tz=timezone.utc)
    queue = PGMQueue(pool=NoPool(), init_extension=False)
    conn = connect(dsn, stop_file)
    seq, errors = 0, 0
    with open(log_path, "w", buffering=1) as log:
        while conn is not None and not os.path.exists(stop_file):
            seqs = list(range(seq, seq + batch))
            seq += batch
            messages = [event(name, base, s) for s in seqs]
            try:
                if batch == 1:
                    ids = [queue.send(EVENTS, messages[0], conn=conn)]
                else:
                    ids = queue.send_batch(EVENTS, messages, conn=conn)
            except psycopg.Error as e:
                now = time.time()
                log.write("".join(f"doubt {s} {now:.6f}\n" for s in seqs))
                errors += 1
                if errors > MAX_ERRORS:
                    sys.exit(f"{name}: too many errors, last: {e}")
                conn.close()
                conn = connect(dsn, stop_file)
                continue
            now = time.time()
            log.write("".join(f"ack {s} {m} {now:.6f}\n" for s, m in zip(seqs, ids)))
    if conn is not None:
        conn.close()


if __name__ == "__main__":
    main()

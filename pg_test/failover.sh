#!/usr/bin/env bash
# Failover: a primary with the worker and a streaming standby made with pg_basebackup. First the
# dashboards on the hot standby: every view and read function of centralcloud_reader, as that
# role, answers there what the primary answers, worker_status says `standby`, ingest and
# learning refuse with SQLSTATE 25006. Then routers publish through the pgmq Python client
# (failover_router.py) while the worker ingests; the primary is stopped with -m immediate, the
# standby promoted, and the routers resume against it (libpq, target_session_attrs=read-write).
# Checked on the promoted server (failover_check.sql): every acknowledged send recorded once,
# dead-lettered with its reason, or queued; check_invariants() with the acknowledged msg_ids
# (and those of the in-doubt sends that did commit); the worker ingesting within seconds
# without a restart; the subscribed instance receiving every score update exactly once.
#
# Usage: pg_test/failover.sh [quick|long|async]
#   quick (make test): synchronous replication, 4 s of routing before the stop, 3 s after.
#   long (make failover): 20 s before, 10 s after.
#   async (make failover): asynchronous replication: measures the acknowledged sends the promoted
#   standby never received (fails only on double counting or wrong metrics). On loopback the
#   standby is microseconds behind, so the standby's WAL receiver is paused (SIGSTOP) for
#   ASYNC_LAG_S seconds (default 1; 0: no pause) before the stop: a replication lag.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/common.sh"

mode="${1:-quick}"
case "$mode" in
  quick) BEFORE_S=4 AFTER_S=3 SYNC=standby ;;
  long) BEFORE_S=20 AFTER_S=10 SYNC=standby ;;
  async) BEFORE_S=6 AFTER_S=3 SYNC= ;;
  *) die "usage: $0 [quick|long|async]" ;;
esac
base_dir="${FAILOVER_DIR:-/tmp/centralcloud-failover}"
port="${FAILOVER_PORT:-28840}"
pdir="$base_dir/primary" pport="$port" sdir="$base_dir/standby" sport=$((port + 1))
[[ -x "$VENV/bin/python" ]] || die "no Python with the pgmq client at $VENV (scripts/setup.sh creates it)"

on() { local dir="$1" p="$2"; shift 2; CLUSTER_DIR="$dir" CLUSTER_PORT="$p" "$@"; }
qp() { on "$pdir" "$pport" cpsql -d postgres -At -c "$1"; }
qs() { on "$sdir" "$sport" cpsql -d postgres -At -c "$1"; }
as_reader() { psql -X -q -v ON_ERROR_STOP=1 -h "$1" -p "$2" -U dash -d postgres -At -c "$3"; }
fail() { echo "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
secs() { printf '%.2f' "$(echo "$1" | bc)"; }

cleanup() {
  [[ -n "${router_pids:-}" ]] && kill $router_pids 2>/dev/null
  cluster_stop "$pdir"; cluster_stop "$sdir"
}
trap cleanup EXIT

# ------------------------------------------------------------------------------------------------
log "failover ($mode): primary with the worker on $pport, standby on $sport"
mkdir -p "$base_dir"
cluster_stop "$pdir"; cluster_stop "$sdir"; rm -rf "$sdir"
cluster_start "$pdir" "$pport" "shared_preload_libraries = 'centralcloud'" \
  "centralcloud.database = 'postgres'" "centralcloud.ingest_interval_ms = 50" \
  "centralcloud.learn_interval_s = 1" "centralcloud.min_samples_for_learning = 20" \
  "wal_level = replica" "max_wal_senders = 4"
qp "CREATE EXTENSION centralcloud CASCADE" >/dev/null
(cd "$here" && on "$pdir" "$pport" cpsql -d postgres -f lib.sql >/dev/null)
qp "CREATE TABLE test.sent (msg_id bigint PRIMARY KEY)"
routers=(router-1 router-2 router-3)
# router-1 sends one event per transaction, router-2 ten, router-3 a thousand (a backlog the
# worker is draining when the primary stops).
batches=(1 10 1000)
for r in "${routers[@]}"; do qp "CREATE ROLE \"$r\" LOGIN IN ROLE centralcloud_publisher"; done
qp "CREATE ROLE dash LOGIN IN ROLE centralcloud_reader"
qp "CREATE ROLE edge_1 LOGIN IN ROLE centralcloud_publisher"
edge_queue="$(qp "SELECT centralcloud.subscribe_instance('edge-1', 'edge_1')")"

log "standby: pg_basebackup, streaming${SYNC:+, synchronous}"
mkdir -p "$sdir" && chown postgres:postgres "$sdir"
sudo -u postgres "$PG_BIN/pg_basebackup" -h "$pdir" -p "$pport" -U postgres -D "$sdir/data" \
  -X stream -R -C -S standby --checkpoint=fast || fail "pg_basebackup"
# After -R's primary_conninfo (later lines win): its name for synchronous_standby_names, and no
# synchronous standby of its own once promoted.
cat >> "$sdir/data/postgresql.auto.conf" <<CONF
primary_conninfo = 'host=$pdir port=$pport user=postgres application_name=standby'
port = $sport
unix_socket_directories = '$sdir'
synchronous_standby_names = ''
CONF
sudo -u postgres "$PG_BIN/pg_ctl" -D "$sdir/data" -l "$sdir/server.log" -w -t 60 start >/dev/null \
  || { cat "$sdir/server.log"; fail "standby did not start"; }
if [[ -n "$SYNC" ]]; then
  qp "ALTER SYSTEM SET synchronous_standby_names = '$SYNC'" && qp "SELECT pg_reload_conf()" >/dev/null
  on "$pdir" "$pport" wait_for postgres "SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = 'standby'" 30
fi
qp "SELECT application_name, state, sync_state FROM pg_stat_replication"

# ------------------------------------------------------------------------------------------------
# Dashboards on the hot standby: the primary ingests and learns a known set, the worker is paused
# so nothing moves, and the standby, once it has replayed it all, must answer every view and read
# function as the reader role exactly as the primary does.
log "dashboards on the hot standby"
qp "INSERT INTO test.sent SELECT * FROM pgmq.send_batch('model_routing_decisions', ARRAY(SELECT test.events(3000)))"
on "$pdir" "$pport" wait_for postgres "SELECT queue_length = 0 FROM pgmq.metrics('model_routing_decisions')" 30
on "$pdir" "$pport" wait_for postgres "SELECT count(*) > 0 FROM centralcloud.score_history" 30
qp "ALTER SYSTEM SET centralcloud.worker_enabled = off" && qp "SELECT pg_reload_conf()" >/dev/null
on "$pdir" "$pport" wait_for postgres "SELECT state = 'disabled' FROM centralcloud.worker_status" 30
lsn="$(qp "SELECT pg_current_wal_lsn()")"
on "$sdir" "$sport" wait_for postgres "SELECT pg_last_wal_replay_lsn() >= '$lsn'" 30
[[ "$(qs "SELECT pg_is_in_recovery()")" == t ]] || fail "the standby is not in recovery"
# Every view the reader may read, whole, but for the columns checked apart below; and the reader's
# functions, each called here (a function granted later must be added; worker_liveness is
# worker_status.state, checked below; timestamps_without_offset and instance_sync_state are
# read through ingest_health and instance_sync).
views="$(qp "SELECT string_agg(c.oid::regclass::text, ' ' ORDER BY c.relname) FROM pg_class c
              WHERE c.relnamespace = 'centralcloud'::regnamespace AND c.relkind = 'v'
                AND has_table_privilege('centralcloud_reader', c.oid, 'SELECT')")"
reader_queries=()
for view in $views; do
  columns="$(qp "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
                  WHERE attrelid = '$view'::regclass AND attnum > 0 AND NOT attisdropped
                    AND attname NOT IN ('state', 'worker_state', 'messages_ever_sent', 'oldest_unread_age_s')")"
  reader_queries+=("SELECT $columns FROM $view")
done
reader_queries+=(
  "SELECT * FROM centralcloud.latency_quantiles(NULL, NULL, now() - interval '1 day')"
  "SELECT * FROM centralcloud.latency_quantiles('gpt-4o', 'simple', now() - interval '1 day')"
  "SELECT queue_name, queue_length, queue_visible_length FROM centralcloud.queue_health()"
  "SELECT * FROM centralcloud.routing_timeseries(now() - interval '2 days', now() + interval '1 hour', '1 hour', per_instance => true)"
  "SELECT * FROM centralcloud.score_snapshot()"
)
uncovered="$(qp "SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
                  WHERE p.pronamespace = 'centralcloud'::regnamespace
                    AND has_function_privilege('centralcloud_reader', p.oid, 'EXECUTE')
                    AND NOT has_function_privilege('public', p.oid, 'EXECUTE')
                    AND p.proname NOT IN ('latency_quantiles', 'queue_health', 'worker_liveness', 'routing_timeseries',
                                          'score_snapshot', 'timestamps_without_offset', 'instance_sync_state',
                                          'recommend_model')")"  # recommend_model: refused below (SPI needs a transaction id)
[[ -z "$uncovered" ]] || fail "reader functions not called on the standby here: $uncovered"
for query in "${reader_queries[@]}"; do
  digest="SELECT count(*) || ' rows, ' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM ($query) t"
  on_primary="$(as_reader "$pdir" "$pport" "$digest")" || fail "reader on the primary: $query"
  on_standby="$(as_reader "$sdir" "$sport" "$digest" 2>&1)" || fail "reader on the standby: $query: $on_standby"
  [[ "$on_primary" == "$on_standby" ]] || fail "standby differs ($on_standby vs $on_primary): $query"
  echo "  standby = primary: $on_standby  ${query:0:70}"
done
[[ "$(as_reader "$sdir" "$sport" "SELECT count(*) > 0 FROM centralcloud.model_rankings")" == t ]] \
  || fail "nothing to compare: model_rankings is empty"
# Messages ever sent comes from the queue's sequence, which a standby sees as last WAL-logged:
# PostgreSQL logs a sequence up to 32 values ahead of the last one used.
ever="SELECT messages_ever_sent FROM centralcloud.ingest_health"
sent_p="$(as_reader "$pdir" "$pport" "$ever")" sent_s="$(as_reader "$sdir" "$sport" "$ever")"
((sent_s >= sent_p && sent_s <= sent_p + 32)) || fail "messages_ever_sent: standby $sent_s, primary $sent_p"
echo "  messages_ever_sent: primary $sent_p, standby $sent_s (the sequence as WAL-logged, up to 32 ahead)"
standby_state="$(as_reader "$sdir" "$sport" "SELECT state FROM centralcloud.worker_status")"
[[ "$standby_state" == "standby: "* ]] || fail "worker_status on the standby: $standby_state"
[[ "$(as_reader "$sdir" "$sport" "SELECT worker_state FROM centralcloud.ingest_health")" == "$standby_state" ]] \
  || fail "ingest_health's worker_state on the standby"
echo "  worker_status on the standby: $standby_state"
for call in "centralcloud.ingest_routing_events()" "centralcloud.learn_complexity_scores()" \
            "centralcloud.run_maintenance()" "centralcloud.set_complexity_score('gpt-4o', 'simple', 3.0)" \
            "centralcloud.subscribe_instance('edge-2')" "centralcloud.refresh_metrics_from_rollup()" \
            "centralcloud.recommend_model('simple')"; do
  out="$(on "$sdir" "$sport" cpsql -d postgres -v VERBOSITY=sqlstate -c "SELECT count(*) FROM $call" 2>&1)"
  [[ "$out" == *25006* ]] || fail "$call on the standby: expected SQLSTATE 25006, got: $out"
  echo "  refused on the standby with 25006: $call"
done
qp "ALTER SYSTEM RESET centralcloud.worker_enabled" && qp "SELECT pg_reload_conf()" >/dev/null

# ------------------------------------------------------------------------------------------------
log "routing for ${BEFORE_S}+ s, then the primary stops (-m immediate) mid-ingest"
out="$base_dir/routers" && rm -rf "$out" && mkdir -p "$out"
stop_file="$out/stop"
base_epoch="$(qp "SELECT floor(extract(epoch FROM now() - interval '1 hour'))::bigint")"
# libpq: the primary first, then the standby; only a server accepting writes is kept.
dsn_for() { echo "host=$pdir,$sdir port=$pport,$sport dbname=postgres user=$1 password=x target_session_attrs=read-write connect_timeout=2"; }
# The subscribed instance edge-1 reads and archives every score update waiting in its queue.
edge_read() {
  EDGE_DSN="$(dsn_for edge_1)" EDGE_QUEUE="$edge_queue" "$VENV/bin/python" "$here/failover_router.py" --edge \
    >>"$out/edge.csv" || fail "edge-1 reading its score updates"
}
edge_read
[[ -s "$out/edge.csv" ]] || fail "edge-1 got no score update before the failover"
router_pids=""
for i in "${!routers[@]}"; do
  r="${routers[$i]}"
  "$VENV/bin/python" "$here/failover_router.py" "$r" "${batches[$i]}" "$(dsn_for "$r")" "$base_epoch" \
    "$stop_file" "$out/$r.log" 2>"$out/$r.err" &
  router_pids+=" $!"
done
sleep "$BEFORE_S"
sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", rand() }')"
if [[ -z "$SYNC" && "${ASYNC_LAG_S:-1}" != 0 ]]; then
  receiver="$(qs "SELECT pid FROM pg_stat_wal_receiver")"
  kill -STOP "$receiver"
  sleep "${ASYNC_LAG_S:-1}"
fi
behind="$(qs "SELECT pg_last_wal_receive_lsn()")"
behind="$(qp "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$behind')")"
queued_at_stop="$(qp "SELECT queue_length FROM pgmq.metrics('model_routing_decisions')")"
recorded_at_stop="$(qp "SELECT count(*) FROM centralcloud.routing_records")"
stopped_at="$(now)"
sudo -u postgres "$PG_BIN/pg_ctl" -D "$pdir/data" -m immediate -w stop >/dev/null
[[ -n "${receiver:-}" ]] && kill -CONT "$receiver"
echo "  primary stopped: about $recorded_at_stop recorded, $queued_at_stop queued; the standby had received all but $behind bytes of its WAL"

log "promoting the standby"
standby_postmaster="$(head -1 "$sdir/data/postmaster.pid")"
promote_at="$(now)"
sudo -u postgres "$PG_BIN/pg_ctl" -D "$sdir/data" -w promote >/dev/null || fail "promote"
promoted_at="$(now)"
on "$sdir" "$sport" wait_for postgres "SELECT count(*) > 0 FROM centralcloud.routing_records WHERE received_at >= to_timestamp($promote_at)" 30
first_ingest="$(qs "SELECT extract(epoch FROM min(received_at)) FROM centralcloud.routing_records WHERE received_at >= to_timestamp($promote_at)")"
ingest_after="$(secs "$first_ingest - $promote_at")"
promote_secs="$(secs "$promoted_at - $promote_at")"
echo "  promoted in ${promote_secs} s; first batch ingested by the promoted server's worker ${ingest_after} s after the promote request"
sleep "$AFTER_S"
touch "$stop_file"
for pid in $router_pids; do wait "$pid" || fail "a router failed: $(cat "$out"/*.err)"; done
router_pids=""
[[ "$(head -1 "$sdir/data/postmaster.pid")" == "$standby_postmaster" ]] || fail "the promoted server restarted"
for r in "${routers[@]}"; do
  resumed="$(awk -v t="$promote_at" '$1 == "ack" && $4 > t' "$out/$r.log" | wc -l)"
  ((resumed > 0)) || fail "$r sent nothing after the failover"
done

# The subscribed instance: an operator's change on the promoted server reaches it too, and its
# queue holds every change of score_history, once, in order.
qs "SELECT centralcloud.set_complexity_score('gpt-4o', 'simple', 1.2345, 'operator: after failover')" >/dev/null
on "$sdir" "$sport" wait_for postgres "SELECT queue_length = 0 FROM pgmq.metrics('model_routing_decisions')" 60

# Learning stops moving the history, so that edge-1 can have read all of it.
qs "ALTER SYSTEM SET centralcloud.worker_enabled = off" && qs "SELECT pg_reload_conf()" >/dev/null
on "$sdir" "$sport" wait_for postgres "SELECT state = 'disabled' FROM centralcloud.worker_status" 30
edge_read
log "checking on the promoted server"
for r in "${routers[@]}"; do
  awk -v r="$r" '$1 == "ack" { print r "," $2 "," $3 "," $4 }' "$out/$r.log"
done >"$out/acks.csv"
for r in "${routers[@]}"; do
  awk -v r="$r" '$1 == "doubt" { print r "," $2 "," $3 }' "$out/$r.log"
done >"$out/doubts.csv"
(cd "$here" && on "$sdir" "$sport" cpsql -d postgres -v base_us="$((base_epoch * 1000000))" \
   -v acks="$out/acks.csv" -v doubts="$out/doubts.csv" -v edge="$out/edge.csv" \
   -v stopped_at="$stopped_at" -v sync="${SYNC:-async}" -f failover_check.sql) || fail "checks"
echo "failover ($mode): ok; promoted in ${promote_secs} s, worker ingesting ${ingest_after} s after the promote request"

-- centralcloud security: documentation of the Rust functions, the three group roles, and
-- privileges. Runs last in CREATE EXTENSION.
--
-- centralcloud_publisher  router instances: send to the routing-event queue, read the
--                         score-update queues subscribe_instance() lets them read. Nothing else.
-- centralcloud_reader     dashboards: SELECT on the dashboard views, latency_quantiles().
-- centralcloud_operator   operators (and their jobs): ingest, learn, set scores, manage
--                         subscriptions, maintenance; reads every table. Member of reader.
--
-- Functions that act with the owner's rights (SECURITY DEFINER) pin search_path to this
-- schema, pg_catalog, pg_temp, so objects in a caller's schemas or temp schema cannot stand in
-- for the ones they use. Nothing that changes data is executable by PUBLIC.

-- ---------------------------------------------------------------------------------------
-- The Rust functions, documented.
-- ---------------------------------------------------------------------------------------
COMMENT ON FUNCTION ingest_routing_events(integer, integer) IS
  'Drains the routing-event queue (centralcloud.queue_name) batch by batch: valid events go to routing_records, model_routing_metrics, routing_rollup_hourly and routing_rollup_hourly_fleet, invalid ones to routing_events_rejected, all in the caller''s transaction (each batch in a subtransaction). batch_size NULL = centralcloud.batch_size; max_batches NULL = until the queue has no visible message. Returns what it did.';
-- No JIT for the periodic entry points: their statements are estimated past jit_above_cost once
-- the tables hold weeks of data (ingest's duplicate check scans a msg_id range in every daily
-- partition), and compiling cost more than running: ~90 ms per 1,000-message batch, 7x the batch
-- itself; 80 of learning's 175 ms (docs/benchmarks.md).
ALTER FUNCTION ingest_routing_events(integer, integer) SET jit = off;
ALTER FUNCTION learn_complexity_scores(boolean) SET jit = off;
ALTER FUNCTION evaluate_model_health() SET jit = off;
-- Ingest runs its batch statement a few hundred times per call with only the msg_id to start
-- after changing, so one generic plan, made at the first execution, serves the call: the
-- claim's LIMIT is a constant and the delete is by address, so no parameter's estimate shapes
-- the plan. With plan_cache_mode auto it kept re-planning: 25 plans, 40 ms, per 200,000 events.
ALTER FUNCTION ingest_routing_events(integer, integer) SET plan_cache_mode = force_generic_plan;
COMMENT ON FUNCTION routing_event_verdict(text) IS
  'Ingest''s verdict on one routing event (JSON text): {NULL, NULL, timestamp normalised to UTC, score, response_time_ms rounded to whole ms, whether the timestamp had no offset (read as UTC), instance_id, complexity, model, provider, outcome, capabilities as a text[] literal, prefer, user_model_request} when valid (the values ingest stores), otherwise {reason_code, reason}. Timestamps are judged against the transaction''s start (centralcloud.max_event_age, centralcloud.max_event_clock_skew), like now().';
COMMENT ON FUNCTION routing_event_check(bigint, timestamptz, jsonb) IS
  'Internal to ingest''s batch statement: NULL when the message is a valid routing event, otherwise {reason_code, reason} (as routing_event_verdict()); inside a batch it keeps the valid event in the backend for routing_event_rows(). Not executable by PUBLIC.';
COMMENT ON FUNCTION routing_event_rows(bigint[]) IS
  'Internal to ingest''s batch statement: the events routing_event_check() kept in this batch for these msg_ids, as the typed columns of routing_records (the validator''s values; capabilities_required NULL for none). Not executable by PUBLIC.';
COMMENT ON FUNCTION routing_event_rejection(text) IS
  'Validates one routing event (JSON text) against the event schema and limits ingest applies: NULL when valid, otherwise ARRAY[reason_code, reason]. For checking an event by hand (ingest itself judges with routing_event_check(), which also applies a call''s admission of new models).';
COMMENT ON FUNCTION latency_sketch_merge(bytea, bytea) IS 'Merges two latency sketches (NULL = empty).';
COMMENT ON FUNCTION latency_quantile(bytea, double precision) IS 'q-quantile (0..1) in ms from a latency sketch, within 1% relative error.';
COMMENT ON FUNCTION latency_sketch_quantiles(bytea, double precision[]) IS 'Several quantiles of one latency sketch, decoded once: latency_quantile(sketch, q) for each q, in order.';
COMMENT ON FUNCTION latency_sketch_count(bytea) IS 'Number of samples in a latency sketch.';

COMMENT ON FUNCTION learn_complexity_scores(boolean) IS
  'Applies centralcloud.learning_policy to every cell: bayes scores all of a cell''s evidence in its current regime (decayed in event time; records detected changes in learning_changes) and applies a score only when it moves by centralcloud.min_score_change; seed applies its steps to the evidence since the cell''s last learning step. Consensus, with either policy: an instance whose outcomes for a cell through a provider deviate from the rest of the fleet''s is left out (instance_anomalies; one instance_advisory to its own queue), and a change needs the agreement of centralcloud.min_agreeing_instances reporting instances. Records each change in score_history and publishes the seed''s model_score_update event to every subscribed instance, in the same transaction. One row per cell considered, with the reason (n, rate, bound, p95, change, left out, agreement; or e.g. insufficient data: 37 < 100). dry_run: same rows, nothing changed or published.';
COMMENT ON FUNCTION set_complexity_score(text, text, double precision, text) IS
  'Sets a cell''s score by hand (validated), recorded and published like a learned change. False when the score already had that value.';
COMMENT ON FUNCTION subscribe_instance(text, text) IS
  'Creates the instance''s own score-update queue (cc_scores_<slug>_<hash>), binds it to the score and health update topics, and lets reader (a role; default the centralcloud_publisher group) read, delete and archive its messages, and nobody else (a role given replaces every earlier reader, the group included); returns the queue name. Idempotent.';
COMMENT ON FUNCTION unsubscribe_instance(text, boolean) IS
  'Unbinds the instance''s score-update queue and, unless drop_queue is false, drops it. False if it was not subscribed.';

COMMENT ON FUNCTION recommend_model(text, text[], text, text[]) IS
  'The ranked candidates for a task of this complexity, now: model, provider, score, success rate with its lower bound and sample count, p50 and p95, estimated cost per request, health, and why. Skips down models and providers (an error, no_data_found, when that leaves nothing), honours exclude (model or provider names), keeps models known to support every capability asked for; prefer speed or cost picks the fastest or cheapest within centralcloud.recommend_tolerance of the best score. Unknown complexity, capability or preference: an error. At most centralcloud.recommend_max_candidates rows.';
COMMENT ON FUNCTION evaluate_model_health() IS
  'Evaluates the health of every provider and model now (ingest does it after each call): records each change in health_history and publishes a model_health_update event to every subscribed instance, in this transaction. Returns the changes.';

COMMENT ON FUNCTION run_maintenance() IS
  'Upkeep, called by the worker (every centralcloud.maintenance_interval_s) and the pg_cron job centralcloud-maintenance: creates the routing_records partitions of the next two days, then drops whole partitions older than centralcloud.routing_records_retention. One row per thing done.';
COMMENT ON FUNCTION latency_sketch_union_trans(internal, bytea) IS 'State function of latency_sketch_union().';
COMMENT ON FUNCTION latency_sketch_add_trans(internal, integer) IS 'State function of latency_sketch_agg().';
COMMENT ON FUNCTION latency_sketch_combine(internal, internal) IS 'Combine function of the latency sketch aggregates (merges partial states of parallel workers).';
COMMENT ON FUNCTION latency_sketch_serialize(internal) IS 'Serial function of the latency sketch aggregates.';
COMMENT ON FUNCTION latency_sketch_deserialize(bytea, internal) IS 'Deserial function of the latency sketch aggregates.';
COMMENT ON FUNCTION latency_sketch_final(internal) IS 'Final function of the latency sketch aggregates: the encoded sketch.';

-- ---------------------------------------------------------------------------------------
-- Roles: cluster-wide, so created only when missing (a second database, or a re-created
-- extension, finds them). DROP EXTENSION leaves them.
-- ---------------------------------------------------------------------------------------
DO $roles$
DECLARE
    wanted record;
BEGIN
    FOR wanted IN SELECT * FROM (VALUES
        ('centralcloud_publisher', 'centralcloud: router instances. Sends routing events to the model_routing_decisions queue, reads its score-update queue, calls recommend_model(); nothing else.'),
        ('centralcloud_reader', 'centralcloud: dashboards. SELECT on the dashboard views, recommend_model().'),
        ('centralcloud_operator', 'centralcloud: operators. Runs ingest, learning and maintenance, sets scores, manages subscriptions, reads every centralcloud table.'))
        AS r(name, purpose)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = wanted.name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', wanted.name);
        END IF;
        EXECUTE format('COMMENT ON ROLE %I IS %L', wanted.name, wanted.purpose);
    END LOOP;
END
$roles$;
GRANT centralcloud_reader TO centralcloud_operator;

-- What publishers may do with the routing-event queue: exactly what pgmq.send and
-- pgmq.send_batch need (INSERT of vt, message and headers; msg_id back), so they cannot choose
-- msg_id (OVERRIDING SYSTEM VALUE), enqueued_at or read_ct, nor read other instances' events.
-- Operators see the msg_ids (check_invariants). Applied again by ingest when the queue was
-- re-created.
CREATE FUNCTION grant_queue_privileges()
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = @extschema@, pg_catalog, pg_temp
AS $grant$
DECLARE
    queue text := coalesce(nullif(current_setting('centralcloud.queue_name', true), ''), 'model_routing_decisions');
    queue_table text := pgmq.format_table_name(queue, 'q');
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgmq.meta m WHERE m.queue_name = queue) THEN
        RAISE EXCEPTION 'centralcloud: pgmq queue "%" does not exist', queue
            USING ERRCODE = 'undefined_table', HINT = format('Create it with SELECT pgmq.create(%L).', queue);
    END IF;
    EXECUTE format('REVOKE ALL ON pgmq.%I FROM centralcloud_publisher, centralcloud_operator', queue_table);
    EXECUTE format('GRANT INSERT (vt, message, headers), SELECT (msg_id) ON pgmq.%I TO centralcloud_publisher', queue_table);
    EXECUTE format('GRANT SELECT (msg_id) ON pgmq.%I TO centralcloud_operator', queue_table);
    RETURN queue_table;
END
$grant$;
COMMENT ON FUNCTION grant_queue_privileges() IS
  'Grants centralcloud_publisher exactly what pgmq.send and pgmq.send_batch need on the routing-event queue (centralcloud.queue_name), and centralcloud_operator its msg_ids; returns the queue table. Ingest calls it when it finds the queue re-created; call it after pointing centralcloud.queue_name at another queue.';

-- The seed's ScoreUpdater polls the shared model_score_updates queue: publishers may read,
-- delete and archive its messages (what pgmq.read, pop, delete and archive need) and read its
-- metrics, never rewrite an update. Each message goes to one reader, so per-instance queues
-- (subscribe_instance) are the way for a fleet.
CREATE FUNCTION grant_shared_score_queue()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $shared$
DECLARE
    queue_table text := pgmq.format_table_name('model_score_updates', 'q');
BEGIN
    EXECUTE format('GRANT SELECT, DELETE, UPDATE (vt, read_ct, last_read_at) ON pgmq.%I TO centralcloud_publisher', queue_table);
    EXECUTE format('GRANT INSERT, SELECT (msg_id) ON pgmq.%I TO centralcloud_publisher',
                   pgmq.format_table_name('model_score_updates', 'a'));
    EXECUTE format('GRANT SELECT ON SEQUENCE %s TO centralcloud_publisher',
                   pg_get_serial_sequence(format('pgmq.%I', queue_table), 'msg_id'));
END
$shared$;
COMMENT ON FUNCTION grant_shared_score_queue() IS
  'Lets centralcloud_publisher read the shared model_score_updates queue, as the seed''s consumers do (CREATE EXTENSION and the update call it).';

-- ---------------------------------------------------------------------------------------
-- The functions that act with the owner's rights declare SECURITY DEFINER and a pinned
-- search_path where they are defined; none of them is executable by PUBLIC. PUBLIC keeps only
-- pure functions (validation, sketch arithmetic).
-- ---------------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION ingest_routing_events(integer, integer), learn_complexity_scores(boolean),
                       set_complexity_score(text, text, double precision, text), subscribe_instance(text, text),
                       unsubscribe_instance(text, boolean), run_maintenance(), add_routing_partition(date),
                       ensure_routing_partitions(integer), drop_expired_routing_partitions(timestamptz),
                       queue_health(), latency_quantiles(text, text, timestamptz, timestamptz),
                       worker_liveness(integer), grant_queue_privileges(), drop_expired_dead_letters(timestamptz),
                       timestamps_without_offset(timestamptz),
                       recommend_model(text, text[], text, text[]), evaluate_model_health()
   FROM PUBLIC;
-- check_invariants() runs with its caller's rights: its published argument names a relation
-- of the caller's, which must never be read with the owner's.
REVOKE ALL ON FUNCTION check_invariants(regclass, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION count_dead_letters() FROM PUBLIC;
REVOKE ALL ON FUNCTION grant_shared_score_queue(), score_snapshot(), instance_queue(text),
                       instance_sync_state(interval),
                       routing_timeseries(timestamptz, timestamptz, interval, text, text, boolean, boolean)
   FROM PUBLIC;
REVOKE ALL ON PROCEDURE drain_routing_events(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION schedule_with_pg_cron(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION unschedule_pg_cron() FROM PUBLIC;
REVOKE ALL ON FUNCTION pg_cron_jobs(text, text, text), pg_cron_statements(text, text, text), served_databases()
   FROM PUBLIC;
REVOKE ALL ON FUNCTION refresh_metrics_from_rollup() FROM PUBLIC;
-- Internal to ingest's batch statement (they keep and hand over this backend's judged events).
REVOKE ALL ON FUNCTION routing_event_check(bigint, timestamptz, jsonb), routing_event_rows(bigint[]) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------
-- Grants.
-- ---------------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA pgmq TO centralcloud_publisher, centralcloud_operator;
GRANT SELECT ON pgmq.meta TO centralcloud_operator;
-- (A restored dump brings the queue with its grants: see the queue block in schema.sql.)
DO $grant$
BEGIN
    IF current_setting('row_security') = 'on' THEN
        PERFORM grant_queue_privileges();
        PERFORM grant_shared_score_queue();
    END IF;
END
$grant$;

GRANT USAGE ON SCHEMA @extschema@ TO centralcloud_reader, centralcloud_operator, centralcloud_publisher;
-- The router's view (a router logs in as a member of centralcloud_publisher): check an event
-- (routing_event_rejection, PUBLIC), start from the current scores, find its queue, see its own
-- dead letters.
GRANT EXECUTE ON FUNCTION score_snapshot() TO centralcloud_publisher, centralcloud_reader;
GRANT EXECUTE ON FUNCTION instance_queue(text) TO centralcloud_publisher, centralcloud_operator;
GRANT SELECT ON instance_dead_letters TO centralcloud_publisher;
GRANT SELECT ON instance_sync, routing_hourly, events_by_outcome, dead_letters_by_reason TO centralcloud_reader;
GRANT EXECUTE ON FUNCTION routing_timeseries(timestamptz, timestamptz, interval, text, text, boolean, boolean)
   TO centralcloud_reader;
GRANT EXECUTE ON FUNCTION instance_sync_state(interval) TO centralcloud_reader;
GRANT SELECT ON model_usage_by_instance, model_success_rates, model_response_times, model_rankings,
                ingest_health, score_updates_recent, learning_changes_recent, worker_status,
                instance_anomalies, model_health, health_updates_recent
   TO centralcloud_reader;
GRANT EXECUTE ON FUNCTION latency_quantiles(text, text, timestamptz, timestamptz), queue_health(),
                          worker_liveness(integer), timestamps_without_offset(timestamptz)
   TO centralcloud_reader;
-- Routers ask recommend_model() (it runs as the owner).
GRANT EXECUTE ON FUNCTION recommend_model(text, text[], text, text[]) TO centralcloud_reader, centralcloud_publisher;
-- A router calls it on every request: its statements are planned once per session. With custom
-- plans PostgreSQL would plan them again on every call (their estimates beat the generic
-- plan's), which costs more than running them.
ALTER FUNCTION recommend_model(text, text[], text, text[]) SET plan_cache_mode = force_generic_plan;
-- Its generic plans misjudge how many candidates pass the request's filters (capabilities,
-- exclusions) as about one, and would sort that one instead of reading an index in order and
-- stopping after the rows it needs: with many candidates tied, the sort reads them all.
ALTER FUNCTION recommend_model(text, text[], text, text[]) SET enable_sort = off;

GRANT SELECT ON ALL TABLES IN SCHEMA @extschema@ TO centralcloud_operator;
GRANT EXECUTE ON FUNCTION ingest_routing_events(integer, integer), learn_complexity_scores(boolean),
                          set_complexity_score(text, text, double precision, text),
                          subscribe_instance(text, text), unsubscribe_instance(text, boolean),
                          run_maintenance(), add_routing_partition(date), check_invariants(regclass, text),
                          grant_queue_privileges(), refresh_metrics_from_rollup(), evaluate_model_health()
   TO centralcloud_operator;
-- Capabilities and prices are the operators' to maintain: a capability row added by hand is
-- theirs (source defaults to operator), and only they set supported.
GRANT INSERT, UPDATE, DELETE ON model_prices TO centralcloud_operator;
GRANT INSERT (provider, model, capability, supported), UPDATE (supported), DELETE ON model_capabilities
   TO centralcloud_operator;
GRANT EXECUTE ON PROCEDURE drain_routing_events(integer) TO centralcloud_operator;

-- pg_dump leaves out privileges equal to an extension's initial ones (pg_init_privs). The grants
-- made above on pgmq's schema, its meta table and the event queue (handed back to pgmq, so no
-- member of anything) were recorded as initial ones and would be missing from every dump; a
-- restore would leave publishers unable to send. They are taken out of pg_init_privs, so
-- pg_dump dumps them like any grant.
DELETE FROM pg_catalog.pg_init_privs p
 WHERE p.classoid = 'pg_catalog.pg_class'::regclass
   AND p.objoid IN (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = 'pgmq'::regnamespace)
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = p.objoid AND d.deptype = 'e');
UPDATE pg_catalog.pg_init_privs p
   SET initprivs = ARRAY(SELECT a FROM unnest(p.initprivs) AS a
                          WHERE a::text !~ '^"?centralcloud_(publisher|reader|operator)"?=')
 WHERE EXISTS (SELECT 1 FROM unnest(p.initprivs) AS a WHERE a::text ~ '^"?centralcloud_(publisher|reader|operator)"?=')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d, pg_catalog.pg_extension e
                    WHERE d.classid = p.classoid AND d.objid = p.objoid AND d.refobjid = e.oid
                      AND d.deptype = 'e' AND e.extname = 'centralcloud');

//! `centralcloud.ingest_routing_events()`: the pgmq queue becomes the audit trail
//! (`routing_records`), per-cell metrics (`model_routing_metrics`), hourly rollups
//! (`routing_rollup_hourly`, and summed over instances `routing_rollup_hourly_fleet`) and dead
//! letters (`routing_events_rejected`). Thin SPI layer over `event` (validation) and `aggregate`.
//!
//! Per batch, in a subtransaction of the caller's transaction, one statement (`BATCH_SQL`)
//! claims up to `batch_size` visible messages (SKIP LOCKED, in msg_id order after the last one
//! this call took), deletes them from the queue, judges each with `routing_event_check()`
//! (which keeps the valid events in this backend), inserts the valid ones into
//! `routing_records` as typed columns (`routing_event_rows()`) and dead-letters the others with
//! their reason. Only counts and the dead letters come back; Rust aggregates the kept events of
//! the recorded messages per (model, complexity) and per hourly rollup row, straight into the
//! call's totals (`aggregate::CallTotals`), and each metrics and rollup row is upserted once, in
//! key order (so concurrent callers cannot
//! deadlock, and a long drain writes each metrics row once instead of once per batch): at the
//! end of the call, or earlier when more than `centralcloud.ingest_max_pending_rows` rows are
//! pending, which bounds the memory of one call. Records, dead letters, queue deletes and
//! metrics share the caller's transaction: they commit together or not at all.
//!
//! Claiming by delete inside the transaction is what `pgmq.read` + `pgmq.delete` amount to
//! when both happen in one transaction (the row stays locked until commit, a crash rolls both
//! back), at half the writes; and unlike `pgmq.read`, whose scan restarts at the queue head,
//! the msg_id keyset keeps a long drain linear (see README, Benchmark).
//!
//! If a batch raises an error that is the database's problem (a lock timeout, a deadlock, out
//! of memory or disk, a lost connection: `subxact::Failure::is_transient`), the error is raised
//! again: the messages stay in the queue untouched, and the caller (or the worker's back-off)
//! tries later. Any other error rolls back the batch's subtransaction and the careful path takes
//! over: `pgmq.read` (which bumps `read_ct`), the read messages again with
//! `ON CONFLICT (msg_id, received_at) DO NOTHING`, and if that fails too, each message alone in
//! its own subtransaction. One that still fails stays in the queue for a later read; after
//! `centralcloud.max_retries` reads it is dead-lettered with the error text. A poison message
//! never blocks the queue.

use crate::admission::Admission;
use crate::aggregate::{
    fleet_of, CallTotals, CapabilityKey, CellDelta, FleetKey, OutcomeDelta, PairKey, Sample,
    SortedTotals,
};
use crate::event::{parse_event, parse_stored_event, Choice, Limits, Rejection, RoutingEvent};
use crate::spi_util::{error_with_hint, FirstValue};
use crate::stored_jsonb::StoredJsonb;
use crate::{guc, subxact};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// The batch statement. `%1$I` is the queue table (quoted by `format()`); `%2$s` is one of the
/// two claim clauses below, which yield the row addresses (ctid) of the messages to take, each
/// row locked by this transaction, so its address cannot change; `%3$s` is the careful path's
/// `ON CONFLICT (msg_id, received_at) DO NOTHING`, or nothing on the fast path (speculative
/// insertion costs a third of the insert).
///
/// The claimed rows are deleted by address (a TID scan, `= ANY`), whatever the plan's estimate
/// of the claim: a join let a generic plan hash the whole queue, and an address needs no probe
/// of the msg_id index. `routing_event_check()` judges each message (reading the jsonb's
/// stored form) and keeps the valid ones in this backend; `routing_event_rows()` hands them to
/// the INSERT as typed columns (no text PostgreSQL parses again), once the last message is
/// judged (its argument is the whole of `fresh`). What comes back to Rust is one row with the number of
/// recorded messages and the highest msg_id claimed, and a row per dead letter: the recorded
/// events are the ones it kept minus the duplicates.
///
/// `received_at` is `now()`, the claim: the partition key comes from the server, never from a
/// publisher. A message already recorded under the same (msg_id, enqueued_at), i.e. delivered
/// again, is dead-lettered as a duplicate; `seen` finds those with one msg_id range scan per
/// partition index, not a probe per message (materialized: a plan may inline it into an index
/// probe per message and partition), checked through a hash (`NOT IN`; both columns are NOT
/// NULL).
const BATCH_SQL: &str = r#"
WITH claim AS (%2$s),
claimed AS (
    DELETE FROM pgmq.%1$I AS q
     WHERE q.ctid = ANY (ARRAY(SELECT ctid FROM claim))
    RETURNING q.msg_id, q.read_ct, q.enqueued_at, q.message,
              centralcloud.routing_event_check(q.msg_id, q.enqueued_at, q.message) AS rejection
),
seen AS MATERIALIZED (
    SELECT r.msg_id, r.enqueued_at FROM centralcloud.routing_records r
     WHERE r.msg_id BETWEEN (SELECT min(msg_id) FROM claimed) AND (SELECT max(msg_id) FROM claimed)
),
fresh AS (
    SELECT c.msg_id FROM claimed c
     WHERE c.rejection IS NULL
       AND (c.msg_id, c.enqueued_at) NOT IN (SELECT s.msg_id, s.enqueued_at FROM seen s)
),
recorded AS (
    INSERT INTO centralcloud.routing_records AS r
           (msg_id, "timestamp", instance_id, complexity, model, provider, score, outcome,
            response_time_ms, capabilities_required, preference, user_model_request, received_at,
            enqueued_at, timestamp_without_offset)
    SELECT e.msg_id, e."timestamp", e.instance_id, e.complexity, e.model, e.provider, e.score,
           e.outcome, e.response_time_ms, COALESCE(e.capabilities_required, '{}'), e.preference,
           e.user_model_request, now(), e.enqueued_at, e.timestamp_without_offset
      FROM centralcloud.routing_event_rows(ARRAY(SELECT msg_id FROM fresh)) AS e
    %3$s
    RETURNING r.msg_id
),
rejected AS (
    INSERT INTO centralcloud.routing_events_rejected AS x
           (msg_id, message, reason_code, reason, read_ct, enqueued_at, message_prefix,
            message_bytes, message_sha256)
    SELECT d.msg_id, b.kept, d.reason_code, d.reason, d.read_ct, d.enqueued_at, b.prefix, b.bytes,
           b.sha256
      FROM (SELECT msg_id, message, rejection[1] AS reason_code, rejection[2] AS reason, read_ct,
                   enqueued_at
              FROM claimed
             WHERE rejection IS NOT NULL
            UNION ALL
            SELECT msg_id, message, 'duplicate',
                   'msg_id ' || msg_id || ' is already in routing_records (delivered twice)',
                   read_ct, enqueued_at
              FROM claimed
             WHERE rejection IS NULL AND msg_id NOT IN (SELECT msg_id FROM recorded)) AS d,
           LATERAL centralcloud.dead_letter_body(d.message) AS b
    RETURNING x.msg_id, x.reason_code
)
SELECT NULL::bigint AS msg_id, NULL::text AS reason_code,
       (SELECT count(*) FROM recorded) AS recorded, (SELECT max(msg_id) FROM claimed) AS last_msg_id
UNION ALL
SELECT msg_id, reason_code, NULL, NULL FROM rejected
"#;

/// One upsert per cell: $1.. are parallel arrays in key order; counters add up, sketches merge.
/// A cell seen for the first time also enters the score catalog, at the complexity_score the
/// instances reported for it ($11: the first one in the batch).
const UPSERT_SQL: &str = "WITH metrics AS (
         INSERT INTO centralcloud.model_routing_metrics AS m
               (model_name, complexity_level, usage_count, success_count, failure_count,
                response_time_count, response_time_sum, response_time_min, response_time_max,
                avg_response_time, latency_sketch, updated_at)
         SELECT d.model, d.complexity, d.routed, d.success, d.failure,
                d.lat_count, d.lat_sum, d.lat_min, d.lat_max,
                d.lat_sum::float8 / NULLIF(d.lat_count, 0), d.sketch, now()
           FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[],
                       $7::int8[], $8::int4[], $9::int4[], $10::bytea[])
                WITH ORDINALITY AS d(model, complexity, routed, success, failure, lat_count,
                                     lat_sum, lat_min, lat_max, sketch, position)
          ORDER BY d.position
         ON CONFLICT (model_name, complexity_level) DO UPDATE SET
                usage_count = m.usage_count + EXCLUDED.usage_count,
                success_count = m.success_count + EXCLUDED.success_count,
                failure_count = m.failure_count + EXCLUDED.failure_count,
                response_time_count = m.response_time_count + EXCLUDED.response_time_count,
                response_time_sum = m.response_time_sum + EXCLUDED.response_time_sum,
                response_time_min = LEAST(m.response_time_min, EXCLUDED.response_time_min),
                response_time_max = GREATEST(m.response_time_max, EXCLUDED.response_time_max),
                avg_response_time = (m.response_time_sum + EXCLUDED.response_time_sum)::float8
                                    / NULLIF(m.response_time_count + EXCLUDED.response_time_count, 0),
                latency_sketch = centralcloud.latency_sketch_merge(m.latency_sketch, EXCLUDED.latency_sketch),
                updated_at = now()
         RETURNING 1)
         INSERT INTO centralcloud.model_complexity_scores AS s
                (model_name, complexity_level, score, prior_score, change_source, change_reason)
         SELECT d.model, d.complexity, round(d.score::numeric, 4)::float8,
                round(d.score::numeric, 4)::float8, 'reported',
                'initial: the complexity_score instances routed with when the cell was first seen'
           FROM unnest($1::text[], $2::text[], $11::float8[]) WITH ORDINALITY AS d(model, complexity, score, position)
          ORDER BY d.position
         ON CONFLICT (model_name, complexity_level) DO NOTHING";

/// One upsert per hourly rollup row, like the metrics: $1.. are parallel arrays in key order.
const ROLLUP_SQL: &str = "INSERT INTO centralcloud.routing_rollup_hourly AS h
               (hour, instance_id, model, complexity, provider, usage_count, success_count,
                failure_count, response_time_count, response_time_sum, response_time_min,
                response_time_max, latency_sketch, updated_at)
         SELECT to_timestamp(d.hour), d.instance_id, d.model, d.complexity, d.provider, d.routed,
                d.success, d.failure, d.lat_count, d.lat_sum, d.lat_min, d.lat_max, d.sketch, now()
           FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[],
                       $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int4[], $12::int4[],
                       $13::bytea[])
                WITH ORDINALITY AS d(hour, instance_id, model, complexity, provider, routed,
                                     success, failure, lat_count, lat_sum, lat_min, lat_max,
                                     sketch, position)
          ORDER BY d.position
         ON CONFLICT (hour, instance_id, model, complexity, provider) DO UPDATE SET
                usage_count = h.usage_count + EXCLUDED.usage_count,
                success_count = h.success_count + EXCLUDED.success_count,
                failure_count = h.failure_count + EXCLUDED.failure_count,
                response_time_count = h.response_time_count + EXCLUDED.response_time_count,
                response_time_sum = h.response_time_sum + EXCLUDED.response_time_sum,
                response_time_min = LEAST(h.response_time_min, EXCLUDED.response_time_min),
                response_time_max = GREATEST(h.response_time_max, EXCLUDED.response_time_max),
                latency_sketch = centralcloud.latency_sketch_merge(h.latency_sketch, EXCLUDED.latency_sketch),
                updated_at = now()";

/// The same rows summed over instances ($1.. parallel arrays in that table's key order): what
/// fleet-wide time series read.
const FLEET_SQL: &str = "INSERT INTO centralcloud.routing_rollup_hourly_fleet AS f
               (model, complexity, hour, provider, usage_count, success_count, failure_count,
                response_time_count, response_time_sum, response_time_min, response_time_max,
                latency_sketch, updated_at)
         SELECT d.model, d.complexity, to_timestamp(d.hour), d.provider, d.routed, d.success,
                d.failure, d.lat_count, d.lat_sum, d.lat_min, d.lat_max, d.sketch, now()
           FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[], $6::int8[],
                       $7::int8[], $8::int8[], $9::int8[], $10::int4[], $11::int4[], $12::bytea[])
                WITH ORDINALITY AS d(model, complexity, hour, provider, routed, success, failure,
                                     lat_count, lat_sum, lat_min, lat_max, sketch, position)
          ORDER BY d.position
         ON CONFLICT (model, complexity, hour, provider) DO UPDATE SET
                usage_count = f.usage_count + EXCLUDED.usage_count,
                success_count = f.success_count + EXCLUDED.success_count,
                failure_count = f.failure_count + EXCLUDED.failure_count,
                response_time_count = f.response_time_count + EXCLUDED.response_time_count,
                response_time_sum = f.response_time_sum + EXCLUDED.response_time_sum,
                response_time_min = LEAST(f.response_time_min, EXCLUDED.response_time_min),
                response_time_max = GREATEST(f.response_time_max, EXCLUDED.response_time_max),
                latency_sketch = centralcloud.latency_sketch_merge(f.latency_sketch, EXCLUDED.latency_sketch),
                updated_at = now()";

/// Per (provider, model) pair, the outcomes of the call, in the second of server time it
/// received them (`received_at`, the transaction's start): the evidence health judges. $1.. are
/// parallel arrays in key order.
const OUTCOMES_SQL: &str = "INSERT INTO centralcloud.health_outcomes AS o
               (second, provider, model, routed_count, success_count, failure_count)
         SELECT date_trunc('second', now()), d.provider, d.model, d.routed, d.success, d.failure
           FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[])
                WITH ORDINALITY AS d(provider, model, routed, success, failure, position)
          ORDER BY d.position
         ON CONFLICT (second, provider, model) DO UPDATE SET
                routed_count = o.routed_count + EXCLUDED.routed_count,
                success_count = o.success_count + EXCLUDED.success_count,
                failure_count = o.failure_count + EXCLUDED.failure_count";

/// Capabilities learned from successful requests that required them: a new one enters as
/// supported; a known one counts the success and never changes `supported`, which is the
/// operator's to set. $1.. are parallel arrays in key order.
const CAPABILITIES_SQL: &str = "INSERT INTO centralcloud.model_capabilities AS c
               (provider, model, capability, source, successes, first_seen_at, last_seen_at)
         SELECT d.provider, d.model, d.capability, 'learned', d.successes, now(), now()
           FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[])
                WITH ORDINALITY AS d(provider, model, capability, successes, position)
          ORDER BY d.position
         ON CONFLICT (provider, model, capability) DO UPDATE SET
                successes = c.successes + EXCLUDED.successes, last_seen_at = now()";

/// Fast path: the next visible messages after msg_id $1, at most the call's batch size
/// (`%2$s`), skipping locked ones. The limit is a constant, not a parameter, so the statement
/// can keep one generic plan for the whole call (planning it cost 0.6 ms a batch of 1,000):
/// with `LIMIT $2` the generic plan assumed a tenth of the queue and deleted by scanning it.
const CLAIM_NEXT: &str = "SELECT ctid FROM pgmq.%1$I
                           WHERE msg_id > $1 AND vt <= clock_timestamp()
                           ORDER BY msg_id LIMIT %2$s FOR UPDATE SKIP LOCKED";
/// Careful path: exactly the messages $1, already read (and locked) with `pgmq.read`.
const CLAIM_READ: &str = "SELECT ctid FROM pgmq.%1$I WHERE msg_id = ANY ($1::int8[])";

/// Upserts the pending metrics and rollup rows (one statement each, in the caller's
/// transaction) and starts over empty.
fn flush(statements: &Statements, totals: &mut CallTotals) {
    let sorted = std::mem::take(totals).into_sorted();
    Spi::connect_mut(|client| upsert_deltas(client, statements, &sorted))
        .unwrap_or_else(|e| error!("centralcloud: updating metrics: {e}"));
}

/// Settings fixed for one call.
struct IngestConfig {
    queue: String,
    visibility_timeout_s: i32,
    batch_size: i32,
    max_retries: i32,
    /// Metrics and rollup rows a call keeps pending before it writes them.
    max_pending_rows: usize,
}

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    read: i64,
    ingested: i64,
    rejected: i64,
    duplicates: i64,
    retry_later: i64,
    failed: i64,
    batches: i32,
    /// Highest msg_id this call took: the fast path continues after it.
    last_msg_id: i64,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.read += o.read;
        self.ingested += o.ingested;
        self.rejected += o.rejected;
        self.duplicates += o.duplicates;
        self.retry_later += o.retry_later;
        self.failed += o.failed;
        self.batches += o.batches;
        self.last_msg_id = self.last_msg_id.max(o.last_msg_id);
    }
}

/// Drains the routing-event queue batch by batch until it has no visible message or
/// `max_batches` batches were taken, and says what it did.
#[pg_extern(security_definer)]
#[search_path(@extschema@, pg_catalog, pg_temp)]
fn ingest_routing_events(
    batch_size: default!(Option<i32>, "NULL"),
    max_batches: default!(Option<i32>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(read, i64),
        name!(ingested, i64),
        name!(rejected, i64),
        name!(duplicates, i64),
        name!(retry_later, i64),
        name!(dead_lettered_on_error, i64),
        name!(batches, i32),
        name!(ms, f64),
    ),
> {
    let started = Instant::now();
    crate::version::require_current();
    let config = IngestConfig::current(batch_size);
    ensure_queue_exists(&config.queue);
    ensure_partitions();
    let statements = Statements::prepare(&config.queue, config.batch_size);
    let _admission = begin_admission();

    let mut total = Counts::default();
    let mut totals = CallTotals::default();
    while max_batches.is_none_or(|max| total.batches < max) {
        let batch = ingest_batch(&config, &statements, total.last_msg_id, &mut totals);
        total.add(batch);
        if batch.read < i64::from(config.batch_size) {
            break;
        }
        if totals.pending_rows() > config.max_pending_rows {
            flush(&statements, &mut totals);
        }
    }
    flush(&statements, &mut totals);
    crate::health::evaluate_after_ingest();
    let ms = crate::units::ms(started.elapsed().as_secs_f64() * 1000.0);
    TableIterator::once((
        total.read,
        total.ingested,
        total.rejected,
        total.duplicates,
        total.retry_later,
        total.failed,
        total.batches,
        ms,
    ))
}

/// Ingest's view of a message: `{NULL, NULL, timestamp, score, response_time_ms,
/// timestamp_without_offset, instance_id, complexity, model, provider, outcome, capabilities
/// (an array literal), prefer, user_model_request}` when it is a valid routing event, otherwise
/// `{reason_code, reason}`. Every field is the value the validator checked (the timestamp
/// normalised to UTC, the response time rounded to whole ms), so PostgreSQL neither re-reads
/// the instance's text, whose rules differ at the edges (a score a hair above 5 that parses to
/// 5.0, timestamp forms), nor looks each field up in the message again.
/// Inside an ingest call, a valid event naming a model beyond the call's `Admission` is
/// `too_many_models`.
///
/// Stable, not immutable: the verdict depends on settings and on the transaction's start time
/// (the window around the server time), both fixed within a statement, like `now()`.
#[pg_extern(stable, parallel_safe)]
fn routing_event_verdict(body: Option<&str>) -> Vec<Option<String>> {
    let event = match judge(body) {
        Ok(event) => event,
        Err([code, reason]) => return vec![Some(code), Some(reason)],
    };
    // f64's Display is the shortest text that reads back as the same double.
    vec![
        None,
        None,
        Some(event.timestamp()),
        Some(event.score.to_string()),
        event.response_time_ms.map(|ms| ms.to_string()),
        Some(event.timestamp_without_offset.to_string()),
        Some(event.instance_id),
        Some(event.complexity.as_str().to_string()),
        Some(event.model),
        Some(event.provider),
        Some(event.outcome.as_str().to_string()),
        Some(text_array_literal(&event.capabilities)),
        event.prefer.map(|p| p.as_str().to_string()),
        event.user_model_request,
    ]
}

/// The validator's judgement of one message, under the running ingest call's admission:
/// the event, or `[reason_code, reason]`.
fn judge(body: Option<&str>) -> Result<RoutingEvent, [String; 2]> {
    admit(parse_event(body, &guc::limits()))
}

/// [`judge`] of a message as the queue stores it (its jsonb's binary form first).
fn judge_stored(body: Option<StoredJsonb<'_>>) -> Result<RoutingEvent, [String; 2]> {
    let limits = guc::limits();
    admit(match body {
        Some(body) => parse_stored_event(body.bytes, || body.text(), &limits),
        None => parse_event(None, &limits),
    })
}

/// A validator's verdict under the running ingest call's admission.
fn admit(verdict: Result<RoutingEvent, Rejection>) -> Result<RoutingEvent, [String; 2]> {
    let event = verdict.map_err(|why| [why.code().to_string(), why.to_string()])?;
    ADMISSION
        .with_borrow_mut(|a| a.as_mut().map_or(Ok(()), |a| a.admit(&event.model)))
        .map_err(|why| ["too_many_models".to_string(), why])?;
    Ok(event)
}

/// Ingest's judgement of one message in its batch statement: NULL when it is a valid routing
/// event, otherwise `{reason_code, reason}` (as `routing_event_verdict()`). Inside a batch, the
/// valid event is kept in this backend for `routing_event_rows()`; elsewhere nothing is kept.
/// Volatile: it has that side effect.
#[pg_extern(volatile, parallel_unsafe)]
fn routing_event_check(
    msg_id: i64,
    enqueued_at: TimestampWithTimeZone,
    body: Option<StoredJsonb<'_>>,
) -> Option<Vec<String>> {
    match judge_stored(body) {
        Ok(event) => {
            if JUDGING.get() {
                JUDGED.with_borrow_mut(|j| j.insert(msg_id, Judged { enqueued_at, event }));
            }
            None
        }
        Err(rejection) => Some(rejection.into()),
    }
}

/// The events `routing_event_check()` kept in this batch for these msg_ids, as the columns of
/// `routing_records` (the validator's values, typed; `capabilities_required` NULL for none). A
/// msg_id it did not keep is an error.
#[pg_extern(volatile, parallel_unsafe)]
fn routing_event_rows(
    msg_ids: Vec<i64>,
) -> TableIterator<
    'static,
    (
        name!(msg_id, i64),
        name!(timestamp, TimestampWithTimeZone),
        name!(instance_id, String),
        name!(complexity, &'static str),
        name!(model, String),
        name!(provider, String),
        name!(score, f64),
        name!(outcome, &'static str),
        name!(response_time_ms, Option<i32>),
        name!(capabilities_required, Option<Vec<String>>),
        name!(preference, Option<&'static str>),
        name!(user_model_request, Option<String>),
        name!(enqueued_at, TimestampWithTimeZone),
        name!(timestamp_without_offset, bool),
    ),
> {
    let rows: Vec<_> = JUDGED.with_borrow(|judged| {
        msg_ids
            .iter()
            .map(|id| match judged.get(id) {
                Some(j) => row_of(*id, j),
                None => error!("centralcloud: msg_id {id} was not judged in this batch"),
            })
            .collect()
    });
    TableIterator::new(rows)
}

type RecordRow = (
    i64,
    TimestampWithTimeZone,
    String,
    &'static str,
    String,
    String,
    f64,
    &'static str,
    Option<i32>,
    Option<Vec<String>>,
    Option<&'static str>,
    Option<String>,
    TimestampWithTimeZone,
    bool,
);

fn row_of(msg_id: i64, judged: &Judged) -> RecordRow {
    let e = &judged.event;
    (
        msg_id,
        timestamptz_of(e.micros),
        e.instance_id.clone(),
        e.complexity.as_str(),
        e.model.clone(),
        e.provider.clone(),
        e.score,
        e.outcome.as_str(),
        e.response_time_ms,
        // NULL for none (most events): the INSERT writes the column's empty array, not one
        // built per row.
        (!e.capabilities.is_empty()).then(|| e.capabilities.clone()),
        e.prefer.map(|p| p.as_str()),
        e.user_model_request.clone(),
        judged.enqueued_at,
        e.timestamp_without_offset,
    )
}

/// Microseconds since 1970 as a timestamptz (PostgreSQL counts from 2000).
fn timestamptz_of(unix_micros: i64) -> TimestampWithTimeZone {
    const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;
    TimestampWithTimeZone::try_from(unix_micros - PG_EPOCH_UNIX_MICROS)
        .unwrap_or_else(|e| error!("centralcloud: timestamp {unix_micros} µs: {e:?}"))
}

/// A valid event of the running batch, judged and waiting for the INSERT and aggregation.
struct Judged {
    enqueued_at: TimestampWithTimeZone,
    event: RoutingEvent,
}

/// While alive, `routing_event_check()` keeps what it judges valid; dropped at the end of a
/// batch statement's reading, or while an error unwinds it. The map keeps its capacity for the
/// call's next batch (growing it again each batch cost 3% of a call); the call frees it at its
/// end (`AdmissionScope`).
struct JudgedScope;

impl JudgedScope {
    fn begin() -> Self {
        JUDGED.with_borrow_mut(HashMap::clear);
        JUDGING.set(true);
        JudgedScope
    }
}

impl Drop for JudgedScope {
    fn drop(&mut self) {
        JUDGING.set(false);
        JUDGED.with_borrow_mut(HashMap::clear);
    }
}

/// `{"a","b"}`: a text[] literal that reads back as exactly these strings.
fn text_array_literal(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

thread_local! {
    /// The valid events of the running batch statement, by msg_id (kept only while JUDGING).
    static JUDGED: RefCell<HashMap<i64, Judged>> = RefCell::new(HashMap::new());
    static JUDGING: Cell<bool> = const { Cell::new(false) };
    /// The models the running ingest call admits (None outside ingest: routing_event_verdict
    /// called by hand judges the event alone).
    static ADMISSION: RefCell<Option<Admission>> = const { RefCell::new(None) };
}

/// While alive, this call's admission is in force; dropped at the end of the call, or while an
/// error unwinds it, so a later routing_event_verdict() by hand never sees a stale one. It also
/// frees the judged events' map, which kept its capacity from batch to batch.
struct AdmissionScope;

impl Drop for AdmissionScope {
    fn drop(&mut self) {
        ADMISSION.set(None);
        JUDGED.take();
    }
}

/// Loads the known models, and how many of them are new this hour, for this call.
fn begin_admission() -> AdmissionScope {
    let cap = guc::MAX_NEW_MODELS_PER_HOUR.get();
    let admission = Spi::connect(|client| -> SpiResult<Admission> {
        let mut recent = 0u64;
        let mut known = Vec::new();
        let rows = client.select(
            "SELECT model_name::text AS model, min(created_at) >= now() - interval '1 hour' AS recent
               FROM centralcloud.model_routing_metrics GROUP BY model_name",
            None,
            &[],
        )?;
        for row in rows {
            recent += u64::from(row.get_by_name::<bool, _>("recent")?.unwrap_or(false));
            known.push(row.get_by_name::<String, _>("model")?.unwrap_or_default());
        }
        Ok(Admission::new(known, recent, cap.max(0) as u64))
    })
    .unwrap_or_else(|e| error!("centralcloud: loading the known models: {e}"));
    ADMISSION.set(Some(admission));
    AdmissionScope
}

/// NULL when the message body is a valid routing event; otherwise `{reason_code, reason}`: for
/// operators checking an event by hand (ingest judges with `routing_event_check()`).
#[pg_extern(stable, parallel_safe)]
fn routing_event_rejection(body: Option<&str>) -> Option<Vec<String>> {
    let limits: Limits = guc::limits();
    parse_event(body, &limits)
        .err()
        .map(|why| vec![why.code().to_string(), why.to_string()])
}

impl IngestConfig {
    fn current(batch_size: Option<i32>) -> Self {
        let batch_size = batch_size.unwrap_or_else(|| guc::BATCH_SIZE.get());
        if !(1..=100_000).contains(&batch_size) {
            crate::spi_util::raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("centralcloud: batch_size must be between 1 and 100000, got {batch_size}"),
            );
        }
        IngestConfig {
            queue: guc::queue_name(),
            visibility_timeout_s: guc::VISIBILITY_TIMEOUT_S.get(),
            batch_size,
            max_retries: guc::MAX_RETRIES.get(),
            max_pending_rows: guc::INGEST_MAX_PENDING_ROWS.get() as usize,
        }
    }
}

/// Makes sure today's and tomorrow's partitions of routing_records exist (a cheap lookup once
/// they do; the worker and pg_cron create them ahead through run_maintenance()).
fn ensure_partitions() {
    Spi::run("SELECT centralcloud.ensure_routing_partitions()")
        .unwrap_or_else(|e| error!("centralcloud: creating routing_records partitions: {e}"));
}

/// The queue must exist; if it was re-created (pgmq.create), the grants that let publishers
/// send to it are gone with the old table, so they are applied again here.
fn ensure_queue_exists(queue: &str) {
    let state = Spi::get_two_with_args::<bool, bool>(
        "SELECT q.found,
                CASE WHEN q.found
                     THEN has_column_privilege('centralcloud_publisher',
                                               format('pgmq.%I', pgmq.format_table_name($1, 'q')),
                                               'message', 'INSERT')
                END
           FROM (SELECT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = $1) AS found) AS q",
        &[queue.into()],
    );
    match state {
        Ok((Some(true), Some(true))) => {}
        Ok((Some(true), _)) => {
            Spi::run("SELECT centralcloud.grant_queue_privileges()").unwrap_or_else(|e| {
                error!("centralcloud: granting publishers access to \"{queue}\": {e}")
            });
            log!("centralcloud: queue \"{queue}\" was re-created; publisher and operator grants applied again");
        }
        _ => error_with_hint(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("centralcloud: pgmq queue \"{queue}\" does not exist"),
            format!("Create it with SELECT pgmq.create('{queue}') (the next ingest grants centralcloud_publisher what pgmq.send needs; SELECT centralcloud.grant_queue_privileges() does it at once), or point centralcloud.queue_name at the queue routers publish to."),
        ),
    }
}

/// This call's statements, planned once: the two batch variants and the four upserts.
struct Statements {
    next: OwnedPreparedStatement,
    read: OwnedPreparedStatement,
    upsert: OwnedPreparedStatement,
    rollup: OwnedPreparedStatement,
    fleet: OwnedPreparedStatement,
    outcomes: OwnedPreparedStatement,
    capabilities: OwnedPreparedStatement,
}

impl Statements {
    fn prepare(queue: &str, batch_size: i32) -> Self {
        Spi::connect(|client| -> SpiResult<Self> {
            let prepare = |claim: &str,
                           on_conflict: &str,
                           args: &[PgOid]|
             -> SpiResult<OwnedPreparedStatement> {
                // format() quotes the table name (%I); nothing else varies.
                let sql = client
                    .select(
                        "SELECT format($1, pgmq.format_table_name($2, 'q'),
                                       format($3, pgmq.format_table_name($2, 'q'), $5), $4::text)",
                        None,
                        &[
                            BATCH_SQL.into(),
                            queue.into(),
                            claim.into(),
                            on_conflict.into(),
                            batch_size.into(),
                        ],
                    )?
                    .first_value::<String>()?
                    .unwrap_or_default();
                Ok(client.prepare_mut(sql.as_str(), args)?.keep())
            };
            Ok(Statements {
                next: prepare(CLAIM_NEXT, "", &[PgBuiltInOids::INT8OID.into()])?,
                read: prepare(
                    CLAIM_READ,
                    "ON CONFLICT (msg_id, received_at) DO NOTHING",
                    &[PgBuiltInOids::INT8ARRAYOID.into()],
                )?,
                upsert: client.prepare_mut(UPSERT_SQL, &upsert_arg_types())?.keep(),
                rollup: client.prepare_mut(ROLLUP_SQL, &rollup_arg_types())?.keep(),
                fleet: client.prepare_mut(FLEET_SQL, &fleet_arg_types())?.keep(),
                outcomes: client
                    .prepare_mut(OUTCOMES_SQL, &outcomes_arg_types())?
                    .keep(),
                capabilities: client
                    .prepare_mut(CAPABILITIES_SQL, &capabilities_arg_types())?
                    .keep(),
            })
        })
        .unwrap_or_else(|e| error!("centralcloud: preparing ingest for queue \"{queue}\": {e}"))
    }
}

/// Argument types of the counter columns both upserts bind after their keys.
const COUNTER_ARG_TYPES: [PgBuiltInOids; 8] = [
    PgBuiltInOids::INT8ARRAYOID,
    PgBuiltInOids::INT8ARRAYOID,
    PgBuiltInOids::INT8ARRAYOID,
    PgBuiltInOids::INT8ARRAYOID,
    PgBuiltInOids::INT8ARRAYOID,
    PgBuiltInOids::INT4ARRAYOID,
    PgBuiltInOids::INT4ARRAYOID,
    PgBuiltInOids::BYTEAARRAYOID,
];

fn upsert_arg_types() -> Vec<PgOid> {
    let keys = [PgBuiltInOids::TEXTARRAYOID, PgBuiltInOids::TEXTARRAYOID];
    keys.into_iter()
        .chain(COUNTER_ARG_TYPES)
        .chain([PgBuiltInOids::FLOAT8ARRAYOID])
        .map(PgOid::from)
        .collect()
}

fn rollup_arg_types() -> Vec<PgOid> {
    let keys = [PgBuiltInOids::INT8ARRAYOID]
        .into_iter()
        .chain([PgBuiltInOids::TEXTARRAYOID; 4]);
    keys.chain(COUNTER_ARG_TYPES).map(PgOid::from).collect()
}

fn fleet_arg_types() -> Vec<PgOid> {
    let keys = [
        PgBuiltInOids::TEXTARRAYOID,
        PgBuiltInOids::TEXTARRAYOID,
        PgBuiltInOids::INT8ARRAYOID,
        PgBuiltInOids::TEXTARRAYOID,
    ];
    keys.into_iter()
        .chain(COUNTER_ARG_TYPES)
        .map(PgOid::from)
        .collect()
}

fn outcomes_arg_types() -> Vec<PgOid> {
    [PgBuiltInOids::TEXTARRAYOID; 2]
        .into_iter()
        .chain([PgBuiltInOids::INT8ARRAYOID; 3])
        .map(PgOid::from)
        .collect()
}

fn capabilities_arg_types() -> Vec<PgOid> {
    [PgBuiltInOids::TEXTARRAYOID; 3]
        .into_iter()
        .chain([PgBuiltInOids::INT8ARRAYOID])
        .map(PgOid::from)
        .collect()
}

/// One batch on the fast path; if it fails, the careful path over the next `batch_size`.
fn ingest_batch(
    config: &IngestConfig,
    statements: &Statements,
    after: i64,
    totals: &mut CallTotals,
) -> Counts {
    let args = [after.into()];
    match subxact::run_unless_transient(|| apply(&statements.next, &args)) {
        Ok((counts, events)) => {
            add_events(totals, &events);
            counts
        }
        Err(failure) => {
            debug1!("centralcloud: batch failed ({failure}); taking the careful path");
            ingest_carefully(config, statements, totals)
        }
    }
}

/// Adds a batch's recorded events to the call's totals (once its subtransaction committed).
fn add_events(totals: &mut CallTotals, events: &[RoutingEvent]) {
    for event in events {
        totals.add(&sample_of(event));
    }
}

/// Runs a batch statement; returns what it did and the events it recorded.
fn apply(batch: &OwnedPreparedStatement, args: &[DatumWithOid<'_>]) -> (Counts, Vec<RoutingEvent>) {
    let _judged = JudgedScope::begin();
    Spi::connect_mut(|client| -> SpiResult<(Counts, Vec<RoutingEvent>)> {
        let mut counts = Counts::default();
        for row in client.update(batch, None, args)? {
            match row.get_by_name::<String, _>("reason_code")? {
                None => {
                    counts.ingested = row.get_by_name("recorded")?.unwrap_or_default();
                    counts.last_msg_id = row.get_by_name("last_msg_id")?.unwrap_or_default();
                }
                Some(code) if code == "duplicate" => {
                    counts.duplicates += 1;
                    let msg_id = row.get_by_name::<i64, _>("msg_id")?.unwrap_or_default();
                    JUDGED.with_borrow_mut(|j| j.remove(&msg_id));
                }
                Some(_) => counts.rejected += 1,
            }
        }
        counts.read = counts.ingested + counts.duplicates + counts.rejected;
        counts.batches = i32::from(counts.read > 0);
        Ok((counts, recorded_events(counts.ingested)))
    })
    .unwrap_or_else(|e| error!("centralcloud: {e}"))
}

/// The recorded events of the batch, in msg_id order (a new cell's first score is its first
/// event's): what routing_event_check() kept, the duplicates taken out, i.e. the values
/// routing_event_rows() gave the INSERT.
fn recorded_events(recorded: i64) -> Vec<RoutingEvent> {
    let mut kept: Vec<(i64, Judged)> = JUDGED.with_borrow_mut(|j| j.drain().collect());
    if kept.len() as i64 != recorded {
        error!(
            "centralcloud: {recorded} messages recorded, but {} judged valid and not duplicates in their batch",
            kept.len()
        );
    }
    kept.sort_unstable_by_key(|(msg_id, _)| *msg_id);
    kept.into_iter().map(|(_, judged)| judged.event).collect()
}

/// What aggregation needs of a recorded event.
fn sample_of(event: &RoutingEvent) -> Sample<'_> {
    Sample {
        hour: event.micros.div_euclid(MICROS_PER_HOUR) * 3600,
        instance_id: &event.instance_id,
        provider: &event.provider,
        model: &event.model,
        complexity: event.complexity,
        outcome: event.outcome,
        response_time_ms: event.response_time_ms,
        score: event.score,
        capabilities: &event.capabilities,
    }
}

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// One message as `pgmq.read` returned it on the careful path.
struct ReadMessage {
    msg_id: i64,
    read_ct: i32,
    /// ISO 8601, as `to_json` writes a timestamptz.
    enqueued_at: String,
    body: Option<String>,
}

/// After a failed batch: `pgmq.read` (bumping `read_ct`), then the read messages together with
/// duplicates tolerated; only if that fails too, each message alone.
fn ingest_carefully(
    config: &IngestConfig,
    statements: &Statements,
    totals: &mut CallTotals,
) -> Counts {
    let messages = read_batch(config);
    let ids: Vec<i64> = messages.iter().map(|m| m.msg_id).collect();
    let all = [ids.into()];
    if let Ok((counts, events)) = subxact::run_unless_transient(|| apply(&statements.read, &all)) {
        add_events(totals, &events);
        return counts;
    }
    let mut counts = Counts {
        batches: 1,
        ..Counts::default()
    };
    for message in &messages {
        let one = [vec![message.msg_id].into()];
        match subxact::run_unless_transient(|| apply(&statements.read, &one)) {
            Ok((applied, events)) => {
                add_events(totals, &events);
                counts.add(Counts {
                    batches: 0,
                    ..applied
                })
            }
            Err(failure) => counts.add(retry_or_dead_letter(config, message, &failure.to_string())),
        }
    }
    counts
}

fn read_batch(config: &IngestConfig) -> Vec<ReadMessage> {
    Spi::connect_mut(|client| {
        client
            .update(
                "SELECT msg_id, read_ct, to_json(enqueued_at) #>> '{}', message::text
                   FROM pgmq.read($1, $2, $3)",
                None,
                &[
                    config.queue.as_str().into(),
                    config.visibility_timeout_s.into(),
                    config.batch_size.into(),
                ],
            )?
            .map(|row| {
                Ok(ReadMessage {
                    msg_id: row.get::<i64>(1)?.unwrap_or_default(),
                    read_ct: row.get::<i32>(2)?.unwrap_or_default(),
                    enqueued_at: row.get::<String>(3)?.unwrap_or_default(),
                    body: row.get::<String>(4)?,
                })
            })
            .collect::<SpiResult<Vec<_>>>()
    })
    .unwrap_or_else(|e| {
        error!(
            "centralcloud: reading queue \"{}\" failed: {e}",
            config.queue
        )
    })
}

/// A message that failed alone: left for a later read, or dead-lettered once it has been read
/// `max_retries` times.
fn retry_or_dead_letter(config: &IngestConfig, message: &ReadMessage, error: &str) -> Counts {
    let msg_id = message.msg_id;
    let counted = Counts {
        read: 1,
        last_msg_id: msg_id,
        ..Counts::default()
    };
    if message.read_ct < config.max_retries {
        warning!(
            "centralcloud: msg_id {msg_id} failed on read {} of {}, left in the queue for a retry: {error}",
            message.read_ct,
            config.max_retries
        );
        return Counts {
            retry_later: 1,
            ..counted
        };
    }
    let reason = format!(
        "processing failed on read {} (max_retries {}): {error}",
        message.read_ct, config.max_retries
    );
    match subxact::run_unless_transient(|| dead_letter_failed(config, message, &reason)) {
        Ok(()) => {
            warning!("centralcloud: msg_id {msg_id} dead-lettered: {reason}");
            Counts {
                failed: 1,
                ..counted
            }
        }
        Err(dl_error) => {
            warning!("centralcloud: msg_id {msg_id} could not be dead-lettered either: {dl_error}");
            Counts {
                retry_later: 1,
                ..counted
            }
        }
    }
}

/// Moves a message that keeps failing to the dead letters, with the error text.
fn dead_letter_failed(config: &IngestConfig, message: &ReadMessage, reason: &str) {
    Spi::connect_mut(|client| -> SpiResult<()> {
        client.update(
            "INSERT INTO centralcloud.routing_events_rejected
                    (msg_id, message, reason_code, reason, read_ct, enqueued_at, message_prefix,
                     message_bytes, message_sha256)
             SELECT $1, b.kept, 'processing_error', $3, $4, $5::timestamptz, b.prefix, b.bytes,
                    b.sha256
               FROM centralcloud.dead_letter_body($2::jsonb) AS b",
            None,
            &[
                message.msg_id.into(),
                message.body.as_deref().into(),
                reason.into(),
                message.read_ct.into(),
                message.enqueued_at.as_str().into(),
            ],
        )?;
        client.update(
            "SELECT pgmq.delete($1, $2::int8)",
            None,
            &[config.queue.as_str().into(), message.msg_id.into()],
        )?;
        Ok(())
    })
    .unwrap_or_else(|e| error!("centralcloud: {e}"))
}

/// The counter columns of a set of deltas, in key order: what both upserts bind after the keys.
struct CounterColumns {
    routed: Vec<i64>,
    success: Vec<i64>,
    failure: Vec<i64>,
    latency_count: Vec<i64>,
    latency_sum: Vec<i64>,
    latency_min: Vec<Option<i32>>,
    latency_max: Vec<Option<i32>>,
    sketches: Vec<Option<Vec<u8>>>,
}

impl CounterColumns {
    fn of<'a>(deltas: impl Iterator<Item = &'a CellDelta> + Clone) -> Self {
        let column = |f: fn(&CellDelta) -> i64| deltas.clone().map(f).collect::<Vec<i64>>();
        CounterColumns {
            routed: column(|c| c.routed),
            success: column(|c| c.success),
            failure: column(|c| c.failure),
            latency_count: column(|c| c.latency_count),
            latency_sum: column(|c| c.latency_sum),
            latency_min: deltas.clone().map(|c| c.latency_min).collect(),
            latency_max: deltas.clone().map(|c| c.latency_max).collect(),
            sketches: deltas
                .map(|c| (c.latency_count > 0).then(|| c.sketch.to_bytes()))
                .collect(),
        }
    }

    fn into_args(self) -> [DatumWithOid<'static>; 8] {
        [
            self.routed.into(),
            self.success.into(),
            self.failure.into(),
            self.latency_count.into(),
            self.latency_sum.into(),
            self.latency_min.into(),
            self.latency_max.into(),
            self.sketches.into(),
        ]
    }
}

/// One upsert per metrics cell and per rollup row, each in key order (the BTreeMaps'),
/// adding counters and merging sketches.
fn upsert_deltas(
    client: &mut SpiClient<'_>,
    statements: &Statements,
    deltas: &SortedTotals,
) -> SpiResult<()> {
    if deltas.cells.is_empty() {
        return Ok(());
    }
    let cells = &deltas.cells;
    let mut args: Vec<DatumWithOid<'_>> = vec![
        cells
            .keys()
            .map(|k| k.model.as_str())
            .collect::<Vec<_>>()
            .into(),
        cells
            .keys()
            .map(|k| k.complexity)
            .collect::<Vec<_>>()
            .into(),
    ];
    args.extend(CounterColumns::of(cells.values()).into_args());
    let first_scores: Vec<f64> = cells
        .values()
        .map(|c| c.first_score.unwrap_or(0.0))
        .collect();
    args.push(first_scores.into());
    client.update(&statements.upsert, None, &args)?;

    let rollups = &deltas.rollups;
    let mut args: Vec<DatumWithOid<'_>> = vec![
        rollups.keys().map(|k| k.hour).collect::<Vec<_>>().into(),
        rollups
            .keys()
            .map(|k| k.instance_id.as_str())
            .collect::<Vec<_>>()
            .into(),
        rollups
            .keys()
            .map(|k| k.model.as_str())
            .collect::<Vec<_>>()
            .into(),
        rollups
            .keys()
            .map(|k| k.complexity)
            .collect::<Vec<_>>()
            .into(),
        rollups
            .keys()
            .map(|k| k.provider.as_str())
            .collect::<Vec<_>>()
            .into(),
    ];
    args.extend(CounterColumns::of(rollups.values()).into_args());
    client.update(&statements.rollup, None, &args)?;
    upsert_fleet(client, statements, &fleet_of(rollups))?;
    upsert_pairs(client, statements, deltas)
}

/// The rollup rows of the call summed over instances, after the rollup (in every session).
fn upsert_fleet(
    client: &mut SpiClient<'_>,
    statements: &Statements,
    fleet: &BTreeMap<FleetKey, CellDelta>,
) -> SpiResult<()> {
    let mut args: Vec<DatumWithOid<'_>> = vec![
        fleet
            .keys()
            .map(|k| k.model.as_str())
            .collect::<Vec<_>>()
            .into(),
        fleet
            .keys()
            .map(|k| k.complexity)
            .collect::<Vec<_>>()
            .into(),
        fleet.keys().map(|k| k.hour).collect::<Vec<_>>().into(),
        fleet
            .keys()
            .map(|k| k.provider.as_str())
            .collect::<Vec<_>>()
            .into(),
    ];
    args.extend(CounterColumns::of(fleet.values()).into_args());
    client.update(&statements.fleet, None, &args)?;
    Ok(())
}

/// The health evidence and the learned capabilities of the pending pairs, in key order (after
/// the metrics and rollups, in every session: no deadlock). With health off
/// (`centralcloud.health_window` 0) no evidence is kept: nothing would delete it.
fn upsert_pairs(
    client: &mut SpiClient<'_>,
    statements: &Statements,
    deltas: &SortedTotals,
) -> SpiResult<()> {
    if guc::HEALTH_WINDOW_S.get() > 0 {
        upsert_outcomes(client, statements, &deltas.outcomes)?;
    }
    upsert_capabilities(client, statements, &deltas.capabilities)
}

/// Each pair's outcomes of the call, in the second ingest received them.
fn upsert_outcomes(
    client: &mut SpiClient<'_>,
    statements: &Statements,
    outcomes: &BTreeMap<PairKey, OutcomeDelta>,
) -> SpiResult<()> {
    let count = |f: fn(&OutcomeDelta) -> i64| outcomes.values().map(f).collect::<Vec<i64>>();
    client.update(
        &statements.outcomes,
        None,
        &[
            outcomes
                .keys()
                .map(|k| k.provider.as_str())
                .collect::<Vec<_>>()
                .into(),
            outcomes
                .keys()
                .map(|k| k.model.as_str())
                .collect::<Vec<_>>()
                .into(),
            count(|d| d.routed).into(),
            count(|d| d.success).into(),
            count(|d| d.failure).into(),
        ],
    )?;
    Ok(())
}

fn upsert_capabilities(
    client: &mut SpiClient<'_>,
    statements: &Statements,
    learned: &BTreeMap<CapabilityKey, i64>,
) -> SpiResult<()> {
    if learned.is_empty() {
        return Ok(());
    }
    client.update(
        &statements.capabilities,
        None,
        &[
            learned
                .keys()
                .map(|k| k.provider.as_str())
                .collect::<Vec<_>>()
                .into(),
            learned
                .keys()
                .map(|k| k.model.as_str())
                .collect::<Vec<_>>()
                .into(),
            learned
                .keys()
                .map(|k| k.capability.as_str())
                .collect::<Vec<_>>()
                .into(),
            learned.values().copied().collect::<Vec<i64>>().into(),
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{parse_event, Limits};

    fn event(timestamp: &str, outcome: &str) -> RoutingEvent {
        let body = format!(
            r#"{{"timestamp": "{timestamp}", "instance_id": "i-1",
                 "routing_decision": {{"complexity": "simple", "selected_model": "m",
                   "selected_provider": "p", "complexity_score": 1.5, "outcome": "{outcome}",
                   "response_time_ms": 120, "capabilities_required": ["vision"]}}}}"#
        );
        parse_event(Some(&body), &Limits::default()).expect("a valid event")
    }

    #[test]
    fn sample_hour_is_the_start_of_the_utc_hour() {
        // 2025-10-27T06:59:59.999999Z and 06:00:00Z fall in the hour of 06:00:00Z.
        let six = 1_761_544_800;
        assert_eq!(
            sample_of(&event("2025-10-27T06:59:59.999999Z", "routed")).hour,
            six
        );
        assert_eq!(
            sample_of(&event("2025-10-27T06:00:00Z", "routed")).hour,
            six
        );
        assert_eq!(
            sample_of(&event("2025-10-27T08:30:00+02:00", "routed")).hour,
            six
        );
        assert_eq!(sample_of(&event("1970-01-01T00:00:00Z", "routed")).hour, 0);
    }

    #[test]
    fn sample_carries_the_validated_fields() {
        let success = event("2025-10-27T06:00:00Z", "success");
        let sample = sample_of(&success);
        assert_eq!(
            (sample.instance_id, sample.model, sample.provider),
            ("i-1", "m", "p")
        );
        assert_eq!(sample.capabilities, ["vision".to_string()]);
        assert_eq!(sample.response_time_ms, Some(120));
        assert_eq!(sample.score, 1.5);
    }
}

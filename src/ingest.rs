//! `centralcloud.ingest_routing_events()`: the pgmq queue becomes the audit trail
//! (`routing_records`), per-cell metrics (`model_routing_metrics`) and dead letters
//! (`routing_events_rejected`). Thin SPI layer over `event` and `aggregate`.
//!
//! Per batch, inside the caller's transaction:
//! 1. `pgmq.read` takes up to `batch_size` visible messages (SKIP LOCKED: concurrent callers
//!    get disjoint batches) and bumps their `read_ct`.
//! 2. In a subtransaction: valid events are inserted set-based (`ON CONFLICT (msg_id) DO
//!    NOTHING`, so a message never lands twice), the inserted ones are aggregated and each
//!    cell is upserted once in key order, invalid ones are dead-lettered with their reason, and
//!    every message of the batch is deleted from the queue. All or nothing.
//! 3. If the subtransaction fails, each message is retried alone in its own subtransaction;
//!    one that still fails stays in the queue (its `read_ct` bump survives, the work does not)
//!    until it has been read `centralcloud.max_retries` times, then it is dead-lettered with
//!    the error text. A poison message never blocks the queue.

use crate::aggregate::{aggregate, CellDelta, CellKey};
use crate::event::{parse_event, Choice, Limits, Rejection, RoutingEvent};
use crate::{guc, subxact};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

/// One message as `pgmq.read` returned it.
struct QueueMessage {
    msg_id: i64,
    read_ct: i32,
    /// When pgmq received it (ISO 8601), stored as `received_at`.
    enqueued_at: String,
    body: Option<String>,
}

/// Settings fixed for one call.
struct IngestConfig {
    queue: String,
    visibility_timeout_s: i32,
    batch_size: i32,
    max_retries: i32,
    limits: Limits,
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
    }
}

/// Drains the routing-event queue: validates, records, aggregates and deletes, batch by batch,
/// until the queue has no visible message or `max_batches` batches were taken.
#[pg_extern]
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
    let config = IngestConfig::current(batch_size);
    ensure_queue_exists(&config.queue);

    let mut total = Counts::default();
    while max_batches.is_none_or(|max| total.batches < max) {
        let messages = read_batch(&config);
        if messages.is_empty() {
            break;
        }
        let full = messages.len() as i32 == config.batch_size;
        total.add(process_batch(&config, &messages));
        if !full {
            break;
        }
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
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

impl IngestConfig {
    fn current(batch_size: Option<i32>) -> Self {
        let batch_size = batch_size.unwrap_or_else(|| guc::BATCH_SIZE.get());
        if !(1..=100_000).contains(&batch_size) {
            error!("centralcloud: batch_size must be between 1 and 100000, got {batch_size}");
        }
        IngestConfig {
            queue: guc::queue_name(),
            visibility_timeout_s: guc::VISIBILITY_TIMEOUT_S.get(),
            batch_size,
            max_retries: guc::MAX_RETRIES.get(),
            limits: guc::limits(),
        }
    }
}

fn ensure_queue_exists(queue: &str) {
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = $1)",
        &[queue.into()],
    );
    if exists != Ok(Some(true)) {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("centralcloud: pgmq queue \"{queue}\" does not exist"),
            "Create it with SELECT pgmq.create(...), or point centralcloud.queue_name at the queue routers publish to."
        );
    }
}

fn read_batch(config: &IngestConfig) -> Vec<QueueMessage> {
    Spi::connect_mut(|client| {
        let rows = client.update(
            "SELECT msg_id, read_ct, to_json(enqueued_at) #>> '{}', message::text
               FROM pgmq.read($1, $2, $3)",
            None,
            &[
                config.queue.as_str().into(),
                config.visibility_timeout_s.into(),
                config.batch_size.into(),
            ],
        )?;
        rows.map(|row| {
            Ok(QueueMessage {
                msg_id: row.get::<i64>(1)?.unwrap_or_default(),
                read_ct: row.get::<i32>(2)?.unwrap_or_default(),
                enqueued_at: row.get::<String>(3)?.unwrap_or_default(),
                body: row.get::<String>(4)?,
            })
        })
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| {
        error!(
            "centralcloud: reading queue \"{}\" failed: {e}",
            config.queue
        )
    })
}

/// Applies one batch; on failure, falls back to one message at a time.
fn process_batch(config: &IngestConfig, messages: &[QueueMessage]) -> Counts {
    let mut counts = Counts {
        read: messages.len() as i64,
        batches: 1,
        ..Counts::default()
    };
    match subxact::run(|| apply(config, messages)) {
        Ok(applied) => counts.add(applied),
        Err(batch_error) => {
            debug1!(
                "centralcloud: batch of {} failed ({batch_error}); retrying one by one",
                messages.len()
            );
            for message in messages {
                counts.add(process_alone(config, message));
            }
        }
    }
    counts
}

fn process_alone(config: &IngestConfig, message: &QueueMessage) -> Counts {
    let error = match subxact::run(|| apply(config, std::slice::from_ref(message))) {
        Ok(applied) => return applied,
        Err(error) => error,
    };
    if message.read_ct < config.max_retries {
        warning!(
            "centralcloud: msg_id {} failed on read {} of {}, left in the queue for a retry: {error}",
            message.msg_id,
            message.read_ct,
            config.max_retries
        );
        return Counts {
            retry_later: 1,
            ..Counts::default()
        };
    }
    let reason = format!(
        "processing failed on read {} (max_retries {}): {error}",
        message.read_ct, config.max_retries
    );
    match subxact::run(|| dead_letter_failed(config, message, &reason)) {
        Ok(()) => {
            warning!(
                "centralcloud: msg_id {} dead-lettered: {reason}",
                message.msg_id
            );
            Counts {
                failed: 1,
                ..Counts::default()
            }
        }
        Err(dl_error) => {
            warning!(
                "centralcloud: msg_id {} could not be dead-lettered either: {dl_error}",
                message.msg_id
            );
            Counts {
                retry_later: 1,
                ..Counts::default()
            }
        }
    }
}

/// Everything a batch does, as one unit: records, metrics, dead letters, queue deletes.
fn apply(config: &IngestConfig, messages: &[QueueMessage]) -> Counts {
    let mut valid: Vec<(&QueueMessage, RoutingEvent)> = Vec::with_capacity(messages.len());
    let mut rejected: Vec<(&QueueMessage, Rejection)> = Vec::new();
    for m in messages {
        match parse_event(m.body.as_deref(), &config.limits) {
            Ok(event) => valid.push((m, event)),
            Err(why) => rejected.push((m, why)),
        }
    }

    let result = Spi::connect_mut(|client| -> Result<Counts, pgrx::spi::Error> {
        let inserted = insert_records(client, &valid)?;
        let mut duplicates = 0;
        for (m, _) in valid.iter().filter(|(m, _)| !inserted.contains(&m.msg_id)) {
            rejected.push((m, Rejection::Duplicate { msg_id: m.msg_id }));
            duplicates += 1;
        }
        let cells = aggregate(
            valid
                .iter()
                .filter(|(m, _)| inserted.contains(&m.msg_id))
                .map(|(_, e)| e),
        );
        upsert_metrics(client, &cells)?;
        insert_rejections(client, &rejected)?;
        delete_messages(client, &config.queue, messages)?;
        Ok(Counts {
            ingested: inserted.len() as i64,
            rejected: rejected.len() as i64 - duplicates,
            duplicates,
            ..Counts::default()
        })
    });
    result.unwrap_or_else(|e| error!("centralcloud: {e}"))
}

/// A routing_records row as `json_to_recordset` reads it: the whole batch is one parameter.
#[derive(Serialize)]
struct RecordRow<'a> {
    msg_id: i64,
    timestamp: &'a str,
    instance_id: &'a str,
    complexity: &'static str,
    model: &'a str,
    provider: &'a str,
    score: f64,
    outcome: &'static str,
    response_time_ms: Option<i32>,
    capabilities_required: &'a [String],
    preference: Option<&'static str>,
    user_model_request: Option<&'a str>,
    received_at: &'a str,
}

/// Inserts the valid events; returns the msg_ids actually inserted (the others were duplicates).
fn insert_records(
    client: &mut SpiClient<'_>,
    valid: &[(&QueueMessage, RoutingEvent)],
) -> Result<HashSet<i64>, pgrx::spi::Error> {
    if valid.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<RecordRow> = valid
        .iter()
        .map(|(m, e)| RecordRow {
            msg_id: m.msg_id,
            timestamp: &e.timestamp,
            instance_id: &e.instance_id,
            complexity: e.complexity.as_str(),
            model: &e.model,
            provider: &e.provider,
            score: e.score,
            outcome: e.outcome.as_str(),
            response_time_ms: e.response_time_ms,
            capabilities_required: &e.capabilities,
            preference: e.prefer.map(|p| p.as_str()),
            user_model_request: e.user_model_request.as_deref(),
            received_at: &m.enqueued_at,
        })
        .collect();
    let json = serde_json::to_string(&rows).expect("records serialise");
    let inserted = client.update(
        r#"INSERT INTO centralcloud.routing_records
               (msg_id, "timestamp", instance_id, complexity, model, provider, score, outcome,
                response_time_ms, capabilities_required, preference, user_model_request, received_at)
           SELECT r.msg_id, r."timestamp", r.instance_id, r.complexity, r.model, r.provider, r.score,
                  r.outcome, r.response_time_ms, r.capabilities_required, r.preference,
                  r.user_model_request, r.received_at
             FROM json_to_recordset($1::json) AS r(
                  msg_id bigint, "timestamp" timestamptz, instance_id text, complexity text,
                  model text, provider text, score float8, outcome text, response_time_ms integer,
                  capabilities_required text[], preference text, user_model_request text,
                  received_at timestamptz)
           ON CONFLICT (msg_id) DO NOTHING
           RETURNING msg_id"#,
        None,
        &[json.into()],
    )?;
    inserted
        .map(|row| row.get::<i64>(1).map(|id| id.unwrap_or_default()))
        .collect()
}

/// One upsert per cell, in key order (the BTreeMap's), merging counters and sketches.
fn upsert_metrics(
    client: &mut SpiClient<'_>,
    cells: &BTreeMap<CellKey, CellDelta>,
) -> Result<(), pgrx::spi::Error> {
    if cells.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&CellDelta) -> i64| cells.values().map(f).collect::<Vec<i64>>();
    let models: Vec<&str> = cells.keys().map(|k| k.model.as_str()).collect();
    let complexities: Vec<&str> = cells.keys().map(|k| k.complexity).collect();
    let latency_min: Vec<Option<i32>> = cells.values().map(|c| c.latency_min).collect();
    let latency_max: Vec<Option<i32>> = cells.values().map(|c| c.latency_max).collect();
    let sketches: Vec<Option<Vec<u8>>> = cells
        .values()
        .map(|c| (c.latency_count > 0).then(|| c.sketch.to_bytes()))
        .collect();
    client.update(
        "INSERT INTO centralcloud.model_routing_metrics AS m
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
                updated_at = now()",
        None,
        &[
            models.into(),
            complexities.into(),
            column(|c| c.routed).into(),
            column(|c| c.success).into(),
            column(|c| c.failure).into(),
            column(|c| c.latency_count).into(),
            column(|c| c.latency_sum).into(),
            latency_min.into(),
            latency_max.into(),
            sketches.into(),
        ],
    )?;
    Ok(())
}

fn insert_rejections(
    client: &mut SpiClient<'_>,
    rejected: &[(&QueueMessage, Rejection)],
) -> Result<(), pgrx::spi::Error> {
    if rejected.is_empty() {
        return Ok(());
    }
    let reasons: Vec<(String, String)> = rejected
        .iter()
        .map(|(_, r)| (r.code().to_string(), r.to_string()))
        .collect();
    insert_dead_letters(client, rejected.iter().map(|(m, _)| *m), reasons)
}

fn dead_letter_failed(config: &IngestConfig, message: &QueueMessage, reason: &str) {
    Spi::connect_mut(|client| {
        insert_dead_letters(
            client,
            std::iter::once(message),
            vec![("processing_error".into(), reason.into())],
        )?;
        delete_messages(client, &config.queue, std::slice::from_ref(message))
    })
    .unwrap_or_else(|e| error!("centralcloud: {e}"))
}

fn insert_dead_letters<'m>(
    client: &mut SpiClient<'_>,
    messages: impl Iterator<Item = &'m QueueMessage>,
    reasons: Vec<(String, String)>,
) -> Result<(), pgrx::spi::Error> {
    let mut ids = Vec::new();
    let mut bodies = Vec::new();
    let mut read_cts = Vec::new();
    let mut enqueued = Vec::new();
    for m in messages {
        ids.push(m.msg_id);
        bodies.push(m.body.as_deref());
        read_cts.push(m.read_ct);
        enqueued.push(m.enqueued_at.as_str());
    }
    let (codes, texts): (Vec<String>, Vec<String>) = reasons.into_iter().unzip();
    client.update(
        "INSERT INTO centralcloud.routing_events_rejected
               (msg_id, message, reason_code, reason, read_ct, enqueued_at)
         SELECT r.msg_id, r.body::jsonb, r.code, r.reason, r.read_ct, r.enqueued_at::timestamptz
           FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::text[])
                AS r(msg_id, body, code, reason, read_ct, enqueued_at)",
        None,
        &[
            ids.into(),
            bodies.into(),
            codes.into(),
            texts.into(),
            read_cts.into(),
            enqueued.into(),
        ],
    )?;
    Ok(())
}

fn delete_messages(
    client: &mut SpiClient<'_>,
    queue: &str,
    messages: &[QueueMessage],
) -> Result<(), pgrx::spi::Error> {
    let ids: Vec<i64> = messages.iter().map(|m| m.msg_id).collect();
    client.update(
        "SELECT pgmq.delete($1, $2::int8[])",
        None,
        &[queue.into(), ids.into()],
    )?;
    Ok(())
}

//! Publishing learned scores back to every router instance through pgmq topics.
//!
//! The seed sends each update to one queue "that all instances listen to", but a pgmq message
//! is consumed by one reader only, so most instances would never see it. Here every update is
//! sent under one routing key; each subscribed instance has its own queue bound to that key (so
//! every instance gets every update, once, in order), and the seed's plain `model_score_updates`
//! queue is bound too, for consumers written to the seed.
//! Health events (`model_health_update`) go out the same way under their own key, which every
//! subscribed instance's queue is bound to as well: each instance reads score and health events
//! from one queue in the order they happened, and the seed's plain queue, whose consumers know
//! score updates only, gets none. The updates of one call go out together with
//! `pgmq.send_batch_topic` (one INSERT per queue per batch, not one `send_topic` per update and
//! a `pgmq.send` per queue inside it), in the transaction that makes the changes.

use crate::event::Choice;
use crate::spi_util::FirstValue;
use chrono::{DateTime, SecondsFormat, Utc};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiResult};
use serde::Serialize;
use std::time::SystemTime;

/// The group role whose members may read score-update queues unless subscribe_instance names
/// a reader (sql/security.sql creates it).
const PUBLISHER_ROLE: &str = "centralcloud_publisher";

/// The routing key every score update is published under.
pub const ROUTING_KEY: &str = "centralcloud.model_score_update";
/// The routing key every health change is published under.
pub const HEALTH_ROUTING_KEY: &str = "centralcloud.model_health_update";
/// What a subscribed instance's queue is bound to.
const INSTANCE_KEYS: [&str; 2] = [ROUTING_KEY, HEALTH_ROUTING_KEY];
/// pgmq's longest queue name.
const MAX_QUEUE_NAME: usize = 47;
const QUEUE_PREFIX: &str = "cc_scores_";
const SLUG_CHARS: usize = 24;
const MAX_INSTANCE_ID_CHARS: usize = 256;

/// The seed's score-update event, field for field.
#[derive(Serialize)]
pub struct ScoreUpdate<'a> {
    pub timestamp: String,
    pub event_type: &'static str,
    pub model: &'a str,
    pub complexity: &'a str,
    pub old_score: Option<f64>,
    pub new_score: f64,
    pub reason: &'a str,
}

impl<'a> ScoreUpdate<'a> {
    pub fn new(
        model: &'a str,
        complexity: &'a str,
        old: Option<f64>,
        new: f64,
        reason: &'a str,
    ) -> Self {
        ScoreUpdate {
            timestamp: timestamp_now(),
            event_type: "model_score_update",
            model,
            complexity,
            old_score: old,
            new_score: new,
            reason,
        }
    }
}

/// The advisory an instance gets in its own queue, once per anomaly episode, when learning
/// finds its outcomes for a cell through a provider deviating from the rest of the fleet's.
#[derive(Serialize)]
pub struct InstanceAdvisory<'a> {
    pub event_type: &'static str,
    pub instance_id: &'a str,
    pub model: &'a str,
    pub complexity: &'a str,
    pub provider: &'a str,
    /// success_rate or latency: which test flagged it.
    pub kind: &'static str,
    pub instance_failure_rate: f64,
    pub fleet_failure_rate: f64,
    pub instance_p50_ms: Option<f64>,
    pub fleet_p50_ms: Option<f64>,
    pub statistic: f64,
    /// The event hour its left-out evidence starts at (RFC 3339).
    pub since: String,
    pub message: String,
    pub timestamp: String,
}

impl InstanceAdvisory<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("advisory serialises")
    }
}

/// Now, as event timestamps are written.
pub fn timestamp_now() -> String {
    rfc3339(DateTime::<Utc>::from(SystemTime::now()))
}

/// A change of a provider's or a model's health (`model` None: the provider as a whole).
#[derive(Serialize)]
pub struct HealthUpdate<'a> {
    pub event_type: &'static str,
    pub provider: &'a str,
    pub model: Option<&'a str>,
    pub state: &'static str,
    pub previous_state: &'static str,
    /// Failure rate of the outcomes the new state rests on, percent (None: none).
    pub failure_rate: Option<f64>,
    pub window_s: i32,
    pub since: String,
    pub reason: &'a str,
    pub timestamp: String,
}

impl<'a> HealthUpdate<'a> {
    pub fn new(
        provider: &'a str,
        model: Option<&'a str>,
        states: (&'static str, &'static str),
        failure_rate: Option<f64>,
        window_s: i32,
        since: DateTime<Utc>,
        reason: &'a str,
    ) -> Self {
        HealthUpdate {
            event_type: "model_health_update",
            provider,
            model,
            state: states.1,
            previous_state: states.0,
            // Events speak the views' units: percent.
            failure_rate: failure_rate.map(crate::units::percent),
            window_s,
            since: rfc3339(since),
            reason,
            timestamp: timestamp_now(),
        }
    }
}

/// The timestamps of published events: RFC 3339, UTC, microseconds.
fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The queue an instance's updates go to: a readable slug of the id plus a hash of the exact
/// id, so any id maps to a valid, injection-free pgmq name within its length limit, and ids
/// that slug alike (case, punctuation) still get distinct queues.
pub fn instance_queue_name(instance_id: &str) -> Result<String, String> {
    if instance_id.is_empty() {
        return Err("instance_id must not be empty".into());
    }
    let chars = instance_id.chars().count();
    if chars > MAX_INSTANCE_ID_CHARS {
        return Err(format!(
            "instance_id has {chars} characters, at most {MAX_INSTANCE_ID_CHARS} allowed"
        ));
    }
    if instance_id.chars().any(char::is_control) {
        return Err("instance_id must not contain control characters".into());
    }
    let mut slug = String::new();
    for c in instance_id.chars().map(|c| c.to_ascii_lowercase()) {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if !(c == '_' && slug.ends_with('_')) {
            slug.push(c);
        }
    }
    let slug: String = slug.trim_matches('_').chars().take(SLUG_CHARS).collect();
    let name = format!(
        "{QUEUE_PREFIX}{slug}_{:08x}",
        fnv1a32(instance_id.as_bytes())
    );
    debug_assert!(name.len() <= MAX_QUEUE_NAME);
    Ok(name)
}

/// FNV-1a, 32 bits: stable across Rust versions and platforms (std's hasher is not).
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Messages per `pgmq.send_batch_topic` call (learning hands over at most one chunk of cells,
/// 1,000, at a time anyway). What one call holds: the messages as Rust strings, as `text[]` and
/// as `jsonb[]` (about 0.3 KiB each, three times: about 1 MiB), plus the (queue, msg_id) rows
/// pgmq returns, one per message and queue (101,000 for 100 instances), which PL/pgSQL's
/// RETURN QUERY and the calling function scan each keep in a tuplestore that spills to disk past
/// `work_mem`: so about 1 MiB + 2 x `work_mem`, whatever the fleet's size and however many
/// events a run publishes (measured: 10-14 MiB more than a dry run, 100 instances, 4 MB
/// `work_mem`; docs/benchmarks.md).
const PUBLISH_BATCH: usize = 1000;

/// Sends events (score or health updates), in order, under `routing_key` to every queue bound
/// to it, `PUBLISH_BATCH` per statement: each queue gets a batch's messages in one INSERT, in
/// array order, so every instance reads them in the order given. Returns how many queues
/// received each event (the published_to of its history row).
pub fn publish_all(
    client: &mut SpiClient<'_>,
    routing_key: &str,
    events: &[impl Serialize],
) -> SpiResult<Vec<i32>> {
    let mut published_to = Vec::with_capacity(events.len());
    for batch in events.chunks(PUBLISH_BATCH) {
        let queues = send_batch(client, routing_key, batch)?;
        published_to.resize(published_to.len() + batch.len(), queues);
    }
    Ok(published_to)
}

/// One `pgmq.send_batch_topic` call; returns the number of queues the batch went to (pgmq sends
/// every message of it to every matching queue: one row per message and queue).
fn send_batch(
    client: &mut SpiClient<'_>,
    routing_key: &str,
    batch: &[impl Serialize],
) -> SpiResult<i32> {
    let messages: Vec<String> = batch
        .iter()
        .map(|event| serde_json::to_string(event).expect("events serialise"))
        .collect();
    let rows = client
        .update(
            "SELECT count(*) FROM pgmq.send_batch_topic($1, $2::jsonb[])",
            None,
            &[routing_key.into(), messages.into()],
        )?
        .first_value::<i64>()?
        .unwrap_or(0);
    Ok(i32::try_from(rows / batch.len() as i64).unwrap_or(i32::MAX))
}

/// Creates the instance's own score-update queue (if missing) and binds it, so it receives
/// every score and health update from now on. Returns the queue's name. Idempotent.
#[pg_extern(security_definer)]
#[search_path(@extschema@, pg_catalog, pg_temp)]
fn subscribe_instance(instance_id: &str, reader: default!(Option<&str>, "NULL")) -> String {
    crate::version::require_current();
    let queue = instance_queue_name(instance_id).unwrap_or_else(|e| {
        crate::spi_util::raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("centralcloud: {e}"),
        )
    });
    let reader = reader.unwrap_or(PUBLISHER_ROLE);
    Spi::connect_mut(|client| -> pgrx::spi::SpiResult<()> {
        client.update(crate::learn::LEARN_LOCK, None, &[])?;
        let existing = client
            .select(
                "SELECT queue_name FROM centralcloud.score_subscriptions WHERE instance_id = $1",
                None,
                &[instance_id.into()],
            )?
            .first_value::<String>()?;
        if existing.is_none() {
            client.update(
                "SELECT pgmq.create($1) WHERE NOT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = $1)",
                None,
                &[queue.as_str().into()],
            )?;
            client.update(
                "INSERT INTO centralcloud.score_subscriptions (instance_id, queue_name) VALUES ($1, $2)",
                None,
                &[instance_id.into(), queue.as_str().into()],
            )?;
            send_snapshot(client, &queue)?;
        }
        for key in INSTANCE_KEYS {
            client.update(
                "SELECT pgmq.bind_topic($1, $2)",
                None,
                &[key.into(), queue.as_str().into()],
            )?;
        }
        client.update(
            "UPDATE centralcloud.score_subscriptions SET reader_role = $2 WHERE instance_id = $1",
            None,
            &[instance_id.into(), reader.into()],
        )?;
        grant_reading(client, &queue, reader)
    })
    .unwrap_or_else(|e| error!("centralcloud: subscribing \"{instance_id}\": {e}"));
    queue
}

/// Makes `reader` the only role, besides the owner, with access to a score-update queue, and
/// gives it exactly what pgmq.read, pgmq.delete and pgmq.archive need: to read the queue's rows,
/// set their visibility and read count, delete them, and insert them into the archive (taking
/// back their msg_id). Not to rewrite a message, nor to read the archive. Every earlier reader
/// (the publisher group included) loses its access, so a role given to subscribe_instance
/// replaces the shared default; pg_monitor keeps the SELECT pgmq gives it. Names are quoted by
/// %I.
/// A new instance starts in sync: its queue first gets the current score of every cell, in the
/// seed's shape with `old_score` null and `"snapshot": true`, in key order; the updates that
/// follow are published to it once it is bound. Serialised here, like every update, so each
/// score reads back as the exact double (jsonb's float output depends on extra_float_digits).
fn send_snapshot(client: &mut SpiClient<'_>, queue: &str) -> SpiResult<()> {
    let cells = client
        .select(
            "SELECT model_name::text AS model, complexity_level::text AS complexity, score
               FROM centralcloud.model_complexity_scores ORDER BY model_name, complexity_level",
            None,
            &[],
        )?
        .map(|row| {
            Ok((
                row.get_by_name::<String, _>("model")?.unwrap_or_default(),
                row.get_by_name::<String, _>("complexity")?
                    .unwrap_or_default(),
                row.get_by_name::<f64, _>("score")?.unwrap_or_default(),
            ))
        })
        .collect::<SpiResult<Vec<(String, String, f64)>>>()?;
    if cells.is_empty() {
        return Ok(());
    }
    let messages: Vec<String> = cells
        .iter()
        .map(|(model, complexity, score)| {
            let update = ScoreUpdate::new(model, complexity, None, *score, SNAPSHOT_REASON);
            serde_json::to_string(&Snapshot {
                update,
                snapshot: true,
            })
            .expect("snapshot serialises")
        })
        .collect();
    client.update(
        "SELECT pgmq.send_batch($1, $2::jsonb[])",
        None,
        &[queue.into(), messages.into()],
    )?;
    Ok(())
}

const SNAPSHOT_REASON: &str = "snapshot: the current score when the instance subscribed";

#[derive(Serialize)]
struct Snapshot<'a> {
    #[serde(flatten)]
    update: ScoreUpdate<'a>,
    snapshot: bool,
}

fn grant_reading(client: &mut SpiClient<'_>, queue: &str, reader: &str) -> SpiResult<()> {
    let role_exists = client
        .select(
            "SELECT to_regrole(quote_ident($1)) IS NOT NULL",
            None,
            &[reader.into()],
        )?
        .first_value::<bool>()?;
    if role_exists != Some(true) {
        crate::spi_util::raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!(
                "centralcloud: role \"{reader}\" does not exist (the reader of the score-update queue)"
            ),
        );
    }
    let statements = client
        .select(
            "WITH tables AS (
                 SELECT pgmq.format_table_name($1, 'q') AS q, pgmq.format_table_name($1, 'a') AS a),
             queue AS (
                 SELECT tables.*, pg_catalog.pg_get_serial_sequence(format('pgmq.%I', tables.q), 'msg_id')::regclass AS seq
                   FROM tables),
             earlier AS (
                 -- Table and column privileges (REVOKE ALL on the table takes both away), and
                 -- the msg_id sequence's.
                 SELECT DISTINCT t.name, pg_catalog.pg_get_userbyid(acl.grantee) AS grantee
                   FROM queue, LATERAL (VALUES (queue.q), (queue.a),
                                               ((SELECT relname::text FROM pg_catalog.pg_class WHERE oid = queue.seq))) AS t(name)
                   JOIN pg_catalog.pg_class c ON c.relnamespace = 'pgmq'::regnamespace AND c.relname = t.name
                   CROSS JOIN LATERAL (SELECT c.relacl
                                       UNION ALL
                                       SELECT att.attacl FROM pg_catalog.pg_attribute att
                                        WHERE att.attrelid = c.oid AND att.attnum > 0) AS acls(acl)
                   CROSS JOIN LATERAL pg_catalog.aclexplode(acls.acl) AS acl
                  WHERE acl.grantee NOT IN (c.relowner, 0, 'pg_monitor'::regrole))
             SELECT format('REVOKE ALL ON pgmq.%I FROM %I', e.name, e.grantee) FROM earlier e
             UNION ALL
             SELECT unnest(ARRAY[
                 format('GRANT SELECT, DELETE, UPDATE (vt, read_ct, last_read_at) ON pgmq.%I TO %I', queue.q, $2),
                 format('GRANT INSERT, SELECT (msg_id) ON pgmq.%I TO %I', queue.a, $2),
                 -- pgmq.metrics() reads the sequence's last value.
                 format('GRANT SELECT ON SEQUENCE %s TO %I', queue.seq, $2)])
               FROM queue",
            None,
            &[queue.into(), reader.into()],
        )?
        .map(|row| row.get::<String>(1).map(Option::unwrap_or_default))
        .collect::<SpiResult<Vec<String>>>()?;
    for statement in statements {
        client.update(statement.as_str(), None, &[])?;
    }
    Ok(())
}

/// Undoes `subscribe_instance`: unbinds the instance's queue and, unless `drop_queue` is false,
/// drops it with any update not yet read. Returns false if the instance was not subscribed.
#[pg_extern(security_definer)]
#[search_path(@extschema@, pg_catalog, pg_temp)]
fn unsubscribe_instance(instance_id: &str, drop_queue: default!(bool, true)) -> bool {
    crate::version::require_current();
    Spi::connect_mut(|client| -> pgrx::spi::SpiResult<bool> {
        let queue = client
            .update(
                "DELETE FROM centralcloud.score_subscriptions WHERE instance_id = $1 RETURNING queue_name",
                None,
                &[instance_id.into()],
            )?
            .first_value::<String>()?;
        let Some(queue) = queue else {
            return Ok(false);
        };
        for key in INSTANCE_KEYS {
            client.update(
                "SELECT pgmq.unbind_topic($1, $2)",
                None,
                &[key.into(), queue.as_str().into()],
            )?;
        }
        if drop_queue {
            client.update("SELECT pgmq.drop_queue($1)", None, &[queue.as_str().into()])?;
        }
        Ok(true)
    })
    .unwrap_or_else(|e| error!("centralcloud: unsubscribing \"{instance_id}\": {e}"))
}

/// Checks a complexity name given to an operator function.
pub fn complexity_or_error(complexity: &str) -> &'static str {
    crate::event::Complexity::parse(complexity)
        .map(|c| c.as_str())
        .unwrap_or_else(|| {
            crate::spi_util::raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("centralcloud: complexity must be one of simple/medium/complex, got \"{complexity}\""),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_valid_for_pgmq() {
        let long = "x".repeat(256);
        for id in [
            "singularity-1",
            "Singularity-US-West-1",
            "a;DROP TABLE t;--",
            "$'\"",
            "日本-1",
            &long,
        ] {
            let name = instance_queue_name(id).unwrap();
            assert!(name.len() <= MAX_QUEUE_NAME, "{name}");
            assert!(name.starts_with(QUEUE_PREFIX), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
        assert!(instance_queue_name("singularity-us-west-1")
            .unwrap()
            .starts_with("cc_scores_singularity_us_west_1_"));
    }

    #[test]
    fn distinct_ids_get_distinct_queues() {
        let a = instance_queue_name("Singularity-1").unwrap();
        let b = instance_queue_name("singularity_1").unwrap();
        let c = instance_queue_name("singularity-1").unwrap();
        assert!(a != b && b != c && a != c);
        assert_eq!(c, instance_queue_name("singularity-1").unwrap(), "stable");
    }

    #[test]
    fn ids_that_cannot_map_are_errors() {
        assert_eq!(
            instance_queue_name("").unwrap_err(),
            "instance_id must not be empty"
        );
        assert!(instance_queue_name(&"y".repeat(257))
            .unwrap_err()
            .contains("257 characters"));
        assert!(instance_queue_name("a\nb").unwrap_err().contains("control"));
    }

    #[test]
    fn fnv_is_the_reference_function() {
        // Reference values of 32-bit FNV-1a.
        assert_eq!(fnv1a32(b""), 0x811c9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9cf968);
    }

    #[test]
    fn update_has_the_seed_shape() {
        let u = ScoreUpdate::new("gpt-4o", "complex", Some(4.8), 5.0, "learned");
        let v: serde_json::Value = serde_json::to_value(&u).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "complexity",
                "event_type",
                "model",
                "new_score",
                "old_score",
                "reason",
                "timestamp"
            ]
        );
        assert_eq!(v["event_type"], "model_score_update");
    }

    #[test]
    fn health_update_has_the_documented_shape() {
        let since = DateTime::from_timestamp(1_795_773_600, 0).unwrap();
        let u = HealthUpdate::new(
            "openai",
            None,
            ("healthy", "down"),
            Some(1.0),
            300,
            since,
            "down: ...",
        );
        let v: serde_json::Value = serde_json::to_value(&u).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "event_type",
                "failure_rate",
                "model",
                "previous_state",
                "provider",
                "reason",
                "since",
                "state",
                "timestamp",
                "window_s"
            ]
        );
        assert_eq!(v["event_type"], "model_health_update");
        assert_eq!(
            (v["state"].as_str(), v["previous_state"].as_str()),
            (Some("down"), Some("healthy"))
        );
        assert_eq!(v["model"], serde_json::Value::Null);
        assert_eq!(v["since"], "2026-11-27T10:00:00.000000Z");
    }
}

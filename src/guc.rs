//! Configuration: every `centralcloud.*` setting, with its default and documentation.
//! `SHOW centralcloud.<name>` and `pg_settings` show the descriptions below.

use crate::event::Limits;
use chrono::{DateTime, Utc};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use std::ffi::{CStr, CString};

pub const DEFAULT_QUEUE: &str = "model_routing_decisions";

pub static QUEUE_NAME: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"model_routing_decisions"));
pub static VISIBILITY_TIMEOUT_S: GucSetting<i32> = GucSetting::<i32>::new(30);
pub static BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static MAX_RETRIES: GucSetting<i32> = GucSetting::<i32>::new(5);
pub static MAX_RESPONSE_TIME_MS: GucSetting<i32> = GucSetting::<i32>::new(3_600_000);
pub static MAX_STRING_CHARS: GucSetting<i32> = GucSetting::<i32>::new(256);
pub static MAX_CAPABILITIES: GucSetting<i32> = GucSetting::<i32>::new(32);
pub static MAX_EVENT_AGE_S: GucSetting<i32> = GucSetting::<i32>::new(7 * 86_400);
pub static MAX_EVENT_CLOCK_SKEW_S: GucSetting<i32> = GucSetting::<i32>::new(15 * 60);

pub static WORKER_ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static WORKER_DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));
pub static INGEST_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(250);
pub static LEARN_INTERVAL_S: GucSetting<i32> = GucSetting::<i32>::new(300);
pub static MAINTENANCE_INTERVAL_S: GucSetting<i32> = GucSetting::<i32>::new(3600);
pub static ROUTING_RECORDS_RETENTION_S: GucSetting<i32> = GucSetting::<i32>::new(30 * 86_400);

pub static LEARNING_POLICY: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"bayes"));
pub static MIN_SAMPLES_FOR_LEARNING: GucSetting<i32> = GucSetting::<i32>::new(100);
pub static SUCCESS_THRESHOLD: GucSetting<f64> = GucSetting::<f64>::new(0.95);
pub static SUCCESS_STEP: GucSetting<f64> = GucSetting::<f64>::new(0.2);
pub static SLOWNESS_THRESHOLD_MS: GucSetting<f64> = GucSetting::<f64>::new(2000.0);
pub static SPEED_STEP: GucSetting<f64> = GucSetting::<f64>::new(0.1);

pub fn init() {
    GucRegistry::define_string_guc(
        c"centralcloud.queue_name",
        c"pgmq queue that router instances publish routing events to.",
        c"ingest_routing_events() reads this queue. Default model_routing_decisions, the seed's queue.",
        &QUEUE_NAME,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.visibility_timeout_s",
        c"Seconds a message read by ingest stays invisible to other readers.",
        c"Only matters if a batch's transaction outlives it: rows stay locked until commit either way.",
        &VISIBILITY_TIMEOUT_S,
        1,
        86_400,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.batch_size",
        c"Messages ingest reads, validates and writes per batch.",
        c"Used when ingest_routing_events() is called with batch_size NULL. Memory of one call is bounded by it.",
        &BATCH_SIZE,
        1,
        100_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.max_retries",
        c"Reads after which a message whose processing keeps failing is dead-lettered.",
        c"Compared with pgmq's read_ct: a message that raised an unexpected error this many times goes to routing_events_rejected with the error text, so it never blocks the queue.",
        &MAX_RETRIES,
        1,
        1000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.max_response_time_ms",
        c"Largest response_time_ms accepted; larger values are rejected as out of range.",
        c"Default one hour.",
        &MAX_RESPONSE_TIME_MS,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.max_string_chars",
        c"Longest accepted instance id, model, provider, capability or user_model_request, in characters.",
        c"Longer values are rejected as too_long.",
        &MAX_STRING_CHARS,
        1,
        65_536,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.max_capabilities",
        c"Most entries accepted in capabilities_required.",
        c"Longer arrays are rejected as too_many.",
        &MAX_CAPABILITIES,
        0,
        10_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.routing_records_retention",
        c"How long routing_records keeps events (by received_at); 0 keeps them forever.",
        c"run_maintenance() drops whole daily partitions that ended before now() minus this; metrics and rollups keep counting them. Accepts units, e.g. '30d', '12h'.",
        &ROUTING_RECORDS_RETENTION_S,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    init_event_window();
    init_learning();
    init_bayes();
    init_consensus();
    init_worker();
    init_bounds();
    init_health();
    init_recommend();
}

/// The window around the server time that event timestamps must fall in (see `Limits::now`).
fn init_event_window() {
    GucRegistry::define_int_guc(
        c"centralcloud.max_event_age",
        c"Oldest accepted event timestamp, before the server time; 0 accepts any age.",
        c"Older events are rejected as out_of_range. The server time is the ingesting transaction's start, so a backlog older than this is rejected too. Accepts units, e.g. '7d', '36h'.",
        &MAX_EVENT_AGE_S,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"centralcloud.max_event_clock_skew",
        c"How far ahead of the server time an event timestamp may be; 0 accepts any future time.",
        c"Events further ahead (a router's clock running fast) are rejected as out_of_range: they would stay in every last-24-hours view. Accepts units, e.g. '15min', '1h'.",
        &MAX_EVENT_CLOCK_SKEW_S,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
}

fn init_worker() {
    GucRegistry::define_bool_guc(
        c"centralcloud.worker_enabled",
        c"Whether the background worker ingests and learns (needs shared_preload_libraries).",
        c"Reloaded on SIGHUP: off pauses the worker without a restart.",
        &WORKER_ENABLED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"centralcloud.database",
        c"Databases the background worker serves, comma-separated (where CREATE EXTENSION centralcloud was run).",
        c"One worker per database; on SIGHUP the launcher starts the workers of added databases and stops those of removed ones. Each waits, quietly, until the extension exists in its database.",
        &WORKER_DATABASE,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.ingest_interval_ms",
        c"Milliseconds the worker sleeps when the queue has no full batch.",
        c"Full batches are taken back to back; this is the latency floor for a quiet queue.",
        &INGEST_INTERVAL_MS,
        10,
        3_600_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.maintenance_interval_s",
        c"Seconds between the worker's run_maintenance() runs (partitions ahead, retention).",
        c"The worker also runs it when it starts. Partitions are created two days ahead, so hourly is plenty.",
        &MAINTENANCE_INTERVAL_S,
        60,
        86_400,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.learn_interval_s",
        c"Seconds between the worker's learn_complexity_scores() runs.",
        c"Learning only consumes new evidence, so a short interval does not drift scores.",
        &LEARN_INTERVAL_S,
        1,
        86_400,
        GucContext::Sighup,
        GucFlags::default(),
    );
}

/// The databases the worker serves, from `centralcloud.database`.
pub fn worker_databases() -> Vec<String> {
    let setting = WORKER_DATABASE.get().and_then(|c| c.into_string().ok());
    database_list(setting.as_deref().unwrap_or(""))
}

/// A comma-separated list of database names, trimmed, each once, in order; names are taken
/// as written (no quoting, no case folding: a name with a comma cannot be listed). Empty means
/// the default, `postgres`, as in 0.1.0.
pub fn database_list(setting: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in setting.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !names.iter().any(|seen| seen == name) {
            names.push(name.to_string());
        }
    }
    if names.is_empty() {
        names.push("postgres".to_string());
    }
    names
}

fn init_learning() {
    GucRegistry::define_string_guc(
        c"centralcloud.learning_policy",
        c"Policy learn_complexity_scores() applies.",
        c"bayes: the score is a function of the evidence (a Beta posterior's conservative bound of the success rate, less a smooth p95 latency penalty), decayed in event time, with change detection. seed: the specification's rule (success and speed steps, clamped to [0, 5]), applied to the evidence since each cell's last learning step.",
        &LEARNING_POLICY,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.min_samples_for_learning",
        c"Outcome samples (success + failure) a cell needs since its last learning step to learn.",
        c"Cells with fewer keep accumulating evidence.",
        &MIN_SAMPLES_FOR_LEARNING,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    define_suset_floats(
        &[
            (c"centralcloud.success_threshold", c"Success rate above which a cell's score goes up by success_step (else down).", &SUCCESS_THRESHOLD, 0.0, 1.0),
            (c"centralcloud.success_step", c"Score change for the success-rate term.", &SUCCESS_STEP, 0.0, 5.0),
            (c"centralcloud.slowness_threshold_ms", c"Average response time (ms) above which a cell's score goes down by speed_step (else up).", &SLOWNESS_THRESHOLD_MS, 0.0, 3_600_000.0),
            (c"centralcloud.speed_step", c"Score change for the response-time term.", &SPEED_STEP, 0.0, 5.0),
        ],
        c"Part of the seed learning policy; see learn_complexity_scores().",
    );
}

/// A superuser-only float setting: name, description, the setting, min, max.
type FloatGuc = (
    &'static CStr,
    &'static CStr,
    &'static GucSetting<f64>,
    f64,
    f64,
);

fn define_suset_floats(settings: &[FloatGuc], long_description: &'static CStr) {
    for &(name, description, setting, min, max) in settings {
        GucRegistry::define_float_guc(
            name,
            description,
            long_description,
            setting,
            min,
            max,
            GucContext::Suset,
            GucFlags::default(),
        );
    }
}

pub static LEARNING_HALF_LIFE_S: GucSetting<i32> = GucSetting::<i32>::new(24 * 3600);
pub static PRIOR_STRENGTH: GucSetting<f64> = GucSetting::<f64>::new(10.0);
pub static LEARNING_BOUND_Z: GucSetting<f64> = GucSetting::<f64>::new(1.645);
pub static LATENCY_TARGET_MS: GucSetting<f64> = GucSetting::<f64>::new(2000.0);
pub static CHANGE_THRESHOLD: GucSetting<f64> = GucSetting::<f64>::new(8.0);
pub static MIN_SCORE_CHANGE: GucSetting<f64> = GucSetting::<f64>::new(0.05);
pub static SCORE_MIDPOINT: GucSetting<f64> = GucSetting::<f64>::new(0.8);
pub static LATENCY_WEIGHT: GucSetting<f64> = GucSetting::<f64>::new(0.25);

/// The bayes policy's knobs (its module documents each).
fn init_bayes() {
    GucRegistry::define_int_guc(
        c"centralcloud.learning_half_life",
        c"Half-life of evidence in event time (policy bayes).",
        c"An hour of outcomes this long before the newest event hour weighs half as much. Accepts units, e.g. '24h'.",
        &LEARNING_HALF_LIFE_S,
        3600,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    define_suset_floats(
        &[
            (c"centralcloud.prior_strength", c"Outcomes the catalog's reported or operator score is worth as the prior (policy bayes).", &PRIOR_STRENGTH, 0.0, 1_000_000.0),
            (c"centralcloud.learning_bound_z", c"How conservative the success-rate bound is, in standard deviations (policy bayes).", &LEARNING_BOUND_Z, 0.0, 10.0),
            (c"centralcloud.latency_target_ms", c"p95 latency (ms) where the latency penalty becomes steep (policy bayes).", &LATENCY_TARGET_MS, 1.0, 3_600_000.0),
            (c"centralcloud.change_threshold", c"Log-likelihood ratio above which a cell's success rate is taken to have changed (policy bayes).", &CHANGE_THRESHOLD, 1.0, 1_000_000.0),
            (c"centralcloud.min_score_change", c"Smallest score change applied and published (policy bayes): converged cells stop publishing.", &MIN_SCORE_CHANGE, 0.0, 5.0),
            (c"centralcloud.latency_weight", c"Success rate lost per latency target's worth of p95 above the target (policy bayes).", &LATENCY_WEIGHT, 0.0, 100.0),
            (c"centralcloud.score_midpoint", c"Success rate (less the latency penalty) that scores 2.5 (policy bayes); higher spreads the scores of good models apart.", &SCORE_MIDPOINT, 0.01, 0.99),
        ],
        c"See learn_complexity_scores() and the README's Learning section.",
    );
}

pub static MIN_AGREEING_INSTANCES: GucSetting<i32> = GucSetting::<i32>::new(2);
pub static OUTLIER_THRESHOLD: GucSetting<f64> = GucSetting::<f64>::new(10.0);
pub static OUTLIER_MIN_OUTCOMES: GucSetting<i32> = GucSetting::<i32>::new(50);
pub static CONSENSUS_WINDOW_S: GucSetting<i32> = GucSetting::<i32>::new(6 * 3600);

/// Consensus among instances (every policy; `learn::consensus` documents each).
fn init_consensus() {
    GucRegistry::define_int_guc(
        c"centralcloud.min_agreeing_instances",
        c"Instances whose own evidence must agree with a score change (at most those reporting on the cell).",
        c"An instance agrees when its evidence in the consensus window, in the fleet's place, would move the score at least half as far the same way. A cell reported by fewer instances needs all of them; by one, learns from it alone. 1: any one instance.",
        &MIN_AGREEING_INSTANCES,
        1,
        1000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"centralcloud.outlier_threshold",
        c"Log-likelihood ratio above which an instance's failure rate (or latency) for a cell and provider is an outlier against the rest of the fleet; 0: no outlier test.",
        c"Needs 3 or more reporting instances. An outlier's evidence is left out of learning while its episode lasts (until the statistic falls below half this), listed in instance_anomalies, and the instance is sent an instance_advisory event once.",
        &OUTLIER_THRESHOLD,
        0.0,
        1_000_000.0,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.outlier_min_outcomes",
        c"Outcomes an instance, and the rest of the fleet, need in the consensus window for the outlier test.",
        c"Per cell and provider.",
        &OUTLIER_MIN_OUTCOMES,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.consensus_window",
        c"Event time the outlier test and the agreement of instances look back over, from the newest event hour.",
        c"Whole hours of the rollup. Accepts units, e.g. '6h'.",
        &CONSENSUS_WINDOW_S,
        3600,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
}

pub fn consensus_policy() -> crate::learn::consensus::ConsensusPolicy {
    crate::learn::consensus::ConsensusPolicy {
        min_agreeing_instances: i64::from(MIN_AGREEING_INSTANCES.get()),
        outlier_threshold: OUTLIER_THRESHOLD.get(),
        outlier_min_outcomes: i64::from(OUTLIER_MIN_OUTCOMES.get()),
        window_hours: i64::from(CONSENSUS_WINDOW_S.get() / 3600).max(1),
    }
}

pub fn bayes_policy() -> crate::learn::bayes::BayesPolicy {
    crate::learn::bayes::BayesPolicy {
        min_samples: i64::from(MIN_SAMPLES_FOR_LEARNING.get()),
        half_life_hours: f64::from(LEARNING_HALF_LIFE_S.get()) / 3600.0,
        prior_strength: PRIOR_STRENGTH.get(),
        z: LEARNING_BOUND_Z.get(),
        latency_target_ms: LATENCY_TARGET_MS.get(),
        change_threshold: CHANGE_THRESHOLD.get(),
        score_midpoint: SCORE_MIDPOINT.get(),
        latency_weight: LATENCY_WEIGHT.get(),
        ..Default::default()
    }
}

pub fn learning_policy() -> String {
    LEARNING_POLICY
        .get()
        .and_then(|c| c.into_string().ok())
        .unwrap_or_else(|| "bayes".into())
}

pub fn seed_policy() -> crate::learn::policy::SeedPolicy {
    crate::learn::policy::SeedPolicy {
        min_samples: i64::from(MIN_SAMPLES_FOR_LEARNING.get()),
        success_threshold: SUCCESS_THRESHOLD.get(),
        success_step: SUCCESS_STEP.get(),
        slowness_threshold_ms: SLOWNESS_THRESHOLD_MS.get(),
        speed_step: SPEED_STEP.get(),
    }
}

pub fn queue_name() -> String {
    QUEUE_NAME
        .get()
        .and_then(|c| c.into_string().ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_QUEUE.to_string())
}

pub fn limits() -> Limits {
    Limits {
        max_string_chars: MAX_STRING_CHARS.get() as usize,
        max_response_time_ms: i64::from(MAX_RESPONSE_TIME_MS.get()),
        max_capabilities: MAX_CAPABILITIES.get() as usize,
        now: transaction_start(),
        max_age_s: i64::from(MAX_EVENT_AGE_S.get()),
        max_future_s: i64::from(MAX_EVENT_CLOCK_SKEW_S.get()),
    }
}

/// The current transaction's start: like `now()`, fixed for the transaction (so every event of
/// one ingest call is judged against the same time, and `stable` functions stay stable).
fn transaction_start() -> Option<DateTime<Utc>> {
    // SAFETY: reads the backend's transaction start time; no allocation, cannot raise an error.
    let pg_micros = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    from_timestamptz(pg_micros)
}

/// A PostgreSQL `TimestampTz` as a chrono instant. `TimestampTz` counts microseconds since
/// PostgreSQL's epoch, 2000-01-01T00:00:00Z, which is 946684800 s after chrono's (1970).
/// `None` for the infinities (i64::MIN/MAX), which have no chrono counterpart.
fn from_timestamptz(pg_micros: i64) -> Option<DateTime<Utc>> {
    const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800 * 1_000_000;
    pg_micros
        .checked_add(PG_EPOCH_UNIX_MICROS)
        .and_then(DateTime::from_timestamp_micros)
}

#[cfg(test)]
mod tests {
    use super::{database_list, from_timestamptz};

    #[test]
    fn database_list_is_trimmed_deduplicated_and_defaults_to_postgres() {
        assert_eq!(database_list(""), ["postgres"]);
        assert_eq!(database_list(" , "), ["postgres"]);
        assert_eq!(database_list("routerdb"), ["routerdb"]);
        assert_eq!(
            database_list(" eu , us,eu,  Mixed Case "),
            ["eu", "us", "Mixed Case"]
        );
    }

    #[test]
    fn timestamptz_epoch_is_2000() {
        let at = |micros| from_timestamptz(micros).map(|t| t.to_rfc3339());
        assert_eq!(at(0).as_deref(), Some("2000-01-01T00:00:00+00:00"));
        assert_eq!(
            at(-946_684_800_000_000).as_deref(),
            Some("1970-01-01T00:00:00+00:00")
        );
        // 2026-11-27 07:49:33.123456 UTC, as PostgreSQL stores it.
        assert_eq!(
            from_timestamptz(849_080_973_123_456).map(|t| t.timestamp_micros()),
            Some(1_795_765_773_123_456)
        );
        assert_eq!(at(i64::MAX), None);
        assert_eq!(at(i64::MIN), None);
    }
}

pub static INGEST_MAX_PENDING_ROWS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
pub static DEAD_LETTER_MAX_BYTES: GucSetting<i32> = GucSetting::<i32>::new(16_384);
pub static DEAD_LETTER_RETENTION_S: GucSetting<i32> = GucSetting::<i32>::new(30 * 86_400);
pub static MAX_NEW_MODELS_PER_HOUR: GucSetting<i32> = GucSetting::<i32>::new(100);

/// What one call, one message or one buggy router may cost.
fn init_bounds() {
    GucRegistry::define_int_guc(
        c"centralcloud.ingest_max_pending_rows",
        c"Metrics and rollup rows one ingest call keeps in memory before it writes them.",
        c"Bounds the memory of a call over a backlog with very many distinct models, instances or hours (about 2 KiB per row); below it each row is written once per call.",
        &INGEST_MAX_PENDING_ROWS,
        100,
        10_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.dead_letter_max_bytes",
        c"Largest message, in bytes of its JSON text, a dead letter keeps whole.",
        c"A larger one is kept as its first this-many characters (message_prefix) with its length and SHA-256.",
        &DEAD_LETTER_MAX_BYTES,
        256,
        1 << 30,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.dead_letter_retention",
        c"How long dead letters (routing_events_rejected) are kept; 0 keeps them forever.",
        c"run_maintenance() deletes those rejected before now() minus this and logs it in retention_log. Accepts units, e.g. '30d'.",
        &DEAD_LETTER_RETENTION_S,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"centralcloud.max_new_models_per_hour",
        c"Most models never seen before that ingest accepts per hour; 0 = no cap.",
        c"Events naming a further new model are dead-lettered as too_many_models, so one buggy router cannot explode the catalog. Counted by the first appearance of each model in model_routing_metrics.",
        &MAX_NEW_MODELS_PER_HOUR,
        0,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
}

pub static HEALTH_WINDOW_S: GucSetting<i32> = GucSetting::<i32>::new(300);
pub static HEALTH_MIN_SAMPLES: GucSetting<i32> = GucSetting::<i32>::new(20);
pub static HEALTH_DEGRADED_BELOW: GucSetting<f64> = GucSetting::<f64>::new(0.8);
pub static HEALTH_DOWN_BELOW: GucSetting<f64> = GucSetting::<f64>::new(0.2);
pub static HEALTH_RECOVERED_ABOVE: GucSetting<f64> = GucSetting::<f64>::new(0.9);
pub static HEALTH_MIN_RECOVERY_S: GucSetting<i32> = GucSetting::<i32>::new(30);
pub static HEALTH_BASELINE_WINDOW_S: GucSetting<i32> = GucSetting::<i32>::new(7 * 86_400);
pub static HEALTH_PROVIDER_MIN_MODELS: GucSetting<i32> = GucSetting::<i32>::new(2);

/// A superuser-only duration setting in seconds: name, description, long description, the
/// setting, min, max.
type DurationGuc = (
    &'static CStr,
    &'static CStr,
    &'static CStr,
    &'static GucSetting<i32>,
    i32,
    i32,
);

/// Health of providers and models (src/health/rules.rs documents each rule).
fn init_health() {
    let durations: [DurationGuc; 3] = [
        (c"centralcloud.health_window", c"Recent window of outcomes (by server receive time) health is judged on; 0 turns health evaluation off.", c"Ingest evaluates health after each call from the outcomes received in this window. Accepts units, e.g. '5min'.", &HEALTH_WINDOW_S, 0, 86_400),
        (c"centralcloud.health_min_recovery", c"How long a degraded or down model must do well before it is healthy again (doubled for each relapse within a window, up to half the window).", c"Accepts units, e.g. '30s'.", &HEALTH_MIN_RECOVERY_S, 0, 86_400),
        (c"centralcloud.health_baseline_window", c"Event-time window of the hourly rollup that gives each model its long-run success rate.", c"Hours of the last this-long, but the current and the previous hour. Accepts units, e.g. '7d'.", &HEALTH_BASELINE_WINDOW_S, 3_600, i32::MAX),
    ];
    for (name, short, long, setting, min, max) in durations {
        GucRegistry::define_int_guc(
            name,
            short,
            long,
            setting,
            min,
            max,
            GucContext::Suset,
            GucFlags::UNIT_S,
        );
    }
    GucRegistry::define_int_guc(
        c"centralcloud.health_min_samples",
        c"Outcomes health needs before it calls a model degraded, down or recovered.",
        c"Fewer outcomes in the window for a whole window let a degraded or down state expire one level.",
        &HEALTH_MIN_SAMPLES,
        1,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"centralcloud.health_provider_min_models",
        c"Models of a provider that must be down (degraded) together, and more than half of those with recent outcomes, for the provider to be down (degraded).",
        c"One failing model is that model's problem.",
        &HEALTH_PROVIDER_MIN_MODELS,
        1,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    define_suset_floats(
        &[
            (c"centralcloud.health_degraded_below", c"A model is degraded when its recent success rate is at most this fraction of its long-run rate.", &HEALTH_DEGRADED_BELOW, 0.0, 1.0),
            (c"centralcloud.health_down_below", c"A model is down when its recent success rate is at most this fraction of its long-run rate.", &HEALTH_DOWN_BELOW, 0.0, 1.0),
            (c"centralcloud.health_recovered_above", c"A degraded or down model is healthy again when its recent success rate is at least this fraction of its long-run rate (above health_degraded_below: the gap is the hysteresis).", &HEALTH_RECOVERED_ABOVE, 0.0, 1.0),
        ],
        c"See the README's Health section.",
    );
}

pub fn health_policy() -> crate::health::rules::HealthPolicy {
    crate::health::rules::HealthPolicy {
        window_s: i64::from(HEALTH_WINDOW_S.get()),
        min_samples: i64::from(HEALTH_MIN_SAMPLES.get()),
        degraded_below: HEALTH_DEGRADED_BELOW.get(),
        down_below: HEALTH_DOWN_BELOW.get(),
        recovered_above: HEALTH_RECOVERED_ABOVE.get(),
        min_recovery_s: i64::from(HEALTH_MIN_RECOVERY_S.get()),
        provider_min_models: i64::from(HEALTH_PROVIDER_MIN_MODELS.get()),
        ..Default::default()
    }
}

pub static RECOMMEND_TOLERANCE: GucSetting<f64> = GucSetting::<f64>::new(0.25);
pub static RECOMMEND_MAX_CANDIDATES: GucSetting<i32> = GucSetting::<i32>::new(10);

/// What recommend_model() returns.
fn init_recommend() {
    define_suset_floats(
        &[(c"centralcloud.recommend_tolerance", c"Score points below the best within which prefer => speed or cost picks the fastest or cheapest.", &RECOMMEND_TOLERANCE, 0.0, 5.0)],
        c"See recommend_model().",
    );
    GucRegistry::define_int_guc(
        c"centralcloud.recommend_max_candidates",
        c"Most candidates recommend_model() returns.",
        c"The best ones, ranked.",
        &RECOMMEND_MAX_CANDIDATES,
        1,
        10_000,
        GucContext::Suset,
        GucFlags::default(),
    );
}

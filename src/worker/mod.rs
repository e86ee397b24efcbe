//! A database worker: started by the launcher (`launcher.rs`) for each database listed in
//! `centralcloud.database`, one latch loop that calls the same SQL entry points users call —
//! `ingest_routing_events()` one batch per transaction, at once again while batches come back
//! full, otherwise after `centralcloud.ingest_interval_ms`; `learn_complexity_scores()` every
//! `centralcloud.learn_interval_s`; and `run_maintenance()` (partitions ahead, retention) at
//! start and every `centralcloud.maintenance_interval_s`. Each call runs in a subtransaction:
//! an error (or a panic) is logged once as a WARNING, rolled back, recorded in
//! `centralcloud.worker_state`, and the loop goes on. SIGHUP reloads the settings; SIGTERM
//! ends the loop at its next wake-up.

use crate::{guc, subxact};
mod launcher;

use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::prelude::*;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

/// How long before a worker that ended (or the launcher) is started again.
const RESTART_AFTER: Duration = Duration::from_secs(5);
/// Longest pause between retries while the same error repeats.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
pub const WORKER_TYPE: &str = "centralcloud worker";

/// How often a worker that finds its database served by another (left over from a launcher
/// that crashed) looks again.
const SERVED_RECHECK: Duration = Duration::from_secs(1);
/// The session-level advisory lock that makes one worker per database serve it.
const SERVING_LOCK: &str =
    "SELECT pg_try_advisory_lock(hashtext('centralcloud worker serves this database'))";

/// Registers the launcher, which starts the database workers; called from `_PG_init` while
/// preloading.
pub fn register() {
    launcher::register();
}

/// What the worker has done since it started, as `worker_state` shows it.
#[derive(Default)]
struct Progress {
    ingested: i64,
    rejected: i64,
    last_learn: Option<Instant>,
    last_maintenance: Option<Instant>,
    /// The last error logged, so a repeating error is logged once.
    last_error: Option<String>,
    failures_in_a_row: u32,
    waiting_logged: bool,
}

/// What one turn of the loop found.
enum Turn {
    /// A full batch: there is more, go again at once.
    Busy,
    Idle,
    Failed,
    Disabled,
    WaitingForExtension,
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn centralcloud_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = BackgroundWorker::get_extra().to_string();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    log!("centralcloud worker started for database \"{database}\"");
    if !wait_to_serve(&database) {
        stop_on_sigterm();
    }

    let mut progress = Progress::default();
    let mut pause = Duration::ZERO;
    while BackgroundWorker::wait_latch(Some(pause)) {
        if BackgroundWorker::sighup_received() {
            reload_settings(&database);
        }
        pause = match turn(&mut progress) {
            Turn::Busy => Duration::ZERO,
            Turn::Idle | Turn::Disabled | Turn::WaitingForExtension => ingest_interval(),
            Turn::Failed => backoff(progress.failures_in_a_row),
        };
    }
    stop_on_sigterm()
}

fn stop_on_sigterm() -> ! {
    // The launcher starts it again after RESTART_AFTER (pg_terminate_backend must not remove it
    // for good), unless it stopped it: at shutdown, or for a database it no longer serves.
    log!("centralcloud worker stopping (SIGTERM)");
    // SAFETY: ends the process the way PostgreSQL expects of a background worker.
    unsafe { pg_sys::proc_exit(1) };
}

/// One worker per database: a worker left over from a launcher that crashed keeps serving, and
/// its successor waits until it is gone. False on SIGTERM.
fn wait_to_serve(database: &str) -> bool {
    let mut logged = false;
    loop {
        let locked = BackgroundWorker::transaction(|| Spi::get_one::<bool>(SERVING_LOCK));
        if matches!(locked, Ok(Some(true))) {
            return true;
        }
        if !logged {
            log!("centralcloud worker: another worker serves database \"{database}\"; waiting until it ends");
            logged = true;
        }
        if !BackgroundWorker::wait_latch(Some(SERVED_RECHECK)) {
            return false;
        }
        if BackgroundWorker::sighup_received() {
            reload_settings(database);
        }
    }
}

fn reload_settings(database: &str) {
    // SAFETY: the documented way for a background worker to apply a SIGHUP.
    unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
    if !guc::worker_databases().iter().any(|d| d == database) {
        // The launcher stops it too; this covers a worker whose launcher crashed.
        log!("centralcloud worker: database \"{database}\" is no longer listed in centralcloud.database; stopping");
        // SAFETY: ends the process the way PostgreSQL expects of a background worker.
        unsafe { pg_sys::proc_exit(0) };
    }
}

fn ingest_interval() -> Duration {
    Duration::from_millis(guc::INGEST_INTERVAL_MS.get() as u64)
}

fn backoff(failures: u32) -> Duration {
    (ingest_interval() * failures.min(40)).min(MAX_BACKOFF)
}

/// One turn: the extension check, one ingest batch, and learning when it is due.
fn turn(progress: &mut Progress) -> Turn {
    match BackgroundWorker::transaction(crate::version::installed) {
        Some(v) if v == crate::version::LIBRARY => progress.waiting_logged = false,
        installed => return wait_for_extension(progress, installed),
    }
    if !guc::WORKER_ENABLED.get() {
        BackgroundWorker::transaction(|| record_state("disabled", None));
        return Turn::Disabled;
    }
    if due(progress.last_maintenance, guc::MAINTENANCE_INTERVAL_S.get()) {
        maintain_once(progress);
    }
    let ingested = ingest_once(progress);
    if due(progress.last_learn, guc::LEARN_INTERVAL_S.get()) {
        learn_once(progress);
    }
    ingested
}

/// Nothing to do until the extension exists here, at the library's release: a new library
/// waits, with its state shown, for ALTER EXTENSION centralcloud UPDATE.
fn wait_for_extension(progress: &mut Progress, installed: Option<String>) -> Turn {
    let library = crate::version::LIBRARY;
    let waiting = match &installed {
        None => "waiting for CREATE EXTENSION centralcloud in this database".to_string(),
        Some(v) => format!(
            "waiting for ALTER EXTENSION centralcloud UPDATE (installed {v}, library {library})"
        ),
    };
    if !progress.waiting_logged {
        log!("centralcloud worker: {waiting}");
        progress.waiting_logged = true;
    }
    if installed.is_some() {
        BackgroundWorker::transaction(|| record_state(&waiting, None));
    }
    Turn::WaitingForExtension
}

fn ingest_once(progress: &mut Progress) -> Turn {
    BackgroundWorker::transaction(AssertUnwindSafe(|| {
        let result = guarded(|| {
            Spi::get_three::<i64, i64, i64>(
                "SELECT read, ingested, rejected + duplicates + dead_lettered_on_error
                   FROM centralcloud.ingest_routing_events(NULL, 1)",
            )
        });
        match result {
            Ok((read, ingested, rejected)) => {
                let (read, ingested, rejected) = (
                    read.unwrap_or(0),
                    ingested.unwrap_or(0),
                    rejected.unwrap_or(0),
                );
                succeeded(progress);
                let full = read >= i64::from(guc::BATCH_SIZE.get());
                record_state(if full { "ingesting" } else { "idle" }, None);
                if read > 0 {
                    progress.ingested += ingested;
                    progress.rejected += rejected;
                    record_ingest(progress);
                }
                if full {
                    Turn::Busy
                } else {
                    Turn::Idle
                }
            }
            Err(e) => failed(progress, "ingest", &e),
        }
    }))
}

/// Whether a periodic job last run at `last` is due again.
fn due(last: Option<Instant>, every_s: i32) -> bool {
    let every = Duration::from_secs(every_s.max(1) as u64);
    last.is_none_or(|at| at.elapsed() >= every)
}

/// Partitions ahead and retention, through the same entry point pg_cron calls.
fn maintain_once(progress: &mut Progress) {
    progress.last_maintenance = Some(Instant::now());
    run_periodic(
        progress,
        "maintenance",
        "SELECT count(*) FROM centralcloud.run_maintenance()",
        || {},
    );
}

fn learn_once(progress: &mut Progress) {
    progress.last_learn = Some(Instant::now());
    run_periodic(
        progress,
        "learn",
        "SELECT count(*) FILTER (WHERE changed) FROM centralcloud.learn_complexity_scores()",
        || {
            record(
                "UPDATE centralcloud.worker_state SET last_learn_at = now(), updated_at = now()",
                &[],
            )
        },
    );
}

/// One periodic job in its own transaction: `sql` (returning a count, for the log) in a
/// subtransaction, then `after_success` in the same transaction; an error is recorded, not
/// raised.
fn run_periodic(progress: &mut Progress, what: &str, sql: &str, after_success: impl FnOnce()) {
    BackgroundWorker::transaction(AssertUnwindSafe(|| {
        match guarded(|| Spi::get_one::<i64>(sql)) {
            Ok(count) => {
                succeeded(progress);
                after_success();
                debug1!("centralcloud worker: {what}: {}", count.unwrap_or(0));
            }
            Err(e) => {
                failed(progress, what, &e);
            }
        }
    }));
}

/// Runs an SPI call in a subtransaction; a PostgreSQL error, a panic or an SPI error all come
/// back as the error's text.
fn guarded<T>(call: impl FnOnce() -> pgrx::spi::SpiResult<T>) -> Result<T, String> {
    subxact::run(call)
        .map_err(|failure| failure.to_string())
        .and_then(|result| result.map_err(|e| e.to_string()))
}

fn succeeded(progress: &mut Progress) {
    progress.failures_in_a_row = 0;
    progress.last_error = None;
}

/// Logs an error once (a repeat of the same error is logged at DEBUG1), records it, backs off.
fn failed(progress: &mut Progress, what: &str, error: &str) -> Turn {
    let message = format!("{what} failed: {error}");
    if progress.last_error.as_deref() == Some(message.as_str()) {
        debug1!("centralcloud worker: {message} (again)");
    } else {
        warning!("centralcloud worker: {message}; rolled back, going on");
    }
    progress.last_error = Some(message.clone());
    progress.failures_in_a_row += 1;
    record_state("error", Some(&message));
    Turn::Failed
}

/// The status row (one per database), written only when something changes.
fn record_state(state: &str, error: Option<&str>) {
    record(
        "INSERT INTO centralcloud.worker_state AS w (pid, state, started_at, updated_at, last_error, last_error_at)
         VALUES (pg_backend_pid(), $1, now(), now(), $2, CASE WHEN $2 IS NOT NULL THEN now() END)
         ON CONFLICT (singleton) DO UPDATE SET
             pid = EXCLUDED.pid,
             state = EXCLUDED.state,
             updated_at = now(),
             started_at = CASE WHEN w.pid = EXCLUDED.pid THEN w.started_at ELSE now() END,
             ingested_since_start = CASE WHEN w.pid = EXCLUDED.pid THEN w.ingested_since_start ELSE 0 END,
             rejected_since_start = CASE WHEN w.pid = EXCLUDED.pid THEN w.rejected_since_start ELSE 0 END,
             last_error = COALESCE(EXCLUDED.last_error, w.last_error),
             last_error_at = COALESCE(EXCLUDED.last_error_at, w.last_error_at)
         WHERE w.state IS DISTINCT FROM EXCLUDED.state OR w.pid IS DISTINCT FROM EXCLUDED.pid
            OR EXCLUDED.last_error IS NOT NULL",
        &[state.into(), error.into()],
    );
}

fn record_ingest(progress: &Progress) {
    record(
        "UPDATE centralcloud.worker_state
            SET last_ingest_at = now(), ingested_since_start = $1, rejected_since_start = $2,
                updated_at = now()
          WHERE pid = pg_backend_pid()",
        &[progress.ingested.into(), progress.rejected.into()],
    );
}

/// Status writes never take the worker down (the table may vanish mid-DROP EXTENSION).
fn record(sql: &str, args: &[pgrx::datum::DatumWithOid<'_>]) {
    if let Err(e) = subxact::run(|| Spi::run_with_args(sql, args)) {
        debug1!("centralcloud worker: recording status: {e}");
    }
}

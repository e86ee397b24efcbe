//! The launcher: the one worker registered at preload. It starts a database worker (a dynamic
//! background worker, `mod.rs`) for every database listed in `centralcloud.database`, and on
//! SIGHUP starts the workers of added databases and stops those of removed ones. It connects to
//! no database (it reads only the shared catalog pg_database), so it works before any
//! CREATE EXTENSION.

use super::{RESTART_AFTER, WORKER_TYPE};
use crate::guc;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BackgroundWorkerStatus, DynamicBackgroundWorker,
    SignalWakeFlags,
};
use pgrx::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CStr;
use std::time::{Duration, Instant};

pub const LAUNCHER_TYPE: &str = "centralcloud launcher";
/// How often the launcher looks again without a SIGHUP: a listed database created later, a
/// served one dropped, a worker slot freed.
const RECHECK_EVERY: Duration = Duration::from_secs(10);

/// Registers the launcher; called from `_PG_init` while preloading.
pub fn register() {
    BackgroundWorkerBuilder::new(LAUNCHER_TYPE)
        .set_type(LAUNCHER_TYPE)
        .set_function("centralcloud_launcher_main")
        .set_library("centralcloud")
        // Database access also makes it start only once recovery has finished: nothing runs on
        // a standby, and promotion starts it (pg_test/failover.sh).
        .enable_spi_access()
        .set_restart_time(Some(RESTART_AFTER))
        .load();
}

/// The database workers this launcher started; when each stopped one may start again; and what
/// it already logged, so a database that stays missing (or without a free slot) is reported
/// once.
#[derive(Default)]
struct Launcher {
    workers: BTreeMap<String, DynamicBackgroundWorker>,
    restart_at: BTreeMap<String, Instant>,
    reported: BTreeSet<String>,
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn centralcloud_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(None, None);
    let mut launcher = Launcher::default();
    // A worker that ends wakes the launcher (it is the workers' notify pid).
    while BackgroundWorker::wait_latch(Some(launcher.reconcile())) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: the documented way for a background worker to apply a SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
    }
    // Its workers go with it, so a restarted launcher starts from a clean slate.
    let stopping: Vec<String> = launcher.workers.keys().cloned().collect();
    for database in stopping {
        launcher.stop(&database, "the launcher is stopping");
    }
    log!("centralcloud launcher stopping (SIGTERM)");
    // SAFETY: exit code 1 so the postmaster restarts the launcher after pg_terminate_backend.
    unsafe { pg_sys::proc_exit(1) };
}

impl Launcher {
    /// Makes the running workers match the list: stops the workers of removed or dropped
    /// databases, notes workers that ended, starts the missing ones (a worker that ended, once
    /// RESTART_AFTER has passed). Returns how long to sleep before looking again.
    fn reconcile(&mut self) -> Duration {
        let wanted = guc::worker_databases();
        let existing = database_names();
        let served: Vec<String> = self.workers.keys().cloned().collect();
        for database in served {
            if !wanted.contains(&database) {
                self.stop(&database, "no longer listed in centralcloud.database");
            } else if !existing.contains(&database) {
                self.stop(&database, "the database no longer exists");
            } else if matches!(
                self.workers[&database].pid(),
                Err(BackgroundWorkerStatus::Stopped)
            ) {
                log!("centralcloud launcher: the worker for database \"{database}\" ended; starting it again in {} s", RESTART_AFTER.as_secs());
                self.workers.remove(&database);
                self.restart_at
                    .insert(database, Instant::now() + RESTART_AFTER);
            }
        }
        self.restart_at
            .retain(|database, _| wanted.contains(database));
        let now = Instant::now();
        for database in &wanted {
            if self.workers.contains_key(database)
                || self.restart_at.get(database).is_some_and(|at| *at > now)
            {
                continue;
            }
            if existing.contains(database) {
                self.start(database);
            } else {
                self.report_once(
                    database,
                    format!("database \"{database}\" listed in centralcloud.database does not exist; not serving it"),
                );
            }
        }
        self.restart_at
            .values()
            .map(|at| at.saturating_duration_since(now))
            .fold(RECHECK_EVERY, Duration::min)
    }

    fn start(&mut self, database: &str) {
        let started = BackgroundWorkerBuilder::new(&format!("centralcloud worker for {database}"))
            .set_type(WORKER_TYPE)
            .set_function("centralcloud_worker_main")
            .set_library("centralcloud")
            .set_extra(database)
            .enable_spi_access()
            // Never restarted by the postmaster: the launcher does it, so that its handle
            // always names the one worker of the database.
            .set_restart_time(None)
            // SAFETY: reading this process's pid.
            .set_notify_pid(unsafe { pg_sys::MyProcPid })
            .load_dynamic();
        match started {
            Ok(worker) => {
                log!("centralcloud launcher: started the worker for database \"{database}\"");
                self.reported.remove(database);
                self.restart_at.remove(database);
                self.workers.insert(database.to_string(), worker);
            }
            Err(_) => self.report_once(
                database,
                format!("no free background worker slot for database \"{database}\": raise max_worker_processes (one per served database, plus the launcher)"),
            ),
        }
    }

    fn stop(&mut self, database: &str, why: &str) {
        self.restart_at.remove(database);
        if let Some(worker) = self.workers.remove(database) {
            log!("centralcloud launcher: stopping the worker for database \"{database}\": {why}");
            // The postmaster sends it SIGTERM.
            worker.terminate();
        }
    }

    fn report_once(&mut self, database: &str, message: String) {
        if self.reported.insert(database.to_string()) {
            warning!("centralcloud launcher: {message}");
        }
    }
}

/// The names of the databases of the cluster. pg_database is a shared catalog, so this needs
/// no database; it is read with a plain heap scan, as the autovacuum launcher does, because a
/// process without a database cannot open indexes before the relcache init file exists.
fn database_names() -> BTreeSet<String> {
    BackgroundWorker::transaction(|| {
        let mut names = BTreeSet::new();
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        // SAFETY: a catalog scan inside a transaction, opened and closed here; each tuple is a
        // pg_database row, read before the next heap_getnext.
        unsafe {
            let relation = pg_sys::table_open(pg_sys::DatabaseRelationId, lock);
            let scan = pg_sys::table_beginscan_catalog(relation, 0, std::ptr::null_mut());
            loop {
                let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
                if tuple.is_null() {
                    break;
                }
                let row = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_database>(tuple);
                let name = CStr::from_ptr((*row).datname.data.as_ptr());
                names.insert(name.to_string_lossy().into_owned());
            }
            pg_sys::table_endscan(scan);
            pg_sys::table_close(relation, lock);
        }
        names
    })
}

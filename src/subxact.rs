//! Internal subtransactions, the way PL/pgSQL's EXCEPTION blocks use them: run a closure, and
//! if it raises an error (or panics), roll back only what it did and report the message.
//! Cancellation and shutdown are never swallowed: they roll back and propagate.

use pgrx::pg_sys::{self, errcodes::PgSqlErrorCode, panic::CaughtError, PgTryBuilder};
use std::panic::AssertUnwindSafe;

/// An error caught and rolled back by [`run`]: its SQLSTATE and its message.
#[derive(Debug)]
pub struct Failure {
    pub code: PgSqlErrorCode,
    message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Failure {
    /// Errors that are the database's problem, not the data's: lock timeouts, deadlocks and
    /// serialization failures, lack of memory, disk or connections, lost connections, a
    /// shutting-down or read-only server, I/O errors. Retrying the same work later can succeed,
    /// so they must never count against a message.
    pub fn is_transient(&self) -> bool {
        use PgSqlErrorCode::*;
        matches!(
            self.code,
            ERRCODE_LOCK_NOT_AVAILABLE
                | ERRCODE_T_R_SERIALIZATION_FAILURE
                | ERRCODE_T_R_DEADLOCK_DETECTED
                | ERRCODE_TRANSACTION_ROLLBACK
                | ERRCODE_T_R_STATEMENT_COMPLETION_UNKNOWN
                | ERRCODE_INSUFFICIENT_RESOURCES
                | ERRCODE_DISK_FULL
                | ERRCODE_OUT_OF_MEMORY
                | ERRCODE_TOO_MANY_CONNECTIONS
                | ERRCODE_CONFIGURATION_LIMIT_EXCEEDED
                | ERRCODE_CONNECTION_EXCEPTION
                | ERRCODE_CONNECTION_DOES_NOT_EXIST
                | ERRCODE_CONNECTION_FAILURE
                | ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION
                | ERRCODE_SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION
                | ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN
                | ERRCODE_PROTOCOL_VIOLATION
                | ERRCODE_CANNOT_CONNECT_NOW
                | ERRCODE_DATABASE_DROPPED
                | ERRCODE_READ_ONLY_SQL_TRANSACTION
                | ERRCODE_SYSTEM_ERROR
                | ERRCODE_IO_ERROR
        )
    }

    /// Raises the error again, with its own SQLSTATE, in the enclosing (sub)transaction.
    pub fn raise(&self) -> ! {
        crate::spi_util::raise(self.code, self.message.clone())
    }
}

/// Runs `f` in a subtransaction. `Ok` commits it into the enclosing transaction; `Err` carries
/// the error after the subtransaction was rolled back.
pub fn run<R>(f: impl FnOnce() -> R) -> Result<R, Failure> {
    // SAFETY: the same sequence PL/pgSQL uses (pl_exec.c, exec_stmt_block): remember the memory
    // context and resource owner, begin, and restore both after release or rollback.
    unsafe {
        let caller_context = pg_sys::CurrentMemoryContext;
        let caller_owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(caller_context);
        let restore = move || {
            pg_sys::MemoryContextSwitchTo(caller_context);
            pg_sys::CurrentResourceOwner = caller_owner;
        };

        PgTryBuilder::new(AssertUnwindSafe(|| {
            let value = f();
            pg_sys::ReleaseCurrentSubTransaction();
            restore();
            Ok(value)
        }))
        .catch_others(|caught| {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            restore();
            if must_propagate(&caught) {
                caught.rethrow();
            }
            Err(Failure {
                code: report(&caught).sql_error_code(),
                message: message(&caught),
            })
        })
        .execute()
    }
}

/// Like [`run`], but an error that is the database's problem ([`Failure::is_transient`]) is
/// raised again rather than returned: callers that would count a failure against the work
/// (a message's deliveries) never see one that says nothing about it.
pub fn run_unless_transient<R>(f: impl FnOnce() -> R) -> Result<R, Failure> {
    run(f).map_err(|failure| {
        if failure.is_transient() {
            failure.raise()
        }
        failure
    })
}

fn report(caught: &CaughtError) -> &pg_sys::panic::ErrorReportWithLevel {
    match caught {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
        CaughtError::RustPanic { ereport, .. } => ereport,
    }
}

fn must_propagate(caught: &CaughtError) -> bool {
    matches!(
        report(caught).sql_error_code(),
        PgSqlErrorCode::ERRCODE_QUERY_CANCELED
            | PgSqlErrorCode::ERRCODE_ADMIN_SHUTDOWN
            | PgSqlErrorCode::ERRCODE_CRASH_SHUTDOWN
    )
}

/// The error's message, with its detail when there is one.
fn message(caught: &CaughtError) -> String {
    let r = report(caught);
    match r.detail() {
        Some(detail) if !detail.is_empty() => format!("{} ({})", r.message(), detail),
        _ => r.message().to_string(),
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::run;
    use pgrx::prelude::*;

    fn count() -> i64 {
        Spi::get_one::<i64>("SELECT count(*) FROM subxact_probe")
            .unwrap()
            .unwrap()
    }

    #[pg_test]
    fn an_error_rolls_back_only_the_subtransaction() {
        Spi::run("CREATE TEMP TABLE subxact_probe (v int)").unwrap();
        Spi::run("INSERT INTO subxact_probe VALUES (1)").unwrap();
        let failed = run(|| {
            Spi::run("INSERT INTO subxact_probe VALUES (2)").unwrap();
            Spi::run("SELECT 1 / 0").unwrap();
        });
        assert_eq!(failed.unwrap_err().to_string(), "division by zero");
        assert_eq!(
            count(),
            1,
            "the failed subtransaction's insert is rolled back"
        );

        let committed = run(|| Spi::run("INSERT INTO subxact_probe VALUES (3)").unwrap());
        assert!(committed.is_ok());
        assert_eq!(
            count(),
            2,
            "the enclosing transaction goes on and keeps released work"
        );
    }

    #[pg_test]
    fn a_panic_is_caught_and_rolled_back() {
        Spi::run("CREATE TEMP TABLE subxact_probe (v int)").unwrap();
        let failed = run(|| {
            Spi::run("INSERT INTO subxact_probe VALUES (1)").unwrap();
            panic!("simulated bug");
        });
        assert!(failed.unwrap_err().to_string().contains("simulated bug"));
        assert_eq!(count(), 0);
    }

    #[pg_test]
    fn nested_subtransactions_roll_back_independently() {
        Spi::run("CREATE TEMP TABLE subxact_probe (v int)").unwrap();
        let outer = run(|| {
            Spi::run("INSERT INTO subxact_probe VALUES (1)").unwrap();
            let inner = run(|| Spi::run("INSERT INTO subxact_probe VALUES ('x'::int)").unwrap());
            assert!(inner
                .unwrap_err()
                .to_string()
                .contains("invalid input syntax"));
        });
        assert!(outer.is_ok());
        assert_eq!(count(), 1);
    }

    #[pg_test(error = "canceling statement due to user request")]
    fn cancellation_is_never_swallowed() {
        let _ = run(|| {
            Spi::run("SELECT pg_cancel_backend(pg_backend_pid())").unwrap();
            Spi::run("SELECT pg_sleep(5)").unwrap();
        });
        panic!("the cancel should have propagated");
    }
}

//! The library and the catalog must be of one release: after a new library is installed and
//! before `ALTER EXTENSION centralcloud UPDATE`, the catalog still has the old release's tables,
//! and the new code must not run against them (ALTER EXTENSION itself calls no Rust function).

use crate::spi_util::{error_with_hint, FirstValue};
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use std::cell::OnceCell;
use std::mem::ManuallyDrop;

/// The release this library is.
pub const LIBRARY: &str = env!("CARGO_PKG_VERSION");

thread_local! {
    /// Planned once per backend: every entry point asks, and routers call recommend_model() on
    /// every request. Never freed (a thread-local destructor would run after PostgreSQL tore
    /// SPI down at backend exit).
    static INSTALLED: OnceCell<ManuallyDrop<OwnedPreparedStatement>> = const { OnceCell::new() };
}

/// The release of centralcloud installed in this database, if it is installed.
pub fn installed() -> Option<String> {
    Spi::connect(|client| {
        INSTALLED.with(|cell| {
            let query = match cell.get() {
                Some(query) => query,
                None => {
                    let prepared = client
                        .prepare("SELECT extversion::text FROM pg_extension WHERE extname = 'centralcloud'", &[])?
                        .keep();
                    cell.get_or_init(|| ManuallyDrop::new(prepared))
                }
            };
            client.select(&**query, None, &[])?.first_value::<String>()
        })
    })
    .ok()
    .flatten()
}

/// Raises object_not_in_prerequisite_state unless the installed release is this library's, and
/// read_only_sql_transaction on a hot standby: every entry point writes, and pgrx's SPI asks for
/// a transaction id, which a standby cannot assign (an internal error otherwise).
pub fn require_current() {
    // SAFETY: reads shared memory state; callable in any backend.
    if unsafe { pg_sys::RecoveryInProgress() } {
        error_with_hint(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            "centralcloud: this server is a hot standby (read-only)",
            "Run it on the primary; the dashboards work here.",
        );
    }
    match installed() {
        Some(v) if v == LIBRARY => {}
        found => error_with_hint(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "centralcloud: the library is release {LIBRARY} but the extension in this database is {}",
                found.as_deref().unwrap_or("not installed")
            ),
            format!("Run ALTER EXTENSION centralcloud UPDATE TO '{LIBRARY}'."),
        ),
    }
}

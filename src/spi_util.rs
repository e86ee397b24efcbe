//! Small SPI conveniences shared by the SPI modules.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::spi::{SpiClient, SpiResult, SpiTupleTable};
use pgrx::{FromDatum, IntoDatum, PgSqlErrorCode};

pub trait FirstValue {
    /// The first column of the first row, or None when the query returned no row (pgrx's
    /// `first().get_one()` is an error on an empty result).
    fn first_value<T: FromDatum + IntoDatum>(self) -> SpiResult<Option<T>>;
}

impl FirstValue for SpiTupleTable<'_> {
    fn first_value<T: FromDatum + IntoDatum>(self) -> SpiResult<Option<T>> {
        if self.is_empty() {
            Ok(None)
        } else {
            self.first().get_one::<T>()
        }
    }
}

/// The transaction's isolation level, as `transaction_isolation` shows it.
pub fn isolation_level(client: &SpiClient<'_>) -> SpiResult<String> {
    Ok(client
        .select("SELECT current_setting('transaction_isolation')", None, &[])?
        .first_value::<String>()?
        .unwrap_or_default())
}

/// Raises invalid_transaction_state unless the transaction is READ COMMITTED: `what` (learning,
/// health evaluation) reads state others commit and acts on it once; under REPEATABLE READ it
/// would read a snapshot older than the last such commit and act on the same state twice.
pub fn require_read_committed(client: &SpiClient<'_>, what: &str) -> SpiResult<()> {
    let level = isolation_level(client)?;
    if level != "read committed" {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_STATE,
            format!(
                "centralcloud: {what} needs READ COMMITTED isolation, the transaction is {level}"
            ),
        );
    }
    Ok(())
}

/// Raises an ERROR with a SQLSTATE and a hint (pgrx's `ereport!` takes a detail, not a hint).
pub fn error_with_hint(
    code: pgrx::PgSqlErrorCode,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> ! {
    report(error(code, message).set_hint(hint))
}

/// Raises an ERROR with a SQLSTATE, so callers match codes, not English.
pub fn raise(code: pgrx::PgSqlErrorCode, message: impl Into<String>) -> ! {
    report(error(code, message))
}

fn error(code: pgrx::PgSqlErrorCode, message: impl Into<String>) -> ErrorReport {
    ErrorReport::new(code, message.into(), "centralcloud")
}

fn report(error: ErrorReport) -> ! {
    error.report(pgrx::PgLogLevel::ERROR);
    unreachable!("an ERROR report does not return")
}

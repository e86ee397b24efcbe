//! Small SPI conveniences shared by the SPI modules.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::spi::{SpiResult, SpiTupleTable};
use pgrx::{FromDatum, IntoDatum};

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

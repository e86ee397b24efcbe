//! centralcloud: the central learning service behind fleets of LLM model routers, as a
//! PostgreSQL extension. Router instances publish routing events to a pgmq queue; ingest
//! turns them into an exact audit trail and per-model metrics.
//!
//! Pure logic (no SPI, covered by plain unit tests): `event`, `aggregate`, `sketch`,
//! `learn::policy`, and the queue naming in `publish`.
//! SPI layer: `ingest`, `learn`, `publish`, `sketch_sql`, `stored_jsonb`, `subxact`. Schema and
//! comments: `sql/`.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

pub mod admission;
pub mod aggregate;
pub mod event;
pub mod sketch;
pub mod stats;

mod guc;
pub mod health;
mod ingest;
pub mod learn;
mod publish;
mod recommend;
mod retention;
mod sketch_sql;
mod spi_util;
mod stored_jsonb;
mod subxact;
mod units;
mod version;
mod worker;

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::init();
    // SAFETY: a plain flag PostgreSQL sets while it loads shared_preload_libraries.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        worker::register();
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}

// Tables and SQL-only functions first; the dashboards need the sketch functions; the
// security file (comments on the Rust functions, roles, grants) comes last.
extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!(
    "../sql/dashboards.sql",
    name = "dashboards",
    requires = [
        "schema",
        sketch_sql::latency_quantile,
        sketch_sql::latency_sketch_quantiles,
        sketch_sql::latency_sketch_union_trans,
        sketch_sql::latency_sketch_add_trans,
        sketch_sql::latency_sketch_combine,
        sketch_sql::latency_sketch_serialize,
        sketch_sql::latency_sketch_deserialize,
        sketch_sql::latency_sketch_final,
    ]
);
extension_sql_file!(
    "../sql/invariants.sql",
    name = "invariants",
    requires = ["dashboards"]
);
extension_sql_file!(
    "../sql/central.sql",
    name = "central",
    requires = ["dashboards"]
);
extension_sql_file!("../sql/security.sql", name = "security", finalize);

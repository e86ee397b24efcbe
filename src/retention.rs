//! `centralcloud.run_maintenance()`: the one entry point the worker and the pg_cron job call
//! for upkeep. Creates the routing_records partitions of the next days and applies
//! `centralcloud.routing_records_retention` by dropping whole expired partitions (the SQL
//! functions doing the DDL are in sql/schema.sql, with `%I`-quoted names).

use crate::guc;
use crate::spi_util::FirstValue;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;

/// Days ahead whose partitions maintenance keeps ready (ingest itself only needs tomorrow's).
const PARTITION_DAYS_AHEAD: i32 = 2;

type Action = (String, String, Option<i64>);

/// Partitions ahead, then retention of records and of dead letters; one row per thing done.
#[pg_extern(security_definer)]
#[search_path(@extschema@, pg_catalog, pg_temp)]
fn run_maintenance() -> TableIterator<
    'static,
    (
        name!(action, String),
        name!(object, String),
        name!(rows_removed, Option<i64>),
    ),
> {
    crate::version::require_current();
    let retention_s = guc::ROUTING_RECORDS_RETENTION_S.get();
    let actions = Spi::connect_mut(|client| -> SpiResult<Vec<Action>> {
        let mut actions = Vec::new();
        let created = client.update(
            "SELECT name FROM centralcloud.ensure_routing_partitions($1) AS name",
            None,
            &[PARTITION_DAYS_AHEAD.into()],
        )?;
        for row in created {
            let name = row.get::<String>(1)?.unwrap_or_default();
            actions.push(("created partition".to_string(), name, None));
        }
        if retention_s > 0 {
            let dropped = client.update(
                "SELECT partition_name, rows_removed
                   FROM centralcloud.drop_expired_routing_partitions(now() - make_interval(secs => $1))",
                None,
                &[f64::from(retention_s).into()],
            )?;
            for row in dropped {
                let name = row.get::<String>(1)?.unwrap_or_default();
                actions.push(("removed expired records".to_string(), name, row.get::<i64>(2)?));
            }
        }
        let dead_letter_retention_s = guc::DEAD_LETTER_RETENTION_S.get();
        if dead_letter_retention_s > 0 {
            let removed = client
                .update(
                    "SELECT centralcloud.drop_expired_dead_letters(now() - make_interval(secs => $1))",
                    None,
                    &[f64::from(dead_letter_retention_s).into()],
                )?
                .first_value::<i64>()?
                .unwrap_or(0);
            if removed > 0 {
                actions.push((
                    "removed expired dead letters".to_string(),
                    "routing_events_rejected".to_string(),
                    Some(removed),
                ));
            }
        }
        Ok(actions)
    })
    .unwrap_or_else(|e| error!("centralcloud: maintenance failed: {e}"));
    TableIterator::new(actions)
}

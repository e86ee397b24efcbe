//! What the bayes policy reads and writes besides the catalog: each cell's evidence per event
//! hour from `routing_rollup_hourly` (summed over instances and providers, sketches merged), and
//! the change points it detects (`learning_changes`, and the cell's new `regime_start`).

use super::bayes::{ChangeKind, HourEvidence};
use super::{Cell, Decision};
use crate::sketch::LatencySketch;
use crate::spi_util::FirstValue;
use pgrx::spi::{SpiClient, SpiResult};
use std::collections::HashMap;

/// Evidence older than this many half-lives weighs under 1/1000: not read.
const HALF_LIVES_READ: f64 = 10.0;

/// The newest event hour in the rollup (hours since the epoch): learning's "now" is the events'
/// own time, never the wall clock of the run, so a replay learns what the live day learned.
pub fn newest_hour(client: &SpiClient<'_>) -> SpiResult<Option<i64>> {
    client
        .select(
            "SELECT (extract(epoch FROM max(hour)) / 3600)::int8 FROM centralcloud.routing_rollup_hourly",
            None,
            &[],
        )?
        .first_value::<i64>()
}

/// Each cell's hourly evidence since its regime start (or the last HALF_LIVES_READ half-lives),
/// up to `now_hour`, keyed by (model, complexity).
pub fn read(
    client: &SpiClient<'_>,
    cells: &[Cell],
    now_hour: i64,
    half_life_hours: f64,
) -> SpiResult<HashMap<(String, String), Vec<HourEvidence>>> {
    let oldest_hour = now_hour - (half_life_hours * HALF_LIVES_READ).ceil() as i64;
    let rows = client.select(
        "SELECT h.model::text AS model, h.complexity::text AS complexity,
                (extract(epoch FROM h.hour) / 3600)::int8 AS hour,
                sum(h.success_count)::int8 AS successes, sum(h.failure_count)::int8 AS failures,
                centralcloud.latency_sketch_union(h.latency_sketch) AS sketch
           FROM unnest($1::text[], $2::text[], $3::int8[]) AS c(model, complexity, regime_start)
           JOIN centralcloud.routing_rollup_hourly h
             ON h.model = c.model AND h.complexity = c.complexity
            AND h.hour >= to_timestamp(greatest(c.regime_start, $4) * 3600)
            AND h.hour <= to_timestamp($5 * 3600)
          GROUP BY 1, 2, 3",
        None,
        &[
            cells
                .iter()
                .map(|c| c.model.as_str())
                .collect::<Vec<_>>()
                .into(),
            cells
                .iter()
                .map(|c| c.complexity.as_str())
                .collect::<Vec<_>>()
                .into(),
            cells
                .iter()
                .map(|c| c.regime_start)
                .collect::<Vec<_>>()
                .into(),
            oldest_hour.into(),
            now_hour.into(),
        ],
    )?;
    let mut by_cell: HashMap<(String, String), Vec<HourEvidence>> = HashMap::new();
    for row in rows {
        let key = (
            row.get_by_name::<String, _>("model")?.unwrap_or_default(),
            row.get_by_name::<String, _>("complexity")?
                .unwrap_or_default(),
        );
        // Stored sketches were checked when they were written and are checked again here.
        let latency = row
            .get_by_name::<Vec<u8>, _>("sketch")?
            .and_then(|bytes| LatencySketch::from_bytes(&bytes).ok());
        by_cell.entry(key).or_default().push(HourEvidence {
            hour: row.get_by_name::<i64, _>("hour")?.unwrap_or_default(),
            successes: row.get_by_name::<i64, _>("successes")?.unwrap_or_default(),
            failures: row.get_by_name::<i64, _>("failures")?.unwrap_or_default(),
            latency,
        });
    }
    Ok(by_cell)
}

/// Records each detected change point and moves the cell's regime start to it (one statement
/// for all of a chunk's changes).
pub fn record_changes(client: &mut SpiClient<'_>, decisions: &[Decision]) -> SpiResult<()> {
    let changed: Vec<_> = decisions
        .iter()
        .filter_map(|d| d.change.as_ref().map(|c| (d, c)))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let kind = |k: &ChangeKind| match k {
        ChangeKind::SuccessRate => "success_rate",
        ChangeKind::Latency => "latency",
    };
    client.update(
        "WITH c AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::float8[],
                                  $6::float8[], $7::float8[])
                    AS c(model, complexity, hour, kind, before_value, after_value, statistic)),
         logged AS (
             INSERT INTO centralcloud.learning_changes
                    (model_name, complexity_level, change_hour, kind, before_value, after_value, statistic)
             SELECT model, complexity, to_timestamp(hour * 3600), kind, before_value, after_value, statistic
               FROM c)
         UPDATE centralcloud.model_complexity_scores s SET regime_start = to_timestamp(c.hour * 3600)
           FROM c WHERE s.model_name = c.model AND s.complexity_level = c.complexity",
        None,
        &[
            changed
                .iter()
                .map(|(d, _)| d.cell.model.as_str())
                .collect::<Vec<_>>()
                .into(),
            changed
                .iter()
                .map(|(d, _)| d.cell.complexity.as_str())
                .collect::<Vec<_>>()
                .into(),
            changed.iter().map(|(_, c)| c.hour).collect::<Vec<_>>().into(),
            changed
                .iter()
                .map(|(_, c)| kind(&c.kind))
                .collect::<Vec<_>>()
                .into(),
            changed.iter().map(|(_, c)| c.before).collect::<Vec<_>>().into(),
            changed.iter().map(|(_, c)| c.after).collect::<Vec<_>>().into(),
            changed.iter().map(|(_, c)| c.statistic).collect::<Vec<_>>().into(),
        ],
    )?;
    Ok(())
}

//! What learning reads of `routing_rollup_hourly` and writes besides the catalog: policy
//! bayes's evidence per event hour (summed over instances and providers, sketches merged, less
//! what consensus leaves out), the consensus window per instance and provider, and the change
//! points bayes detects (`learning_changes`, and the cell's new `regime_start`).

use super::bayes::{ChangeKind, HourEvidence};
use super::consensus::Slice;
use super::{Cell, Decision};
use crate::sketch::MergedSketch;
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

/// The first hour of a cell's evidence: its regime start, or the last HALF_LIVES_READ
/// half-lives when that is later (or there is none).
pub fn first_evidence_hour(regime_start: Option<i64>, now_hour: i64, half_life_hours: f64) -> i64 {
    let oldest_hour = now_hour - (half_life_hours * HALF_LIVES_READ).ceil() as i64;
    regime_start.map_or(oldest_hour, |h| h.max(oldest_hour))
}

/// The first hour of the consensus window ending at `now_hour`.
pub fn window_first_hour(now_hour: i64, window_hours: i64) -> i64 {
    now_hour.saturating_sub(window_hours.max(1) - 1)
}

/// Each cell's hourly evidence from its `first_evidence_hour` up to, not including,
/// `before_hour` (the consensus window's first hour: the window's hours come from the rows
/// consensus read), keyed by (model, complexity), hours ascending, without the evidence
/// consensus leaves out (`left_out`: each cell's sources left out in this run and their hours;
/// ended episodes' hours are left out by the statement).
pub fn read(
    client: &SpiClient<'_>,
    cells: &[Cell],
    (before_hour, now_hour): (i64, i64),
    half_life_hours: f64,
    left_out: &[LeftOut<'_>],
) -> SpiResult<HashMap<(String, String), Vec<HourEvidence>>> {
    let oldest_hour = first_evidence_hour(None, now_hour, half_life_hours);
    let rows = client.select(
        include_str!("sql/read_hours.sql"),
        None,
        &[
            models(cells).into(),
            complexities(cells).into(),
            cells
                .iter()
                .map(|c| c.regime_start)
                .collect::<Vec<_>>()
                .into(),
            oldest_hour.into(),
            before_hour.into(),
            left_out.iter().map(|x| x.model).collect::<Vec<_>>().into(),
            left_out
                .iter()
                .map(|x| x.complexity)
                .collect::<Vec<_>>()
                .into(),
            left_out
                .iter()
                .map(|x| x.instance)
                .collect::<Vec<_>>()
                .into(),
            left_out
                .iter()
                .map(|x| x.provider)
                .collect::<Vec<_>>()
                .into(),
            left_out
                .iter()
                .map(|x| x.since_hour)
                .collect::<Vec<i64>>()
                .into(),
            left_out
                .iter()
                .map(|x| x.until_hour)
                .collect::<Vec<i64>>()
                .into(),
        ],
    )?;
    let mut by_cell: HashMap<(String, String), Vec<HourEvidence>> = HashMap::new();
    // Columns by position (the statement's order): by name costs a lookup per column and row.
    for row in rows {
        let key = (
            row.get::<String>(1)?.unwrap_or_default(),
            row.get::<String>(2)?.unwrap_or_default(),
        );
        // Stored sketches were checked when they were written and are checked again here.
        let latency = row
            .get::<Vec<u8>>(6)?
            .and_then(|bytes| MergedSketch::from_bytes(&bytes).ok());
        by_cell.entry(key).or_default().push(HourEvidence {
            hour: row.get::<i64>(3)?.unwrap_or_default(),
            successes: row.get::<i64>(4)?.unwrap_or_default(),
            failures: row.get::<i64>(5)?.unwrap_or_default(),
            latency,
        });
    }
    Ok(by_cell)
}

/// The chunk's models and complexities, as the statements' first two arrays.
pub fn models(cells: &[Cell]) -> Vec<&str> {
    cells.iter().map(|c| c.model.as_str()).collect()
}

pub fn complexities(cells: &[Cell]) -> Vec<&str> {
    cells.iter().map(|c| c.complexity.as_str()).collect()
}

/// The first and last model of a chunk (its cells are in key order), None for no cells.
fn model_range(cells: &[Cell]) -> Option<(&str, &str)> {
    Some((cells.first()?.model.as_str(), cells.last()?.model.as_str()))
}

/// A source whose evidence for a cell is left out of learning in hours `since_hour ..=
/// until_hour`.
pub struct LeftOut<'a> {
    pub model: &'a str,
    pub complexity: &'a str,
    pub instance: &'a str,
    pub provider: &'a str,
    pub since_hour: i64,
    pub until_hour: i64,
}

/// The consensus window of each cell, hours `window_first_hour ..= now_hour`: one slice per
/// (hour, instance, provider), in `cells`' order, split into the rows with outcomes and those
/// without (each in the statement's order). Sorted into place as they are read: no map of the
/// cells' keys and no second pass moving the rows.
pub fn read_window(
    client: &SpiClient<'_>,
    cells: &[Cell],
    now_hour: i64,
    window_hours: i64,
) -> SpiResult<Vec<WindowRows>> {
    let first_hour = window_first_hour(now_hour, window_hours);
    let mut by_cell: Vec<WindowRows> = cells.iter().map(|_| WindowRows::default()).collect();
    let Some(model_range) = model_range(cells) else {
        return Ok(by_cell);
    };
    let rows = client.select(
        include_str!("sql/read_window.sql"),
        None,
        &[
            models(cells).into(),
            complexities(cells).into(),
            first_hour.into(),
            now_hour.into(),
            model_range.0.into(),
            model_range.1.into(),
        ],
    )?;
    // Columns by position (the statement's order): by name costs a lookup per column and row.
    for row in rows {
        let text =
            |n: usize| -> SpiResult<String> { Ok(row.get::<String>(n)?.unwrap_or_default()) };
        let count = |n: usize| -> SpiResult<i64> { Ok(row.get::<i64>(n)?.unwrap_or_default()) };
        let latency = row
            .get::<Vec<u8>>(9)?
            .and_then(|bytes| MergedSketch::from_bytes(&bytes).ok());
        // The statement's places are 1..=cells.len(): nothing is skipped.
        let rows = usize::try_from(count(1)? - 1)
            .ok()
            .and_then(|cell| by_cell.get_mut(cell));
        let Some(rows) = rows else { continue };
        let (successes, failures) = (count(3)?, count(4)?);
        let slices = if successes + failures > 0 {
            &mut rows.window
        } else {
            &mut rows.idle
        };
        slices.push(Slice {
            instance: text(7)?,
            provider: text(8)?,
            hour: count(2)?,
            successes,
            failures,
            latency_count: count(5)?,
            latency_sum_ms: count(6)?,
            latency,
        });
    }
    Ok(by_cell)
}

/// A cell's rows in the consensus window: with outcomes (what consensus tests) and without.
#[derive(Default)]
pub struct WindowRows {
    pub window: Vec<Slice>,
    pub idle: Vec<Slice>,
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

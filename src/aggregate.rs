//! Batch aggregation: a batch of validated events becomes one delta per
//! (model, complexity) cell, so ingest upserts each metrics row once per batch. Pure: no SPI.
//!
//! Counting semantics (the seed double counts every event as a "use"):
//! - `routed` counts routing decisions (`outcome = "routed"`): this is `usage_count`;
//! - `success` / `failure` count outcome events; success rate = success / (success + failure);
//! - latency statistics take every event that reports `response_time_ms`, whatever its outcome.

use crate::event::{Choice, Complexity, Outcome};
use crate::sketch::LatencySketch;
use std::collections::BTreeMap;

/// A metrics cell. Ordered by (model, complexity): upserts run in this order in every session,
/// so two concurrent ingests lock rows in the same order and cannot deadlock.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellKey {
    pub model: String,
    pub complexity: &'static str,
}

/// What aggregation needs of one recorded event.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub model: String,
    pub complexity: Complexity,
    pub outcome: Outcome,
    pub response_time_ms: Option<i32>,
    pub score: f64,
}

#[derive(Clone, Debug, Default)]
pub struct CellDelta {
    pub routed: i64,
    pub success: i64,
    pub failure: i64,
    pub latency_count: i64,
    pub latency_sum: i64,
    pub latency_min: Option<i32>,
    pub latency_max: Option<i32>,
    pub sketch: LatencySketch,
    /// The first `complexity_score` seen for the cell in this batch (the score instances route
    /// with today); the score catalog starts from it.
    pub first_score: Option<f64>,
}

impl CellDelta {
    fn add(&mut self, e: &Sample) {
        match e.outcome {
            Outcome::Routed => self.routed += 1,
            Outcome::Success => self.success += 1,
            Outcome::Failure => self.failure += 1,
        }
        if let Some(ms) = e.response_time_ms {
            self.latency_count += 1;
            self.latency_sum += i64::from(ms);
            self.latency_min = Some(self.latency_min.map_or(ms, |m| m.min(ms)));
            self.latency_max = Some(self.latency_max.map_or(ms, |m| m.max(ms)));
            self.sketch.add(ms);
        }
        self.first_score.get_or_insert(e.score);
    }

    /// Adds a later delta of the same cell (its first score does not replace ours).
    fn merge(&mut self, later: &CellDelta) {
        self.routed += later.routed;
        self.success += later.success;
        self.failure += later.failure;
        self.latency_count += later.latency_count;
        self.latency_sum += later.latency_sum;
        self.latency_min = combine(self.latency_min, later.latency_min, i32::min);
        self.latency_max = combine(self.latency_max, later.latency_max, i32::max);
        // Both sketches come from LatencySketch::default(): same configuration, merge cannot fail.
        self.sketch
            .merge(&later.sketch)
            .expect("sketches share one configuration");
        self.first_score = self.first_score.or(later.first_score);
    }
}

/// Combines two optional values with `pick`, treating None as "no value yet".
fn combine(a: Option<i32>, b: Option<i32>, pick: fn(i32, i32) -> i32) -> Option<i32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(pick(x, y)),
        (x, y) => x.or(y),
    }
}

/// Per-cell deltas of several batches, merged: what one transaction upserts.
pub fn merge_cells(total: &mut BTreeMap<CellKey, CellDelta>, batch: BTreeMap<CellKey, CellDelta>) {
    for (key, delta) in batch {
        match total.get_mut(&key) {
            Some(existing) => existing.merge(&delta),
            None => {
                total.insert(key, delta);
            }
        }
    }
}

/// Folds a batch into per-cell deltas, in key order.
pub fn aggregate<'a>(events: impl IntoIterator<Item = &'a Sample>) -> BTreeMap<CellKey, CellDelta> {
    let mut cells: BTreeMap<CellKey, CellDelta> = BTreeMap::new();
    for e in events {
        let key = CellKey {
            model: e.model.clone(),
            complexity: e.complexity.as_str(),
        };
        cells.entry(key).or_default().add(e);
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    fn event(model: &str, complexity: Complexity, outcome: Outcome, ms: Option<i32>) -> Sample {
        Sample {
            model: model.into(),
            complexity,
            outcome,
            response_time_ms: ms,
            score: 3.0,
        }
    }

    #[test]
    fn counts_follow_the_documented_semantics() {
        use Complexity::*;
        use Outcome::*;
        let batch = vec![
            event("gpt-4o", Complex, Routed, None),
            event("gpt-4o", Complex, Success, Some(1200)),
            event("gpt-4o", Complex, Failure, Some(3000)),
            event("gpt-4o", Complex, Routed, None),
            event("gpt-4o", Simple, Success, Some(100)),
            event("claude", Medium, Routed, Some(50)),
        ];
        let cells = aggregate(&batch);
        let keys: Vec<_> = cells
            .keys()
            .map(|k| (k.model.as_str(), k.complexity))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("claude", "medium"),
                ("gpt-4o", "complex"),
                ("gpt-4o", "simple")
            ]
        );

        let c = &cells[&CellKey {
            model: "gpt-4o".into(),
            complexity: "complex",
        }];
        assert_eq!((c.routed, c.success, c.failure), (2, 1, 1));
        assert_eq!((c.latency_count, c.latency_sum), (2, 4200));
        assert_eq!((c.latency_min, c.latency_max), (Some(1200), Some(3000)));
        assert_eq!(c.sketch.count(), 2);

        let routed_with_latency = &cells[&CellKey {
            model: "claude".into(),
            complexity: "medium",
        }];
        assert_eq!(
            (
                routed_with_latency.routed,
                routed_with_latency.latency_count
            ),
            (1, 1)
        );
    }

    #[test]
    fn merging_batches_equals_aggregating_them_at_once() {
        use Complexity::*;
        use Outcome::*;
        let first = vec![
            event("a", Simple, Routed, None),
            event("a", Simple, Success, Some(300)),
            event("b", Complex, Failure, Some(50)),
        ];
        let second = vec![
            event("a", Simple, Failure, Some(100)),
            event("c", Medium, Routed, None),
            event("a", Simple, Routed, None),
        ];
        let mut merged = aggregate(&first);
        merge_cells(&mut merged, aggregate(&second));
        let all: Vec<Sample> = first.iter().chain(&second).cloned().collect();
        let at_once = aggregate(&all);
        assert_eq!(merged.len(), at_once.len());
        for (key, want) in &at_once {
            let got = &merged[key];
            assert_eq!(
                (
                    got.routed,
                    got.success,
                    got.failure,
                    got.latency_count,
                    got.latency_sum
                ),
                (
                    want.routed,
                    want.success,
                    want.failure,
                    want.latency_count,
                    want.latency_sum
                ),
                "{key:?}"
            );
            assert_eq!(
                (got.latency_min, got.latency_max),
                (want.latency_min, want.latency_max)
            );
            assert_eq!(got.sketch.count(), want.sketch.count());
            assert_eq!(got.sketch.quantile(0.5), want.sketch.quantile(0.5));
            assert_eq!(got.first_score, want.first_score);
        }
    }

    #[test]
    fn cell_without_latency_has_no_min_max() {
        let batch = vec![event("m", Complexity::Simple, Outcome::Routed, None)];
        let c = aggregate(&batch).into_values().next().unwrap();
        assert_eq!(
            (c.latency_count, c.latency_min, c.latency_max),
            (0, None, None)
        );
        assert_eq!(c.sketch.count(), 0);
        assert_eq!(c.first_score, Some(3.0));
    }

    #[test]
    fn totals_are_preserved_across_cells() {
        let mut batch = Vec::new();
        for i in 0..1000 {
            let complexity = Complexity::ALL[i % 3];
            let outcome = Outcome::ALL[(i / 3) % 3];
            batch.push(event(
                &format!("m{}", i % 7),
                complexity,
                outcome,
                Some(i as i32),
            ));
        }
        let cells = aggregate(&batch);
        let total: i64 = cells
            .values()
            .map(|c| c.routed + c.success + c.failure)
            .sum();
        let sum: i64 = cells.values().map(|c| c.latency_sum).sum();
        assert_eq!(total, 1000);
        assert_eq!(sum, (0..1000).sum::<i64>());
        assert_eq!(cells.len(), 21);
    }
}

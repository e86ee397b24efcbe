//! Batch aggregation: a batch of validated events becomes one delta per (model, complexity)
//! cell, and one per hourly rollup key (hour, instance, model, complexity, provider), so ingest
//! upserts each metrics and rollup row once per call; and per (provider, model) pair, the
//! outcomes health evaluation reads and the capabilities successful requests needed. Pure: no
//! SPI.
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

/// An hourly rollup row. Ordered like the table's primary key, and upserted in this order for
/// the same reason as [`CellKey`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RollupKey {
    /// Start of the event's hour (UTC), in seconds since the Unix epoch.
    pub hour: i64,
    pub instance_id: String,
    pub model: String,
    pub complexity: &'static str,
    pub provider: String,
}

/// A row of the rollup summed over instances. Ordered like that table's primary key, for the
/// same reason as [`CellKey`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FleetKey {
    pub model: String,
    pub complexity: &'static str,
    /// Start of the hour (UTC), in seconds since the Unix epoch.
    pub hour: i64,
    pub provider: String,
}

/// What aggregation needs of one recorded event.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Start of the hour of the event's timestamp (UTC), in seconds since the Unix epoch.
    pub hour: i64,
    pub instance_id: String,
    pub provider: String,
    pub model: String,
    pub complexity: Complexity,
    pub outcome: Outcome,
    pub response_time_ms: Option<i32>,
    pub score: f64,
    /// `capabilities_required` of a successful outcome (empty otherwise): the pair supports them.
    pub capabilities: Vec<String>,
}

/// A (provider, model) pair: what health judges and what the capability catalog describes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PairKey {
    pub provider: String,
    pub model: String,
}

/// A pair's events of one ingest call, for health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeDelta {
    pub routed: i64,
    pub success: i64,
    pub failure: i64,
}

/// A capability of a pair, learned from a successful request that required it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CapabilityKey {
    pub provider: String,
    pub model: String,
    pub capability: String,
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
        // Both sketches come from LatencySketch::default() (same configuration) and hold one
        // transaction's samples (far below MAX_COUNT): merge cannot fail.
        self.sketch
            .merge(&later.sketch)
            .expect("sketches share one configuration and hold few samples");
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

/// Adds events to per-cell deltas.
pub fn add_cells<'a>(
    cells: &mut BTreeMap<CellKey, CellDelta>,
    events: impl IntoIterator<Item = &'a Sample>,
) {
    fold_into(cells, events, |e| CellKey {
        model: e.model.clone(),
        complexity: e.complexity.as_str(),
    })
}

/// Adds events to hourly rollup deltas.
pub fn add_rollups<'a>(
    rollups: &mut BTreeMap<RollupKey, CellDelta>,
    events: impl IntoIterator<Item = &'a Sample>,
) {
    fold_into(rollups, events, |e| RollupKey {
        hour: e.hour,
        instance_id: e.instance_id.clone(),
        model: e.model.clone(),
        complexity: e.complexity.as_str(),
        provider: e.provider.clone(),
    })
}

/// Sums rollup deltas over instances, in the fleet rollup's key order.
pub fn fleet_of(rollups: &BTreeMap<RollupKey, CellDelta>) -> BTreeMap<FleetKey, CellDelta> {
    let mut fleet: BTreeMap<FleetKey, CellDelta> = BTreeMap::new();
    for (key, delta) in rollups {
        let key = FleetKey {
            model: key.model.clone(),
            complexity: key.complexity,
            hour: key.hour,
            provider: key.provider.clone(),
        };
        match fleet.get_mut(&key) {
            Some(total) => total.merge(delta),
            None => {
                fleet.insert(key, delta.clone());
            }
        }
    }
    fleet
}

/// Adds events to per-pair outcome counts.
pub fn add_outcomes<'a>(
    out: &mut BTreeMap<PairKey, OutcomeDelta>,
    events: impl IntoIterator<Item = &'a Sample>,
) {
    for e in events {
        let key = PairKey {
            provider: e.provider.clone(),
            model: e.model.clone(),
        };
        let d = out.entry(key).or_default();
        match e.outcome {
            Outcome::Routed => d.routed += 1,
            Outcome::Success => d.success += 1,
            Outcome::Failure => d.failure += 1,
        }
    }
}

/// Adds the successful events to the counts per pair and capability.
pub fn add_capabilities<'a>(
    out: &mut BTreeMap<CapabilityKey, i64>,
    events: impl IntoIterator<Item = &'a Sample>,
) {
    for e in events.into_iter().filter(|e| e.outcome == Outcome::Success) {
        for capability in &e.capabilities {
            let key = CapabilityKey {
                provider: e.provider.clone(),
                model: e.model.clone(),
                capability: capability.clone(),
            };
            *out.entry(key).or_default() += 1;
        }
    }
}

fn fold_into<'a, K: Ord>(
    deltas: &mut BTreeMap<K, CellDelta>,
    events: impl IntoIterator<Item = &'a Sample>,
    key: impl Fn(&Sample) -> K,
) {
    for e in events {
        deltas.entry(key(e)).or_default().add(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One batch folded at once: what the tests compare ingest's incremental adds with.
    /// Folds a batch into per-cell deltas, in key order.
    fn aggregate<'a>(events: impl IntoIterator<Item = &'a Sample>) -> BTreeMap<CellKey, CellDelta> {
        let mut cells = BTreeMap::new();
        add_cells(&mut cells, events);
        cells
    }

    /// Folds a batch into hourly rollup deltas, in key order.
    fn aggregate_rollups<'a>(
        events: impl IntoIterator<Item = &'a Sample>,
    ) -> BTreeMap<RollupKey, CellDelta> {
        let mut rollups = BTreeMap::new();
        add_rollups(&mut rollups, events);
        rollups
    }

    /// Folds a batch into per-pair outcome counts, in key order.
    fn aggregate_outcomes<'a>(
        events: impl IntoIterator<Item = &'a Sample>,
    ) -> BTreeMap<PairKey, OutcomeDelta> {
        let mut out = BTreeMap::new();
        add_outcomes(&mut out, events);
        out
    }

    /// Folds a batch into the number of successful requests per pair and capability, in key order.
    fn aggregate_capabilities<'a>(
        events: impl IntoIterator<Item = &'a Sample>,
    ) -> BTreeMap<CapabilityKey, i64> {
        let mut out = BTreeMap::new();
        add_capabilities(&mut out, events);
        out
    }

    fn event(model: &str, complexity: Complexity, outcome: Outcome, ms: Option<i32>) -> Sample {
        Sample {
            hour: 0,
            instance_id: "i".into(),
            provider: "p".into(),
            model: model.into(),
            complexity,
            outcome,
            response_time_ms: ms,
            score: 3.0,
            capabilities: Vec::new(),
        }
    }

    #[test]
    fn pairs_count_outcomes_and_capabilities_only_of_successes() {
        use Complexity::*;
        use Outcome::*;
        let with = |mut e: Sample, provider: &str, caps: &[&str]| {
            e.provider = provider.into();
            e.capabilities = caps.iter().map(|c| c.to_string()).collect();
            e
        };
        let first = vec![
            with(
                event("gpt-4o", Complex, Success, None),
                "openai",
                &["vision", "tools"],
            ),
            with(
                event("gpt-4o", Simple, Failure, None),
                "openai",
                &["vision"],
            ),
            with(event("gpt-4o", Simple, Routed, None), "azure", &[]),
        ];
        let second = vec![with(
            event("gpt-4o", Medium, Success, None),
            "openai",
            &["vision"],
        )];
        let mut outcomes = aggregate_outcomes(&first);
        add_outcomes(&mut outcomes, &second);
        let pair = |p: &str| PairKey {
            provider: p.into(),
            model: "gpt-4o".into(),
        };
        assert_eq!(
            outcomes[&pair("openai")],
            OutcomeDelta {
                routed: 0,
                success: 2,
                failure: 1
            }
        );
        assert_eq!(
            outcomes[&pair("azure")],
            OutcomeDelta {
                routed: 1,
                success: 0,
                failure: 0
            }
        );
        let mut caps = aggregate_capabilities(&first);
        add_capabilities(&mut caps, &second);
        let found: Vec<(&str, i64)> = caps
            .iter()
            .map(|(k, n)| (k.capability.as_str(), *n))
            .collect();
        assert_eq!(
            found,
            vec![("tools", 1), ("vision", 2)],
            "the failure taught nothing"
        );
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
    fn adding_batches_one_by_one_equals_aggregating_them_at_once() {
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
        add_cells(&mut merged, &second);
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

    #[test]
    fn rollups_split_by_hour_instance_and_provider_and_add_up_to_the_cells() {
        let mut batch = Vec::new();
        for i in 0..600_i64 {
            let mut e = event(
                &format!("m{}", i % 2),
                Complexity::ALL[(i % 3) as usize],
                Outcome::ALL[((i / 3) % 3) as usize],
                (i % 4 != 0).then_some(i as i32),
            );
            e.hour = 3600 * (i % 5);
            e.instance_id = format!("inst-{}", i % 4);
            e.provider = format!("prov-{}", i % 2);
            batch.push(e);
        }
        let rollups = aggregate_rollups(&batch);
        // Keys come in order; model and provider both follow i % 2; totals equal the cells'.
        let keys: Vec<&RollupKey> = rollups.keys().collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert!(rollups
            .keys()
            .all(|k| k.model.ends_with(&k.provider[5..]) && k.hour % 3600 == 0));
        let cells = aggregate(&batch);
        let count = |d: &CellDelta| {
            (
                d.routed,
                d.success,
                d.failure,
                d.latency_count,
                d.latency_sum,
            )
        };
        let sum = |it: Vec<(i64, i64, i64, i64, i64)>| {
            it.into_iter().fold((0, 0, 0, 0, 0), |a, b| {
                (a.0 + b.0, a.1 + b.1, a.2 + b.2, a.3 + b.3, a.4 + b.4)
            })
        };
        let cell_totals = sum(cells.values().map(count).collect());
        assert_eq!(sum(rollups.values().map(count).collect()), cell_totals);
        assert_eq!(cell_totals.0 + cell_totals.1 + cell_totals.2, 600);
        let in_hour_0: i64 = rollups
            .iter()
            .filter(|(k, _)| k.hour == 0)
            .map(|(_, d)| d.routed + d.success + d.failure)
            .sum();
        assert_eq!(in_hour_0, 120);
    }

    #[test]
    fn the_fleet_rollup_equals_folding_the_events_without_the_instance() {
        let batch: Vec<Sample> = (0..900_i64)
            .map(|i| {
                let mut e = event(
                    &format!("m{}", i % 3),
                    Complexity::ALL[(i % 2) as usize],
                    Outcome::ALL[(i % 3) as usize],
                    (i % 5 != 0).then_some((i * 7 % 1000) as i32),
                );
                e.hour = 3600 * (i % 4);
                e.instance_id = format!("inst-{}", i % 7);
                e.provider = format!("prov-{}", i % 2);
                e
            })
            .collect();
        let fleet = fleet_of(&aggregate_rollups(&batch));
        let mut want = BTreeMap::new();
        fold_into(&mut want, &batch, |e| FleetKey {
            model: e.model.clone(),
            complexity: e.complexity.as_str(),
            hour: e.hour,
            provider: e.provider.clone(),
        });
        assert_eq!(
            fleet.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (key, got) in &fleet {
            let w = &want[key];
            assert_eq!(
                (
                    got.routed,
                    got.success,
                    got.failure,
                    got.latency_count,
                    got.latency_sum
                ),
                (
                    w.routed,
                    w.success,
                    w.failure,
                    w.latency_count,
                    w.latency_sum
                )
            );
            assert_eq!(
                (got.latency_min, got.latency_max),
                (w.latency_min, w.latency_max)
            );
            assert_eq!(got.sketch.count(), w.sketch.count());
            for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
                assert_eq!(got.sketch.quantile(q), w.sketch.quantile(q), "{key:?} {q}");
            }
        }
    }
}

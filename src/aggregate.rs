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
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, HashMap};

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

/// What aggregation needs of one recorded event, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample<'a> {
    /// Start of the hour of the event's timestamp (UTC), in seconds since the Unix epoch.
    pub hour: i64,
    pub instance_id: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    pub complexity: Complexity,
    pub outcome: Outcome,
    pub response_time_ms: Option<i32>,
    pub score: f64,
    /// `capabilities_required`; counted only for a success (the pair supports them).
    pub capabilities: &'a [String],
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

impl OutcomeDelta {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Routed => self.routed += 1,
            Outcome::Success => self.success += 1,
            Outcome::Failure => self.failure += 1,
        }
    }
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
    fn add(&mut self, e: &Sample<'_>) {
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

/// A name of one call (instance, model, provider or capability), by its index in [`Names`].
type NameId = u32;

/// The names one call has seen, each stored once, so the call's keys are small integers:
/// cheap to hash and compare, and no string is copied per event. Looked up by text with the
/// standard library's keyed hash (publishers choose these strings).
#[derive(Default)]
struct Names {
    ids: HashMap<Box<str>, NameId>,
    names: Vec<Box<str>>,
}

impl Names {
    fn id(&mut self, name: &str) -> NameId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = NameId::try_from(self.names.len()).expect("fewer than 2^32 names in one call");
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    fn name(&self, id: NameId) -> String {
        self.names[id as usize].to_string()
    }
}

/// [`RollupKey`] with its names as [`NameId`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct RollupId {
    hour: i64,
    instance: NameId,
    model: NameId,
    complexity: Complexity,
    provider: NameId,
}

/// What one ingest call's events add to each metrics cell, hourly rollup row, pair and
/// capability, summed as the events come (keys hashed, not ordered: ordering happens once, in
/// [`CallTotals::into_sorted`]).
#[derive(Default)]
pub struct CallTotals {
    names: Names,
    cells: FxHashMap<(NameId, Complexity), CellDelta>,
    rollups: FxHashMap<RollupId, CellDelta>,
    /// By (provider, model).
    outcomes: FxHashMap<(NameId, NameId), OutcomeDelta>,
    /// By (provider, model, capability).
    capabilities: FxHashMap<(NameId, NameId, NameId), i64>,
}

impl CallTotals {
    pub fn add(&mut self, e: &Sample<'_>) {
        let instance = self.names.id(e.instance_id);
        let model = self.names.id(e.model);
        let provider = self.names.id(e.provider);
        self.cells.entry((model, e.complexity)).or_default().add(e);
        let rollup = RollupId {
            hour: e.hour,
            instance,
            model,
            complexity: e.complexity,
            provider,
        };
        self.rollups.entry(rollup).or_default().add(e);
        self.outcomes
            .entry((provider, model))
            .or_default()
            .add(e.outcome);
        if e.outcome == Outcome::Success {
            for capability in e.capabilities {
                let capability = self.names.id(capability);
                *self
                    .capabilities
                    .entry((provider, model, capability))
                    .or_default() += 1;
            }
        }
    }

    /// Rows the totals would write: what bounds a call's memory.
    pub fn pending_rows(&self) -> usize {
        self.cells.len() + self.rollups.len() + self.outcomes.len() + self.capabilities.len()
    }

    /// The totals by their tables' keys, in the order upserts take.
    pub fn into_sorted(self) -> SortedTotals {
        let names = &self.names;
        SortedTotals {
            cells: self
                .cells
                .into_iter()
                .map(|((model, complexity), d)| {
                    let key = CellKey {
                        model: names.name(model),
                        complexity: complexity.as_str(),
                    };
                    (key, d)
                })
                .collect(),
            rollups: self
                .rollups
                .into_iter()
                .map(|(id, d)| {
                    let key = RollupKey {
                        hour: id.hour,
                        instance_id: names.name(id.instance),
                        model: names.name(id.model),
                        complexity: id.complexity.as_str(),
                        provider: names.name(id.provider),
                    };
                    (key, d)
                })
                .collect(),
            outcomes: self
                .outcomes
                .into_iter()
                .map(|((provider, model), d)| {
                    let key = PairKey {
                        provider: names.name(provider),
                        model: names.name(model),
                    };
                    (key, d)
                })
                .collect(),
            capabilities: self
                .capabilities
                .into_iter()
                .map(|((provider, model, capability), n)| {
                    let key = CapabilityKey {
                        provider: names.name(provider),
                        model: names.name(model),
                        capability: names.name(capability),
                    };
                    (key, n)
                })
                .collect(),
        }
    }
}

/// A call's totals in the key order upserts take (so concurrent callers cannot deadlock).
#[derive(Default)]
pub struct SortedTotals {
    pub cells: BTreeMap<CellKey, CellDelta>,
    pub rollups: BTreeMap<RollupKey, CellDelta>,
    pub outcomes: BTreeMap<PairKey, OutcomeDelta>,
    pub capabilities: BTreeMap<CapabilityKey, i64>,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An event the tests own; `sample()` is what ingest hands aggregation.
    #[derive(Clone)]
    struct Event {
        hour: i64,
        instance_id: String,
        provider: String,
        model: String,
        complexity: Complexity,
        outcome: Outcome,
        response_time_ms: Option<i32>,
        score: f64,
        capabilities: Vec<String>,
    }

    impl Event {
        fn sample(&self) -> Sample<'_> {
            Sample {
                hour: self.hour,
                instance_id: &self.instance_id,
                provider: &self.provider,
                model: &self.model,
                complexity: self.complexity,
                outcome: self.outcome,
                response_time_ms: self.response_time_ms,
                score: self.score,
                capabilities: &self.capabilities,
            }
        }
    }

    fn event(model: &str, complexity: Complexity, outcome: Outcome, ms: Option<i32>) -> Event {
        Event {
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

    /// The oracle: the events folded one by one into ordered maps, the obvious way.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> SortedTotals {
        let mut t = SortedTotals::default();
        for e in events {
            let s = e.sample();
            let cell = CellKey {
                model: e.model.clone(),
                complexity: e.complexity.as_str(),
            };
            t.cells.entry(cell).or_default().add(&s);
            let rollup = RollupKey {
                hour: e.hour,
                instance_id: e.instance_id.clone(),
                model: e.model.clone(),
                complexity: e.complexity.as_str(),
                provider: e.provider.clone(),
            };
            t.rollups.entry(rollup).or_default().add(&s);
            let pair = PairKey {
                provider: e.provider.clone(),
                model: e.model.clone(),
            };
            t.outcomes.entry(pair).or_default().add(e.outcome);
            if e.outcome == Outcome::Success {
                for capability in &e.capabilities {
                    let key = CapabilityKey {
                        provider: e.provider.clone(),
                        model: e.model.clone(),
                        capability: capability.clone(),
                    };
                    *t.capabilities.entry(key).or_default() += 1;
                }
            }
        }
        t
    }

    /// What ingest does: each batch added to the call's totals, sorted at the end.
    fn totals(batches: &[&[Event]]) -> SortedTotals {
        let mut totals = CallTotals::default();
        for batch in batches {
            for e in batch.iter() {
                totals.add(&e.sample());
            }
        }
        totals.into_sorted()
    }

    fn assert_same_delta(got: &CellDelta, want: &CellDelta, key: &dyn std::fmt::Debug) {
        let counters = |d: &CellDelta| {
            (
                d.routed,
                d.success,
                d.failure,
                d.latency_count,
                d.latency_sum,
                d.latency_min,
                d.latency_max,
                d.first_score,
            )
        };
        assert_eq!(counters(got), counters(want), "{key:?}");
        assert_eq!(got.sketch.count(), want.sketch.count(), "{key:?}");
        for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
            assert_eq!(
                got.sketch.quantile(q),
                want.sketch.quantile(q),
                "{key:?} {q}"
            );
        }
    }

    fn assert_same_deltas<K: Ord + std::fmt::Debug>(
        got: &BTreeMap<K, CellDelta>,
        want: &BTreeMap<K, CellDelta>,
    ) {
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (key, w) in want {
            assert_same_delta(&got[key], w, key);
        }
    }

    /// Events over several hours, instances, providers, models and capabilities.
    fn varied(n: i64) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let mut e = event(
                    &format!("m{}", i % 5),
                    Complexity::ALL[(i % 3) as usize],
                    Outcome::ALL[((i / 3) % 3) as usize],
                    (i % 4 != 0).then_some((i * 37 % 5000) as i32),
                );
                e.hour = 3600 * (i % 7);
                e.instance_id = format!("inst-{}", i % 11);
                e.provider = format!("prov-{}", i % 2);
                e.score = (i % 50) as f64 / 10.0;
                e.capabilities = match i % 4 {
                    0 => vec![],
                    1 => vec!["vision".into()],
                    2 => vec!["vision".into(), "tools".into()],
                    _ => vec!["json".into(), "m1".into()],
                };
                e
            })
            .collect()
    }

    #[test]
    fn call_totals_added_batch_by_batch_equal_the_fold_of_all_events() {
        let events = varied(3000);
        let batches: Vec<&[Event]> = events.chunks(256).collect();
        let got = totals(&batches);
        let want = fold(&events);
        assert_same_deltas(&got.cells, &want.cells);
        assert_same_deltas(&got.rollups, &want.rollups);
        assert_eq!(got.outcomes, want.outcomes);
        assert_eq!(got.capabilities, want.capabilities);
        assert!(!got.capabilities.is_empty() && got.rollups.len() > 100);
        // A name used as a model and as a capability ("m1") is one name, in both roles.
        assert!(got.capabilities.keys().any(|k| k.capability == "m1"));
        let mut pending = CallTotals::default();
        events.iter().for_each(|e| pending.add(&e.sample()));
        let rows =
            want.cells.len() + want.rollups.len() + want.outcomes.len() + want.capabilities.len();
        assert_eq!(pending.pending_rows(), rows);
    }

    #[test]
    fn pairs_count_outcomes_and_capabilities_only_of_successes() {
        use Complexity::*;
        use Outcome::*;
        let with = |mut e: Event, provider: &str, caps: &[&str]| {
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
        let t = totals(&[&first, &second]);
        let pair = |p: &str| PairKey {
            provider: p.into(),
            model: "gpt-4o".into(),
        };
        assert_eq!(
            t.outcomes[&pair("openai")],
            OutcomeDelta {
                routed: 0,
                success: 2,
                failure: 1
            }
        );
        assert_eq!(
            t.outcomes[&pair("azure")],
            OutcomeDelta {
                routed: 1,
                success: 0,
                failure: 0
            }
        );
        let found: Vec<(&str, i64)> = t
            .capabilities
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
        let cells = totals(&[&batch]).cells;
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
    fn the_first_score_of_a_cell_is_its_first_event_s() {
        let mut a = event("a", Complexity::Simple, Outcome::Routed, None);
        a.score = 1.5;
        let mut b = a.clone();
        b.score = 4.0;
        let t = totals(&[&[a], &[b]]);
        assert_eq!(t.cells.values().next().unwrap().first_score, Some(1.5));
    }

    #[test]
    fn cell_without_latency_has_no_min_max() {
        let batch = vec![event("m", Complexity::Simple, Outcome::Routed, None)];
        let c = totals(&[&batch]).cells.into_values().next().unwrap();
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
        let cells = totals(&[&batch]).cells;
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
        let t = totals(&[&batch]);
        let (rollups, cells) = (&t.rollups, &t.cells);
        // Keys come in order; model and provider both follow i % 2; totals equal the cells'.
        let keys: Vec<&RollupKey> = rollups.keys().collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert!(rollups
            .keys()
            .all(|k| k.model.ends_with(&k.provider[5..]) && k.hour % 3600 == 0));
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
        let batch = varied(900);
        let mut fleet = fleet_of(&totals(&[&batch]).rollups);
        let mut want: BTreeMap<FleetKey, CellDelta> = BTreeMap::new();
        for e in &batch {
            let key = FleetKey {
                model: e.model.clone(),
                complexity: e.complexity.as_str(),
                hour: e.hour,
                provider: e.provider.clone(),
            };
            want.entry(key).or_default().add(&e.sample());
        }
        // Merged from the rollup rows in their key order, the first score is not the first
        // event's; the fleet rollup stores no score.
        for d in fleet.values_mut().chain(want.values_mut()) {
            d.first_score = None;
        }
        assert_same_deltas(&fleet, &want);
    }
}

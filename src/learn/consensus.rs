//! Consensus among instances: what keeps one instance with a broken path to a provider (its own
//! failures, not the model's) from moving the score every instance routes with. Pure: no SPI;
//! `anomalies` and `hourly` read and write what it decides.
//!
//! 1. **Outlier test.** Per cell and provider, over the last `window_hours` of the rollup, each
//!    instance's outcomes against the rest of the fleet's (leave-one-out): the binomial
//!    log-likelihood ratio of two failure rates against one (as in change detection), and for
//!    latency a median test (the same ratio of the two sides' shares of samples at or below
//!    the rest's p50). An instance is flagged when a statistic exceeds `outlier_threshold`
//!    with at least `outlier_min_outcomes` outcomes on each side, and the difference matters
//!    (failure rates [`MIN_RATE_DIFFERENCE`] apart; or p50s a factor [`LATENCY_RATIO`] and the
//!    shares [`MIN_SHARE_DIFFERENCE`] apart).
//!    *Why leave-one-out:* "the fleet" must not include the instance under test. *Why greedy:*
//!    an extreme outlier drags the rest's rate far enough that every healthy instance looks
//!    deviant too (one at 10% among four at 98%: each healthy one sees a rest at 76%). So the
//!    most significant outlier is flagged first and left out of the rest before the others are
//!    tested again. *Why 3 instances:* with two, nothing says which one is wrong; the flagged
//!    ones stay a strict minority of the reporting instances (none of 2, one of 3 or 4, ...).
//! 2. **Episodes.** A flag opens an episode that lasts while the statistic stays above half the
//!    threshold (and the difference above half its minimum): a hysteresis, so one episode is one
//!    advisory, not one per run. An episode whose instance has too few outcomes to judge stays
//!    open; one whose instance has none left in the window, or that is judged and not deviant,
//!    ends. The instance's evidence for the cell and provider is left out of learning from the
//!    first hour the test saw (`since`) to the last hour of the episode, for good.
//! 3. **Agreement.** A score change needs at least `min(min_agreeing_instances, reporting
//!    instances)` instances that agree with it. An instance agrees when its own evidence, put in
//!    the fleet's place, would move the score at least half as far the same way
//!    ([`agrees`]). *Why half-way and not a test:* right after a regime change each instance
//!    holds a few dozen outcomes, far too few for a significant verdict of its own, so a
//!    per-instance test would delay every real regression; a real change moves every instance
//!    the same way, so most agree at once. A change made by one instance alone is half-way
//!    for no one else: each healthy instance lies exactly one change away from the fleet, on
//!    the other side. *Why min with the reporting instances:* a cell reported by one instance
//!    learns from it alone (the agreement of one); consensus needs a fleet.

use super::bayes::{binomial_llr, merge_into, BayesPolicy};
use super::policy::{Evidence, SeedPolicy, Step};
use crate::sketch::MergedSketch;
use std::borrow::Borrow;
use std::collections::{BTreeMap, HashSet};

/// Failure rates an outlier's and the fleet's must differ by (absolute): with enough outcomes
/// a significant test finds a point of difference between regions, which is no local problem.
pub const MIN_RATE_DIFFERENCE: f64 = 0.05;
/// p50 ratio, either way, of a latency outlier (change detection's ratio).
pub const LATENCY_RATIO: f64 = 1.5;
/// Shares of the two sides' samples at or below the rest's p50 a latency outlier's differ by.
pub const MIN_SHARE_DIFFERENCE: f64 = 0.2;
/// An episode lasts while its statistic and difference stay above this share of the flagging
/// ones.
pub const CLEAR_FRACTION: f64 = 0.5;

/// The consensus settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConsensusPolicy {
    /// Instances a score change needs the agreement of (at most those reporting).
    pub min_agreeing_instances: i64,
    /// Statistic above which an instance is an outlier; 0 or less: no outlier test.
    pub outlier_threshold: f64,
    /// Outcomes the instance, and the rest of the fleet, need in the window.
    pub outlier_min_outcomes: i64,
    /// Hours of the rollup the test and the agreement read, ending at the newest event hour.
    pub window_hours: i64,
}

impl Default for ConsensusPolicy {
    fn default() -> Self {
        ConsensusPolicy {
            min_agreeing_instances: 2,
            outlier_threshold: 10.0,
            outlier_min_outcomes: 50,
            window_hours: 6,
        }
    }
}

/// One rollup row of a cell in the window: an instance's outcomes through a provider in an hour.
#[derive(Clone, Debug, Default)]
pub struct Slice {
    pub instance: String,
    pub provider: String,
    pub hour: i64,
    pub successes: i64,
    pub failures: i64,
    pub latency_count: i64,
    pub latency_sum_ms: i64,
    pub latency: Option<MergedSketch>,
}

/// Evidence added up: over hours, providers or instances.
#[derive(Clone, Debug, Default)]
struct Tally {
    s: i64,
    f: i64,
    latency_count: i64,
    latency_sum_ms: i64,
    latency: Option<MergedSketch>,
    first_hour: Option<i64>,
}

impl Tally {
    fn of<'a>(slices: impl IntoIterator<Item = &'a Slice>) -> Tally {
        let mut t = Tally::default();
        for s in slices {
            t.add_counts(s);
            merge_into(&mut t.latency, s.latency.as_ref());
        }
        t
    }

    /// Counts only, without merging sketches: what the outlier test reads of instances it
    /// cannot test.
    fn counts_of<'a>(slices: impl IntoIterator<Item = &'a Slice>) -> Tally {
        let mut t = Tally::default();
        slices.into_iter().for_each(|s| t.add_counts(s));
        t
    }

    /// Adds a slice's counts (negative ones as 0) and widens the first hour.
    fn add_counts(&mut self, s: &Slice) {
        self.s = self.s.saturating_add(s.successes.max(0));
        self.f = self.f.saturating_add(s.failures.max(0));
        self.latency_count = self.latency_count.saturating_add(s.latency_count.max(0));
        self.latency_sum_ms = self.latency_sum_ms.saturating_add(s.latency_sum_ms.max(0));
        self.first_hour = Some(self.first_hour.map_or(s.hour, |h| h.min(s.hour)));
    }

    /// Adds another tally: the same counts as tallying both's rows at once (the sums are of
    /// non-negative counts), and the same quantiles (a merge adds bin counts per key, in any
    /// order).
    fn add(&mut self, other: &Tally) {
        self.s = self.s.saturating_add(other.s);
        self.f = self.f.saturating_add(other.f);
        self.latency_count = self.latency_count.saturating_add(other.latency_count);
        self.latency_sum_ms = self.latency_sum_ms.saturating_add(other.latency_sum_ms);
        merge_into(&mut self.latency, other.latency.as_ref());
        self.first_hour = match (self.first_hour, other.first_hour) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    fn n(&self) -> i64 {
        self.s.saturating_add(self.f)
    }

    fn failure_rate(&self) -> f64 {
        if self.n() > 0 {
            self.f as f64 / self.n() as f64
        } else {
            0.0
        }
    }

    fn p50(&self) -> Option<f64> {
        self.latency.as_ref()?.quantile(0.5)
    }

    fn evidence(&self) -> Evidence {
        Evidence {
            successes: self.s,
            failures: self.f,
            latency_count: self.latency_count,
            latency_sum_ms: self.latency_sum_ms,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnomalyKind {
    SuccessRate,
    Latency,
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::SuccessRate => "success_rate",
            AnomalyKind::Latency => "latency",
        }
    }
}

/// An instance whose evidence for a cell through a provider deviates from the rest of the fleet.
#[derive(Clone, Debug, PartialEq)]
pub struct Outlier {
    pub instance: String,
    pub provider: String,
    pub kind: AnomalyKind,
    pub instance_failure_rate: f64,
    pub fleet_failure_rate: f64,
    pub instance_outcomes: i64,
    pub fleet_outcomes: i64,
    pub instance_p50_ms: Option<f64>,
    pub fleet_p50_ms: Option<f64>,
    pub statistic: f64,
    /// Where its left-out evidence starts: the hour its deviation starts ([`onset`]).
    pub since_hour: i64,
}

/// An (instance, provider) of a cell.
pub type Source = (String, String);

/// What the test decided for one cell.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Outliers now: newly flagged, or an open episode that goes on.
    pub flagged: Vec<Outlier>,
    /// Open episodes whose instance has too few outcomes to judge: they stay open, unchanged.
    pub kept: Vec<Source>,
    /// Open episodes that end.
    pub cleared: Vec<Source>,
}

impl Verdict {
    /// Whether a source's evidence is left out now (flagged or kept).
    pub fn excludes(&self, instance: &str, provider: &str) -> bool {
        self.flagged
            .iter()
            .any(|o| o.instance == instance && o.provider == provider)
            || self
                .kept
                .iter()
                .any(|(i, p)| i == instance && p == provider)
    }
}

impl ConsensusPolicy {
    /// The outlier test of one cell: `slices` are its rollup rows in the window (hours of ended
    /// episodes already left out), `open` its open episodes.
    pub fn judge(&self, slices: &[Slice], open: &[Source]) -> Verdict {
        let mut verdict = Verdict::default();
        let mut by_provider: BTreeMap<&str, BTreeMap<&str, Vec<&Slice>>> = BTreeMap::new();
        for s in slices {
            by_provider
                .entry(&s.provider)
                .or_default()
                .entry(&s.instance)
                .or_default()
                .push(s);
        }
        for (provider, instances) in &by_provider {
            // Counts first: the sketches are merged only for instances the test can run on.
            let tallies: Vec<(&str, Tally)> = instances
                .iter()
                .map(|(i, rows)| (*i, Tally::counts_of(rows.iter().copied())))
                .collect();
            let open_here: HashSet<&str> = open
                .iter()
                .filter(|(_, p)| p == provider)
                .map(|(i, _)| i.as_str())
                .collect();
            let first = verdict.flagged.len();
            self.judge_provider(provider, (tallies, instances), &open_here, &mut verdict);
            for o in &mut verdict.flagged[first..] {
                let rows = &instances[o.instance.as_str()];
                let rest: Vec<&Slice> = instances
                    .iter()
                    .filter(|(i, _)| **i != o.instance && !verdict_has(&verdict.kept, i, provider))
                    .flat_map(|(_, r)| r.iter().copied())
                    .collect();
                o.since_hour = onset(rows, &Tally::of(rest), o.kind);
            }
        }
        // Open episodes whose instance has no outcomes left in the window end.
        for source in open {
            let seen = by_provider
                .get(source.1.as_str())
                .is_some_and(|i| i.contains_key(source.0.as_str()));
            if !seen {
                verdict.cleared.push(source.clone());
            }
        }
        verdict
    }

    /// Flags the most significant outlier, leaves it out of the rest, and tests again, while
    /// the flagged stay a strict minority.
    fn judge_provider(
        &self,
        provider: &str,
        (tallies, rows): (Vec<(&str, Tally)>, &BTreeMap<&str, Vec<&Slice>>),
        open: &HashSet<&str>,
        verdict: &mut Verdict,
    ) {
        let min = self.outlier_min_outcomes.max(1);
        // An open episode without enough outcomes to judge stays open, and out of the rest.
        let (thin, mut pool): (Vec<_>, Vec<_>) = tallies
            .into_iter()
            .filter(|(_, t)| t.n() > 0)
            .partition(|(i, t)| open.contains(i) && t.n() < min);
        verdict.kept.extend(
            thin.iter()
                .map(|(i, _)| (i.to_string(), provider.to_string())),
        );
        let max_flagged = pool.len().saturating_sub(1) / 2;
        if self.outlier_threshold > 0.0 && max_flagged > 0 {
            for (i, t) in &mut pool {
                t.latency = Tally::of(rows[*i].iter().copied()).latency;
            }
        }
        let mut flagged = 0;
        while self.outlier_threshold > 0.0 && flagged < max_flagged {
            let best = (0..pool.len())
                .filter_map(|k| {
                    let rest = Tally::of_rest(&pool, k);
                    let eased = open.contains(pool[k].0);
                    self.test(&pool[k].1, &rest, pool.len() - 1, eased)
                        .map(|o| (k, o))
                })
                .max_by(|a, b| a.1.statistic.total_cmp(&b.1.statistic));
            let Some((k, mut outlier)) = best else {
                break;
            };
            let (instance, _) = pool.remove(k);
            outlier.instance = instance.to_string();
            outlier.provider = provider.to_string();
            verdict.flagged.push(outlier);
            flagged += 1;
        }
        // Open episodes judged and not deviant end.
        for (instance, _) in &pool {
            if open.contains(instance) {
                verdict
                    .cleared
                    .push((instance.to_string(), provider.to_string()));
            }
        }
    }

    /// The instance against the rest: an outlier if a statistic exceeds the threshold (halved,
    /// with the difference, for an open episode: `eased`).
    fn test(&self, inst: &Tally, rest: &Tally, others: usize, eased: bool) -> Option<Outlier> {
        let min = self.outlier_min_outcomes.max(1);
        if others < 2 || inst.n() < min || rest.n() < min {
            return None;
        }
        let ease = if eased { CLEAR_FRACTION } else { 1.0 };
        let threshold = self.outlier_threshold * ease;
        let rate_diff = (inst.failure_rate() - rest.failure_rate()).abs();
        let rate_stat = binomial_llr((inst.s, inst.f), (rest.s, rest.f));
        let rate = (rate_stat > threshold && rate_diff >= MIN_RATE_DIFFERENCE * ease)
            .then_some((AnomalyKind::SuccessRate, rate_stat));
        let min_ratio = 1.0 + (LATENCY_RATIO - 1.0) * ease;
        let latency = latency_statistic(inst, rest, min)
            .filter(|t| {
                t.statistic > threshold
                    && t.ratio >= min_ratio
                    && t.share_difference >= MIN_SHARE_DIFFERENCE * ease
            })
            .map(|t| (AnomalyKind::Latency, t.statistic));
        let (kind, statistic) = [rate, latency]
            .into_iter()
            .flatten()
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        Some(Outlier {
            instance: String::new(),
            provider: String::new(),
            kind,
            instance_failure_rate: inst.failure_rate(),
            fleet_failure_rate: rest.failure_rate(),
            instance_outcomes: inst.n(),
            fleet_outcomes: rest.n(),
            instance_p50_ms: inst.p50(),
            fleet_p50_ms: rest.p50(),
            statistic,
            since_hour: inst.first_hour.unwrap_or_default(),
        })
    }
}

fn verdict_has(sources: &[Source], instance: &str, provider: &str) -> bool {
    sources.iter().any(|(i, p)| i == instance && p == provider)
}

/// The hour an outlier's deviation starts: of the suffixes of its hours in the window, the one
/// whose evidence deviates most from the rest's (on a tie the earliest). *Why:* its evidence
/// from before the deviation is as good as anyone's, and leaving it out too would cost the
/// cell a share of its evidence (each share's sampling noise is about the hysteresis where
/// the score map is steep).
fn onset(rows: &[&Slice], rest: &Tally, kind: AnomalyKind) -> i64 {
    let mut hours: Vec<i64> = rows.iter().map(|s| s.hour).collect();
    hours.sort_unstable();
    hours.dedup();
    let mut best: Option<(i64, f64)> = None;
    for &h in &hours {
        let suffix = Tally::of(rows.iter().copied().filter(|s| s.hour >= h));
        let stat = match kind {
            AnomalyKind::SuccessRate => binomial_llr((suffix.s, suffix.f), (rest.s, rest.f)),
            AnomalyKind::Latency => {
                latency_statistic(&suffix, rest, 1).map_or(0.0, |t| t.statistic)
            }
        };
        if best.is_none_or(|(_, b)| stat > b) {
            best = Some((h, stat));
        }
    }
    best.map_or(0, |(h, _)| h)
}

impl Tally {
    /// Everything in `pool` but its `k`th entry.
    fn of_rest(pool: &[(&str, Tally)], k: usize) -> Tally {
        let mut rest = Tally::default();
        for (j, (_, t)) in pool.iter().enumerate() {
            if j != k {
                rest.s = rest.s.saturating_add(t.s);
                rest.f = rest.f.saturating_add(t.f);
                merge_into(&mut rest.latency, t.latency.as_ref());
            }
        }
        rest
    }
}

/// The median test of the instance's latency against the rest's (Mood's): the shares of each
/// side's samples at or below the rest's p50, compared by the binomial log-likelihood ratio
/// (calibrated like the rate's); with the p50 ratio either way and the difference of the
/// shares, for the effect. *Why both sides' shares:* latencies are whole milliseconds, often
/// bimodal; the rest's own share at or below its p50 is then far from one half, and only the
/// comparison of the two shares is fair. None without `min` samples on each side.
fn latency_statistic(inst: &Tally, rest: &Tally, min: i64) -> Option<LatencyTest> {
    let (a, b) = (inst.latency.as_ref()?, rest.latency.as_ref()?);
    let enough = |s: &MergedSketch| i64::try_from(s.count()).unwrap_or(i64::MAX) >= min;
    if !enough(a) || !enough(b) {
        return None;
    }
    let (pa, pb) = (a.quantile(0.5)?.max(1.0), b.quantile(0.5)?.max(1.0));
    let counts = |s: &MergedSketch, share: f64| {
        let n = s.count() as f64;
        let at_most = (share * n).round();
        (at_most as i64, (n - at_most) as i64)
    };
    let (fa, fb) = (share_at_most(a, pb), share_at_most(b, pb));
    Some(LatencyTest {
        statistic: binomial_llr(counts(a, fa), counts(b, fb)),
        ratio: (pa / pb).max(pb / pa),
        share_difference: (fa - fb).abs(),
    })
}

struct LatencyTest {
    statistic: f64,
    ratio: f64,
    share_difference: f64,
}

/// The share of a sketch's samples at or below `x` (within the sketch's accuracy), by
/// bisection on its quantiles.
fn share_at_most(sketch: &MergedSketch, x: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        match sketch.quantile(mid) {
            Some(v) if v <= x => lo = mid,
            _ => hi = mid,
        }
    }
    lo
}

/// Where one instance's evidence would move the score, in the units of the change.
#[derive(Clone, Debug, PartialEq)]
pub struct Vote {
    pub instance: String,
    pub own_move: f64,
}

/// Whether a change has the agreement it needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Agreement {
    pub reporting: usize,
    pub required: usize,
    pub agreeing: usize,
}

impl Agreement {
    pub fn holds(&self) -> bool {
        self.agreeing >= self.required
    }
}

/// An instance agrees with a change when its own move goes the same way at least half as far.
pub fn agrees(change: f64, own_move: f64) -> bool {
    change != 0.0 && own_move * change.signum() >= change.abs() / 2.0
}

impl ConsensusPolicy {
    pub fn agreement(&self, change: f64, votes: &[Vote]) -> Agreement {
        let required = usize::try_from(self.min_agreeing_instances.max(1))
            .unwrap_or(usize::MAX)
            .min(votes.len());
        Agreement {
            reporting: votes.len(),
            required,
            agreeing: votes.iter().filter(|v| agrees(change, v.own_move)).count(),
        }
    }
}

/// Votes on a bayes change of `change` in utility (success rate less latency penalty): each
/// instance's move is the change plus how far its own rate and penalty, over `slices` (the
/// window's unflagged rows from the assessed regime on), lie from all of theirs together.
/// The decay within the window is left out (6 hours weigh 0.84 to 1 at a 24 h half-life).
pub fn bayes_votes<S: Borrow<Slice>>(policy: &BayesPolicy, slices: &[S], change: f64) -> Vec<Vote> {
    let policy = policy.sane();
    let instances = by_instance(slices);
    // The instances' tallies added up: each row's sketch is merged once, not twice.
    let mut pooled = Tally::default();
    for t in instances.values() {
        pooled.add(t);
    }
    let utility = |t: &Tally| {
        let rate = if t.n() > 0 {
            t.s as f64 / t.n() as f64
        } else {
            0.0
        };
        let p95 = t.latency.as_ref().and_then(|s| s.quantile(0.95));
        rate - p95.map_or(0.0, |ms| policy.penalty(ms))
    };
    let fleet = utility(&pooled);
    instances
        .into_iter()
        .filter(|(_, t)| t.n() > 0)
        .map(|(instance, t)| Vote {
            own_move: change + utility(&t) - fleet,
            instance,
        })
        .collect()
}

/// Votes on a seed step from `current` on `evidence` (what arrived since the cell's last step):
/// each instance's move is the step the seed rule makes on that evidence with its success rate
/// and mean latency shifted by how far the instance's, over `slices` (the window's rows that
/// count), lie from all of theirs together. *Why shifted:* the counters have no instance, and
/// the window is not the evidence since the last step; the shift puts each instance in the
/// fleet's place on the same evidence, as `bayes_votes` does.
pub fn seed_votes<S: Borrow<Slice>>(
    policy: &SeedPolicy,
    current: f64,
    evidence: &Evidence,
    slices: &[S],
) -> Vec<Vote> {
    let any_size = SeedPolicy {
        min_samples: 0,
        ..*policy
    };
    let fleet = Tally::counts_of(slices.iter().map(Borrow::borrow));
    by_instance(slices)
        .into_iter()
        .filter(|(_, t)| t.n() > 0)
        .map(|(instance, t)| {
            let own = shifted(evidence, &t, &fleet);
            let own_move = match any_size.step(current, &own) {
                Step::Learned { new_score, .. } => new_score - current,
                Step::Insufficient { .. } => 0.0,
            };
            Vote { instance, own_move }
        })
        .collect()
}

/// `evidence` with its success rate and mean latency moved by the instance's difference from
/// the fleet's.
fn shifted(evidence: &Evidence, instance: &Tally, fleet: &Tally) -> Evidence {
    let n = evidence.samples();
    let rate_of = |t: &Tally| t.s as f64 / t.n().max(1) as f64;
    let rate = (evidence.success_rate().unwrap_or(0.0) + rate_of(instance) - rate_of(fleet))
        .clamp(0.0, 1.0);
    let successes = (rate * n as f64).round() as i64;
    let avg = |t: &Tally| t.evidence().avg_response_time_ms();
    let latency_sum_ms = match (evidence.avg_response_time_ms(), avg(instance), avg(fleet)) {
        (Some(e), Some(i), Some(f)) => {
            ((e + i - f).max(0.0) * evidence.latency_count as f64) as i64
        }
        _ => evidence.latency_sum_ms,
    };
    Evidence {
        successes,
        failures: n - successes,
        latency_sum_ms,
        ..*evidence
    }
}

fn by_instance<S: Borrow<Slice>>(slices: &[S]) -> BTreeMap<String, Tally> {
    let mut grouped: BTreeMap<&str, Vec<&Slice>> = BTreeMap::new();
    for s in slices.iter().map(Borrow::borrow) {
        grouped.entry(&s.instance).or_default().push(s);
    }
    grouped
        .into_iter()
        .map(|(i, rows)| (i.to_string(), Tally::of(rows)))
        .collect()
}

/// The seed's evidence since the last learning step with the left-out sources' share taken
/// out. The counters have no instance, so the share, the success rate and the mean latency
/// come from the window's rows: the delta's size scaled by the kept rows' share of outcomes
/// (and of latencies), at their rate and mean. `all` are the window's rows, `kept` those not
/// left out. Approximate: the window is the last hours, not exactly the evidence since the
/// last step.
pub fn seed_evidence_without<S: Borrow<Slice>>(
    delta: &Evidence,
    all: &[Slice],
    kept: &[S],
) -> Evidence {
    // Counts only: the seed reads no sketch.
    let all = Tally::counts_of(all);
    let kept = Tally::counts_of(kept.iter().map(Borrow::borrow));
    if all.n() == 0 || kept.n() == all.n() {
        return *delta;
    }
    let scale = |x: i64, part: i64, whole: i64| {
        if whole > 0 {
            (x as f64 * part as f64 / whole as f64).round() as i64
        } else {
            x
        }
    };
    let outcomes = scale(delta.samples(), kept.n(), all.n());
    let successes = scale(outcomes, kept.s, kept.n().max(1));
    let latency_count = scale(delta.latency_count, kept.latency_count, all.latency_count);
    let latency_sum_ms = scale(latency_count, kept.latency_sum_ms, kept.latency_count);
    Evidence {
        successes,
        failures: outcomes - successes,
        latency_count,
        latency_sum_ms,
    }
}

/// The advisory's text: the instance's rate (or p50) against the fleet's, and what follows.
pub fn advisory_message(o: &Outlier, model: &str, complexity: &str) -> String {
    let what = match o.kind {
        AnomalyKind::SuccessRate => format!(
            "your failure rate with {} for {model}/{complexity} is {} vs the fleet's {}",
            o.provider,
            pct(o.instance_failure_rate),
            pct(o.fleet_failure_rate)
        ),
        AnomalyKind::Latency => format!(
            "your median latency with {} for {model}/{complexity} is {:.0} ms vs the fleet's {:.0} ms",
            o.provider,
            o.instance_p50_ms.unwrap_or_default(),
            o.fleet_p50_ms.unwrap_or_default()
        ),
    };
    let worse = match o.kind {
        AnomalyKind::SuccessRate => o.instance_failure_rate > o.fleet_failure_rate,
        AnomalyKind::Latency => o.instance_p50_ms > o.fleet_p50_ms,
    };
    let local = if worse {
        "a local problem"
    } else {
        "a local difference"
    };
    format!("{what}: {local}; your outcomes for it are left out of learning until they match the fleet's again")
}

fn pct(rate: f64) -> String {
    let p = rate * 100.0;
    if p != 0.0 && p.abs() < 1.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::LatencySketch;
    use rand::{Rng, SeedableRng};

    const NOW: i64 = 498_821;

    fn slice(instance: &str, provider: &str, hour: i64, s: i64, f: i64) -> Slice {
        Slice {
            instance: instance.into(),
            provider: provider.into(),
            hour,
            successes: s,
            failures: f,
            ..Slice::default()
        }
    }

    /// `per_hour` outcomes an hour for `hours` hours up to NOW, `rate` of them successes.
    fn steady(instance: &str, provider: &str, hours: i64, per_hour: i64, rate: f64) -> Vec<Slice> {
        let s = (per_hour as f64 * rate).round() as i64;
        (NOW - hours + 1..=NOW)
            .map(|h| slice(instance, provider, h, s, per_hour - s))
            .collect()
    }

    fn fleet(n: usize, rate: f64) -> Vec<Slice> {
        (1..=n)
            .flat_map(|k| steady(&format!("r{k}"), "p", 6, 50, rate))
            .collect()
    }

    fn flagged(v: &Verdict) -> Vec<&str> {
        v.flagged.iter().map(|o| o.instance.as_str()).collect()
    }

    #[test]
    fn one_broken_instance_of_five_is_flagged_and_only_it() {
        let p = ConsensusPolicy::default();
        let mut rows = fleet(4, 0.98);
        rows.extend(steady("bad", "p", 6, 30, 0.10));
        let v = p.judge(&rows, &[]);
        assert_eq!(flagged(&v), ["bad"], "{v:?}");
        let o = &v.flagged[0];
        assert_eq!(
            (o.kind, o.instance_outcomes, o.fleet_outcomes),
            (AnomalyKind::SuccessRate, 180, 1200)
        );
        assert!(
            (o.instance_failure_rate - 0.9).abs() < 0.01
                && (o.fleet_failure_rate - 0.02).abs() < 0.01
        );
        assert!(o.statistic > 100.0 && o.since_hour == NOW - 5, "{o:?}");
        assert!(v.excludes("bad", "p") && !v.excludes("r1", "p"));
        // The same instance on another provider is fine.
        rows.extend(fleet(5, 0.98).into_iter().map(|s| Slice {
            provider: "q".into(),
            ..s
        }));
        rows.extend(steady("bad", "q", 6, 30, 0.98));
        assert_eq!(flagged(&p.judge(&rows, &[])), ["bad"]);
    }

    #[test]
    fn left_out_evidence_starts_where_the_deviation_does() {
        let p = ConsensusPolicy::default();
        let mut rows = fleet(4, 0.98);
        // Good for 4 hours, then broken for 2.
        rows.extend(
            steady("bad", "p", 6, 50, 0.98)
                .into_iter()
                .filter(|s| s.hour < NOW - 1),
        );
        rows.extend(steady("bad", "p", 2, 50, 0.10));
        let v = p.judge(&rows, &[]);
        assert_eq!(flagged(&v), ["bad"]);
        assert_eq!(v.flagged[0].since_hour, NOW - 1, "{v:?}");
    }

    #[test]
    fn a_fleet_of_two_cannot_tell_who_is_wrong() {
        let p = ConsensusPolicy::default();
        let mut rows = fleet(1, 0.98);
        rows.extend(steady("bad", "p", 6, 300, 0.10));
        assert!(p.judge(&rows, &[]).flagged.is_empty());
        rows.extend(steady("r2", "p", 6, 30, 0.98));
        assert_eq!(flagged(&p.judge(&rows, &[])), ["bad"], "three can");
    }

    #[test]
    fn flagged_instances_stay_a_minority() {
        let p = ConsensusPolicy::default();
        let mut rows = fleet(2, 0.98);
        rows.extend(steady("bad1", "p", 6, 30, 0.10));
        rows.extend(steady("bad2", "p", 6, 30, 0.10));
        // 2 of 4 broken: not a local problem of one; at most one of four is flagged.
        assert!(p.judge(&rows, &[]).flagged.len() <= 1);
        rows.extend(steady("r3", "p", 6, 30, 0.98));
        let v = p.judge(&rows, &[]);
        let mut names = flagged(&v);
        names.sort();
        assert_eq!(names, ["bad1", "bad2"], "2 of 5 are");
    }

    #[test]
    fn too_few_outcomes_or_too_small_a_difference_is_no_outlier() {
        let p = ConsensusPolicy::default();
        let mut rows = fleet(4, 0.98);
        rows.extend(steady("new", "p", 1, 49, 0.10));
        assert!(p.judge(&rows, &[]).flagged.is_empty(), "49 < 50 outcomes");
        // 3 points apart on 6000 outcomes: significant, but no local problem.
        let mut big: Vec<Slice> = (1..=4)
            .flat_map(|k| steady(&format!("r{k}"), "p", 6, 1000, 0.98))
            .collect();
        big.extend(steady("eu", "p", 6, 1000, 0.95));
        assert!(p.judge(&big, &[]).flagged.is_empty());
        let off = ConsensusPolicy {
            outlier_threshold: 0.0,
            ..p
        };
        rows.extend(steady("bad", "p", 6, 30, 0.10));
        assert!(off.judge(&rows, &[]).flagged.is_empty(), "threshold 0: off");
    }

    #[test]
    fn episodes_have_hysteresis_and_end() {
        let p = ConsensusPolicy::default();
        let open = [("bad".to_string(), "p".to_string())];
        // Still clearly deviant: goes on.
        let mut rows = fleet(4, 0.98);
        rows.extend(steady("bad", "p", 6, 30, 0.10));
        assert_eq!(flagged(&p.judge(&rows, &open)), ["bad"]);
        // Recovered: judged and not deviant, it ends.
        let mut ok = fleet(4, 0.98);
        ok.extend(steady("bad", "p", 6, 30, 0.98));
        let v = p.judge(&ok, &open);
        assert!(v.flagged.is_empty() && v.cleared == open, "{v:?}");
        // Too few outcomes to judge: stays open, left out.
        let mut thin = fleet(4, 0.98);
        thin.push(slice("bad", "p", NOW, 2, 8));
        let v = p.judge(&thin, &open);
        assert!(
            v.kept == open && v.cleared.is_empty() && v.excludes("bad", "p"),
            "{v:?}"
        );
        // None at all in the window: ends.
        let v = p.judge(&fleet(4, 0.98), &open);
        assert_eq!(v.cleared, open);
    }

    #[test]
    fn an_episode_in_between_the_thresholds_goes_on_but_does_not_start() {
        let p = ConsensusPolicy::default();
        let open = [("x".to_string(), "p".to_string())];
        // Rest: 4 x 300 outcomes at 98%; x: 100 outcomes, failures chosen for an LLR in (5, 10].
        let rest: Vec<Slice> = (1..=4)
            .map(|k| slice(&format!("r{k}"), "p", NOW, 294, 6))
            .collect();
        let found = (0..100).find(|&f| {
            let stat = binomial_llr((100 - f, f), (4 * 294, 4 * 6));
            stat > 5.5 && stat < 9.5 && f as f64 / 100.0 - 0.02 >= MIN_RATE_DIFFERENCE
        });
        let f = found.expect("a failure count in between");
        let mut rows = rest.clone();
        rows.push(slice("x", "p", NOW, 100 - f, f));
        assert!(
            p.judge(&rows, &[]).flagged.is_empty(),
            "{f} failures: not opened"
        );
        assert_eq!(
            flagged(&p.judge(&rows, &open)),
            ["x"],
            "{f} failures: goes on"
        );
    }

    #[test]
    fn a_slow_instance_is_a_latency_outlier() {
        let p = ConsensusPolicy::default();
        let timed = |instance: &str, lo: i32, hi: i32| -> Slice {
            let mut sk = LatencySketch::default();
            (0..180).for_each(|i| sk.add(lo + (hi - lo) * i / 180));
            Slice {
                latency: Some(MergedSketch::from_sketch(&sk)),
                latency_count: 180,
                ..slice(instance, "p", NOW, 176, 4)
            }
        };
        let mut rows: Vec<Slice> = (1..=4).map(|k| timed(&format!("r{k}"), 200, 600)).collect();
        rows.push(timed("slow", 900, 2500));
        let v = p.judge(&rows, &[]);
        assert_eq!(flagged(&v), ["slow"]);
        let o = &v.flagged[0];
        assert_eq!(o.kind, AnomalyKind::Latency);
        assert!(
            o.instance_p50_ms.unwrap() > 1.5 * o.fleet_p50_ms.unwrap(),
            "{o:?}"
        );
        // Bimodal latencies whose p50 lands on the other mode: no outlier.
        let bimodal = |instance: &str, fast: i32| -> Slice {
            let mut sk = LatencySketch::default();
            (0..fast).for_each(|_| sk.add(10));
            (0..64 - fast).for_each(|_| sk.add(500));
            Slice {
                latency: Some(MergedSketch::from_sketch(&sk)),
                latency_count: 64,
                ..slice(instance, "p", NOW, 60, 4)
            }
        };
        let rows: Vec<Slice> = [31, 33, 32, 31, 33]
            .iter()
            .enumerate()
            .map(|(k, &fast)| bimodal(&format!("r{k}"), fast))
            .collect();
        assert!(p.judge(&rows, &[]).flagged.is_empty());
        // 20% slower is no outlier, however many samples.
        let mut near: Vec<Slice> = (1..=4).map(|k| timed(&format!("r{k}"), 200, 600)).collect();
        near.push(timed("near", 240, 720));
        assert!(p.judge(&near, &[]).flagged.is_empty());
    }

    #[test]
    fn healthy_fleets_are_rarely_flagged() {
        // 5 instances, 30 outcomes an hour each at 90% (the noisiest rate of the replay), the
        // test run on every 6-hour window of 40 hours, 500 cells: false flags per test.
        let p = ConsensusPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let (mut flags, mut tests) = (0, 0);
        for _cell in 0..500 {
            let hours: Vec<Vec<Slice>> = (0..40)
                .map(|h| {
                    (1..=5)
                        .map(|k| {
                            let s = (0..30).filter(|_| rng.gen_bool(0.9)).count() as i64;
                            slice(&format!("r{k}"), "p", NOW - 40 + h, s, 30 - s)
                        })
                        .collect()
                })
                .collect();
            for end in 6..=40 {
                let window: Vec<Slice> = hours[end - 6..end].iter().flatten().cloned().collect();
                flags += p.judge(&window, &[]).flagged.len();
                tests += 5;
            }
        }
        assert!(
            flags * 10_000 <= tests,
            "{flags} false flags in {tests} tests"
        );
    }

    #[test]
    fn agreement_needs_half_way_from_enough_instances() {
        let p = ConsensusPolicy::default();
        let votes = |moves: &[f64]| -> Vec<Vote> {
            moves
                .iter()
                .enumerate()
                .map(|(k, &m)| Vote {
                    instance: format!("r{k}"),
                    own_move: m,
                })
                .collect()
        };
        assert!(
            agrees(-0.2, -0.1) && agrees(-0.2, -0.5) && !agrees(-0.2, -0.09) && !agrees(-0.2, 0.1)
        );
        assert!(!agrees(0.0, 0.0), "no change, nothing to agree with");
        let a = p.agreement(-0.2, &votes(&[-0.2, -0.19, 0.0, 0.01, -0.05]));
        assert_eq!(
            (a.reporting, a.required, a.agreeing, a.holds()),
            (5, 2, 2, true)
        );
        let a = p.agreement(-0.2, &votes(&[-1.0, 0.0, 0.0, 0.0, 0.0]));
        assert!(!a.holds(), "one instance alone: {a:?}");
        // One reporting instance learns alone; none reporting: nothing to disagree.
        assert!(p.agreement(0.3, &votes(&[0.3])).holds());
        assert!(p.agreement(0.3, &[]).holds());
        let three = ConsensusPolicy {
            min_agreeing_instances: 3,
            ..p
        };
        assert!(!three.agreement(-0.2, &votes(&[-0.2, -0.2, 0.0])).holds());
        assert!(
            three.agreement(-0.2, &votes(&[-0.2, -0.2])).holds(),
            "min(3, 2 reporting)"
        );
    }

    #[test]
    fn an_outliers_pull_is_half_way_for_no_one_else() {
        // Four healthy instances at 98%, one at 10%: the pooled rate moves by the outlier's
        // share only, and each healthy instance lies that far on the other side.
        let bayes = BayesPolicy::default();
        let mut rows = fleet(4, 0.98);
        rows.extend(steady("bad", "p", 6, 30, 0.10));
        let pooled = Tally::of(&rows);
        let change = pooled.s as f64 / pooled.n() as f64 - 0.98;
        let votes = bayes_votes(&bayes, &rows, change);
        let agreeing: Vec<&str> = votes
            .iter()
            .filter(|v| agrees(change, v.own_move))
            .map(|v| v.instance.as_str())
            .collect();
        assert_eq!(agreeing, ["bad"], "{votes:?}");
        assert!(!ConsensusPolicy::default().agreement(change, &votes).holds());
        // A regression every instance sees: all agree.
        let rows = fleet(5, 0.80);
        let votes = bayes_votes(&bayes, &rows, -0.15);
        assert!(votes.iter().all(|v| agrees(-0.15, v.own_move)), "{votes:?}");
    }

    #[test]
    fn seed_votes_put_each_instance_in_the_fleets_place() {
        let seed = SeedPolicy::default();
        let mut rows = fleet(4, 0.98);
        rows.extend(steady("bad", "p", 6, 30, 0.10));
        // The evidence since the last step is the window's: 80% overall, a -0.2 step.
        let evidence = Tally::of(&rows).evidence();
        let votes = seed_votes(&seed, 3.0, &evidence, &rows);
        let bad = votes.iter().find(|v| v.instance == "bad").unwrap();
        assert!((bad.own_move + 0.2).abs() < 1e-9, "{votes:?}");
        assert!(votes
            .iter()
            .filter(|v| v.instance != "bad")
            .all(|v| (v.own_move - 0.2).abs() < 1e-9));
        let p = ConsensusPolicy::default();
        assert!(!p.agreement(-0.2, &votes).holds());
        // Instances alike: each one's move is the fleet's step on the evidence, whatever the
        // window held before it (all good, now all failing).
        let alike = fleet(5, 0.98);
        let failing = Evidence {
            successes: 0,
            failures: 100,
            latency_count: 0,
            latency_sum_ms: 0,
        };
        let votes = seed_votes(&seed, 3.0, &failing, &alike);
        assert!(
            votes.iter().all(|v| (v.own_move + 0.2).abs() < 1e-9),
            "{votes:?}"
        );
    }

    #[test]
    fn seed_evidence_without_the_flagged_share() {
        let mut rows = fleet(4, 0.98);
        rows.extend(steady("bad", "p", 6, 30, 0.10));
        let kept: Vec<Slice> = rows
            .iter()
            .filter(|s| s.instance != "bad")
            .cloned()
            .collect();
        let delta = Evidence {
            successes: 402,
            failures: 98,
            latency_count: 0,
            latency_sum_ms: 0,
        };
        let clean = seed_evidence_without(&delta, &rows, &kept);
        // The kept rows hold 1200 of 1380 outcomes, at 98%.
        assert_eq!(clean.samples(), 435, "{clean:?}");
        assert!(
            (clean.success_rate().unwrap() - 0.98).abs() < 0.003,
            "{clean:?}"
        );
        assert_eq!(
            seed_evidence_without(&delta, &kept, &kept),
            delta,
            "nothing left out"
        );
    }

    #[test]
    fn the_advisory_says_what_and_why() {
        let o = Outlier {
            instance: "eu-1".into(),
            provider: "openrouter".into(),
            kind: AnomalyKind::SuccessRate,
            instance_failure_rate: 0.41,
            fleet_failure_rate: 0.02,
            instance_outcomes: 200,
            fleet_outcomes: 800,
            instance_p50_ms: None,
            fleet_p50_ms: None,
            statistic: 130.0,
            since_hour: NOW,
        };
        assert_eq!(
            advisory_message(&o, "gpt-4o", "complex"),
            "your failure rate with openrouter for gpt-4o/complex is 41% vs the fleet's 2%: a local problem; \
             your outcomes for it are left out of learning until they match the fleet's again"
        );
    }

    #[test]
    fn degenerate_input_neither_panics_nor_flags() {
        let p = ConsensusPolicy {
            outlier_min_outcomes: i64::MIN,
            min_agreeing_instances: i64::MIN,
            ..ConsensusPolicy::default()
        };
        let rows = vec![
            slice("a", "p", NOW, i64::MAX, i64::MAX),
            slice("b", "p", NOW, -5, -5),
            slice("c", "p", NOW, 0, 0),
        ];
        let v = p.judge(&rows, &[]);
        assert!(v.flagged.iter().all(|o| !o.statistic.is_nan()));
        assert!(p.agreement(f64::NAN, &[]).holds());
    }
}

//! Policy `bayes`: a cell's score is a function of its evidence, not a running sum of steps.
//! Pure: no SPI. The evidence is the cell's hourly rollup (per hour of the events' own
//! timestamps: successes, failures, a latency sketch); [`BayesPolicy::assess`] turns it into a
//! score in [0, 5] and a human-readable reason.
//!
//! 1. **Regime.** Only hours in `[regime_start, now_hour]` count. *Why:* a recorded change point
//!    means the model behaves differently since then; older evidence describes another model.
//!    Hours after `now_hour` are not in the fleet's event time yet.
//! 2. **Change detection, first.** Candidate splits are the hours with evidence in
//!    `[max(regime_start, now_hour - change_lookback_hours + 1), now_hour]`; "before" is the
//!    regime's hours below the split, "after" the hours from it on, each side needing
//!    `change_min_outcomes` outcomes. The statistic is the binomial log-likelihood ratio of a
//!    rate per side against one pooled rate, `sum S ln(p_side/p) + F ln((1-p_side)/(1-p))`; the
//!    split with the largest one is a success-rate change if it exceeds `change_threshold`.
//!    Otherwise the split with the largest `|ln(p50_after / p50_before)|` (each side's merged
//!    sketch holding `change_min_outcomes` samples) is a latency change if that ratio, either way,
//!    reaches `latency_change_ratio`. A change starts the regime at its hour for the rest of the
//!    assessment and is returned. *Why:* decay alone forgets a broken model only after a few
//!    half-lives; a likelihood-ratio test on counts notices a step within an hour of it, and the
//!    threshold bounds false alarms on stationary data. *Why only hours with evidence:* a split
//!    in a gap partitions the hours exactly as the next hour with evidence does, so the work is
//!    bounded by the input whatever `change_lookback_hours` is, and the hour reported is the
//!    first one where the new behaviour was seen.
//! 3. **Decay in event time.** Hour `h` weighs `0.5^((now_hour - h) / half_life_hours)`.
//!    *Why decay:* models drift (provider-side updates, load) without a clean step, and recent
//!    outcomes say more about the next request than old ones. *Why event time:* a backlog ingested late, or a fleet that was idle, must not age the
//!    evidence; only newer evidence should.
//! 4. **Sufficiency.** With fewer than `min_samples` decayed outcomes the score is the prior.
//!    *Why:* a handful of outcomes says more about luck than about the model.
//! 5. **Estimate.** A Beta prior worth `prior_strength` outcomes at the mean the prior score
//!    stands for (the inverse of the score map, 7),
//!    updated with the decayed counts; the score uses a lower bound of the posterior,
//!    `m - z sd * N_w / (prior_strength + N_w)`. *Why a prior:* the anchor score is what was
//!    known before any outcome; worth a few outcomes, it steadies a young regime without
//!    outvoting real evidence. *Why a lower bound:* routing to a model on an optimistic guess
//!    costs real requests, so uncertainty counts against a cell. *Why the factor:* the bound is the prior mean
//!    with no evidence and tends to a Wilson-like lower bound as evidence grows, so 20 lucky
//!    outcomes do not beat 5,000 good ones. The bound is increasing in the successes wherever it
//!    is above 0 (where it is clamped).
//! 6. **Latency.** The p95 of the merged sketches of the regime's hours that weigh at least 0.25
//!    (the last two half-lives), penalised by
//!    `latency_weight (scale/target) softplus((p95 - target)/scale)`.
//!    *Why softplus:* smooth and strictly increasing, so a slower model always loses to an
//!    otherwise equal faster one, yet ~0 well below the target and ~`latency_weight (p95 -
//!    target)/target` above it. *Why only recent hours:* a quantile sketch cannot be decayed, so old hours are
//!    left out instead.
//! 7. **Score.** `bound - penalty`, clamped to [0, 1], mapped by `5 u / (u + k (1 - u))`, `k` the
//!    odds of `score_midpoint` (0.8 scores 2.5): strictly increasing, only perfect evidence with
//!    no latency approaches 5 (why not linear: see `to_score`).
//!
//! No input panics: negative counts count as 0, counts saturate, a NaN prior counts as 0, a
//! sketch that cannot be merged (more than 2^53 samples) is left out, and out-of-range
//! parameters are brought into range by [`BayesPolicy::sane`] (documented there).

use super::policy::{clamp_score, MAX_SCORE, MIN_SCORE};
use crate::sketch::MergedSketch;
use crate::stats::{llr, pct, Counts};
use chrono::{DateTime, Utc};

/// The bayes policy's constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BayesPolicy {
    /// Below this many (decayed) outcomes since the regime start the score is the prior.
    pub min_samples: i64,
    /// Half-life of the evidence, in hours of event time.
    pub half_life_hours: f64,
    /// How many outcomes the prior score is worth.
    pub prior_strength: f64,
    /// Conservativeness of the lower bound (1.645: a one-sided 95% bound).
    pub z: f64,
    /// p95 latency at which the penalty becomes linear.
    pub latency_target_ms: f64,
    /// Smoothness of the penalty's knee.
    pub latency_scale_ms: f64,
    /// Log-likelihood ratio above which a success-rate change is declared.
    pub change_threshold: f64,
    /// Candidate change points: the last this many hours.
    pub change_lookback_hours: i64,
    /// Outcomes (or latency samples) each side of a candidate change needs.
    pub change_min_outcomes: i64,
    /// p50 ratio, after / before or before / after, that is a latency change.
    pub latency_change_ratio: f64,
    /// The utility (bound less penalty) that maps to score 2.5; see `to_score`.
    pub score_midpoint: f64,
    /// Utility lost per target's worth of p95 above the target. *Why not 1:* complex tasks
    /// are slow on every model; at 1 a p95 of twice the target wipes a model out, and the order
    /// among slow models with it.
    pub latency_weight: f64,
}

impl Default for BayesPolicy {
    fn default() -> Self {
        BayesPolicy {
            min_samples: 100,
            half_life_hours: 24.0,
            prior_strength: 10.0,
            z: 1.645,
            latency_target_ms: 2000.0,
            latency_scale_ms: 250.0,
            change_threshold: 8.0,
            change_lookback_hours: 6,
            change_min_outcomes: 50,
            latency_change_ratio: 1.5,
            score_midpoint: 0.8,
            latency_weight: 0.25,
        }
    }
}

/// One hour of a cell's rollup.
#[derive(Clone, Debug, Default)]
pub struct HourEvidence {
    /// Hours since the Unix epoch (event time).
    pub hour: i64,
    pub successes: i64,
    pub failures: i64,
    pub latency: Option<MergedSketch>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    SuccessRate,
    Latency,
}

/// A change of regime: from `hour` on the cell behaves differently.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangePoint {
    pub hour: i64,
    pub kind: ChangeKind,
    /// Success rates (SuccessRate) or p50 latencies in ms (Latency), before and after `hour`.
    pub before: f64,
    pub after: f64,
    /// The log-likelihood ratio (SuccessRate) or `|ln(after / before)|` (Latency).
    pub statistic: f64,
}

/// What the policy concluded for one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    /// The cell's score (clamp_score'd).
    pub score: f64,
    /// False: too little evidence since the regime start, `score` is the prior.
    pub sufficient: bool,
    /// Raw outcomes since the regime start.
    pub outcomes: i64,
    /// Decayed outcomes since the regime start.
    pub effective_outcomes: f64,
    /// Posterior mean success probability (None when insufficient).
    pub rate: Option<f64>,
    /// The conservative estimate the score uses (None when insufficient).
    pub bound: Option<f64>,
    /// p95 latency of the last two half-lives (None when insufficient or no sketch).
    pub p95_ms: Option<f64>,
    pub penalty: f64,
    /// A change point found by this assessment (after `regime_start`).
    pub change: Option<ChangePoint>,
    pub reason: String,
}

/// One hour of the regime: the input's entries for that hour added up.
struct Hour {
    hour: i64,
    counts: Counts,
    latency: Option<MergedSketch>,
}

/// A candidate change point: `index` is its first hour in the regime's hours.
struct Split {
    index: usize,
    hour: i64,
    before: Counts,
    after: Counts,
}

/// A merged sketch's sample count and median.
#[derive(Clone, Copy, Default)]
struct Median {
    count: u64,
    p50: Option<f64>,
}

/// The decayed evidence of a regime.
struct Weighted {
    outcomes: i64,
    s: f64,
    f: f64,
}

impl Weighted {
    fn n(&self) -> f64 {
        self.s + self.f
    }
}

impl BayesPolicy {
    /// `prior_score`: the catalog's anchor score (reported by instances or set by an operator)
    /// in [0, 5]; `hours`: the cell's hourly evidence in any order; `now_hour`: the newest event
    /// hour of the whole fleet (event time, not wall clock); `regime_start`: the start hour of the
    /// cell's current regime (the last recorded change point), None = all history.
    pub fn assess(
        &self,
        prior_score: f64,
        hours: &[HourEvidence],
        now_hour: i64,
        regime_start: Option<i64>,
    ) -> Assessment {
        self.assess_owned(prior_score, hours.to_vec(), now_hour, regime_start)
    }

    /// `assess` of evidence the caller is done with: its sketches move into the regime's hours
    /// instead of being copied.
    pub fn assess_owned(
        &self,
        prior_score: f64,
        hours: Vec<HourEvidence>,
        now_hour: i64,
        regime_start: Option<i64>,
    ) -> Assessment {
        let p = self.sane();
        let prior = clamp_score(within(prior_score, MIN_SCORE, MAX_SCORE));
        let hours = regime_hours(hours, now_hour, regime_start);
        let found = p.detect_change(&hours, now_hour);
        let regime = found.as_ref().map_or(&hours[..], |(i, _)| &hours[*i..]);
        let change = found.map(|(_, c)| c);
        let weighted = p.weigh(regime, now_hour);
        if weighted.n() < p.min_samples as f64 {
            return p.insufficient(prior, &weighted, change);
        }
        p.estimate(prior, regime, &weighted, now_hour, change)
    }

    /// The policy with every parameter in range, so no input yields NaN: a half-life that is
    /// not positive means no decay; a negative or NaN prior strength or z means 0 (the bound is
    /// never above the mean), and both are capped (an infinite one would make 0 * inf); a
    /// target that is not a positive finite number disables the latency penalty; a scale that
    /// is not a positive finite number gives the hinge `max(0, p95 - target) / target`. A NaN
    /// change threshold or ratio never declares a change.
    pub fn sane(&self) -> BayesPolicy {
        let positive = |x: f64| x > 0.0 && x.is_finite();
        BayesPolicy {
            half_life_hours: if self.half_life_hours > 0.0 {
                self.half_life_hours
            } else {
                f64::INFINITY
            },
            prior_strength: within(self.prior_strength, 0.0, 1e12),
            z: within(self.z, 0.0, 1e6),
            latency_target_ms: if positive(self.latency_target_ms) {
                self.latency_target_ms
            } else {
                0.0
            },
            latency_scale_ms: if positive(self.latency_scale_ms) {
                self.latency_scale_ms
            } else {
                0.0
            },
            latency_weight: within(self.latency_weight, 0.0, 1e6),
            ..*self
        }
    }

    /// The weight of an hour `age` hours before `now_hour`.
    fn weight(&self, age: i64) -> f64 {
        0.5f64.powf(age as f64 / self.half_life_hours)
    }

    fn weigh(&self, regime: &[Hour], now_hour: i64) -> Weighted {
        let mut w = Weighted {
            outcomes: 0,
            s: 0.0,
            f: 0.0,
        };
        for h in regime {
            let weight = self.weight(now_hour.saturating_sub(h.hour));
            w.outcomes = w.outcomes.saturating_add(h.counts.n());
            w.s += weight * h.counts.s as f64;
            w.f += weight * h.counts.f as f64;
        }
        w
    }

    fn insufficient(&self, prior: f64, w: &Weighted, change: Option<ChangePoint>) -> Assessment {
        let reason = format!(
            "bayes: insufficient data: n_eff {:.1} < min_samples {} (n {}), prior score {prior:.4} kept{}",
            w.n(),
            self.min_samples,
            w.outcomes,
            change_suffix(change.as_ref()),
        );
        Assessment {
            score: prior,
            sufficient: false,
            outcomes: w.outcomes,
            effective_outcomes: w.n(),
            rate: None,
            bound: None,
            p95_ms: None,
            penalty: 0.0,
            change,
            reason,
        }
    }

    fn estimate(
        &self,
        prior: f64,
        regime: &[Hour],
        w: &Weighted,
        now_hour: i64,
        change: Option<ChangePoint>,
    ) -> Assessment {
        let (rate, bound) = self.posterior(self.to_utility(prior), w);
        let p95 = self.recent_p95(regime, now_hour);
        let penalty = p95.map_or(0.0, |ms| self.penalty(ms));
        let score = self.to_score(bound - penalty);
        let latency = match p95 {
            Some(ms) => format!("p95 {ms:.0} ms (penalty {penalty:.4})"),
            None => "no latency (penalty 0)".to_string(),
        };
        let reason = format!(
            "bayes: n {} (eff {:.1}), rate {}, bound {}, {latency}, score {score:.4}{}",
            w.outcomes,
            w.n(),
            pct(rate),
            pct(bound),
            change_suffix(change.as_ref()),
        );
        Assessment {
            score,
            sufficient: true,
            outcomes: w.outcomes,
            effective_outcomes: w.n(),
            rate: Some(rate),
            bound: Some(bound),
            p95_ms: p95,
            penalty,
            change,
            reason,
        }
    }

    /// The score of a utility u in [0, 1]: `5 u / (u + k (1 - u))` with `k` the odds of
    /// `score_midpoint`, so the midpoint maps to 2.5. Strictly increasing, 0 only at 0 and 5
    /// only at 1. *Why not `5 u`:* the models worth telling apart succeed 85-97% of the time; a
    /// linear map squeezes them into 4.25-4.85, where one point of success rate is 0.05 of
    /// score, as small as `min_score_change`, so hysteresis would freeze whatever order the
    /// first hours gave. With midpoint 0.8 one point there is 0.15-0.3.
    fn to_score(&self, utility: f64) -> f64 {
        let u = utility.clamp(0.0, 1.0);
        let k = self.midpoint_odds();
        clamp_score(MAX_SCORE * u / (u + k * (1.0 - u)))
    }

    /// The inverse of `to_score`: the utility (prior mean) a score stands for.
    pub(crate) fn to_utility(&self, score: f64) -> f64 {
        let g = (score / MAX_SCORE).clamp(0.0, 1.0);
        let k = self.midpoint_odds();
        (k * g / (1.0 - g + k * g)).clamp(0.0, 1.0)
    }

    /// The odds of the midpoint (1 when it is not strictly inside (0, 1): the linear map).
    fn midpoint_odds(&self) -> f64 {
        let m = self.score_midpoint;
        if m > 0.0 && m < 1.0 {
            m / (1.0 - m)
        } else {
            1.0
        }
    }

    /// The posterior mean and its conservative bound, from the prior mean `p0`.
    fn posterior(&self, p0: f64, w: &Weighted) -> (f64, f64) {
        let alpha = self.prior_strength * p0 + w.s;
        let beta = self.prior_strength * (1.0 - p0) + w.f;
        let total = alpha + beta;
        // No prior strength and no evidence (min_samples <= 0): nothing but the prior mean.
        let m = if total > 0.0 { alpha / total } else { p0 };
        let shrink = if w.n() > 0.0 {
            w.n() / (self.prior_strength + w.n())
        } else {
            0.0
        };
        let sd = (m * (1.0 - m) / (total + 1.0)).max(0.0).sqrt();
        (m, (m - self.z * sd * shrink).clamp(0.0, 1.0))
    }

    /// The p95 of the regime's hours within two half-lives of `now_hour`.
    fn recent_p95(&self, regime: &[Hour], now_hour: i64) -> Option<f64> {
        let mut merged = None;
        for h in regime {
            if now_hour.saturating_sub(h.hour) as f64 <= 2.0 * self.half_life_hours {
                merge_into(&mut merged, h.latency.as_ref());
            }
        }
        merged?.quantile(0.95)
    }

    pub(crate) fn penalty(&self, p95: f64) -> f64 {
        let (target, scale) = (self.latency_target_ms, self.latency_scale_ms);
        let overshoot = if target <= 0.0 {
            0.0
        } else if scale <= 0.0 {
            ((p95 - target) / target).max(0.0)
        } else {
            scale / target * softplus((p95 - target) / scale)
        };
        self.latency_weight * overshoot
    }

    /// The change point among the last `change_lookback_hours`, if any, with the index of its
    /// hour in `hours`.
    fn detect_change(&self, hours: &[Hour], now_hour: i64) -> Option<(usize, ChangePoint)> {
        let first = now_hour
            .saturating_sub(self.change_lookback_hours)
            .saturating_add(1);
        let splits = splits(hours, first);
        self.success_change(&splits)
            .or_else(|| self.latency_change(hours, &splits))
    }

    fn success_change(&self, splits: &[Split]) -> Option<(usize, ChangePoint)> {
        let min = self.change_min_outcomes;
        let mut best: Option<(&Split, f64)> = None;
        for s in splits
            .iter()
            .filter(|s| s.before.n() >= min && s.after.n() >= min)
        {
            let l = llr(s.before, s.after);
            // Strictly greater: on a tie the earliest split wins, so the result is deterministic.
            if best.is_none_or(|(_, b)| l > b) {
                best = Some((s, l));
            }
        }
        let (s, l) = best.filter(|&(_, l)| l > self.change_threshold)?;
        let change = ChangePoint {
            hour: s.hour,
            kind: ChangeKind::SuccessRate,
            before: s.before.rate(),
            after: s.after.rate(),
            statistic: l,
        };
        Some((s.index, change))
    }

    fn latency_change(&self, hours: &[Hour], splits: &[Split]) -> Option<(usize, ChangePoint)> {
        let enough =
            |m: &Median| i64::try_from(m.count).unwrap_or(i64::MAX) >= self.change_min_outcomes;
        let befores = medians_before(hours, splits);
        let afters = medians_after(hours, splits);
        let mut best: Option<(&Split, f64, f64, f64)> = None;
        for ((s, b), a) in splits.iter().zip(&befores).zip(&afters) {
            let (Some(pb), Some(pa)) = (b.p50, a.p50) else {
                continue;
            };
            if !enough(b) || !enough(a) {
                continue;
            }
            // A 0 ms median is read as 1 ms, so the ratio stays finite.
            let (pb, pa) = (pb.max(1.0), pa.max(1.0));
            let stat = (pa / pb).ln().abs();
            if best.is_none_or(|(_, _, _, x)| stat > x) {
                best = Some((s, pb, pa, stat));
            }
        }
        let (s, pb, pa, stat) = best?;
        ((pa / pb).max(pb / pa) >= self.latency_change_ratio).then(|| {
            let change = ChangePoint {
                hour: s.hour,
                kind: ChangeKind::Latency,
                before: pb,
                after: pa,
                statistic: stat,
            };
            (s.index, change)
        })
    }
}

/// The hours in `[regime_start, now_hour]`, ascending, one per hour.
fn regime_hours(hours: Vec<HourEvidence>, now_hour: i64, regime_start: Option<i64>) -> Vec<Hour> {
    let start = regime_start.unwrap_or(i64::MIN);
    let mut sorted: Vec<HourEvidence> = hours
        .into_iter()
        .filter(|h| h.hour >= start && h.hour <= now_hour)
        .collect();
    // Stable: an hour's rows merge in the order they came, as before the move.
    sorted.sort_by_key(|h| h.hour);
    let mut out: Vec<Hour> = Vec::with_capacity(sorted.len());
    for e in sorted {
        let counts = Counts {
            s: e.successes.max(0),
            f: e.failures.max(0),
        };
        match out.last_mut() {
            Some(last) if last.hour == e.hour => {
                last.counts = last.counts.plus(counts);
                merge_into(&mut last.latency, e.latency.as_ref());
            }
            _ => out.push(Hour {
                hour: e.hour,
                counts,
                latency: e.latency,
            }),
        }
    }
    out
}

/// The candidate splits: every hour from `first` on.
fn splits(hours: &[Hour], first: i64) -> Vec<Split> {
    let total = hours
        .iter()
        .fold(Counts::default(), |c, h| c.plus(h.counts));
    let mut before = Counts::default();
    let mut out = Vec::new();
    for (index, h) in hours.iter().enumerate() {
        if h.hour >= first {
            out.push(Split {
                index,
                hour: h.hour,
                before,
                after: total.minus(before),
            });
        }
        before = before.plus(h.counts);
    }
    out
}

/// Per split, the merged sketch of the hours before it (one sweep up).
fn medians_before(hours: &[Hour], splits: &[Split]) -> Vec<Median> {
    let (mut merged, mut next) = (None, 0);
    let mut out = Vec::with_capacity(splits.len());
    for s in splits {
        hours[next..s.index]
            .iter()
            .for_each(|h| merge_into(&mut merged, h.latency.as_ref()));
        next = s.index;
        out.push(median(merged.as_ref()));
    }
    out
}

/// Per split, the merged sketch of the hours from it on (one sweep down).
fn medians_after(hours: &[Hour], splits: &[Split]) -> Vec<Median> {
    let (mut merged, mut next) = (None, hours.len());
    let mut out = vec![Median::default(); splits.len()];
    for (k, s) in splits.iter().enumerate().rev() {
        hours[s.index..next]
            .iter()
            .for_each(|h| merge_into(&mut merged, h.latency.as_ref()));
        next = s.index;
        out[k] = median(merged.as_ref());
    }
    out
}

fn median(sketch: Option<&MergedSketch>) -> Median {
    sketch.map_or(Median::default(), |s| Median {
        count: s.count(),
        p50: s.quantile(0.5),
    })
}

/// Adds `other` to `acc`; a sketch that cannot be merged (over 2^53 samples) is left out.
pub(crate) fn merge_into(acc: &mut Option<MergedSketch>, other: Option<&MergedSketch>) {
    match (acc.as_mut(), other) {
        (_, None) => {}
        (None, Some(o)) => *acc = Some(o.clone()),
        (Some(a), Some(o)) => {
            let _ = a.merge(o);
        }
    }
}

/// The binomial log-likelihood ratio of two samples' success rates (successes, failures each)
/// against one pooled rate: what change detection and the outlier test (`consensus`) compare.
pub(crate) fn binomial_llr(a: (i64, i64), b: (i64, i64)) -> f64 {
    let counts = |(s, f): (i64, i64)| Counts {
        s: s.max(0),
        f: f.max(0),
    };
    llr(counts(a), counts(b))
}

/// `ln(1 + e^x)` without overflow for large x or loss for very negative x.
fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

fn change_suffix(change: Option<&ChangePoint>) -> String {
    let Some(c) = change else {
        return String::new();
    };
    let at = format_hour(c.hour);
    match c.kind {
        ChangeKind::SuccessRate => format!(
            "; change: success rate {} -> {} at {at} (LLR {:.1})",
            pct(c.before),
            pct(c.after),
            c.statistic
        ),
        ChangeKind::Latency => format!(
            "; change: p50 latency {:.0} ms -> {:.0} ms at {at} (x{:.2})",
            c.before,
            c.after,
            c.after / c.before
        ),
    }
}

/// `2026-11-27T05:00Z`, or `hour N` for an hour chrono cannot represent.
fn format_hour(hour: i64) -> String {
    hour.checked_mul(3600)
        .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0))
        .map(|t| t.format("%Y-%m-%dT%H:00Z").to_string())
        .unwrap_or_else(|| format!("hour {hour}"))
}

/// `x` clamped to [lo, hi], NaN to `lo` (`f64::clamp` keeps NaN, which would reach the score).
fn within(x: f64, lo: f64, hi: f64) -> f64 {
    if x.is_nan() {
        lo
    } else {
        x.clamp(lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::LatencySketch;
    use rand::{Rng, SeedableRng};

    /// 2026-11-27T05:00Z, in hours since the Unix epoch.
    const NOW: i64 = 498_821;

    fn hour(hour: i64, successes: i64, failures: i64) -> HourEvidence {
        HourEvidence {
            hour,
            successes,
            failures,
            latency: None,
        }
    }

    fn sketch(values: impl IntoIterator<Item = i32>) -> MergedSketch {
        let mut s = LatencySketch::default();
        values.into_iter().for_each(|v| s.add(v));
        MergedSketch::from_sketch(&s)
    }

    /// An hour whose s + f latencies are spread evenly over [lo, hi).
    fn timed(h: i64, s: i64, f: i64, lo: i32, hi: i32) -> HourEvidence {
        let n = (s + f) as i32;
        HourEvidence {
            latency: Some(sketch((0..n).map(|i| lo + (hi - lo) * i / n))),
            ..hour(h, s, f)
        }
    }

    /// `n` consecutive hours ending at `last`, each with `s` successes and `f` failures.
    fn steady(n: i64, last: i64, s: i64, f: i64) -> Vec<HourEvidence> {
        (last - n + 1..=last).map(|h| hour(h, s, f)).collect()
    }

    fn no_changes() -> BayesPolicy {
        BayesPolicy {
            change_threshold: f64::INFINITY,
            latency_change_ratio: f64::INFINITY,
            ..BayesPolicy::default()
        }
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn no_evidence_keeps_the_prior() {
        let p = BayesPolicy::default();
        for hours in [vec![], vec![hour(NOW, 0, 0)]] {
            let a = p.assess(3.2, &hours, NOW, None);
            assert_eq!(a.score, 3.2);
            assert!(!a.sufficient);
            assert_eq!((a.outcomes, a.effective_outcomes), (0, 0.0));
            assert_eq!(
                (a.rate, a.bound, a.p95_ms, a.change),
                (None, None, None, None)
            );
            assert!(
                a.reason
                    .contains("insufficient data: n_eff 0.0 < min_samples 100 (n 0)"),
                "{}",
                a.reason
            );
        }
    }

    #[test]
    fn below_min_samples_keeps_the_prior() {
        let p = BayesPolicy::default();
        let a = p.assess(1.7, &[hour(NOW, 99, 0)], NOW, None);
        assert_eq!((a.score, a.sufficient, a.outcomes), (1.7, false, 99));
        assert!(
            a.reason.contains("n_eff 99.0 < min_samples 100"),
            "{}",
            a.reason
        );
        // Weighted: 150 outcomes a half-life old are worth 75.
        let old = p.assess(1.7, &[hour(NOW - 24, 150, 0)], NOW, None);
        assert_eq!((old.score, old.sufficient, old.outcomes), (1.7, false, 150));
        assert_eq!(old.effective_outcomes, 75.0);
        // Exactly the minimum is enough.
        let enough = p.assess(1.7, &[hour(NOW, 100, 0)], NOW, None);
        assert!(enough.sufficient && enough.score > 1.7, "{}", enough.reason);
    }

    #[test]
    fn more_successes_same_n_score_strictly_higher() {
        let p = BayesPolicy::default();
        let n = 200;
        let scores: Vec<f64> = (0..=n)
            .map(|s| p.assess(2.5, &[hour(NOW, s, n - s)], NOW, None).score)
            .collect();
        for (s, w) in scores.windows(2).enumerate() {
            assert!(w[1] > w[0], "{s} successes: {}, {}: {}", w[0], s + 1, w[1]);
        }
        // Spread over hours as well: one more success in an old hour still counts.
        let base = steady(30, NOW, 180, 20);
        let mut better = base.clone();
        better[0] = hour(base[0].hour, 181, 19);
        let (a, b) = (
            p.assess(2.5, &base, NOW, None),
            p.assess(2.5, &better, NOW, None),
        );
        assert!(b.score > a.score, "{} vs {}", b.reason, a.reason);
    }

    #[test]
    fn same_evidence_same_score_in_any_order() {
        let p = BayesPolicy::default();
        let hours: Vec<HourEvidence> = (0..20)
            .map(|k| timed(NOW - k, 140 + k % 7, 10 - k % 5, 100, 900 + 10 * k as i32))
            .collect();
        let a = p.assess(3.0, &hours, NOW, None);
        let mut reversed = hours.clone();
        reversed.reverse();
        assert_eq!(p.assess(3.0, &reversed, NOW, None), a);
        // One hour given as two entries: the same evidence.
        let mut split = hours.clone();
        split[3].successes -= 40;
        split[3].failures -= 2;
        split.insert(11, hour(hours[3].hour, 40, 2));
        assert_eq!(p.assess(3.0, &split, NOW, None), a);
        assert_eq!(p.assess(3.0, &hours, NOW, None), a);
    }

    #[test]
    fn many_good_outcomes_beat_a_few_perfect_ones() {
        // min_samples low enough that both count: the bound, not the threshold, decides.
        let p = BayesPolicy {
            min_samples: 10,
            ..BayesPolicy::default()
        };
        let many = p.assess(2.5, &[hour(NOW, 4750, 250)], NOW, None);
        let few = p.assess(2.5, &[hour(NOW, 20, 0)], NOW, None);
        assert!(many.sufficient && few.sufficient);
        assert!(many.score > few.score, "{} vs {}", many.reason, few.reason);
    }

    #[test]
    fn score_moves_from_the_prior_toward_the_evidence() {
        let p = BayesPolicy::default();
        let scores: Vec<f64> = [0, 100, 200, 500, 1_000, 5_000, 20_000, 100_000]
            .iter()
            .map(|&n| {
                let s = n * 95 / 100;
                p.assess(1.0, &[hour(NOW, s, n - s)], NOW, None).score
            })
            .collect();
        assert_eq!(scores[0], 1.0);
        for w in scores.windows(2) {
            assert!(w[1] > w[0], "{scores:?}");
        }
        // Toward the score of 0.95 from below, never past it.
        let target = p.to_score(0.95);
        assert!(scores.iter().all(|&s| s < target), "{scores:?}");
        assert!(close(scores[7], target, 0.02), "{scores:?}");
    }

    #[test]
    fn the_score_map_is_increasing_and_invertible() {
        let p = BayesPolicy::default();
        assert_eq!(p.to_score(0.8), 2.5, "the midpoint scores 2.5");
        assert_eq!((p.to_score(0.0), p.to_score(1.0)), (0.0, 5.0));
        let scores: Vec<f64> = (0..=100)
            .map(|i| p.to_score(f64::from(i) / 100.0))
            .collect();
        assert!(scores.windows(2).all(|w| w[0] < w[1]), "{scores:?}");
        // One point of success rate among good models is worth well over min_score_change.
        assert!(p.to_score(0.97) - p.to_score(0.96) > 0.1);
        for score in [0.0, 0.5, 1.7, 2.5, 4.2, 5.0] {
            assert!(
                close(p.to_score(p.to_utility(score)), score, 1e-4),
                "{score}"
            );
        }
    }

    #[test]
    fn only_perfect_evidence_without_latency_approaches_5() {
        let p = BayesPolicy::default();
        let perfect = |n| p.assess(2.5, &[hour(NOW, n, 0)], NOW, None).score;
        let scores = [100, 1_000, 10_000, 100_000].map(perfect);
        assert!(scores.windows(2).all(|w| w[0] < w[1]), "{scores:?}");
        assert!(scores[0] < 4.7 && scores[3] > 4.99, "{scores:?}");
        let fast = p.assess(2.5, &[timed(NOW, 100_000, 0, 0, 50)], NOW, None);
        assert!(fast.score < perfect(100_000), "{}", fast.reason);
    }

    #[test]
    fn older_evidence_weighs_less() {
        let p = no_changes();
        let recent = p.assess(2.5, &[hour(NOW, 400, 100)], NOW, None);
        let older = p.assess(2.5, &[hour(NOW - 24, 400, 100)], NOW, None);
        assert_eq!(
            (recent.effective_outcomes, older.effective_outcomes),
            (500.0, 250.0)
        );
        assert_eq!((recent.outcomes, older.outcomes), (500, 500));
        // The same bad hour hurts less when it is old.
        let good = steady(48, NOW, 190, 10);
        let (mut old_bad, mut new_bad) = (good.clone(), good.clone());
        old_bad.push(hour(NOW - 47, 0, 200));
        new_bad.push(hour(NOW, 0, 200));
        let [good, old_bad, new_bad] =
            [good, old_bad, new_bad].map(|h| p.assess(2.5, &h, NOW, None));
        assert_eq!(old_bad.outcomes, new_bad.outcomes);
        assert!(
            good.score > old_bad.score,
            "{} / {}",
            good.reason,
            old_bad.reason
        );
        assert!(
            old_bad.score > new_bad.score,
            "{} / {}",
            old_bad.reason,
            new_bad.reason
        );
    }

    /// 20 hours at 95% then one hour of 150 outcomes at 80%.
    fn success_drop() -> Vec<HourEvidence> {
        let mut hours = steady(20, NOW - 1, 190, 10);
        hours.push(hour(NOW, 120, 30));
        hours
    }

    #[test]
    fn success_rate_drop_is_a_change_and_resets_the_regime() {
        let p = BayesPolicy::default();
        let hours = success_drop();
        let before = p.assess(2.5, &hours, NOW - 1, None);
        assert!(
            before.sufficient && before.change.is_none(),
            "{}",
            before.reason
        );
        let a = p.assess(2.5, &hours, NOW, None);
        let c = a.change.clone().expect(&a.reason);
        assert_eq!((c.kind, c.hour), (ChangeKind::SuccessRate, NOW));
        assert!(
            close(c.before, 0.95, 1e-12) && close(c.after, 0.8, 1e-12),
            "{c:?}"
        );
        assert!(c.statistic > 8.0, "{c:?}");
        // The score is the new regime's only.
        assert_eq!(a.outcomes, 150);
        assert!(
            a.sufficient && a.score < before.score - 0.5,
            "{} / {}",
            a.reason,
            before.reason
        );
        let new_regime = p.assess(2.5, &hours, NOW, Some(NOW));
        assert_eq!((new_regime.score, new_regime.change), (a.score, None));
    }

    #[test]
    fn stationary_data_rarely_changes() {
        let p = BayesPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(20261127);
        let (mut changes, mut cell_hours) = (0, 0);
        for _cell in 0..2000 {
            let (mut hours, mut regime) = (Vec::new(), None);
            for h in NOW - 19..=NOW {
                let s = (0..150).filter(|_| rng.gen_bool(0.9)).count() as i64;
                let latency = sketch((0..150).map(|_| rng.gen_range(300..700)));
                hours.push(HourEvidence {
                    latency: Some(latency),
                    ..hour(h, s, 150 - s)
                });
                // Learning runs every hour; a change found becomes the regime start.
                let a = p.assess(2.5, &hours, h, regime);
                cell_hours += 1;
                if let Some(c) = a.change {
                    changes += 1;
                    regime = Some(c.hour);
                }
            }
        }
        assert!(
            changes * 100 <= cell_hours,
            "{changes} changes in {cell_hours} stationary cell-hours"
        );
    }

    #[test]
    fn hours_outside_the_regime_are_ignored() {
        let p = BayesPolicy::default();
        let start = NOW - 9;
        let mut hours = steady(10, NOW, 190, 10);
        hours.extend(steady(30, start - 1, 10, 190));
        hours.push(hour(NOW + 1, 0, 1000));
        let with_start = p.assess(2.5, &hours, NOW, Some(start));
        assert_eq!(with_start, p.assess(2.5, &hours[..10], NOW, None));
        assert_eq!(with_start.outcomes, 2000);
        let all = no_changes().assess(2.5, &hours, NOW, None);
        assert!(all.score < with_start.score, "{}", all.reason);
    }

    #[test]
    fn slow_twin_scores_lower_even_under_the_target() {
        let p = BayesPolicy::default();
        let twin = |lo, hi| -> Vec<HourEvidence> {
            (0..10).map(|k| timed(NOW - k, 140, 10, lo, hi)).collect()
        };
        let fast = p.assess(3.0, &twin(100, 400), NOW, None);
        let slow = p.assess(3.0, &twin(400, 1600), NOW, None);
        let (fast_p95, slow_p95) = (fast.p95_ms.unwrap(), slow.p95_ms.unwrap());
        assert!(slow_p95 < 2000.0 && close(slow_p95, 4.0 * fast_p95, 0.03 * slow_p95));
        assert_eq!((fast.rate, fast.bound), (slow.rate, slow.bound));
        assert!(fast.change.is_none() && slow.change.is_none());
        assert!(slow.score < fast.score, "{} / {}", slow.reason, fast.reason);
    }

    #[test]
    fn latency_penalty_is_smooth_and_increasing() {
        let p = BayesPolicy::default();
        let penalties: Vec<f64> = (0..=40).map(|k| p.penalty(250.0 * k as f64)).collect();
        for w in penalties.windows(2) {
            assert!(w[1] > w[0], "{penalties:?}");
        }
        assert!(p.penalty(200.0) < 1e-3);
        // ~latency_weight (p95 - target) / target well above the target.
        assert!(close(p.penalty(6000.0), 0.25 * 2.0, 1e-6));
        // Scale 0: the hinge.
        let hinge = BayesPolicy {
            latency_scale_ms: 0.0,
            ..p
        }
        .sane();
        assert_eq!(
            (hinge.penalty(1000.0), hinge.penalty(3000.0)),
            (0.0, 0.25 * 0.5)
        );
    }

    /// 20 hours at ~300 ms then one hour at ~900 ms, all with the same success rate.
    fn latency_step() -> Vec<HourEvidence> {
        let mut hours: Vec<HourEvidence> = (1..=20)
            .map(|k| timed(NOW - k, 140, 10, 250, 350))
            .collect();
        hours.push(timed(NOW, 140, 10, 750, 1050));
        hours
    }

    #[test]
    fn latency_step_is_a_latency_change() {
        let p = BayesPolicy::default();
        let a = p.assess(3.0, &latency_step(), NOW, None);
        let c = a.change.clone().expect(&a.reason);
        assert_eq!((c.kind, c.hour), (ChangeKind::Latency, NOW));
        assert!(
            close(c.before, 300.0, 9.0) && close(c.after, 900.0, 27.0),
            "{c:?}"
        );
        assert!(close(c.statistic, 3f64.ln(), 0.05), "{c:?}");
        assert!(
            a.outcomes == 150 && a.p95_ms.unwrap() > 1000.0,
            "{}",
            a.reason
        );
        // Faster by 3x is a change too.
        let mut faster: Vec<HourEvidence> = (1..=20)
            .map(|k| timed(NOW - k, 140, 10, 750, 1050))
            .collect();
        faster.push(timed(NOW, 140, 10, 250, 350));
        let b = p.assess(3.0, &faster, NOW, None);
        assert_eq!(
            b.change.map(|c| (c.kind, c.hour)),
            Some((ChangeKind::Latency, NOW))
        );
    }

    #[test]
    fn reasons_name_the_evidence_and_the_change() {
        let p = BayesPolicy::default();
        let a = p.assess(3.0, &[timed(NOW, 2820, 180, 100, 900)], NOW, None);
        let expected = format!(
            "bayes: n 3000 (eff 3000.0), rate {}, bound {}, p95 {:.0} ms (penalty {:.4}), score {:.4}",
            pct(a.rate.unwrap()),
            pct(a.bound.unwrap()),
            a.p95_ms.unwrap(),
            a.penalty,
            a.score
        );
        assert_eq!(a.reason, expected);
        assert!(
            a.reason.contains("rate 94.0%") && a.reason.contains("bound 93.3%"),
            "{}",
            a.reason
        );
        let drop = p.assess(2.5, &success_drop(), NOW, None);
        assert!(
            drop.reason.starts_with("bayes: n 150 (eff 150.0), rate "),
            "{}",
            drop.reason
        );
        assert!(
            drop.reason.contains("no latency (penalty 0), score ")
                && drop
                    .reason
                    .contains("; change: success rate 95.0% -> 80.0% at 2026-11-27T05:00Z (LLR "),
            "{}",
            drop.reason
        );
        let step = p.assess(3.0, &latency_step(), NOW, None);
        let c = step.change.clone().unwrap();
        let change = format!(
            "; change: p50 latency {:.0} ms -> {:.0} ms at 2026-11-27T05:00Z (x{:.2})",
            c.before,
            c.after,
            c.after / c.before
        );
        assert!(step.reason.ends_with(&change), "{}", step.reason);
    }

    #[test]
    fn degenerate_inputs_neither_panic_nor_yield_nan() {
        let policies = [
            BayesPolicy::default(),
            BayesPolicy {
                min_samples: i64::MIN,
                half_life_hours: f64::NAN,
                prior_strength: f64::INFINITY,
                z: f64::NAN,
                latency_target_ms: -1.0,
                latency_scale_ms: f64::NAN,
                change_threshold: f64::NAN,
                change_lookback_hours: i64::MAX,
                change_min_outcomes: i64::MIN,
                latency_change_ratio: f64::NAN,
                score_midpoint: f64::NAN,
                latency_weight: f64::NAN,
            },
            BayesPolicy {
                min_samples: 0,
                half_life_hours: 1e-300,
                prior_strength: 0.0,
                z: f64::INFINITY,
                latency_target_ms: 1e-300,
                latency_scale_ms: f64::INFINITY,
                change_threshold: f64::NEG_INFINITY,
                change_lookback_hours: i64::MIN,
                change_min_outcomes: 0,
                latency_change_ratio: 0.0,
                score_midpoint: 1.0,
                latency_weight: f64::INFINITY,
            },
        ];
        let with = |h: i64, s: i64, f: i64, sk: MergedSketch| HourEvidence {
            latency: Some(sk),
            ..hour(h, s, f)
        };
        let inputs = vec![
            vec![],
            vec![hour(NOW, 0, 0), with(NOW, 0, 0, MergedSketch::default())],
            vec![
                hour(NOW, -5, -7),
                hour(NOW - 1, i64::MAX, i64::MAX),
                hour(NOW - 1, i64::MAX, 1),
                hour(NOW - 2, 0, i64::MAX),
            ],
            vec![
                hour(i64::MIN, 3, 4),
                hour(i64::MAX, 1, 1),
                with(NOW - 3, 1, 0, sketch([0, i32::MAX])),
                with(NOW, 0, 1, sketch([0, 0, 0])),
            ],
        ];
        for p in &policies {
            for hours in &inputs {
                for now in [NOW, 0, i64::MIN, i64::MAX] {
                    for regime in [None, Some(i64::MIN), Some(i64::MAX), Some(NOW - 1)] {
                        for prior in [f64::NAN, f64::NEG_INFINITY, f64::INFINITY, -1.0, 2.5, 7.0] {
                            let a = p.assess(prior, hours, now, regime);
                            let finite = [a.score, a.effective_outcomes]
                                .into_iter()
                                .chain(a.rate)
                                .chain(a.bound)
                                .chain(a.p95_ms);
                            assert!(
                                finite.into_iter().all(f64::is_finite)
                                    && !a.penalty.is_nan()
                                    && (MIN_SCORE..=MAX_SCORE).contains(&a.score),
                                "{a:?}"
                            );
                            if let Some(c) = &a.change {
                                assert!(!c.before.is_nan() && !c.after.is_nan(), "{c:?}");
                                assert!(!c.statistic.is_nan(), "{c:?}");
                            }
                        }
                    }
                }
            }
        }
    }
}

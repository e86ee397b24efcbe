//! Health of (provider, model) cells and of providers: `healthy`, `degraded` or `down`, from the
//! outcomes of a recent window (per second of server receive time), judged against the cell's
//! own long-run success rate. Pure: no SPI; `health` (mod.rs) reads and writes the tables.
//!
//! 1. **Long-run rate `b`.** The cell's success rate over the hourly rollup of the baseline
//!    window, blended with a prior of 95% worth 20 outcomes (`PRIOR_*`). *Why relative:* a model
//!    that always fails 10% of its calls is not in trouble at 12%, one that fails 0.1% is at 10%.
//!    *Why a prior:* a new cell has no long run; 95% is what a working model does.
//! 2. **Evidence of the current state.** The window's seconds from `evidence_from` on (the
//!    second after the last transition; all of them for a cell that never changed). *Why:* the
//!    outcomes that made a cell `down` must not make it `down` again the moment it recovers.
//! 3. **Worse, at once.** Recent rates are the whole evidence's and the rate after each
//!    significant change point (binomial log-likelihood ratio above `change_threshold`), each
//!    over at least `min_samples` outcomes. A rate at most `down_below * b` is `down`, at most
//!    `degraded_below * b` is `degraded`; the most severe counts. *Why change points:* at 50
//!    outcomes a second, 300 s of good outcomes would hide a full outage for minutes in the
//!    window's average; after the change point it shows within a second.
//!    *Why the likelihood ratio:* it makes a short suffix prove a large difference and a long
//!    one a small difference, so noise in the last second is not an outage.
//! 4. **Better, slowly (hysteresis).** A `degraded` or `down` cell is `healthy` again when the
//!    longest recent stretch with a rate of at least `recovered_above * b` holds `min_samples`
//!    outcomes and has lasted `min_recovery_s * 2^(strikes - 1)` (at most half the window).
//!    `strikes` counts the times a cell got worse within a window of its last recovery. *Why:*
//!    the gap between `degraded_below` and `recovered_above` keeps a rate hovering at a
//!    threshold from flapping, the duration keeps a burst of successes between failures from
//!    announcing a recovery, and the doubling (as Envoy's outlier ejection does) damps a model
//!    that fails every other minute. *Why not `down` -> `degraded` on evidence:* a model failing
//!    in bursts would then alternate between the two with every burst.
//! 5. **Expiry.** A state other than `healthy` whose evidence has fewer than `min_samples`
//!    outcomes for a whole window improves one level. *Why:* routers stop sending to a `down`
//!    model, so no evidence would ever clear it; `degraded` lets them probe it.
//! 6. **Providers.** A provider is at the worst level L such that at least `provider_min_models`
//!    of its models are at L or worse and they are more than half of its models with evidence
//!    (judged: not `healthy`, or `min_samples` outcomes in the window). *Why:* one broken model
//!    is that model's problem, and so are two of four (the other two serve); most of a
//!    provider's models failing together is an outage of the provider, which routers should
//!    avoid as a whole.

use crate::stats::{llr, pct, Counts};
use chrono::DateTime;

/// The long-run success rate a cell with no history is judged against, and how many outcomes
/// that assumption is worth.
const PRIOR_SUCCESS_RATE: f64 = 0.95;
const PRIOR_WEIGHT: f64 = 20.0;

/// Health states, least to most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Healthy,
    Degraded,
    Down,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Degraded => "degraded",
            State::Down => "down",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        [State::Healthy, State::Degraded, State::Down]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// One level better (expiry).
    fn better(self) -> State {
        match self {
            State::Down => State::Degraded,
            _ => State::Healthy,
        }
    }
}

/// The knobs (each a GUC but the change threshold, which is learning's default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HealthPolicy {
    pub window_s: i64,
    pub min_samples: i64,
    pub degraded_below: f64,
    pub down_below: f64,
    pub recovered_above: f64,
    pub min_recovery_s: i64,
    pub provider_min_models: i64,
    pub change_threshold: f64,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            window_s: 300,
            min_samples: 20,
            degraded_below: 0.8,
            down_below: 0.2,
            recovered_above: 0.9,
            min_recovery_s: 30,
            provider_min_models: 2,
            change_threshold: 8.0,
        }
    }
}

/// Outcomes received in one second (seconds since the Unix epoch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Second {
    pub at: i64,
    pub counts: Counts,
}

/// A cell as the tables hold it. Times are seconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub state: State,
    pub since: i64,
    /// First second whose outcomes count for the current state (None: all).
    pub evidence_from: Option<i64>,
    pub strikes: i32,
    pub last_recovered_at: Option<i64>,
    /// Outcomes of the baseline window (hourly rollup).
    pub long_run: Counts,
    /// The window's seconds, ascending.
    pub seconds: Vec<Second>,
}

/// What the evaluation decided for a cell or a provider.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub state: State,
    pub changed: bool,
    /// Failure rate of the outcomes the verdict rests on (None: none).
    pub failure_rate: Option<f64>,
    pub outcomes: i64,
    /// Counts for its provider: not healthy, or enough outcomes in the window to judge.
    pub judged: bool,
    pub strikes: i32,
    pub last_recovered_at: Option<i64>,
    pub reason: String,
}

/// A stretch of seconds: its outcomes and its first second.
#[derive(Clone, Copy, Debug)]
struct Stretch {
    counts: Counts,
    from: i64,
    /// The change point's log-likelihood ratio when the stretch starts at one.
    change: Option<f64>,
}

impl HealthPolicy {
    /// The policy with its parameters in range: thresholds in [0, 1] and ordered, counts and
    /// durations at least 1.
    pub fn sane(&self) -> HealthPolicy {
        let unit = |x: f64| if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
        let down_below = unit(self.down_below);
        let degraded_below = unit(self.degraded_below).max(down_below);
        HealthPolicy {
            window_s: self.window_s.max(1),
            min_samples: self.min_samples.max(1),
            down_below,
            degraded_below,
            recovered_above: unit(self.recovered_above).max(degraded_below),
            min_recovery_s: self.min_recovery_s.max(0),
            provider_min_models: self.provider_min_models.max(1),
            change_threshold: if self.change_threshold.is_nan() {
                f64::INFINITY
            } else {
                self.change_threshold
            },
        }
    }

    /// The cell's state at `now` (seconds since the epoch).
    pub fn assess(&self, cell: &Cell, now: i64) -> Verdict {
        let p = self.sane();
        let baseline = Baseline::of(cell.long_run);
        let evidence: Vec<Second> = cell
            .seconds
            .iter()
            .filter(|s| s.at > now - p.window_s && s.at >= cell.evidence_from.unwrap_or(i64::MIN))
            .copied()
            .collect();
        let total = total(&evidence);
        let judged = cell.state != State::Healthy || total.n() >= p.min_samples;
        let verdict = p
            .worse(cell, &evidence, &baseline, now)
            .or_else(|| p.better(cell, &evidence, &baseline, now))
            .or_else(|| p.expired(cell, total, now));
        verdict.unwrap_or_else(|| Verdict {
            state: cell.state,
            changed: false,
            failure_rate: failure_rate(total),
            outcomes: total.n(),
            judged,
            strikes: cell.strikes,
            last_recovered_at: cell.last_recovered_at,
            reason: String::new(),
        })
    }

    /// The state the recent rate calls for, if it is worse than the cell's.
    fn worse(&self, cell: &Cell, evidence: &[Second], b: &Baseline, now: i64) -> Option<Verdict> {
        let (state, ratio, recent) = self.worst_recent(evidence, b)?;
        if state <= cell.state {
            return None;
        }
        let strikes = match cell.last_recovered_at {
            Some(at) if cell.state == State::Healthy && now - at < self.window_s => {
                cell.strikes.saturating_add(1)
            }
            _ if cell.state == State::Healthy => 1,
            _ => cell.strikes,
        };
        let change = recent.change.map_or(String::new(), |l| {
            format!(", after a change at {} (LLR {l:.1})", clock(recent.from))
        });
        let reason = format!(
            "{}: {} success in the last {} s ({} of {} outcomes{change}) <= {:.0}% of its long-run {}",
            state.as_str(),
            pct(recent.counts.rate()),
            now - recent.from + 1,
            recent.counts.s,
            recent.counts.n(),
            ratio * 100.0,
            b.describe(),
        );
        Some(self.transition(
            state,
            recent.counts,
            strikes,
            cell.last_recovered_at,
            reason,
        ))
    }

    /// The level a rate is at: `down` at most `down_below * b`, `degraded` at most
    /// `degraded_below * b`; with the ratio that applied.
    fn level(&self, rate: f64, b: &Baseline) -> (State, f64) {
        if rate <= self.down_below * b.rate {
            (State::Down, self.down_below)
        } else if rate <= self.degraded_below * b.rate {
            (State::Degraded, self.degraded_below)
        } else {
            (State::Healthy, 1.0)
        }
    }

    /// The most severe level among the whole evidence and every stretch after a significant
    /// change point (likelihood ratio above `change_threshold`), each with `min_samples`
    /// outcomes; on a tie the stretch with the largest likelihood ratio. *Why every change
    /// point:* an old, large change (95% to 85%) can outweigh a new outage in the likelihood
    /// ratio while the outage's own stretch already proves it.
    fn worst_recent(&self, evidence: &[Second], b: &Baseline) -> Option<(State, f64, Stretch)> {
        let all = total(evidence);
        let mut candidates = Vec::new();
        if all.n() >= self.min_samples {
            let from = evidence.first().map_or(0, |s| s.at);
            candidates.push(Stretch {
                counts: all,
                from,
                change: None,
            });
        }
        let mut before = Counts::default();
        for s in evidence {
            let after = all.minus(before);
            if before.n() > 0 && after.n() >= self.min_samples {
                let l = llr(before, after);
                if l > self.change_threshold {
                    candidates.push(Stretch {
                        counts: after,
                        from: s.at,
                        change: Some(l),
                    });
                }
            }
            before = before.plus(s.counts);
        }
        let strength = |c: &Stretch| c.change.unwrap_or(0.0);
        candidates
            .into_iter()
            .map(|c| {
                let (state, ratio) = self.level(c.counts.rate(), b);
                (state, ratio, c)
            })
            .filter(|(state, _, _)| *state > State::Healthy)
            .max_by(|a, b| {
                (a.0, strength(&a.2))
                    .partial_cmp(&(b.0, strength(&b.2)))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
    }

    /// Healthy again, when a long enough recent stretch is good.
    fn better(&self, cell: &Cell, evidence: &[Second], b: &Baseline, now: i64) -> Option<Verdict> {
        if cell.state == State::Healthy {
            return None;
        }
        let required = self.recovery_s(cell.strikes);
        let good = self.longest_at_least(evidence, self.recovered_above * b.rate)?;
        let lasted = now - good.from + 1;
        if lasted < required {
            return None;
        }
        let reason = format!(
            "healthy: {} success over the last {lasted} s ({} of {} outcomes) >= {:.0}% of its long-run {}, for at least {required} s",
            pct(good.counts.rate()),
            good.counts.s,
            good.counts.n(),
            self.recovered_above * 100.0,
            b.describe(),
        );
        Some(self.transition(State::Healthy, good.counts, cell.strikes, Some(now), reason))
    }

    /// One level better for a state that has had too little evidence for a whole window.
    fn expired(&self, cell: &Cell, total: Counts, now: i64) -> Option<Verdict> {
        if cell.state == State::Healthy
            || total.n() >= self.min_samples
            || now - cell.since < self.window_s
        {
            return None;
        }
        let state = cell.state.better();
        let reason = format!(
            "{}: {} expired: {} outcomes (< {}) since it began {} s ago",
            state.as_str(),
            cell.state.as_str(),
            total.n(),
            self.min_samples,
            now - cell.since,
        );
        let recovered = (state == State::Healthy).then_some(now);
        Some(self.transition(
            state,
            total,
            cell.strikes,
            recovered.or(cell.last_recovered_at),
            reason,
        ))
    }

    fn transition(
        &self,
        state: State,
        counts: Counts,
        strikes: i32,
        last_recovered_at: Option<i64>,
        reason: String,
    ) -> Verdict {
        Verdict {
            state,
            changed: true,
            failure_rate: failure_rate(counts),
            outcomes: counts.n(),
            judged: true,
            strikes,
            last_recovered_at,
            reason,
        }
    }

    /// How long a good stretch must last before a state improves.
    fn recovery_s(&self, strikes: i32) -> i64 {
        let doublings = strikes.saturating_sub(1).clamp(0, 20) as u32;
        self.min_recovery_s
            .saturating_mul(1i64 << doublings)
            .min(self.window_s / 2)
    }

    /// The longest suffix of the evidence with `min_samples` outcomes and a success rate of at
    /// least `threshold`, starting at a second that is itself that good (so the stretch does not
    /// reach back into the failures it recovered from, which its average could absorb).
    fn longest_at_least(&self, evidence: &[Second], threshold: f64) -> Option<Stretch> {
        let mut suffix = Counts::default();
        let mut longest = None;
        for s in evidence.iter().rev() {
            suffix = suffix.plus(s.counts);
            let starts_good = s.counts.n() > 0 && s.counts.rate() >= threshold;
            if starts_good && suffix.n() >= self.min_samples && suffix.rate() >= threshold {
                longest = Some(Stretch {
                    counts: suffix,
                    from: s.at,
                    change: None,
                });
            }
        }
        longest
    }
}

/// A cell's long-run success rate, blended with the prior.
struct Baseline {
    rate: f64,
    outcomes: i64,
}

impl Baseline {
    fn of(long_run: Counts) -> Self {
        let n = long_run.n().max(0) as f64;
        Baseline {
            rate: (long_run.s.max(0) as f64 + PRIOR_SUCCESS_RATE * PRIOR_WEIGHT)
                / (n + PRIOR_WEIGHT),
            outcomes: long_run.n(),
        }
    }

    fn describe(&self) -> String {
        if self.outcomes == 0 {
            format!("{} (no long-run outcomes yet: the prior)", pct(self.rate))
        } else {
            format!("{} ({} outcomes)", pct(self.rate), self.outcomes)
        }
    }
}

/// A provider and its models' verdicts, for [`HealthPolicy::assess_provider`].
pub struct ProviderCells<'a> {
    pub state: State,
    /// (model, verdict) of each model with evidence or a state other than healthy.
    pub models: &'a [(&'a str, &'a Verdict)],
    /// Outcomes of those models in the window.
    pub window: Counts,
}

impl HealthPolicy {
    /// A provider is at the worst level that at least `provider_min_models` of its models, and
    /// more than half of its judged models, are at (or worse than).
    pub fn assess_provider(&self, provider: &ProviderCells<'_>) -> Verdict {
        let p = self.sane();
        let judged: Vec<&(&str, &Verdict)> =
            provider.models.iter().filter(|(_, v)| v.judged).collect();
        let at_least = |level: State| -> Vec<&str> {
            judged
                .iter()
                .filter(|(_, v)| v.state >= level)
                .map(|(m, _)| *m)
                .collect()
        };
        let together = |models: &Vec<&str>| {
            models.len() as i64 >= p.provider_min_models && 2 * models.len() > judged.len()
        };
        let (state, models) = [State::Down, State::Degraded]
            .into_iter()
            .map(|level| (level, at_least(level)))
            .find(|(_, models)| together(models))
            .unwrap_or((State::Healthy, Vec::new()));
        let reason = match state {
            State::Healthy => format!(
                "healthy: fewer than {} of its models, or at most half of the {} with recent outcomes, are degraded or down",
                p.provider_min_models,
                judged.len()
            ),
            _ => format!(
                "{}: {} of its {} models with recent outcomes are {} ({})",
                state.as_str(),
                models.len(),
                judged.len(),
                if state == State::Down { "down" } else { "degraded or down" },
                models.join(", ")
            ),
        };
        Verdict {
            state,
            changed: state != provider.state,
            failure_rate: failure_rate(provider.window),
            outcomes: provider.window.n(),
            judged: true,
            strikes: 0,
            last_recovered_at: None,
            reason,
        }
    }
}

/// The first second whose outcomes count for a state that began at `now`: the next one (the
/// outcomes of the second it began in are mostly those that made it).
pub fn evidence_from(now: i64) -> i64 {
    now + 1
}

fn total(seconds: &[Second]) -> Counts {
    seconds
        .iter()
        .fold(Counts::default(), |c, s| c.plus(s.counts))
}

fn failure_rate(c: Counts) -> Option<f64> {
    (c.n() > 0).then(|| 1.0 - c.rate())
}

/// `10:00:03Z`, the time of day of a second (UTC).
fn clock(at: i64) -> String {
    DateTime::from_timestamp(at, 0)
        .map(|t| t.format("%H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("second {at}"))
}

#[cfg(test)]
mod tests;

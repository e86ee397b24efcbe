//! Ranking the candidates of `recommend_model()`, and which of them to read. Pure: no SPI;
//! `recommend` (mod.rs) reads the segments `read` asks for, `down` ones left out.
//!
//! 1. **Healthy first.** Every `healthy` candidate ranks before every `degraded` one: a degraded
//!    model is failing more than its own norm right now. Each group is ranked alike.
//! 2. **No preference:** by score (the learned quality for the complexity), then by the lower
//!    bound of the success rate, then by name.
//! 3. **`speed` / `cost`:** the candidates whose score is within `tolerance` of the group's
//!    best come first, fastest (lowest p95) or cheapest (estimated cost per request) first, those
//!    with no p95 or no price after them by score; then the rest by score. *Why a tolerance:*
//!    a preference trades a little quality for speed or money, never a lot: the fastest model
//!    of all may be the worst at the task.

use crate::health::rules::State;
use crate::stats::{pct, Counts};
use std::cmp::Ordering;

/// What the router prefers besides quality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefer {
    Speed,
    Cost,
}

/// A (model, provider) for the complexity asked about.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub model: String,
    pub provider: String,
    pub score: f64,
    /// The cell's outcomes (all providers of the model, lifetime).
    pub outcomes: Counts,
    /// Their success rate's lower bound (SQL `success_lower_bound`; None without outcomes).
    pub success_lower: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub cost_usd: Option<f64>,
    /// Healthy or degraded (down candidates are skipped before ranking).
    pub health: State,
}

/// A ranked candidate with what the caller sees of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranked {
    pub rank: i32,
    pub candidate: Candidate,
    pub success_rate: Option<f64>,
    pub success_rate_lower: Option<f64>,
    pub reason: String,
}

/// How to rank.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ranking {
    pub prefer: Option<Prefer>,
    /// Score points below the best within which a preference applies.
    pub tolerance: f64,
    /// Most candidates returned.
    pub limit: usize,
}

/// One read of a health group's candidates, in the order the ranking takes them; the reader
/// returns at most the number asked for, filtered by the request and the group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Segment {
    /// Best score first (then the success bound, model, provider).
    ByScore,
    /// Score at least the floor, with the preferred value known: lowest value first, then by
    /// score.
    Preferred { floor: f64 },
    /// Score at least the floor, without the preferred value: best score first.
    Unpreferred { floor: f64 },
    /// Score below the floor: best score first.
    Below { floor: f64 },
}

impl Ranking {
    /// Every candidate that can be among the first `limit`: the healthy group's, then as many
    /// of the degraded group's as the healthy ones leave room for.
    pub fn read<E>(
        &self,
        mut read: impl FnMut(State, Segment, usize) -> Result<Vec<Candidate>, E>,
    ) -> Result<Vec<Candidate>, E> {
        let mut candidates = self.read_group(self.limit, |s, k| read(State::Healthy, s, k))?;
        let room = self.limit.saturating_sub(candidates.len());
        candidates.extend(self.read_group(room, |s, k| read(State::Degraded, s, k))?);
        Ok(candidates)
    }

    /// The candidates of one health group that can be among its first `k`, read segment by
    /// segment in ranking order, so a call reads about `k` rows however many tie. With a
    /// preference the group's best is read first (it sets the floor and, if slow or dear, is
    /// kept as one more: `rank` needs it for the floor and the reasons).
    fn read_group<E>(
        &self,
        k: usize,
        mut read: impl FnMut(Segment, usize) -> Result<Vec<Candidate>, E>,
    ) -> Result<Vec<Candidate>, E> {
        if k == 0 {
            return Ok(Vec::new());
        }
        if self.prefer.is_none() {
            return read(Segment::ByScore, k);
        }
        let Some(best) = read(Segment::ByScore, 1)?.into_iter().next() else {
            return Ok(Vec::new());
        };
        let floor = best.score - self.tolerance;
        let mut group = read(Segment::Preferred { floor }, k)?;
        for segment in [Segment::Unpreferred { floor }, Segment::Below { floor }] {
            if group.len() >= k {
                break;
            }
            group.extend(read(segment, k - group.len())?);
        }
        if !group
            .iter()
            .any(|c| c.model == best.model && c.provider == best.provider)
        {
            group.push(best);
        }
        Ok(group)
    }

    /// The candidates ranked, at most `limit`.
    pub fn rank(&self, candidates: Vec<Candidate>) -> Vec<Ranked> {
        let (healthy, degraded): (Vec<Candidate>, Vec<Candidate>) = candidates
            .into_iter()
            .partition(|c| c.health == State::Healthy);
        let mut ranked = self.rank_group(healthy);
        ranked.extend(self.rank_group(degraded));
        ranked.truncate(self.limit);
        for (i, r) in ranked.iter_mut().enumerate() {
            r.rank = i as i32 + 1;
        }
        ranked
    }

    fn rank_group(&self, mut group: Vec<Candidate>) -> Vec<Ranked> {
        group.sort_by(|a, b| self.by_quality(a, b));
        let Some(best) = group.first().map(|c| c.score) else {
            return Vec::new();
        };
        let Some(prefer) = self.prefer else {
            return group
                .into_iter()
                .map(|c| {
                    let reason = quality_reason(&c, best);
                    self.ranked(c, reason)
                })
                .collect();
        };
        let floor = best - self.tolerance;
        let (mut within, rest): (Vec<Candidate>, Vec<Candidate>) =
            group.into_iter().partition(|c| c.score >= floor);
        within.sort_by(|a, b| {
            compare_known(preferred(prefer, a), preferred(prefer, b))
                .then_with(|| self.by_quality(a, b))
        });
        let any_known = within.iter().any(|c| preferred(prefer, c).is_some());
        let mut out: Vec<Ranked> = within
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let among = format!("within {} of the best score {best:.2}", self.tolerance);
                let reason = preference_reason(prefer, &c, i + 1, any_known, &among);
                self.ranked(c, reason)
            })
            .collect();
        out.extend(rest.into_iter().map(|c| {
            let reason = format!(
                "score {:.2}, more than {} below the best ({best:.2}): after those within it",
                c.score, self.tolerance
            );
            self.ranked(c, reason)
        }));
        out
    }

    /// Score, then the success rate's lower bound, then name: a total order.
    fn by_quality(&self, a: &Candidate, b: &Candidate) -> Ordering {
        b.score
            .total_cmp(&a.score)
            .then_with(|| {
                let lower = |c: &Candidate| c.success_lower.unwrap_or(-1.0);
                lower(b).total_cmp(&lower(a))
            })
            .then_with(|| a.model.cmp(&b.model))
            .then_with(|| a.provider.cmp(&b.provider))
    }

    fn ranked(&self, c: Candidate, mut why: String) -> Ranked {
        if c.health == State::Degraded {
            why.push_str("; degraded: ranked after every healthy candidate");
        }
        Ranked {
            rank: 0,
            success_rate: (c.outcomes.n() > 0).then(|| c.outcomes.rate()),
            success_rate_lower: c.success_lower,
            reason: why,
            candidate: c,
        }
    }
}

/// The candidate's p95 or cost, whichever is preferred.
fn preferred(prefer: Prefer, c: &Candidate) -> Option<f64> {
    match prefer {
        Prefer::Speed => c.p95_ms,
        Prefer::Cost => c.cost_usd,
    }
}

/// Known values first, lowest first.
fn compare_known(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn quality_reason(c: &Candidate, best: f64) -> String {
    let rate = match c.outcomes.n() {
        0 => "no outcomes yet".to_string(),
        n => format!("{} success over {n} outcomes", pct(c.outcomes.rate())),
    };
    if c.score >= best {
        format!("best score {:.2}, {rate}", c.score)
    } else {
        format!(
            "score {:.2}, {:.2} below the best, {rate}",
            c.score,
            best - c.score
        )
    }
}

/// Why a candidate within the tolerance is where it is.
fn preference_reason(
    prefer: Prefer,
    c: &Candidate,
    position: usize,
    any_known: bool,
    among: &str,
) -> String {
    match (prefer, preferred(prefer, c)) {
        (Prefer::Speed, Some(p95)) => format!("p95 {p95:.0} ms, {} fastest {among}", ordinal(position)),
        (Prefer::Cost, Some(usd)) => format!("${usd:.6} per request, {} cheapest {among}", ordinal(position)),
        (Prefer::Speed, None) => format!("no latency reported yet: after those with a p95 {among}, by score"),
        (Prefer::Cost, None) if !any_known => format!(
            "no price known for any candidate (centralcloud.model_prices): by score {among}, score {:.2}",
            c.score
        ),
        (Prefer::Cost, None) => format!(
            "no price known (centralcloud.model_prices): after the priced ones {among}, by score"
        ),
    }
}

fn ordinal(n: usize) -> String {
    match n {
        1 => "the".to_string(),
        _ => {
            let suffix = match (n % 10, n % 100) {
                (1, 11) | (2, 12) | (3, 13) => "th",
                (1, _) => "st",
                (2, _) => "nd",
                (3, _) => "rd",
                _ => "th",
            };
            format!("{n}{suffix}")
        }
    }
}

#[cfg(test)]
mod tests;

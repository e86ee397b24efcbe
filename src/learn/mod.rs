//! `learn_complexity_scores()` and `set_complexity_score()`: the score catalog changes, its
//! history, and the published updates, all in the caller's transaction (no change without its
//! event, no event without its change). Policies are pure (`policy`); this is the SPI layer.

mod anomalies;
pub mod bayes;
pub mod consensus;
mod hourly;
pub mod policy;

use crate::publish::{complexity_or_error, publish_all, ScoreUpdate, ROUTING_KEY};
use crate::spi_util::{error_with_hint, raise, require_read_committed, FirstValue};
use crate::{event::Limits, guc};
use anomalies::{CellConsensus, Views};
use bayes::{BayesPolicy, ChangePoint};
use consensus::{Agreement, ConsensusPolicy, Slice, Vote};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiResult};
use policy::{clamp_score, Evidence, SeedPolicy, Step};

/// Learners and operators serialise on this transaction-level advisory lock, so two calls never
/// consume the same evidence or publish the same change twice; a new subscription takes it too,
/// so no change falls between its snapshot and its binding.
pub(crate) const LEARN_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtext('centralcloud.learn_complexity_scores'))";

/// One cell as learning sees it: its score, its prior and regime (bayes), and its evidence since
/// the last learning step (seed; the watermarks).
struct Cell {
    model: String,
    complexity: String,
    score: f64,
    prior_score: f64,
    /// Event hour (hours since the epoch) the cell's current regime starts at.
    regime_start: Option<i64>,
    evidence: Evidence,
}

/// The learning policy of this run (centralcloud.learning_policy).
enum Policy {
    Seed(SeedPolicy),
    /// `min_change`: a score moves only by at least centralcloud.min_score_change.
    Bayes {
        policy: BayesPolicy,
        min_change: f64,
    },
}

/// What learning decided for one cell.
struct Decision {
    cell: Cell,
    step: Step,
    /// Outcomes and success rate the decision rests on (for the result row and the history).
    samples: i64,
    success_rate: Option<f64>,
    /// A change point the bayes policy detected (recorded, and the cell's new regime start).
    change: Option<ChangePoint>,
}

impl Decision {
    /// The seed step on the evidence since the cell's last step, less the share of the sources
    /// consensus leaves out; a change needs the agreement of the instances.
    fn seed(
        policy: &SeedPolicy,
        consensus: &ConsensusPolicy,
        cell: Cell,
        view: Option<&CellConsensus>,
    ) -> Self {
        let kept = view.map(CellConsensus::kept_rows).unwrap_or_default();
        let evidence = view.map_or(cell.evidence, |v| {
            consensus::seed_evidence_without(&cell.evidence, &v.window, &kept)
        });
        let mut step = policy.step(cell.score, &evidence);
        if let (Some(v), Step::Learned { new_score, reason }) = (view, &mut step) {
            let change = *new_score - cell.score;
            let votes = consensus::seed_votes(policy, cell.score, &evidence, &kept);
            reason.push_str(&v.reason_suffix());
            gate(consensus, change, &votes, cell.score, new_score, reason);
        }
        Decision {
            step,
            samples: evidence.samples(),
            success_rate: evidence.success_rate(),
            change: None,
            cell,
        }
    }

    /// The bayes assessment of all the cell's evidence in its regime (what consensus leaves out
    /// is not in `hours`); a new score is applied only when it differs by at least `min_change`
    /// from the current one (converged cells stop publishing) and the instances agree. A change
    /// point of a change they do not agree with is not recorded: the next run looks again.
    fn bayes(
        policy: &BayesPolicy,
        min_change: f64,
        consensus: &ConsensusPolicy,
        cell: Cell,
        hours: Vec<bayes::HourEvidence>,
        now_hour: i64,
        view: Option<&CellConsensus>,
    ) -> Self {
        let mut a = policy.assess_owned(cell.prior_score, hours, now_hour, cell.regime_start);
        let suffix = view.map(CellConsensus::reason_suffix).unwrap_or_default();
        let step = if !a.sufficient {
            Step::Insufficient {
                reason: a.reason.clone() + &suffix,
            }
        } else if (a.score - cell.score).abs() < min_change {
            Step::Learned {
                new_score: cell.score,
                reason: format!(
                    "{}{suffix}; kept {}: within centralcloud.min_score_change {min_change}",
                    a.reason, cell.score
                ),
            }
        } else {
            let (mut new_score, mut reason) = (a.score, a.reason.clone() + &suffix);
            if let Some(v) = view {
                let (change, votes) = bayes_votes(policy, &cell, &a, v);
                if !gate(
                    consensus,
                    change,
                    &votes,
                    cell.score,
                    &mut new_score,
                    &mut reason,
                ) {
                    a.change = None;
                }
            }
            Step::Learned { new_score, reason }
        };
        Decision {
            step,
            samples: a.outcomes,
            success_rate: a.rate,
            change: a.change,
            cell,
        }
    }

    fn new_score(&self) -> f64 {
        match &self.step {
            Step::Learned { new_score, .. } => *new_score,
            Step::Insufficient { .. } => self.cell.score,
        }
    }

    fn reason(&self) -> &str {
        match &self.step {
            Step::Learned { reason, .. } | Step::Insufficient { reason } => reason,
        }
    }

    fn changed(&self) -> bool {
        self.new_score() != self.cell.score
    }
}

/// The change a bayes assessment makes, in utility, and the instances' votes on it, over the
/// window's hours the assessment rests on (its regime's, a just-detected change's included).
fn bayes_votes(
    policy: &BayesPolicy,
    cell: &Cell,
    a: &bayes::Assessment,
    view: &CellConsensus,
) -> (f64, Vec<Vote>) {
    let from = a.change.as_ref().map(|c| c.hour).or(cell.regime_start);
    let rows: Vec<&Slice> = view
        .kept_rows()
        .into_iter()
        .filter(|s| from.is_none_or(|h| s.hour >= h))
        .collect();
    let utility = (a.bound.unwrap_or_default() - a.penalty).clamp(0.0, 1.0);
    let change = utility - policy.sane().to_utility(cell.score);
    (change, consensus::bayes_votes(policy, &rows, change))
}

/// The agreement rule: keeps `current` (and says why in `reason`) unless enough instances agree
/// with the change. Returns whether they do.
fn gate(
    consensus: &ConsensusPolicy,
    change: f64,
    votes: &[Vote],
    current: f64,
    new_score: &mut f64,
    reason: &mut String,
) -> bool {
    if *new_score == current {
        return true;
    }
    let a: Agreement = consensus.agreement(change, votes);
    if !a.holds() {
        reason.push_str(&format!(
            "; kept {current}: {} of {} reporting instances agree, {} needed (centralcloud.min_agreeing_instances)",
            a.agreeing, a.reporting, a.required
        ));
        *new_score = current;
    }
    a.holds()
}

/// A result row: model, complexity, samples, success rate, average latency, old score, new
/// score, changed, reason (the names are in `learn_complexity_scores`' signature).
type LearnRow = (
    String,
    String,
    i64,
    Option<f64>,
    Option<f64>,
    f64,
    f64,
    bool,
    String,
);

/// Applies the learning policy to every cell with the evidence that arrived since that cell's
/// last learning step; records, and publishes, every change. `dry_run` returns the same rows
/// and changes nothing.
#[pg_extern(security_definer)]
#[search_path(@extschema@, pg_catalog, pg_temp)]
fn learn_complexity_scores(
    dry_run: default!(bool, false),
) -> TableIterator<
    'static,
    (
        name!(model, String),
        name!(complexity, String),
        name!(samples, i64),
        name!(success_rate, Option<f64>),
        name!(avg_response_time_ms, Option<f64>),
        name!(old_score, f64),
        name!(new_score, f64),
        name!(changed, bool),
        name!(reason, String),
    ),
> {
    crate::version::require_current();
    let policy = current_policy();
    let consensus = guc::consensus_policy();
    let learn = || -> SpiResult<Vec<LearnRow>> {
        Spi::connect_mut(|client| -> SpiResult<()> {
            require_read_committed(client, "learning")?;
            if !dry_run {
                client.update(LEARN_LOCK, None, &[])?;
            }
            Ok(())
        })?;
        let mut rows = Vec::new();
        let mut after = (String::new(), String::new());
        // One SPI connection per chunk: what a chunk's statements allocate is freed with it.
        while let Some(last) = Spi::connect_mut(|client| {
            learn_chunk(client, (&policy, &consensus), &after, dry_run, &mut rows)
        })? {
            after = last;
        }
        Ok(rows)
    };
    let rows = learn().unwrap_or_else(|e| error!("centralcloud: learning failed: {e}"));
    TableIterator::new(rows)
}

/// Reads, decides on and (unless `dry_run`) applies the chunk of cells after `after`; adds its
/// result rows. Returns the last cell's key when the chunk was full (there may be more).
fn learn_chunk(
    client: &mut SpiClient<'_>,
    (policy, consensus): (&Policy, &ConsensusPolicy),
    after: &(String, String),
    dry_run: bool,
    rows: &mut Vec<LearnRow>,
) -> SpiResult<Option<(String, String)>> {
    let cells = read_cells(client, after)?;
    let last = (cells.len() == CHUNK_CELLS as usize)
        .then(|| {
            cells
                .last()
                .map(|c| (c.model.clone(), c.complexity.clone()))
        })
        .flatten();
    let now_hour = hourly::newest_hour(client)?;
    let views = match now_hour {
        Some(hour) => anomalies::judge(client, consensus, &cells, hour)?,
        None => Views::new(),
    };
    let key = |c: &Cell| (c.model.clone(), c.complexity.clone());
    let decisions: Vec<Decision> = match policy {
        Policy::Seed(seed) => cells
            .into_iter()
            .map(|c| {
                let view = views.get(&key(&c));
                Decision::seed(seed, consensus, c, view)
            })
            .collect(),
        Policy::Bayes { policy, min_change } => {
            let Some(now_hour) = now_hour else {
                return Ok(None);
            };
            let left_out = anomalies::left_out(&views);
            // The hours before the window from the table, the window's from the rows consensus
            // read: each rollup row is read once.
            let window_first = hourly::window_first_hour(now_hour, consensus.window_hours);
            let mut hours = hourly::read(
                client,
                &cells,
                (window_first, now_hour),
                policy.half_life_hours,
                &left_out,
            )?;
            cells
                .into_iter()
                .map(|c| {
                    let mut evidence = hours.remove(&key(&c)).unwrap_or_default();
                    let view = views.get(&key(&c));
                    if let Some(v) = view {
                        let first = hourly::first_evidence_hour(
                            c.regime_start,
                            now_hour,
                            policy.half_life_hours,
                        );
                        evidence.extend(v.hours_from(first));
                    }
                    Decision::bayes(policy, *min_change, consensus, c, evidence, now_hour, view)
                })
                .collect()
        }
    };
    if !dry_run {
        if let Some(hour) = now_hour {
            anomalies::record(client, &views, hour)?;
        }
        apply(client, &decisions)?;
        hourly::record_changes(client, &decisions)?;
    }
    rows.extend(decisions.into_iter().map(row));
    Ok(last)
}

/// Cells learning reads, decides on and applies at a time, so a run over a very large catalog
/// holds one chunk of cells and their SPI rows, not all of them (it keeps the small result rows).
const CHUNK_CELLS: i64 = 1000;

fn row(d: Decision) -> LearnRow {
    let (new_score, changed) = (d.new_score(), d.changed());
    let reason = d.reason().to_string();
    (
        d.cell.model,
        d.cell.complexity,
        d.samples,
        d.success_rate.map(crate::units::percent),
        d.cell.evidence.avg_response_time_ms().map(crate::units::ms),
        d.cell.score,
        new_score,
        changed,
        reason,
    )
}

fn current_policy() -> Policy {
    match guc::learning_policy().as_str() {
        "seed" => Policy::Seed(guc::seed_policy()),
        "bayes" => Policy::Bayes {
            policy: guc::bayes_policy(),
            min_change: guc::MIN_SCORE_CHANGE.get(),
        },
        other => error_with_hint(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("centralcloud: unknown centralcloud.learning_policy \"{other}\""),
            "Known policies: bayes, seed.",
        ),
    }
}

/// The next chunk of cells after `after` (model, complexity) in key order; model names are
/// never empty, so ("", "") starts at the first.
fn read_cells(client: &SpiClient<'_>, after: &(String, String)) -> SpiResult<Vec<Cell>> {
    client
        .select(
            "SELECT s.model_name::text, s.complexity_level::text, s.score, s.prior_score,
                    (extract(epoch FROM s.regime_start) / 3600)::int8,
                    m.success_count - s.learned_success_count,
                    m.failure_count - s.learned_failure_count,
                    m.response_time_count - s.learned_response_time_count,
                    m.response_time_sum - s.learned_response_time_sum
               FROM centralcloud.model_complexity_scores s
               JOIN centralcloud.model_routing_metrics m USING (model_name, complexity_level)
              WHERE (s.model_name, s.complexity_level) > ($1, $2)
              ORDER BY s.model_name, s.complexity_level
              LIMIT $3",
            None,
            &[
                after.0.as_str().into(),
                after.1.as_str().into(),
                CHUNK_CELLS.into(),
            ],
        )?
        .map(|r| {
            Ok(Cell {
                model: r.get::<String>(1)?.unwrap_or_default(),
                complexity: r.get::<String>(2)?.unwrap_or_default(),
                score: r.get::<f64>(3)?.unwrap_or_default(),
                prior_score: r.get::<f64>(4)?.unwrap_or_default(),
                regime_start: r.get::<i64>(5)?,
                evidence: Evidence {
                    successes: r.get::<i64>(6)?.unwrap_or_default(),
                    failures: r.get::<i64>(7)?.unwrap_or_default(),
                    latency_count: r.get::<i64>(8)?.unwrap_or_default(),
                    latency_sum_ms: r.get::<i64>(9)?.unwrap_or_default(),
                },
            })
        })
        .collect()
}

/// Moves each learned cell's watermark past the evidence it consumed and stores its new score
/// if it changed (one statement), then publishes and records the changes.
fn apply(client: &mut SpiClient<'_>, decisions: &[Decision]) -> SpiResult<()> {
    let learned: Vec<&Decision> = decisions
        .iter()
        .filter(|d| matches!(d.step, Step::Learned { .. }))
        .collect();
    // Decisions follow the chunk's cells, in key order: the first and last are its model range.
    let (Some(first), Some(last)) = (learned.first(), learned.last()) else {
        return Ok(());
    };
    let column = |f: fn(&Evidence) -> i64| {
        learned
            .iter()
            .map(|d| f(&d.cell.evidence))
            .collect::<Vec<i64>>()
    };
    client.update(
        include_str!("sql/store_learned.sql"),
        None,
        &[
            learned
                .iter()
                .map(|d| d.cell.model.as_str())
                .collect::<Vec<_>>()
                .into(),
            learned
                .iter()
                .map(|d| d.cell.complexity.as_str())
                .collect::<Vec<_>>()
                .into(),
            column(|e| e.successes).into(),
            column(|e| e.failures).into(),
            column(|e| e.latency_count).into(),
            column(|e| e.latency_sum_ms).into(),
            learned
                .iter()
                .map(|d| d.changed().then(|| d.new_score()))
                .collect::<Vec<_>>()
                .into(),
            learned
                .iter()
                .map(|d| d.changed().then(|| d.reason()))
                .collect::<Vec<_>>()
                .into(),
            first.cell.model.as_str().into(),
            last.cell.model.as_str().into(),
        ],
    )?;
    let changes: Vec<Change<'_>> = learned
        .into_iter()
        .filter(|d| d.changed())
        .map(|d| Change {
            model: &d.cell.model,
            complexity: &d.cell.complexity,
            old_score: Some(d.cell.score),
            new_score: d.new_score(),
            source: "learned",
            reason: d.reason(),
            decision: Some(d),
        })
        .collect();
    publish_and_log(client, &changes)
}

/// A score change, however it came about.
struct Change<'a> {
    model: &'a str,
    complexity: &'a str,
    old_score: Option<f64>,
    new_score: f64,
    /// 'learned' or 'operator': the policy column of the history.
    source: &'static str,
    reason: &'a str,
    /// The learning decision behind it (None for an operator's change).
    decision: Option<&'a Decision>,
}

/// Stores the new scores (one statement), then publishes and records them. The cells of
/// `changes` are distinct.
fn record_changes(client: &mut SpiClient<'_>, changes: &[Change<'_>]) -> SpiResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    client.update(
        include_str!("sql/store_scores.sql"),
        None,
        &[
            changes.iter().map(|c| c.model).collect::<Vec<_>>().into(),
            changes
                .iter()
                .map(|c| c.complexity)
                .collect::<Vec<_>>()
                .into(),
            changes
                .iter()
                .map(|c| c.new_score)
                .collect::<Vec<_>>()
                .into(),
            changes.iter().map(|c| c.source).collect::<Vec<_>>().into(),
            changes.iter().map(|c| c.reason).collect::<Vec<_>>().into(),
        ],
    )?;
    publish_and_log(client, changes)
}

/// Publishes the update events of stored changes in batches and appends their history rows
/// (one statement), all in the given order: the history's ids and each instance's queue
/// follow it.
fn publish_and_log(client: &mut SpiClient<'_>, changes: &[Change<'_>]) -> SpiResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let models: Vec<&str> = changes.iter().map(|c| c.model).collect();
    let complexities: Vec<&str> = changes.iter().map(|c| c.complexity).collect();
    let new_scores: Vec<f64> = changes.iter().map(|c| c.new_score).collect();
    let reasons: Vec<&str> = changes.iter().map(|c| c.reason).collect();
    let events: Vec<ScoreUpdate<'_>> = changes
        .iter()
        .map(|c| ScoreUpdate::new(c.model, c.complexity, c.old_score, c.new_score, c.reason))
        .collect();
    let published_to = publish_all(client, ROUTING_KEY, &events)?;
    append_history(
        client,
        changes,
        (models, complexities, new_scores, reasons),
        published_to,
    )
}

/// The history rows of `changes`, in their order (ids ascending).
fn append_history(
    client: &mut SpiClient<'_>,
    changes: &[Change<'_>],
    (models, complexities, new_scores, reasons): (Vec<&str>, Vec<&str>, Vec<f64>, Vec<&str>),
    published_to: Vec<i32>,
) -> SpiResult<()> {
    let learned_policy = guc::learning_policy();
    let policies: Vec<&str> = changes
        .iter()
        .map(|c| {
            if c.source == "learned" {
                learned_policy.as_str()
            } else {
                "operator"
            }
        })
        .collect();
    let old_scores: Vec<Option<f64>> = changes.iter().map(|c| c.old_score).collect();
    let samples: Vec<Option<i64>> = changes
        .iter()
        .map(|c| c.decision.map(|d| d.samples))
        .collect();
    let success_rates: Vec<Option<f64>> = changes
        .iter()
        .map(|c| c.decision.and_then(|d| d.success_rate))
        .collect();
    let avg_response_times: Vec<Option<f64>> = changes
        .iter()
        .map(|c| {
            c.decision
                .and_then(|d| d.cell.evidence.avg_response_time_ms())
        })
        .collect();
    client.update(
        include_str!("sql/append_history.sql"),
        None,
        &[
            models.into(),
            complexities.into(),
            old_scores.into(),
            new_scores.into(),
            samples.into(),
            success_rates.into(),
            avg_response_times.into(),
            policies.into(),
            reasons.into(),
            published_to.into(),
        ],
    )?;
    Ok(())
}

/// Sets a cell's score by hand: validated, recorded and published like a learned change.
/// Returns false when the score already had that value (nothing recorded or published).
#[pg_extern(security_definer)]
#[search_path(@extschema@, pg_catalog, pg_temp)]
fn set_complexity_score(
    model: &str,
    complexity: &str,
    score: f64,
    reason: default!(&str, "'set by operator'"),
) -> bool {
    crate::version::require_current();
    let complexity = complexity_or_error(complexity);
    let limits: Limits = guc::limits();
    if model.is_empty() || model.chars().count() > limits.max_string_chars {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "centralcloud: model must be 1 to {} characters",
                limits.max_string_chars
            ),
        );
    }
    if !score.is_finite() || !(policy::MIN_SCORE..=policy::MAX_SCORE).contains(&score) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("centralcloud: score must be a number in [0, 5], got {score}"),
        );
    }
    let score = clamp_score(score);
    Spi::connect_mut(|client| -> SpiResult<bool> {
        client.update(LEARN_LOCK, None, &[])?;
        let old = client
            .select(
                "SELECT score FROM centralcloud.model_complexity_scores
                  WHERE model_name = $1 AND complexity_level = $2",
                None,
                &[model.into(), complexity.into()],
            )?
            .first_value::<f64>()?;
        if old == Some(score) {
            return Ok(false);
        }
        let change = Change {
            model,
            complexity,
            old_score: old,
            new_score: score,
            source: "operator",
            reason,
            decision: None,
        };
        record_changes(client, &[change])?;
        Ok(true)
    })
    .unwrap_or_else(|e| error!("centralcloud: setting a score failed: {e}"))
}

//! Health of providers and (provider, model) cells, evaluated by ingest at the end of each call
//! and by `evaluate_model_health()`: evidence in `health_outcomes` (outcomes per second of
//! server receive time, written by ingest), states in `health_states`, each transition recorded
//! in `health_history` and published to every subscribed instance (topic
//! `centralcloud.model_health_update`, which their score-update queues are bound to), in the
//! evaluating transaction (no transition without its event). The rules are pure (`rules`);
//! this is the SPI layer.

pub mod rules;

use crate::publish::{publish_all, HealthUpdate, HEALTH_ROUTING_KEY};
use crate::spi_util::{isolation_level, require_read_committed, FirstValue};
use crate::stats::Counts;
use crate::{guc, subxact};
use chrono::{DateTime, Utc};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiResult};
use rules::{Cell, HealthPolicy, ProviderCells, Second, State, Verdict};
use std::collections::BTreeMap;

const CELLS_SQL: &str = include_str!("cells.sql");
const BASELINES_SQL: &str = include_str!("baselines.sql");

/// One evaluator at a time: two would judge the same evidence from the same state and publish
/// one transition twice.
const LOCK: &str = "centralcloud.evaluate_model_health";

/// A state change one evaluation decided.
struct Transition {
    provider: String,
    /// None: the provider as a whole.
    model: Option<String>,
    previous: State,
    verdict: Verdict,
}

/// A model cell as read for evaluation.
struct CellRow {
    provider: String,
    model: String,
    cell: Cell,
}

/// Ingest's last step: evaluates health in the ingesting transaction, so a transition and its
/// event commit with the outcomes that caused it. It never costs ingest its work: under an
/// isolation level other than READ COMMITTED (states would be read from an old snapshot), or
/// while another transaction holds the evaluation, it is skipped (the next call evaluates these
/// outcomes too); an error rolls back the evaluation only, with a WARNING.
pub fn evaluate_after_ingest() {
    if guc::HEALTH_WINDOW_S.get() == 0 {
        return;
    }
    if let Err(failure) = subxact::run_unless_transient(|| evaluate(false)) {
        warning!("centralcloud: health evaluation failed and was rolled back (the ingested events are kept): {failure}");
    }
}

type TransitionRow = (
    String,
    Option<String>,
    String,
    String,
    Option<f64>,
    i64,
    String,
);

/// Evaluates health now (waiting for a concurrent evaluation); returns the transitions, each
/// recorded and published.
#[pg_extern(security_definer)]
#[search_path(@extschema@, pg_catalog, pg_temp)]
fn evaluate_model_health() -> TableIterator<
    'static,
    (
        name!(provider, String),
        name!(model, Option<String>),
        name!(state, String),
        name!(previous_state, String),
        name!(failure_rate, Option<f64>),
        name!(outcomes, i64),
        name!(reason, String),
    ),
> {
    crate::version::require_current();
    if guc::HEALTH_WINDOW_S.get() == 0 {
        return TableIterator::new(Vec::new());
    }
    Spi::connect(|client| require_read_committed(client, "health evaluation"))
        .unwrap_or_else(|e| error!("centralcloud: evaluating health: {e}"));
    let rows: Vec<TransitionRow> = evaluate(true)
        .into_iter()
        .map(|t| {
            (
                t.provider,
                t.model,
                t.verdict.state.as_str().to_string(),
                t.previous.as_str().to_string(),
                t.verdict.failure_rate,
                t.verdict.outcomes,
                t.verdict.reason,
            )
        })
        .collect();
    TableIterator::new(rows)
}

/// One evaluation: `wait` for the lock (an explicit call) or skip when it is taken (ingest).
fn evaluate(wait: bool) -> Vec<Transition> {
    Spi::connect_mut(|client| -> SpiResult<Vec<Transition>> {
        if !read_committed(client)? || !lock(client, wait)? {
            return Ok(Vec::new());
        }
        let policy = guc::health_policy();
        let now_us = clock_us(client)?;
        let now = now_us.div_euclid(1_000_000);
        prepare(client, &policy, now)?;
        let cells = read_cells(client, now - policy.window_s)?;
        let providers = read_providers(client)?;
        let transitions = decide(&policy, &cells, &providers, now);
        record(client, &transitions, now_us, &policy)?;
        Ok(transitions)
    })
    .unwrap_or_else(|e| error!("centralcloud: evaluating health: {e}"))
}

fn read_committed(client: &SpiClient<'_>) -> SpiResult<bool> {
    Ok(isolation_level(client)? == "read committed")
}

fn lock(client: &mut SpiClient<'_>, wait: bool) -> SpiResult<bool> {
    if wait {
        client.update(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            None,
            &[LOCK.into()],
        )?;
        return Ok(true);
    }
    Ok(client
        .update(
            "SELECT pg_try_advisory_xact_lock(hashtext($1))",
            None,
            &[LOCK.into()],
        )?
        .first_value::<bool>()?
        .unwrap_or(false))
}

/// The wall clock, in microseconds since the epoch: an evaluation late in a long transaction
/// judges the window that ends now, not at the transaction's start.
fn clock_us(client: &SpiClient<'_>) -> SpiResult<i64> {
    Ok(client
        .select(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8",
            None,
            &[],
        )?
        .first_value::<i64>()?
        .unwrap_or_default())
}

/// Drops the evidence that left the window, gives every pair and provider with evidence a
/// state row (healthy), and refreshes stale long-run rates (once an hour).
fn prepare(client: &mut SpiClient<'_>, policy: &HealthPolicy, now: i64) -> SpiResult<()> {
    let start = (now - policy.window_s) as f64;
    client.update(
        "DELETE FROM centralcloud.health_outcomes WHERE second <= to_timestamp($1)",
        None,
        &[start.into()],
    )?;
    client.update(
        "INSERT INTO centralcloud.health_states (provider, model, since)
         SELECT DISTINCT o.provider, m.model, to_timestamp($2)
           FROM centralcloud.health_outcomes o,
                LATERAL (VALUES (o.model), (NULL::varchar)) AS m(model)
          WHERE o.second > to_timestamp($1)
         ON CONFLICT DO NOTHING",
        None,
        &[start.into(), (now as f64).into()],
    )?;
    let hour = now - now.rem_euclid(3600);
    let baseline_s = i64::from(guc::HEALTH_BASELINE_WINDOW_S.get());
    let from = (now - baseline_s) - (now - baseline_s).rem_euclid(3600);
    client.update(
        BASELINES_SQL,
        None,
        &[
            (hour as f64).into(),
            (from as f64).into(),
            ((hour - 3600) as f64).into(),
        ],
    )?;
    Ok(())
}

fn read_cells(client: &SpiClient<'_>, window_start: i64) -> SpiResult<Vec<CellRow>> {
    let rows = client.select(CELLS_SQL, None, &[(window_start as f64).into()])?;
    let mut cells = Vec::new();
    for row in rows {
        let text = |name: &str| -> SpiResult<String> {
            Ok(row.get_by_name::<String, _>(name)?.unwrap_or_default())
        };
        let numbers = |name: &str| -> SpiResult<Vec<i64>> {
            Ok(row.get_by_name::<Vec<i64>, _>(name)?.unwrap_or_default())
        };
        let (at, s, f) = (
            numbers("seconds")?,
            numbers("successes")?,
            numbers("failures")?,
        );
        let seconds = at
            .iter()
            .zip(s.iter().zip(&f))
            .map(|(&at, (&s, &f))| Second {
                at,
                counts: Counts { s, f },
            })
            .collect();
        let cell = Cell {
            state: State::parse(&text("state")?).unwrap_or(State::Healthy),
            since: row.get_by_name::<i64, _>("since")?.unwrap_or_default(),
            evidence_from: row.get_by_name::<i64, _>("evidence_from")?,
            strikes: row.get_by_name::<i32, _>("strikes")?.unwrap_or_default(),
            last_recovered_at: row.get_by_name::<i64, _>("last_recovered_at")?,
            long_run: Counts {
                s: row
                    .get_by_name::<i64, _>("long_run_successes")?
                    .unwrap_or_default(),
                f: row
                    .get_by_name::<i64, _>("long_run_failures")?
                    .unwrap_or_default(),
            },
            seconds,
        };
        cells.push(CellRow {
            provider: text("provider")?,
            model: text("model")?,
            cell,
        });
    }
    Ok(cells)
}

fn read_providers(client: &SpiClient<'_>) -> SpiResult<BTreeMap<String, State>> {
    client
        .select(
            "SELECT provider::text AS provider, state FROM centralcloud.health_states WHERE model IS NULL",
            None,
            &[],
        )?
        .map(|row| {
            let provider = row.get_by_name::<String, _>("provider")?.unwrap_or_default();
            let state = row.get_by_name::<String, _>("state")?.unwrap_or_default();
            Ok((provider, State::parse(&state).unwrap_or(State::Healthy)))
        })
        .collect()
}

/// A provider's evaluated models (name, verdict) and their outcomes in the window.
type ProviderModels<'a> = (Vec<(&'a str, &'a Verdict)>, Counts);

/// The cells' transitions (in key order), then the providers'.
fn decide(
    policy: &HealthPolicy,
    cells: &[CellRow],
    providers: &BTreeMap<String, State>,
    now: i64,
) -> Vec<Transition> {
    let verdicts: Vec<Verdict> = cells.iter().map(|c| policy.assess(&c.cell, now)).collect();
    let mut transitions: Vec<Transition> = cells
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| v.changed)
        .map(|(c, v)| Transition {
            provider: c.provider.clone(),
            model: Some(c.model.clone()),
            previous: c.cell.state,
            verdict: v.clone(),
        })
        .collect();
    let mut by_provider: BTreeMap<&str, ProviderModels<'_>> = providers
        .iter()
        .filter(|(_, &state)| state != State::Healthy)
        .map(|(p, _)| (p.as_str(), Default::default()))
        .collect();
    for (c, v) in cells.iter().zip(&verdicts) {
        let entry = by_provider.entry(c.provider.as_str()).or_default();
        entry.0.push((c.model.as_str(), v));
        entry.1 = entry.1.plus(window_total(policy, &c.cell, now));
    }
    for (provider, (models, window)) in by_provider {
        let state = providers.get(provider).copied().unwrap_or(State::Healthy);
        let verdict = policy.assess_provider(&ProviderCells {
            state,
            models: &models,
            window,
        });
        if verdict.changed {
            transitions.push(Transition {
                provider: provider.to_string(),
                model: None,
                previous: state,
                verdict,
            });
        }
    }
    transitions
}

fn window_total(policy: &HealthPolicy, cell: &Cell, now: i64) -> Counts {
    cell.seconds
        .iter()
        .filter(|s| s.at > now - policy.window_s)
        .fold(Counts::default(), |c, s| c.plus(s.counts))
}

/// Stores each transition's new state, publishes their events to every instance (in batches,
/// in order), and logs each with how many queues it went to.
fn record(
    client: &mut SpiClient<'_>,
    transitions: &[Transition],
    now_us: i64,
    policy: &HealthPolicy,
) -> SpiResult<()> {
    for t in transitions {
        store_state(client, t, now_us)?;
    }
    let window_s = i32::try_from(policy.window_s).unwrap_or(i32::MAX);
    let since = DateTime::<Utc>::from_timestamp_micros(now_us).unwrap_or_default();
    let events: Vec<HealthUpdate<'_>> = transitions
        .iter()
        .map(|t| {
            let v = &t.verdict;
            HealthUpdate::new(
                &t.provider,
                t.model.as_deref(),
                (t.previous.as_str(), v.state.as_str()),
                v.failure_rate,
                window_s,
                since,
                &v.reason,
            )
        })
        .collect();
    let published_to = publish_all(client, HEALTH_ROUTING_KEY, &events)?;
    for (t, queues) in transitions.iter().zip(published_to) {
        log_transition(client, t, now_us, window_s, queues)?;
    }
    Ok(())
}

fn store_state(client: &mut SpiClient<'_>, t: &Transition, now_us: i64) -> SpiResult<()> {
    let v = &t.verdict;
    let evidence_from = t
        .model
        .as_ref()
        .map(|_| rules::evidence_from(now_us.div_euclid(1_000_000)) as f64);
    client.update(
        "UPDATE centralcloud.health_states
            SET state = $3, since = to_timestamp($4), evidence_from = to_timestamp($5),
                strikes = $6, last_recovered_at = to_timestamp($7), failure_rate = $8,
                outcomes = $9, reason = $10
          WHERE provider = $1 AND model IS NOT DISTINCT FROM $2",
        None,
        &[
            t.provider.as_str().into(),
            t.model.as_deref().into(),
            v.state.as_str().into(),
            (now_us as f64 / 1e6).into(),
            evidence_from.into(),
            v.strikes.into(),
            v.last_recovered_at.map(|at| at as f64).into(),
            v.failure_rate.into(),
            v.outcomes.into(),
            v.reason.as_str().into(),
        ],
    )?;
    Ok(())
}

/// The history row of a transition, published to `queues` queues.
fn log_transition(
    client: &mut SpiClient<'_>,
    t: &Transition,
    now_us: i64,
    window_s: i32,
    queues: i32,
) -> SpiResult<()> {
    let v = &t.verdict;
    client.update(
        "INSERT INTO centralcloud.health_history
                (provider, model, state, previous_state, failure_rate, outcomes, window_s, since,
                 reason, published_to)
         VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8), $9, $10)",
        None,
        &[
            t.provider.as_str().into(),
            t.model.as_deref().into(),
            v.state.as_str().into(),
            t.previous.as_str().into(),
            v.failure_rate.into(),
            v.outcomes.into(),
            window_s.into(),
            (now_us as f64 / 1e6).into(),
            v.reason.as_str().into(),
            queues.into(),
        ],
    )?;
    Ok(())
}

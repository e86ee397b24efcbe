//! `recommend_model()`: which model a router should use for a task, now. Reads the candidates
//! best score first, a page at a time, until nothing unread could rank higher; leaves out the
//! `down` ones (its own or its provider's health); ranks the rest (`rank`, pure). Statements are
//! planned once per session: a router calls this on every request.

pub mod rank;

use crate::event::{Choice, Preference};
use crate::guc;
use crate::health::rules::State;
use crate::publish::complexity_or_error;
use crate::spi_util::{error_with_hint, raise, FirstValue};
use crate::stats::Counts;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult};
use rank::{Candidate, Prefer, Ranked, Ranking};
use std::cell::OnceCell;
use std::mem::ManuallyDrop;

const CANDIDATES_SQL: &str = include_str!("candidates.sql");
const UNKNOWN_CAPABILITIES_SQL: &str = "SELECT coalesce(array_agg(w.capability ORDER BY w.capability), '{}')
       FROM unnest($1::text[]) AS w(capability)
      WHERE NOT EXISTS (SELECT 1 FROM centralcloud.model_capabilities c WHERE c.capability = w.capability)";

/// The most down candidates an "every candidate is down" error names.
const DOWN_NAMED: usize = 5;

thread_local! {
    /// Planned at the first call of a session and kept for it (never freed: a plan freed by a
    /// thread-local destructor at backend exit would run after PostgreSQL tore SPI down).
    static STATEMENTS: OnceCell<ManuallyDrop<Statements>> = const { OnceCell::new() };
}

struct Statements {
    candidates: OwnedPreparedStatement,
    unknown_capabilities: OwnedPreparedStatement,
}

/// What the router asked for, checked.
struct Request {
    complexity: &'static str,
    capabilities: Vec<String>,
    exclude: Vec<String>,
}

type Row = (
    i32,
    String,
    String,
    f64,
    Option<f64>,
    Option<f64>,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    String,
    String,
);

/// The ranked candidates for a task of `complexity`, skipping `down` models and providers.
#[pg_extern(security_definer, stable)]
#[search_path(@extschema@, pg_catalog, pg_temp)]
fn recommend_model(
    complexity: Option<&str>,
    capabilities: default!(Option<Vec<Option<String>>>, "'{}'"),
    prefer: default!(Option<&str>, "NULL"),
    exclude: default!(Option<Vec<Option<String>>>, "'{}'"),
) -> TableIterator<
    'static,
    (
        name!(rank, i32),
        name!(model, String),
        name!(provider, String),
        name!(score, f64),
        name!(success_rate, Option<f64>),
        name!(success_rate_lower, Option<f64>),
        name!(samples, i64),
        name!(p50_ms, Option<f64>),
        name!(p95_ms, Option<f64>),
        name!(cost_per_request_usd, Option<f64>),
        name!(health, String),
        name!(reason, String),
    ),
> {
    crate::version::require_current();
    let request = Request {
        complexity: complexity_or_error(complexity.unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "centralcloud: complexity must not be NULL",
            )
        })),
        capabilities: names(capabilities, "capabilities"),
        exclude: names(exclude, "exclude"),
    };
    let ranking = Ranking {
        prefer: preference(prefer),
        tolerance: guc::RECOMMEND_TOLERANCE.get(),
        z: guc::LEARNING_BOUND_Z.get(),
        limit: guc::RECOMMEND_MAX_CANDIDATES.get().max(1) as usize,
    };
    let (candidates, down) = Spi::connect(|client| {
        STATEMENTS.with(|cell| {
            let statements = cell.get_or_init(|| ManuallyDrop::new(prepare(client)));
            require_known(client, statements, &request)?;
            read(client, statements, &request, &ranking)
        })
    })
    .unwrap_or_else(|e| error!("centralcloud: recommending a model: {e}"));
    if candidates.is_empty() && !down.is_empty() {
        every_candidate_down(&request, &down);
    }
    TableIterator::new(ranking.rank(candidates).into_iter().map(row))
}

fn prepare(client: &SpiClient<'_>) -> Statements {
    let text = PgOid::from(PgBuiltInOids::TEXTOID);
    let texts = PgOid::from(PgBuiltInOids::TEXTARRAYOID);
    let candidate_args = [
        text,
        texts,
        texts,
        PgBuiltInOids::FLOAT8OID.into(),
        text,
        text,
        PgBuiltInOids::INT8OID.into(),
        PgBuiltInOids::FLOAT8OID.into(),
    ];
    let prepared = || -> SpiResult<Statements> {
        Ok(Statements {
            candidates: client.prepare(CANDIDATES_SQL, &candidate_args)?.keep(),
            unknown_capabilities: client.prepare(UNKNOWN_CAPABILITIES_SQL, &[texts])?.keep(),
        })
    };
    prepared().unwrap_or_else(|e| error!("centralcloud: planning recommend_model(): {e}"))
}

/// The names in a text[] argument, deduplicated; NULL is an empty list, a NULL element an error.
fn names(list: Option<Vec<Option<String>>>, what: &str) -> Vec<String> {
    let mut names: Vec<String> = list
        .unwrap_or_default()
        .into_iter()
        .map(|name| {
            name.unwrap_or_else(|| {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("centralcloud: {what} must not contain NULL"),
                )
            })
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn preference(prefer: Option<&str>) -> Option<Prefer> {
    let text = prefer?;
    match Preference::parse(text) {
        Some(Preference::Speed) => Some(Prefer::Speed),
        Some(Preference::Cost) => Some(Prefer::Cost),
        None => raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("centralcloud: prefer must be speed, cost or NULL, got \"{text}\""),
        ),
    }
}

/// A capability no model is known for is a mistake (a typo, or a name routers never send), not
/// a task nothing can do.
fn require_known(
    client: &SpiClient<'_>,
    statements: &Statements,
    request: &Request,
) -> SpiResult<()> {
    if request.capabilities.is_empty() {
        return Ok(());
    }
    let unknown = client
        .select(
            &statements.unknown_capabilities,
            None,
            &[request.capabilities.clone().into()],
        )?
        .first_value::<Vec<String>>()?
        .unwrap_or_default();
    if unknown.is_empty() {
        return Ok(());
    }
    let known = client
        .select(
            "SELECT string_agg(capability, ', ' ORDER BY capability)
               FROM (SELECT DISTINCT capability FROM centralcloud.model_capabilities) c",
            None,
            &[],
        )?
        .first_value::<String>()?
        .unwrap_or_else(|| "none yet".to_string());
    error_with_hint(
        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        format!(
            "centralcloud: unknown capability \"{}\": no model is known to support it",
            unknown.join("\", \"")
        ),
        format!("Known capabilities: {known}. Ingest learns them from successful requests that required them; operators add them to centralcloud.model_capabilities."),
    )
}

/// A down candidate, for the message when nothing else is left.
struct Down {
    model: String,
    provider: String,
}

/// Reads candidates, best score first, until the ranking is decided: a page at a time, except
/// that with a preference, once the best healthy score is known, everything down to the
/// tolerance floor comes in one statement (a crowded band must not cost a page each).
fn read(
    client: &SpiClient<'_>,
    statements: &Statements,
    request: &Request,
    ranking: &Ranking,
) -> SpiResult<(Vec<Candidate>, Vec<Down>)> {
    // Enough for the usual case (a few degraded or down ones among the best) in one page.
    let page = (ranking.limit + ranking.limit / 2 + 2) as i64;
    let (mut candidates, mut down) = (Vec::new(), Vec::new());
    let mut last: Option<(f64, String, String)> = None;
    let mut floor_read = false;
    loop {
        let floor = ranking.floor(&candidates).filter(|_| !floor_read);
        floor_read |= floor.is_some();
        let rows = client.select(
            &statements.candidates,
            None,
            &[
                request.complexity.into(),
                request.capabilities.clone().into(),
                request.exclude.clone().into(),
                last.as_ref().map(|l| l.0).into(),
                last.as_ref().map(|l| l.1.as_str()).into(),
                last.as_ref().map(|l| l.2.as_str()).into(),
                floor.is_none().then_some(page).into(),
                floor.into(),
            ],
        )?;
        let read = rows.len() as i64;
        for row in rows {
            let c = candidate(&row)?;
            last = Some((c.score, c.model.clone(), c.provider.clone()));
            match health(&row)? {
                State::Down => down.push(Down {
                    model: c.model,
                    provider: c.provider,
                }),
                health => candidates.push(Candidate { health, ..c }),
            }
        }
        let exhausted = floor.is_none() && read < page;
        if exhausted || ranking.has_enough(&candidates, floor_read) {
            return Ok((candidates, down));
        }
    }
}

fn candidate(row: &pgrx::spi::SpiHeapTupleData<'_>) -> SpiResult<Candidate> {
    let text = |name: &str| -> SpiResult<String> {
        Ok(row.get_by_name::<String, _>(name)?.unwrap_or_default())
    };
    let number = |name: &str| row.get_by_name::<f64, _>(name);
    Ok(Candidate {
        model: text("model")?,
        provider: text("provider")?,
        score: number("score")?.unwrap_or_default(),
        outcomes: Counts {
            s: row.get_by_name::<i64, _>("successes")?.unwrap_or_default(),
            f: row.get_by_name::<i64, _>("failures")?.unwrap_or_default(),
        },
        p50_ms: number("p50_ms")?,
        p95_ms: number("p95_ms")?,
        cost_usd: number("cost_usd")?,
        health: State::Healthy,
    })
}

/// The worse of the model's and its provider's health.
fn health(row: &pgrx::spi::SpiHeapTupleData<'_>) -> SpiResult<State> {
    let state = |name: &str| -> SpiResult<State> {
        let text = row.get_by_name::<String, _>(name)?.unwrap_or_default();
        Ok(State::parse(&text).unwrap_or(State::Healthy))
    };
    Ok(state("model_state")?.max(state("provider_state")?))
}

fn every_candidate_down(request: &Request, down: &[Down]) -> ! {
    let named: Vec<String> = down
        .iter()
        .take(DOWN_NAMED)
        .map(|d| format!("{} ({})", d.model, d.provider))
        .collect();
    let more = down.len().saturating_sub(DOWN_NAMED);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    error_with_hint(
        PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
        format!(
            "centralcloud: every candidate for a {} task is down: {}{more}",
            request.complexity,
            named.join(", ")
        ),
        "SELECT * FROM centralcloud.model_health says why and since when. Retry later, or route with your own defaults.",
    )
}

fn row(r: Ranked) -> Row {
    let c = r.candidate;
    (
        r.rank,
        c.model,
        c.provider,
        c.score,
        // The views' units: percent, ms to 0.1.
        r.success_rate.map(crate::units::percent),
        r.success_rate_lower.map(crate::units::percent),
        c.outcomes.n(),
        c.p50_ms.map(crate::units::ms),
        c.p95_ms.map(crate::units::ms),
        c.cost_usd,
        c.health.as_str().to_string(),
        r.reason,
    )
}

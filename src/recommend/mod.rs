//! `recommend_model()`: which model a router should use for a task, now. Reads from
//! `recommend_candidates` the segments `rank` asks for (each about as many rows as it returns,
//! through one index, however many candidates tie), never the `down` ones unless nothing else is
//! left; ranks them (`rank`, pure). Statements are planned once per session: a router calls this
//! on every request.

pub mod rank;

use crate::event::{Choice, Preference};
use crate::guc;
use crate::health::rules::State;
use crate::publish::complexity_or_error;
use crate::spi_util::{error_with_hint, raise, FirstValue};
use crate::stats::Counts;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult};
use rank::{Candidate, Prefer, Ranked, Ranking, Segment};
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
    by_score: OwnedPreparedStatement,
    below: OwnedPreparedStatement,
    by_p95: OwnedPreparedStatement,
    without_p95: OwnedPreparedStatement,
    by_cost: OwnedPreparedStatement,
    without_cost: OwnedPreparedStatement,
    unknown_capabilities: OwnedPreparedStatement,
}

/// Each segment's condition and order, after `CANDIDATES_SQL`: ties on score go by the success
/// bound, then name (`Ranking::by_quality`; names in byte order, as Rust compares them).
const BY_QUALITY: &str = r#"c.score DESC, c.success_lower DESC NULLS LAST, c.model COLLATE "C", c.provider COLLATE "C" LIMIT $6"#;
const BY_SCORE: &str = "ORDER BY";
const BELOW: &str = "AND c.score < $5 ORDER BY";
const BY_P95: &str = "AND c.p95_ms IS NOT NULL AND c.score >= $5 ORDER BY c.p95_ms,";
const WITHOUT_P95: &str = "AND c.p95_ms IS NULL AND c.score >= $5 ORDER BY";
const BY_COST: &str = "AND c.cost_usd IS NOT NULL AND c.score >= $5 ORDER BY c.cost_usd,";
const WITHOUT_COST: &str = "AND c.cost_usd IS NULL AND c.score >= $5 ORDER BY";

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
    let float = PgOid::from(PgBuiltInOids::FLOAT8OID);
    let candidate_args = [
        text,
        text,
        texts,
        texts,
        float,
        PgBuiltInOids::INT8OID.into(),
    ];
    let segment = |condition: &str| -> SpiResult<OwnedPreparedStatement> {
        let sql = format!("{CANDIDATES_SQL}   {condition} {BY_QUALITY}");
        Ok(client.prepare(sql.as_str(), &candidate_args)?.keep())
    };
    let prepared = || -> SpiResult<Statements> {
        Ok(Statements {
            by_score: segment(BY_SCORE)?,
            below: segment(BELOW)?,
            by_p95: segment(BY_P95)?,
            without_p95: segment(WITHOUT_P95)?,
            by_cost: segment(BY_COST)?,
            without_cost: segment(WITHOUT_COST)?,
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

/// Reads the candidates `rank` asks for, and when none is left, the down ones for the error.
fn read(
    client: &SpiClient<'_>,
    statements: &Statements,
    request: &Request,
    ranking: &Ranking,
) -> SpiResult<(Vec<Candidate>, Vec<Candidate>)> {
    let segment =
        |health: State, segment: Segment, limit: Option<usize>| -> SpiResult<Vec<Candidate>> {
            let (statement, floor) = match segment {
                Segment::ByScore => (&statements.by_score, None),
                Segment::Preferred { floor } => {
                    (preferred_statement(statements, ranking, true), Some(floor))
                }
                Segment::Unpreferred { floor } => {
                    (preferred_statement(statements, ranking, false), Some(floor))
                }
                Segment::Below { floor } => (&statements.below, Some(floor)),
            };
            let rows = client.select(
                statement,
                None,
                &[
                    request.complexity.into(),
                    health.as_str().into(),
                    request.capabilities.clone().into(),
                    request.exclude.clone().into(),
                    floor.into(),
                    limit.map(|k| k as i64).into(),
                ],
            )?;
            rows.map(|row| candidate(&row)).collect()
        };
    let candidates = ranking.read(|health, s, k| segment(health, s, Some(k)))?;
    let down = if candidates.is_empty() {
        segment(State::Down, Segment::ByScore, None)?
    } else {
        Vec::new()
    };
    Ok((candidates, down))
}

/// The statement of the segment within the floor, with or without the preferred value.
fn preferred_statement<'a>(
    statements: &'a Statements,
    ranking: &Ranking,
    known: bool,
) -> &'a OwnedPreparedStatement {
    match (ranking.prefer, known) {
        (Some(Prefer::Cost), true) => &statements.by_cost,
        (Some(Prefer::Cost), false) => &statements.without_cost,
        (_, true) => &statements.by_p95,
        (_, false) => &statements.without_p95,
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
        success_lower: number("success_lower")?,
        p50_ms: number("p50_ms")?,
        p95_ms: number("p95_ms")?,
        cost_usd: number("cost_usd")?,
        health: State::parse(&text("state")?).unwrap_or(State::Healthy),
    })
}

fn every_candidate_down(request: &Request, down: &[Candidate]) -> ! {
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

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::stats::{wilson_lower, Counts};
    use pgrx::prelude::*;

    /// The bound recommend_candidates stores and ranks ties by is stats::wilson_lower at z =
    /// 1.645, to the bit, and NULL without outcomes.
    #[pg_test]
    fn the_stored_success_bound_is_wilson_at_1_645() {
        for s in [0_i64, 1, 2, 7, 19, 95, 100, 950, 12_345, 999_999] {
            for f in [0_i64, 1, 3, 5, 50, 1_000, 77_777] {
                let stored = Spi::get_one_with_args::<f64>(
                    "SELECT centralcloud.success_lower_bound($1, $2)",
                    &[s.into(), f.into()],
                )
                .unwrap();
                let expected = wilson_lower(Counts { s, f }, 1.645);
                assert_eq!(
                    stored.map(f64::to_bits),
                    expected.map(f64::to_bits),
                    "{s} successes, {f} failures: {stored:?} against {expected:?}"
                );
            }
        }
    }
}

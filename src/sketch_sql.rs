//! SQL functions over encoded latency sketches (`bytea`), thin wrappers over `sketch`.

use crate::sketch::{merge_encoded, LatencySketch, MergedSketch, SketchError};
use pgrx::datum::Internal;
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;

/// Raises a sketch error with a SQLSTATE callers can match on.
///
/// Bytes that do not decode to a valid sketch are bad input, like malformed bytes given to a
/// type's receive function: 22P03 invalid_binary_representation (class 22, data exception).
/// Not XX001 data_corrupted: that class says the server's own storage is damaged, which
/// monitoring treats as an incident, and any caller can pass crafted bytes at will.
fn raise(e: SketchError) -> ! {
    let code = match e {
        SketchError::Empty
        | SketchError::UnknownFormat(_)
        | SketchError::TooLong(_)
        | SketchError::Corrupt(_)
        | SketchError::Invalid(_) => PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
        // Valid sketches whose merge would exceed the sample cap: an overflow, like bigint's.
        SketchError::TooManySamples => PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        // Every decoded sketch has this extension's configuration: a bug if it happens.
        SketchError::Incompatible => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
    };
    ereport!(ERROR, code, format!("centralcloud: {e}"));
}

fn decode(bytes: &[u8]) -> LatencySketch {
    LatencySketch::from_bytes(bytes).unwrap_or_else(|e| raise(e))
}

/// Merges two latency sketches; NULL stands for an empty sketch.
#[pg_extern(immutable, parallel_safe)]
fn latency_sketch_merge(a: Option<&[u8]>, b: Option<&[u8]>) -> Option<Vec<u8>> {
    merge_encoded(a, b).unwrap_or_else(|e| raise(e))
}

/// The q-quantile (0..1) in milliseconds, within 1% relative error; NULL for q outside [0, 1].
#[pg_extern(immutable, parallel_safe)]
fn latency_quantile(sketch: &[u8], q: f64) -> Option<f64> {
    decode(sketch).quantile(q)
}

/// Several quantiles of one sketch, decoded once: `latency_quantile(sketch, q)` for each q
/// (NULL for a NULL q or one outside [0, 1]).
#[pg_extern(immutable, parallel_safe)]
fn latency_sketch_quantiles(sketch: &[u8], qs: Vec<Option<f64>>) -> Vec<Option<f64>> {
    let decoded = decode(sketch);
    qs.into_iter()
        .map(|q| q.and_then(|q| decoded.quantile(q)))
        .collect()
}

/// Number of latency samples in a sketch.
#[pg_extern(immutable, parallel_safe)]
fn latency_sketch_count(sketch: &[u8]) -> i64 {
    decode(sketch).count() as i64
}

// ---------------------------------------------------------------------------------------------
// Aggregates: latency_sketch_union(bytea) merges stored sketches (e.g. hourly rollups over any
// window), latency_sketch_agg(integer) builds one from raw response times. The state is a
// decoded sketch in the aggregate's memory context, so each input row is decoded once and
// nothing is re-encoded until the end. Both have a combine function and serial/deserial
// functions, and are PARALLEL SAFE: partial states merge across parallel workers (and would
// merge across shards the same way). CREATE AGGREGATE is in sql/schema.sql.
// ---------------------------------------------------------------------------------------------

/// The state of both aggregates. Stored sketches are merged in the checked wire form they are
/// decoded into (`MergedSketch`: parsed once, not again into the crate's sketch); response
/// times are added to the crate's sketch. Both forms hold the sketch the crate's merges and
/// adds make, so either converts to the other when an aggregate mixes them (it never does).
enum SketchState {
    Merged(MergedSketch),
    Added(LatencySketch),
}

impl Default for SketchState {
    fn default() -> Self {
        SketchState::Merged(MergedSketch::default())
    }
}

impl SketchState {
    fn merged(&mut self) -> &mut MergedSketch {
        if let SketchState::Added(sketch) = self {
            *self = SketchState::Merged(MergedSketch::from_sketch(sketch));
        }
        match self {
            SketchState::Merged(merged) => merged,
            SketchState::Added(_) => unreachable!("converted above"),
        }
    }

    fn added(&mut self) -> &mut LatencySketch {
        if let SketchState::Merged(merged) = self {
            *self = SketchState::Added(merged.to_sketch());
        }
        match self {
            SketchState::Added(sketch) => sketch,
            SketchState::Merged(_) => unreachable!("converted above"),
        }
    }

    fn merge(&mut self, other: &SketchState) -> Result<(), SketchError> {
        match other {
            SketchState::Merged(other) => self.merged().merge(other),
            SketchState::Added(other) => self.added().merge(other),
        }
    }

    fn count(&self) -> u64 {
        match self {
            SketchState::Merged(merged) => merged.count(),
            SketchState::Added(sketch) => sketch.count(),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        match self {
            SketchState::Merged(merged) => merged.to_bytes(),
            SketchState::Added(sketch) => sketch.to_bytes(),
        }
    }
}

/// The aggregate state, created empty on first use in the aggregate's memory context (and
/// dropped with it).
fn state_in_aggregate(state: &mut Internal, fcinfo: pg_sys::FunctionCallInfo) -> &mut SketchState {
    let mut aggregate_context: pg_sys::MemoryContext = std::ptr::null_mut();
    // SAFETY: fcinfo is this call's own; AggCheckCallContext only reads it.
    if unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut aggregate_context) } == 0 {
        crate::spi_util::raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "centralcloud: latency sketch state functions only run inside an aggregate",
        );
    }
    // SAFETY: the state datum is only ever a SketchState, created here.
    unsafe {
        PgMemoryContexts::For(aggregate_context)
            .switch_to(|_| state.get_or_insert_default::<SketchState>())
    }
}

/// Transition of latency_sketch_union: merges one stored sketch (NULL: skipped).
#[pg_extern(immutable, parallel_safe)]
fn latency_sketch_union_trans(
    mut state: Internal,
    sketch: Option<&[u8]>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let into = state_in_aggregate(&mut state, fcinfo).merged();
    if let Some(bytes) = sketch {
        into.merge_bytes(bytes).unwrap_or_else(|e| raise(e));
    }
    state
}

/// Transition of latency_sketch_agg: adds one response time in ms (NULL: skipped).
#[pg_extern(immutable, parallel_safe)]
fn latency_sketch_add_trans(
    mut state: Internal,
    response_time_ms: Option<i32>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let into = state_in_aggregate(&mut state, fcinfo).added();
    if let Some(ms) = response_time_ms {
        into.add(ms);
    }
    state
}

/// Combine function of both aggregates: merges a partial state into another.
#[pg_extern(immutable, parallel_safe)]
fn latency_sketch_combine(
    mut state: Internal,
    other: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    // SAFETY: partial states are SketchState values made by state_in_aggregate.
    let Some(partial) = (unsafe { other.get::<SketchState>() }) else {
        return state;
    };
    let into = state_in_aggregate(&mut state, fcinfo);
    into.merge(partial).unwrap_or_else(|e| raise(e));
    state
}

/// Serial function: a partial state as the stored sketch encoding.
#[pg_extern(immutable, parallel_safe, strict)]
fn latency_sketch_serialize(state: Internal) -> Vec<u8> {
    // SAFETY: as above.
    unsafe { state.get::<SketchState>() }
        .map(SketchState::to_bytes)
        .unwrap_or_default()
}

/// Deserial function: the stored encoding back into a partial state.
#[pg_extern(immutable, parallel_safe, strict)]
fn latency_sketch_deserialize(
    bytes: &[u8],
    _unused: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let mut state = Internal::default();
    let merged = MergedSketch::from_bytes(bytes).unwrap_or_else(|e| raise(e));
    *state_in_aggregate(&mut state, fcinfo) = SketchState::Merged(merged);
    state
}

/// Final function: the merged sketch, encoded (NULL when no row had one).
#[pg_extern(immutable, parallel_safe)]
fn latency_sketch_final(state: Internal) -> Option<Vec<u8>> {
    // SAFETY: as above.
    let sketch = unsafe { state.get::<SketchState>() }?;
    (sketch.count() > 0).then(|| sketch.to_bytes())
}

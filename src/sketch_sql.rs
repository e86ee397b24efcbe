//! SQL functions over encoded latency sketches (`bytea`), thin wrappers over `sketch`.

use crate::sketch::{merge_encoded, LatencySketch};
use pgrx::prelude::*;

fn decode(bytes: &[u8]) -> LatencySketch {
    LatencySketch::from_bytes(bytes).unwrap_or_else(|e| error!("centralcloud: {e}"))
}

/// Merges two latency sketches; NULL stands for an empty sketch.
#[pg_extern(immutable, parallel_safe)]
fn latency_sketch_merge(a: Option<&[u8]>, b: Option<&[u8]>) -> Option<Vec<u8>> {
    merge_encoded(a, b).unwrap_or_else(|e| error!("centralcloud: {e}"))
}

/// The q-quantile (0..1) in milliseconds, within 1% relative error; NULL for q outside [0, 1].
#[pg_extern(immutable, parallel_safe)]
fn latency_quantile(sketch: &[u8], q: f64) -> Option<f64> {
    decode(sketch).quantile(q)
}

/// Number of latency samples in a sketch.
#[pg_extern(immutable, parallel_safe)]
fn latency_sketch_count(sketch: &[u8]) -> i64 {
    decode(sketch).count() as i64
}

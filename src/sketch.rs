//! Latency quantile sketch: a DDSketch (the `sketches-ddsketch` crate) with 1% relative
//! accuracy and at most 2048 bins, stored as a small versioned `bytea`. Pure: no SPI.
//!
//! Why DDSketch: quantiles carry a relative-error guarantee (a p99 of 1800 ms is read as
//! 1800 ms ± 1%), two sketches merge exactly (per batch, per hour, across parallel workers),
//! and the bin cap bounds the size whatever the number of samples. Response times are whole
//! milliseconds in [0, `max_response_time_ms`], so in practice well under 1100 bins are used.
//!
//! Encoded sketches come from callers (the SQL functions are PUBLIC), so `from_bytes` checks
//! every decoded field before the crate uses it: see `wire`.

mod feed;
mod merged;
mod wire;

pub use merged::MergedSketch;
use sketches_ddsketch::{Config, DDSketch};
pub use wire::{Rule, Side, MAX_ENCODED_LEN};

/// Relative accuracy of every quantile the sketch returns (the crate's `alpha`).
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Bin cap: the sketch never holds more bins than this, whatever it is fed.
pub const MAX_BINS: u32 = 2048;
/// Values at or below this are counted in the sketch's zero bucket (0 ms is a real latency).
const MIN_VALUE_MS: f64 = 0.5;
/// First byte of every encoded sketch, so the format can evolve.
const FORMAT_V1: u8 = 1;
/// Most samples a sketch may hold: 2^53, exact as f64 (the crate ranks with f64) and far
/// beyond any real volume (285 years at a million a second). The cap keeps the crate's u64
/// additions in merges from overflowing.
pub const MAX_COUNT: u64 = 1 << 53;

/// No serde derive: the only way in is `from_bytes`, which checks what it decodes.
#[derive(Clone)]
pub struct LatencySketch {
    inner: DDSketch,
}

impl Default for LatencySketch {
    fn default() -> Self {
        LatencySketch {
            inner: DDSketch::new(Config::new(RELATIVE_ACCURACY, MAX_BINS, MIN_VALUE_MS)),
        }
    }
}

impl std::fmt::Debug for LatencySketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LatencySketch {{ count: {} }}", self.count())
    }
}

#[derive(Debug, PartialEq)]
pub enum SketchError {
    UnknownFormat(u8),
    Empty,
    /// Longer than any valid sketch (`MAX_ENCODED_LEN`); the length.
    TooLong(usize),
    /// Not a postcard encoding of a sketch; postcard's message.
    Corrupt(String),
    /// Decoded, but breaks a rule no sketch this extension makes breaks.
    Invalid(Rule),
    Incompatible,
    /// A merge would hold more than `MAX_COUNT` samples.
    TooManySamples,
}

impl std::fmt::Display for SketchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SketchError::UnknownFormat(v) => write!(f, "unknown latency sketch format version {v}"),
            SketchError::Empty => write!(f, "latency sketch is empty (zero bytes)"),
            SketchError::TooLong(n) => write!(
                f,
                "latency sketch is corrupt: {n} bytes, more than any valid sketch ({MAX_ENCODED_LEN})"
            ),
            SketchError::Corrupt(e) => write!(f, "latency sketch is corrupt: {e}"),
            SketchError::Invalid(rule) => write!(f, "latency sketch is corrupt: {rule}"),
            SketchError::Incompatible => {
                write!(f, "latency sketches have different accuracy settings")
            }
            SketchError::TooManySamples => {
                write!(f, "merged latency sketch would hold more than 2^53 samples")
            }
        }
    }
}

impl LatencySketch {
    pub fn add(&mut self, ms: i32) {
        self.inner.add(f64::from(ms));
    }

    pub fn count(&self) -> u64 {
        self.inner.count() as u64
    }

    /// Refuses to go past `MAX_COUNT` samples (the crate's own additions would overflow).
    pub fn merge(&mut self, other: &LatencySketch) -> Result<(), SketchError> {
        match self.count().checked_add(other.count()) {
            Some(n) if n <= MAX_COUNT => {}
            _ => return Err(SketchError::TooManySamples),
        }
        self.inner
            .merge(&other.inner)
            .map_err(|_| SketchError::Incompatible)
    }

    /// The q-quantile (q in [0, 1]) in ms, or None for an empty sketch or q outside [0, 1].
    /// Clamped to the exact min and max the sketch tracks, which can only reduce the error.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let estimate = self.inner.quantile(q).ok().flatten()?;
        Some(estimate.clamp(self.inner.min()?, self.inner.max()?))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![FORMAT_V1];
        // Serialising plain data into a Vec cannot fail.
        out.extend(postcard::to_stdvec(&self.inner).expect("sketch serialises"));
        out
    }

    /// Decodes what `to_bytes` wrote, refusing anything else before the crate uses it. The
    /// bytes are read once, into the checked mirror, and the crate's sketch is built from it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SketchError> {
        let checked = wire::decode(body_of(bytes)?)?;
        feed::ddsketch(&checked)
            .map(|inner| LatencySketch { inner })
            .map_err(|e| SketchError::Corrupt(e.to_string()))
    }

    /// `from_bytes` as it was before `feed`: checked, then parsed again by postcard into the
    /// crate's sketch. What the property tests compare `from_bytes` with.
    #[cfg(test)]
    fn from_bytes_parsing_twice(bytes: &[u8]) -> Result<Self, SketchError> {
        let body = body_of(bytes)?;
        wire::decode_with_postcard(body)?;
        Self::from_checked_body(body)
    }

    /// The crate's sketch from a body known to hold a valid sketch of at most MAX_BINS bins.
    fn from_checked_body(body: &[u8]) -> Result<Self, SketchError> {
        postcard::from_bytes(body)
            .map(|inner| LatencySketch { inner })
            .map_err(|e| SketchError::Corrupt(e.to_string()))
    }
}

/// The bytes after the format byte, once the format and the length are known good.
fn body_of(bytes: &[u8]) -> Result<&[u8], SketchError> {
    let body = match bytes.split_first() {
        None => return Err(SketchError::Empty),
        Some((&FORMAT_V1, body)) => body,
        Some((&v, _)) => return Err(SketchError::UnknownFormat(v)),
    };
    if bytes.len() > MAX_ENCODED_LEN {
        return Err(SketchError::TooLong(bytes.len()));
    }
    Ok(body)
}

/// Merges two encoded sketches (either may be absent) into one encoded sketch.
pub fn merge_encoded(a: Option<&[u8]>, b: Option<&[u8]>) -> Result<Option<Vec<u8>>, SketchError> {
    match (a, b) {
        (None, None) => Ok(None),
        (Some(x), None) | (None, Some(x)) => Ok(Some(LatencySketch::from_bytes(x)?.to_bytes())),
        (Some(x), Some(y)) => {
            let mut merged = LatencySketch::from_bytes(x)?;
            merged.merge(&LatencySketch::from_bytes(y)?)?;
            Ok(Some(merged.to_bytes()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn exact_quantile(sorted: &[i32], q: f64) -> f64 {
        // DDSketch's rank convention: the value at rank floor(q * (n - 1)).
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize] as f64
    }

    fn assert_within_accuracy(sketch: &LatencySketch, sorted: &[i32]) {
        for q in [0.5, 0.9, 0.95, 0.99, 0.999] {
            let exact = exact_quantile(sorted, q);
            let got = sketch.quantile(q).unwrap();
            let tolerance = RELATIVE_ACCURACY * exact + 1e-9;
            assert!(
                (got - exact).abs() <= tolerance,
                "q={q}: got {got}, exact {exact}"
            );
        }
    }

    #[test]
    fn quantiles_within_stated_relative_error() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // A long-tailed latency distribution: mostly 100-900 ms, some multi-second outliers.
        let mut values: Vec<i32> = (0..200_000)
            .map(|_| {
                if rng.gen_bool(0.05) {
                    rng.gen_range(2_000..120_000)
                } else {
                    rng.gen_range(100..900)
                }
            })
            .collect();
        let mut sketch = LatencySketch::default();
        values.iter().for_each(|&v| sketch.add(v));
        values.sort_unstable();
        assert_eq!(sketch.count(), values.len() as u64);
        assert_within_accuracy(&sketch, &values);
    }

    #[test]
    fn size_stays_bounded_after_a_million_samples() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut sketch = LatencySketch::default();
        for _ in 0..1_000_000 {
            // The whole accepted range, uniformly in log space: the worst case for bin count.
            let ms = 10f64.powf(rng.gen_range(0.0..6.556)) as i32; // up to 3,600,000
            sketch.add(ms);
        }
        let encoded = sketch.to_bytes();
        assert!(
            encoded.len() < 8 * 1024,
            "sketch is {} bytes",
            encoded.len()
        );
        let decoded = LatencySketch::from_bytes(&encoded).unwrap();
        assert_eq!(decoded.count(), 1_000_000);
        assert_eq!(decoded.quantile(0.5), sketch.quantile(0.5));
    }

    #[test]
    fn zero_latency_is_counted() {
        let mut sketch = LatencySketch::default();
        sketch.add(0);
        sketch.add(0);
        sketch.add(10);
        assert_eq!(sketch.count(), 3);
        assert_eq!(sketch.quantile(0.0), Some(0.0));
        assert_eq!(sketch.quantile(0.5), Some(0.0));
    }

    #[test]
    fn merge_equals_single_sketch() {
        let (mut a, mut b, mut all) = (
            LatencySketch::default(),
            LatencySketch::default(),
            LatencySketch::default(),
        );
        for v in 1..=5000 {
            if v % 3 == 0 {
                a.add(v)
            } else {
                b.add(v)
            }
            all.add(v);
        }
        let merged = merge_encoded(Some(&a.to_bytes()), Some(&b.to_bytes()))
            .unwrap()
            .unwrap();
        let merged = LatencySketch::from_bytes(&merged).unwrap();
        for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
            assert_eq!(merged.quantile(q), all.quantile(q), "q={q}");
        }
        assert_eq!(merge_encoded(None, None).unwrap(), None);
        assert_eq!(
            merge_encoded(Some(&a.to_bytes()), None).unwrap().unwrap(),
            a.to_bytes()
        );
    }

    #[test]
    fn empty_sketch_has_no_quantiles() {
        let s = LatencySketch::default();
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.quantile(1.5), None);
    }

    /// A sketch as `to_bytes` wrote it before `from_bytes` checked anything (the bytes
    /// sketches already stored in databases have): it must keep decoding to the same sketch.
    const PINNED_VALUES: [i32; 7] = [0, 100, 101, 120, 150, 150, 180];
    const PINNED_HEX: &str = concat!(
        "018010fd4a815abf52f03f97059d050e7b943f000000000000e03f468001000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000200000000000000000100000000000000000000020000000000000000010000",
        "000000000000000000000000000000000000000000000000000000000000000006ce038804ce02801000",
        "0000feffffff0fffffffff0f0080100000000000000000000000000000806640000000000008894001",
    );
    /// Its quantiles then: (q, ms).
    const PINNED_QUANTILES: [(f64, f64); 4] = [
        (0.0, 0.0),
        (0.5, 120.31456328864704),
        (0.99, 149.922277156737),
        (1.0, 180.0),
    ];

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn stored_encoding_is_unchanged() {
        let mut sketch = LatencySketch::default();
        PINNED_VALUES.iter().for_each(|&v| sketch.add(v));
        assert_eq!(
            hex(&sketch.to_bytes()),
            PINNED_HEX,
            "to_bytes writes the same format"
        );
        let decoded = LatencySketch::from_bytes(&unhex(PINNED_HEX)).unwrap();
        assert_eq!(decoded.count(), 7);
        for (q, ms) in PINNED_QUANTILES {
            let got = decoded.quantile(q).unwrap();
            assert_eq!(Some(got), sketch.quantile(q), "q={q}");
            // Within a rounding of the value pinned (another libm may round exp differently).
            assert!((got - ms).abs() <= 1e-9 * ms, "q={q}: {got} vs {ms}");
        }
        assert_eq!(decoded.to_bytes(), unhex(PINNED_HEX));
    }

    #[test]
    fn the_sql_regression_test_uses_the_pinned_sketch() {
        let sql = include_str!("../pg_test/t14_crafted_sketches.sql");
        assert!(sql.contains(&format!("'\\x{PINNED_HEX}'")));
        let mut trailing = unhex(PINNED_HEX);
        trailing.push(0);
        assert!(sql.contains(&format!("'\\x{}'", hex(&trailing))));
        let error = LatencySketch::from_bytes(&trailing).unwrap_err();
        assert!(sql.contains(&format!("'centralcloud: {error}'")));
        for bytes in [&[][..], &[2][..]] {
            let error = LatencySketch::from_bytes(bytes).unwrap_err();
            assert!(sql.contains(&format!("'centralcloud: {error}'")), "{error}");
        }
    }

    #[test]
    fn bad_encodings_are_errors_not_panics() {
        assert_eq!(
            LatencySketch::from_bytes(&[]).unwrap_err(),
            SketchError::Empty
        );
        assert_eq!(
            LatencySketch::from_bytes(&[9, 1, 2]).unwrap_err(),
            SketchError::UnknownFormat(9)
        );
        assert!(matches!(
            LatencySketch::from_bytes(&[FORMAT_V1, 0xff]).unwrap_err(),
            SketchError::Corrupt(_)
        ));
    }
}

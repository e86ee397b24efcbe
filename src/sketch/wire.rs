//! The encoded sketch, checked before the crate's `DDSketch` sees it.
//!
//! `sketches-ddsketch` 0.3.2 trusts its fields: `Store::merge` and `Store::add` resize the bins
//! to a length computed from the key range and capped by the store's own `bin_limit`, and index
//! them with `key - offset`. A crafted value with a huge `bin_limit` and a wide key range makes
//! a merge allocate gigabytes (a failed allocation aborts the backend, and the postmaster
//! restarts the cluster); inconsistent keys or counts make it index out of bounds or overflow.
//! So `from_bytes` first decodes the same bytes into the mirror below (same fields, same order,
//! same serde layout as the crate's `DDSketch`, `Config` and `Store`), checks every rule here,
//! and only then builds the `DDSketch` from the checked mirror (`feed`).
//!
//! What the rules guarantee: both stores keep their keys in [0, key(2^31)] = [0, 1075], the
//! keys i32 values map to, inside bins of at most `MAX_BINS`. So merging two checked sketches,
//! or adding any i32, needs a key range of at most 1076 keys, 1152 bins once rounded up to the
//! crate's 128-bin step: a store keeps its bins or grows them to at most 1152, never collapses
//! and never indexes outside them. Counts are capped at `MAX_COUNT`, so no sum of two checked
//! counts overflows. The property tests in `tests` check this on whatever the rules accept.

use super::{SketchError, MAX_BINS, MAX_COUNT, MIN_VALUE_MS, RELATIVE_ACCURACY};
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use sketches_ddsketch::{Config, DDSketch};
use std::sync::OnceLock;

/// Longest varint postcard writes for `value` (7 bits a byte).
const fn varint_len(value: u64) -> usize {
    let bits = (u64::BITS - value.leading_zeros()) as usize;
    if bits == 0 {
        1
    } else {
        bits.div_ceil(7)
    }
}

/// Longest encoding of a valid sketch, format byte included, in bytes (32,891). Longer input
/// is refused before postcard reads a byte of it, so decoding time and memory are bounded
/// whatever the input. From postcard's widths: u32 and i32 (zigzag) varints take at most 5
/// bytes, f64 8, bool 1; a length or `bin_limit` (at most `MAX_BINS`) 2; a bin or a count (at
/// most `MAX_COUNT` = 2^53) 8.
pub const MAX_ENCODED_LEN: usize = {
    let config = 5 + 3 * 8 + 5; // max_num_bins, gamma, gamma_ln, min_value, offset
    let count = varint_len(MAX_COUNT);
    let store = varint_len(MAX_BINS as u64) // bins' length
        + MAX_BINS as usize * count // bins
        + count // count
        + 3 * 5 // min_key, max_key, offset
        + varint_len(MAX_BINS as u64) // bin_limit
        + 1; // is_collapsed
    let tail = 3 * 8 + count; // min, max, sum, zero_count
    1 + config + 2 * store + tail
};

/// Which of the two stores a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Values above `MIN_VALUE_MS`.
    Positive,
    /// Values below `-MIN_VALUE_MS` (never from ingest; `latency_sketch_agg` accepts any i32).
    Negative,
}

/// A rule a decoded sketch breaks; the error names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    TrailingBytes,
    Config,
    BinLimit(Side),
    TooManyBins(Side),
    Collapsed(Side),
    EmptyStore(Side),
    UnusedBins(Side),
    BinCounts(Side),
    KeyOrder(Side),
    KeyRange(Side),
    StrayBins(Side),
    TotalCount,
    EmptyExtremes,
    Extremes,
    Sum,
    KeysVsExtremes(Side),
    ZeroBucket,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Positive => "positive store",
            Side::Negative => "negative store",
        })
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::TrailingBytes => write!(f, "bytes left over after the sketch"),
            Rule::Config => write!(f, "accuracy settings differ from this extension's"),
            Rule::BinLimit(s) => write!(f, "{s}: bin limit is not {MAX_BINS}"),
            Rule::TooManyBins(s) => write!(f, "{s}: more bins than its bin limit"),
            Rule::Collapsed(s) => write!(f, "{s}: collapsed (a sketch of i32 values never is)"),
            Rule::EmptyStore(s) => write!(f, "{s}: no bins but not a fresh empty store"),
            Rule::UnusedBins(s) => write!(f, "{s}: bins but no sample"),
            Rule::BinCounts(s) => write!(f, "{s}: bins do not add up to its count"),
            Rule::KeyOrder(s) => write!(f, "{s}: key range not inside its bins"),
            Rule::KeyRange(s) => write!(f, "{s}: keys outside those of i32 values"),
            Rule::StrayBins(s) => write!(f, "{s}: samples outside its key range"),
            Rule::TotalCount => write!(f, "more than 2^53 samples"),
            Rule::EmptyExtremes => write!(f, "no sample but a minimum, maximum or sum"),
            Rule::Extremes => write!(f, "minimum and maximum not i32 values in order"),
            Rule::Sum => write!(f, "sum out of range of its samples"),
            Rule::KeysVsExtremes(s) => write!(f, "{s}: keys do not match minimum and maximum"),
            Rule::ZeroBucket => write!(f, "zero bucket does not match minimum and maximum"),
        }
    }
}

/// `DDSketch`'s serialized fields (sketches-ddsketch 0.3.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct WireSketch {
    pub config: WireConfig,
    pub store: WireStore,
    pub negative_store: WireStore,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub zero_count: u64,
}

/// `Config`'s serialized fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct WireConfig {
    pub max_num_bins: u32,
    pub gamma: f64,
    pub gamma_ln: f64,
    pub min_value: f64,
    pub offset: i32,
}

/// `Store`'s serialized fields (a `CollapsingLowestDenseStore`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct WireStore {
    pub bins: Bins,
    pub count: u64,
    pub min_key: i32,
    pub max_key: i32,
    pub offset: i32,
    pub bin_limit: usize,
    pub is_collapsed: bool,
}

/// A store's bins as decoded: at most `MAX_BINS` kept, and how many the bytes held.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Bins {
    pub kept: Vec<u64>,
    pub encoded: usize,
}

impl Bins {
    /// More bins, the new ones empty (a merge's `Vec::resize`).
    pub(super) fn grow(&mut self, len: usize) {
        self.kept.resize(len, 0);
        self.encoded = len;
    }
}

impl Serialize for Bins {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.kept)
    }
}

impl<'de> Deserialize<'de> for Bins {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(BinsVisitor)
    }
}

struct BinsVisitor;

impl<'de> Visitor<'de> for BinsVisitor {
    type Value = Bins;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sequence of bin counts")
    }

    /// Reads every element the bytes hold but keeps at most `MAX_BINS`: the claimed length
    /// (a varint, up to 2^64) never sizes an allocation. Postcard only hints a length the
    /// remaining input could hold, and the input is at most `MAX_ENCODED_LEN` bytes.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bins, A::Error> {
        let cap = MAX_BINS as usize;
        let mut bins = Bins {
            kept: Vec::with_capacity(seq.size_hint().unwrap_or(0).min(cap)),
            encoded: 0,
        };
        while let Some(bin) = seq.next_element::<u64>()? {
            if bins.kept.len() < cap {
                bins.kept.push(bin);
            }
            bins.encoded += 1;
        }
        Ok(bins)
    }
}

/// What a valid sketch is compared with, computed once.
struct Expected {
    /// `LatencySketch::default()`, decoded into the mirror: its config is every sketch's.
    fresh: WireSketch,
    /// The same config, to map values to keys as the crate does.
    keys: Config,
    /// The largest key an i32 maps to: that of 2^31 (`-i32::MIN`, in the negative store).
    max_key: i32,
}

fn expected() -> &'static Expected {
    static EXPECTED: OnceLock<Expected> = OnceLock::new();
    EXPECTED.get_or_init(|| {
        let keys = Config::new(RELATIVE_ACCURACY, MAX_BINS, MIN_VALUE_MS);
        let fresh = postcard::to_stdvec(&DDSketch::new(keys)).expect("sketch serialises");
        let fresh: WireSketch = postcard::from_bytes(&fresh).expect("mirror decodes the crate's");
        Expected {
            fresh,
            keys,
            max_key: keys.key(2_147_483_648.0),
        }
    })
}

fn invalid(rule: Rule) -> SketchError {
    SketchError::Invalid(rule)
}

/// The mirror of a body (the bytes after the format byte) that passes every rule. Read by `parse` in one pass; what it leaves
/// to postcard is read by postcard, so the result, error included, is postcard's.
pub(super) fn decode(body: &[u8]) -> Result<WireSketch, SketchError> {
    let sketch = match parse::parse(body) {
        Some(sketch) => sketch,
        None => return decode_with_postcard(body),
    };
    sketch.validate().map_err(invalid)?;
    Ok(sketch)
}

/// `decode` by postcard's serde path alone (what `decode` was before `parse`).
pub(super) fn decode_with_postcard(body: &[u8]) -> Result<WireSketch, SketchError> {
    let (sketch, rest) = postcard::take_from_bytes::<WireSketch>(body)
        .map_err(|e| SketchError::Corrupt(e.to_string()))?;
    if !rest.is_empty() {
        return Err(invalid(Rule::TrailingBytes));
    }
    sketch.validate().map_err(invalid)?;
    Ok(sketch)
}

/// `LatencySketch::default()` in the mirror.
pub(super) fn fresh() -> WireSketch {
    expected().fresh.clone()
}

impl WireSketch {
    pub(super) fn validate(&self) -> Result<(), Rule> {
        let expected = expected();
        if !self.config.same_bits(&expected.fresh.config) {
            return Err(Rule::Config);
        }
        self.store.validate(Side::Positive, expected.max_key)?;
        self.negative_store
            .validate(Side::Negative, expected.max_key)?;
        let total = self.total_count().ok_or(Rule::TotalCount)?;
        if total == 0 {
            return self.validate_empty();
        }
        self.validate_extremes(total)?;
        self.validate_keys_vs_extremes(&expected.keys)
    }

    /// All samples, when that is at most `MAX_COUNT`.
    fn total_count(&self) -> Option<u64> {
        self.store
            .count
            .checked_add(self.negative_store.count)?
            .checked_add(self.zero_count)
            .filter(|&n| n <= MAX_COUNT)
    }

    /// No sample: extremes and sum as `DDSketch::new` leaves them (merging empties keeps them).
    fn validate_empty(&self) -> Result<(), Rule> {
        let fresh = self.min == f64::INFINITY && self.max == f64::NEG_INFINITY && self.sum == 0.0;
        fresh.then_some(()).ok_or(Rule::EmptyExtremes)
    }

    /// Samples are i32s, so are min and max; each adds at most 2^31 in magnitude to the sum,
    /// which keeps any merge of checked sketches finite and within this rule.
    fn validate_extremes(&self, total: u64) -> Result<(), Rule> {
        let is_i32 = |v: f64| v.fract() == 0.0 && (-2_147_483_648.0..=2_147_483_647.0).contains(&v);
        if !(is_i32(self.min) && is_i32(self.max) && self.min <= self.max) {
            return Err(Rule::Extremes);
        }
        // total <= 2^53: exact as f64, and so is the product.
        let bound = total as f64 * 2_147_483_648.0;
        if !(self.sum.abs() <= bound) {
            return Err(Rule::Sum);
        }
        Ok(())
    }

    /// Each store holds exactly the samples beyond ±`MIN_VALUE_MS` (for i32s: >= 1, <= -1),
    /// its highest key is that of the largest magnitude, and its lowest key that of the
    /// smallest when every sample is on its side. Keys may differ by one from the key computed
    /// here: a libm of another machine may round a logarithm at a key boundary differently.
    fn validate_keys_vs_extremes(&self, keys: &Config) -> Result<(), Rule> {
        let (min, max) = (self.min, self.max);
        let positive = &self.store;
        if !positive.matches(max >= 1.0, keys, max, (min >= 1.0).then_some(min)) {
            return Err(Rule::KeysVsExtremes(Side::Positive));
        }
        let negative = &self.negative_store;
        if !negative.matches(min <= -1.0, keys, -min, (max <= -1.0).then_some(-max)) {
            return Err(Rule::KeysVsExtremes(Side::Negative));
        }
        // A 0 ms sample is counted in the zero bucket and nowhere else.
        let zero_inside = min <= 0.0 && 0.0 <= max;
        let zero_is_extreme = min == 0.0 || max == 0.0;
        if (self.zero_count > 0 && !zero_inside) || (zero_is_extreme && self.zero_count == 0) {
            return Err(Rule::ZeroBucket);
        }
        Ok(())
    }
}

impl WireConfig {
    /// Equal field by field, floats bit for bit (`==` would take -0.0 for 0.0, and never NaN).
    fn same_bits(&self, other: &WireConfig) -> bool {
        self.max_num_bins == other.max_num_bins
            && self.gamma.to_bits() == other.gamma.to_bits()
            && self.gamma_ln.to_bits() == other.gamma_ln.to_bits()
            && self.min_value.to_bits() == other.min_value.to_bits()
            && self.offset == other.offset
    }
}

impl WireStore {
    /// The shape the crate's `Store` has after any sequence of adds and merges of i32 values.
    fn validate(&self, side: Side, max_key: i32) -> Result<(), Rule> {
        if self.bin_limit != MAX_BINS as usize {
            return Err(Rule::BinLimit(side));
        }
        if self.bins.encoded > self.bin_limit {
            return Err(Rule::TooManyBins(side));
        }
        if self.is_collapsed {
            return Err(Rule::Collapsed(side));
        }
        if self.bins.kept.is_empty() {
            return self.is_fresh().then_some(()).ok_or(Rule::EmptyStore(side));
        }
        if self.count == 0 {
            return Err(Rule::UnusedBins(side));
        }
        self.validate_counts(side)?;
        self.validate_keys(side, max_key)
    }

    /// As `Store::new` leaves it; a store only gets bins with its first sample, and a merge
    /// into an empty store copies the other one whole.
    fn is_fresh(&self) -> bool {
        self.count == 0 && self.min_key == i32::MAX && self.max_key == i32::MIN && self.offset == 0
    }

    fn validate_counts(&self, side: Side) -> Result<(), Rule> {
        let sum = self
            .bins
            .kept
            .iter()
            .try_fold(0u64, |acc, &bin| acc.checked_add(bin));
        (sum == Some(self.count))
            .then_some(())
            .ok_or(Rule::BinCounts(side))
    }

    /// The bins cover offset..offset+len; the samples' keys min_key..=max_key lie inside, in
    /// [0, max_key], with every bin outside them empty (merge reads only min_key..=max_key,
    /// and re-centring the bins rotates the others away).
    fn validate_keys(&self, side: Side, max_key: i32) -> Result<(), Rule> {
        let (lo, hi, offset) = (
            i64::from(self.min_key),
            i64::from(self.max_key),
            i64::from(self.offset),
        );
        let end = offset + self.bins.kept.len() as i64;
        if !(offset <= lo && lo <= hi && hi < end) {
            return Err(Rule::KeyOrder(side));
        }
        if lo < 0 || hi > i64::from(max_key) {
            return Err(Rule::KeyRange(side));
        }
        let (first, last) = ((lo - offset) as usize, (hi - offset) as usize);
        let (below, above) = (&self.bins.kept[..first], &self.bins.kept[last + 1..]);
        match below.iter().chain(above).any(|&bin| bin != 0) {
            true => Err(Rule::StrayBins(side)),
            false => Ok(()),
        }
    }

    /// Holds samples exactly when `has_samples`; then its highest key is within one of the
    /// key of `largest`, and its lowest within one of that of `smallest` when known.
    fn matches(
        &self,
        has_samples: bool,
        keys: &Config,
        largest: f64,
        smallest: Option<f64>,
    ) -> bool {
        if self.count == 0 {
            return !has_samples;
        }
        let near = |key: i32, value: f64| (i64::from(key) - i64::from(keys.key(value))).abs() <= 1;
        has_samples && near(self.max_key, largest) && smallest.is_none_or(|v| near(self.min_key, v))
    }
}

mod parse;
#[cfg(test)]
pub(super) mod tests;

//! A merge of stored sketches kept in the checked wire form, for `latency_sketch_union`.
//!
//! `LatencySketch::from_bytes` parses each input twice (into the mirror, to check it, then into
//! the crate's `DDSketch`), and a union merges tens of thousands of them. Here each input is
//! parsed and checked once (`wire::decode`, every rule) and merged from the mirror, by the
//! crate's own merge (`DDSketch::merge`, `Store::merge` of sketches-ddsketch 0.3.2) restated
//! step for step on the mirror's fields: same bins, same offsets, same bytes as merging the
//! decoded sketches with `LatencySketch::merge` (property-tested in `tests`).

use super::wire::{self, WireSketch, WireStore};
use super::{body_of, LatencySketch, SketchError, FORMAT_V1, MAX_COUNT};

/// The crate's bin allocation step (`CHUNK_SIZE` in its store).
const CHUNK_BINS: i32 = 128;

/// Only ever holds sketches that passed every rule, and merges of them.
#[derive(Clone)]
pub struct MergedSketch {
    wire: WireSketch,
}

impl Default for MergedSketch {
    fn default() -> Self {
        MergedSketch {
            wire: wire::fresh(),
        }
    }
}

impl std::fmt::Debug for MergedSketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MergedSketch {{ count: {} }}", self.count())
    }
}

impl MergedSketch {
    /// Decodes an encoded sketch, refusing what `LatencySketch::from_bytes` refuses.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SketchError> {
        let wire = wire::decode(body_of(bytes)?)?;
        Ok(MergedSketch { wire })
    }

    pub fn from_sketch(sketch: &LatencySketch) -> Self {
        // A sketch the crate made passes the rules: sketches_the_extension_makes_always_pass.
        Self::from_bytes(&sketch.to_bytes()).expect("the crate's sketches pass the rules")
    }

    /// The crate's sketch holding the same bins.
    pub fn to_sketch(&self) -> LatencySketch {
        LatencySketch::from_checked_body(&self.to_bytes()[1..])
            .expect("the crate decodes its own layout")
    }

    pub fn count(&self) -> u64 {
        self.wire.count()
    }

    /// `LatencySketch::quantile` of the same sketch, bit for bit: the q-quantile (q in [0, 1])
    /// in ms, or None for an empty sketch or q outside [0, 1]; clamped to the exact min and
    /// max. Learning reads its merged sketches' quantiles here, so the sketches it decodes
    /// are never built into the crate's as well.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if q < 0.0 || q > 1.0 || self.count() == 0 {
            return None;
        }
        let estimate = self.wire.quantile(q);
        Some(estimate.clamp(self.wire.min, self.wire.max))
    }

    /// The bytes `LatencySketch::to_bytes` writes for the same sketch (same fields, same order).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![FORMAT_V1];
        out.extend(postcard::to_stdvec(&self.wire).expect("sketch serialises"));
        out
    }

    /// Merges one encoded sketch, checked by every rule first.
    pub fn merge_bytes(&mut self, bytes: &[u8]) -> Result<(), SketchError> {
        let other = wire::decode(body_of(bytes)?)?;
        self.merge_wire(&other)
    }

    pub fn merge(&mut self, other: &MergedSketch) -> Result<(), SketchError> {
        self.merge_wire(&other.wire)
    }

    /// As `LatencySketch::merge`: refuses to go past `MAX_COUNT` samples. Every config passed
    /// the rules, so the crate's config comparison cannot fail and is left out.
    fn merge_wire(&mut self, other: &WireSketch) -> Result<(), SketchError> {
        match self.count().checked_add(other.count()) {
            Some(n) if n <= MAX_COUNT => {}
            _ => return Err(SketchError::TooManySamples),
        }
        self.wire.merge(other);
        Ok(())
    }
}

impl WireSketch {
    fn count(&self) -> u64 {
        self.store.count + self.negative_store.count + self.zero_count
    }

    /// `DDSketch::quantile` of a sketch with samples, q in [0, 1], step for step (the same
    /// float operations in the same order, so the same bits).
    fn quantile(&self, q: f64) -> f64 {
        if q == 0.0 {
            return self.min;
        } else if q == 1.0 {
            return self.max;
        }
        let (negative, zero) = (self.negative_store.count, self.zero_count);
        let rank = (q * (self.count() as usize as f64 - 1.0)) as u64;
        if rank < negative {
            let key = self.negative_store.key_at_rank(negative - rank - 1);
            -self.value(key)
        } else if rank < zero + negative {
            0.0
        } else {
            self.value(self.store.key_at_rank(rank - zero - negative))
        }
    }

    /// `Config::value`: the representative value of a key.
    fn value(&self, key: i32) -> f64 {
        let config = &self.config;
        ((key as f64) * config.gamma_ln).exp() * (2.0 / (1.0 + config.gamma))
    }

    /// `DDSketch::merge`.
    fn merge(&mut self, other: &WireSketch) {
        let was_empty = self.count() == 0;
        self.store.merge(&other.store);
        self.negative_store.merge(&other.negative_store);
        self.zero_count += other.zero_count;
        // The extremes of an empty sketch are its initial infinities, never a sample's.
        if was_empty {
            self.min = other.min;
            self.max = other.max;
        } else if other.count() != 0 {
            if other.min < self.min {
                self.min = other.min;
            }
            if other.max > self.max {
                self.max = other.max;
            }
        }
        self.sum += other.sum;
    }
}

impl WireStore {
    /// `Store::key_at_rank`: the key of the bin holding the sample of this rank (from 0).
    fn key_at_rank(&self, rank: u64) -> i32 {
        let mut n = 0;
        for (i, bin) in self.bins.kept.iter().enumerate() {
            n += *bin;
            if n > rank {
                return i as i32 + self.offset;
            }
        }
        self.max_key
    }

    /// `Store::merge`. Its first step, folding the other's keys below this store's lowest key
    /// into the lowest bin, never applies: `extend_range` leaves the lowest key at or below the
    /// other's, as checked stores never collapse (the bins always cover the key range).
    fn merge(&mut self, other: &WireStore) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        if other.min_key < self.min_key || other.max_key > self.max_key {
            self.extend_range(other.min_key, other.max_key);
        }
        let theirs = &other.bins.kept
            [index(other.min_key, other.offset)..=index(other.max_key, other.offset)];
        let ours = &mut self.bins.kept
            [index(other.min_key, self.offset)..=index(other.max_key, self.offset)];
        ours.iter_mut()
            .zip(theirs)
            .for_each(|(bin, add)| *bin += add);
        self.count += other.count;
    }

    /// `Store::extend_range` for a store with samples, to cover `min_key..=max_key` too.
    fn extend_range(&mut self, min_key: i32, max_key: i32) {
        let (new_min, new_max) = (min_key.min(self.min_key), max_key.max(self.max_key));
        if new_min >= self.min_key && new_max < self.offset + self.len() {
            self.min_key = new_min;
            self.max_key = new_max;
            return;
        }
        let new_len = self.new_length(new_min, new_max);
        if new_len > self.bins.kept.len() {
            self.bins.grow(new_len);
        }
        // `Store::adjust`: the bins now cover the range, so they are re-centred, never collapsed.
        assert!(new_max - new_min < self.len(), "a checked store collapsed");
        self.center_bins(new_min, new_max);
        self.min_key = new_min;
        self.max_key = new_max;
    }

    fn len(&self) -> i32 {
        self.bins.kept.len() as i32
    }

    /// `Store::get_new_length`: the range rounded up to whole chunks, at most the bin limit.
    fn new_length(&self, new_min: i32, new_max: i32) -> usize {
        let desired = new_max - new_min + 1;
        let chunks = (desired + CHUNK_BINS - 1) / CHUNK_BINS;
        ((CHUNK_BINS * chunks) as usize).min(self.bin_limit)
    }

    /// `Store::center_bins`.
    fn center_bins(&mut self, new_min: i32, new_max: i32) {
        let middle_key = new_min + (new_max - new_min + 1) / 2;
        let shift = self.offset + self.len() / 2 - middle_key;
        self.shift_bins(shift);
    }

    /// `Store::shift_bins`: moves the bins `shift` places up (down when negative), zeroing the
    /// places they leave.
    fn shift_bins(&mut self, shift: i32) {
        let bins = &mut self.bins.kept;
        let by = shift.unsigned_abs() as usize;
        if shift > 0 {
            bins.rotate_right(by);
            bins[..by].fill(0);
        } else {
            bins[..by].fill(0);
            bins.rotate_left(by);
        }
        self.offset -= shift;
    }
}

/// Where `key` is in bins starting at `offset` (the key range lies inside the bins).
fn index(key: i32, offset: i32) -> usize {
    (key - offset) as usize
}

#[cfg(test)]
mod tests;

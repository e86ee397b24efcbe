//! The rules one by one, the attack that prompted them, and fuzzing of the decoder.

use super::*;
use crate::sketch::{merge_encoded, LatencySketch, FORMAT_V1};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

pub(in crate::sketch) fn sketch_of(values: &[i32]) -> LatencySketch {
    let mut s = LatencySketch::default();
    values.iter().for_each(|&v| s.add(v));
    s
}

/// Zero, a cluster of ordinary latencies and the largest accepted one.
pub(in crate::sketch) fn sample() -> LatencySketch {
    sketch_of(&[0, 3, 40, 41, 250, 1200, 3_600_000])
}

/// Samples on both sides of zero (`latency_sketch_agg` accepts negative integers).
pub(in crate::sketch) fn signed_sample() -> LatencySketch {
    sketch_of(&[-7, -300, 0, 12])
}

pub(in crate::sketch) fn wire_of(s: &LatencySketch) -> WireSketch {
    postcard::from_bytes(&s.to_bytes()[1..]).unwrap()
}

pub(in crate::sketch) fn encode(w: &WireSketch) -> Vec<u8> {
    let mut out = vec![FORMAT_V1];
    out.extend(postcard::to_stdvec(w).unwrap());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Edits the decoded `base` and asserts the re-encoded bytes break exactly `rule`.
fn assert_breaks(base: &LatencySketch, rule: Rule, edit: impl FnOnce(&mut WireSketch)) {
    let mut w = wire_of(base);
    edit(&mut w);
    let got = LatencySketch::from_bytes(&encode(&w)).map(|s| s.count());
    assert_eq!(got, Err(SketchError::Invalid(rule)), "{rule}");
}

/// Moves a store's keys and offset together, keeping their distances (wrapping: the fuzzer
/// moves any keys).
fn shift_keys(s: &mut WireStore, by: i32) {
    s.min_key = s.min_key.wrapping_add(by);
    s.max_key = s.max_key.wrapping_add(by);
    s.offset = s.offset.wrapping_add(by);
}

#[test]
fn mirror_has_the_crates_layout() {
    for s in [
        LatencySketch::default(),
        sample(),
        signed_sample(),
        sketch_of(&[i32::MIN, i32::MAX]),
    ] {
        assert_eq!(encode(&wire_of(&s)), s.to_bytes());
        assert!(LatencySketch::from_bytes(&s.to_bytes()).is_ok());
    }
}

#[test]
fn bounds_are_what_the_comments_say() {
    assert_eq!(expected().max_key, 1075);
    assert_eq!(expected().keys.key(1.0), 0);
    assert_eq!(MAX_ENCODED_LEN, 32_891);
    assert_eq!(varint_len(0), 1);
    assert_eq!(varint_len(127), 1);
    assert_eq!(varint_len(128), 2);
    assert_eq!(varint_len(MAX_COUNT), 8);
    assert_eq!(varint_len(u64::MAX), 10);
}

#[test]
fn rejects_input_longer_than_any_valid_sketch() {
    let mut long = sample().to_bytes();
    long.resize(MAX_ENCODED_LEN + 1, 0);
    assert_eq!(
        LatencySketch::from_bytes(&long).unwrap_err(),
        SketchError::TooLong(MAX_ENCODED_LEN + 1)
    );
}

#[test]
fn rejects_trailing_bytes() {
    let mut bytes = sample().to_bytes();
    bytes.push(0);
    assert_eq!(
        LatencySketch::from_bytes(&bytes).unwrap_err(),
        SketchError::Invalid(Rule::TrailingBytes)
    );
}

#[test]
fn rejects_other_accuracy_settings() {
    let next_up = |v: f64| f64::from_bits(v.to_bits() + 1);
    let s = sample();
    assert_breaks(&s, Rule::Config, |w| {
        w.config.gamma = next_up(w.config.gamma)
    });
    assert_breaks(&s, Rule::Config, |w| w.config.gamma_ln = f64::NAN);
    assert_breaks(&s, Rule::Config, |w| w.config.min_value = 1e-9);
    assert_breaks(&s, Rule::Config, |w| w.config.max_num_bins = u32::MAX);
    assert_breaks(&s, Rule::Config, |w| w.config.offset -= 1);
}

#[test]
fn rejects_other_bin_limits() {
    let s = signed_sample();
    assert_breaks(&s, Rule::BinLimit(Side::Positive), |w| {
        w.store.bin_limit = 1 << 40
    });
    assert_breaks(&s, Rule::BinLimit(Side::Positive), |w| {
        w.store.bin_limit = 0
    });
    assert_breaks(&s, Rule::BinLimit(Side::Negative), |w| {
        w.negative_store.bin_limit = 4096
    });
    // An empty store too: a merge into it copies the other's limit, but starts from its own.
    assert_breaks(&sample(), Rule::BinLimit(Side::Negative), |w| {
        w.negative_store.bin_limit = usize::MAX
    });
}

#[test]
fn rejects_more_bins_than_the_limit() {
    assert_breaks(&sample(), Rule::TooManyBins(Side::Positive), |w| {
        w.store.bins.kept.resize(MAX_BINS as usize + 1, 0)
    });
}

#[test]
fn a_claimed_bin_count_beyond_the_input_is_corrupt() {
    // Config, then a bins length of 2^62 and two bins: postcard runs out of input.
    let mut bytes = vec![FORMAT_V1];
    bytes.extend(postcard::to_stdvec(&wire_of(&sample()).config).unwrap());
    bytes.extend(postcard::to_stdvec(&(1u64 << 62)).unwrap());
    bytes.extend([1, 2]);
    assert!(matches!(
        LatencySketch::from_bytes(&bytes).unwrap_err(),
        SketchError::Corrupt(_)
    ));
}

#[test]
fn rejects_collapsed_stores() {
    assert_breaks(&sample(), Rule::Collapsed(Side::Positive), |w| {
        w.store.is_collapsed = true
    });
}

#[test]
fn rejects_empty_stores_with_leftovers() {
    let s = sample();
    assert_breaks(&s, Rule::EmptyStore(Side::Negative), |w| {
        w.negative_store.min_key = 0
    });
    assert_breaks(&s, Rule::EmptyStore(Side::Negative), |w| {
        w.negative_store.offset = 5
    });
    assert_breaks(&s, Rule::EmptyStore(Side::Negative), |w| {
        w.negative_store.count = 1
    });
}

#[test]
fn rejects_bins_without_samples() {
    assert_breaks(&sample(), Rule::UnusedBins(Side::Positive), |w| {
        w.store.bins.kept.fill(0);
        w.store.count = 0;
    });
}

#[test]
fn rejects_bins_not_adding_up_to_the_count() {
    let s = signed_sample();
    assert_breaks(&s, Rule::BinCounts(Side::Positive), |w| w.store.count += 1);
    assert_breaks(&s, Rule::BinCounts(Side::Negative), |w| {
        w.negative_store.count -= 1
    });
    // The sum overflows u64: an error, not a panic.
    assert_breaks(&s, Rule::BinCounts(Side::Positive), |w| {
        let i = (w.store.min_key - w.store.offset) as usize;
        w.store.bins.kept[i] = u64::MAX;
    });
}

#[test]
fn rejects_key_ranges_outside_the_bins() {
    let s = sample();
    assert_breaks(&s, Rule::KeyOrder(Side::Positive), |w| {
        w.store.offset = w.store.min_key + 1
    });
    assert_breaks(&s, Rule::KeyOrder(Side::Positive), |w| {
        w.store.max_key = w.store.offset + w.store.bins.kept.len() as i32
    });
    assert_breaks(&s, Rule::KeyOrder(Side::Positive), |w| {
        std::mem::swap(&mut w.store.min_key, &mut w.store.max_key)
    });
    // Extremes of i32: compared in i64, no overflow.
    assert_breaks(&s, Rule::KeyOrder(Side::Positive), |w| {
        w.store.offset = i32::MAX;
        w.store.max_key = i32::MAX;
    });
}

#[test]
fn rejects_keys_no_i32_maps_to() {
    let s = sample();
    assert_breaks(&s, Rule::KeyRange(Side::Positive), |w| {
        let by = -w.store.min_key - 1;
        shift_keys(&mut w.store, by);
    });
    assert_breaks(&s, Rule::KeyRange(Side::Positive), |w| {
        let by = expected().max_key - w.store.max_key + 1;
        shift_keys(&mut w.store, by);
    });
}

#[test]
fn rejects_samples_outside_the_key_range() {
    assert_breaks(
        &sketch_of(&[100, 120]),
        Rule::StrayBins(Side::Positive),
        |w| {
            let first = (w.store.min_key - w.store.offset) as usize;
            let last = (w.store.max_key - w.store.offset) as usize;
            let outside = if first > 0 { 0 } else { last + 1 };
            w.store.bins.kept[outside] = 5;
            w.store.count += 5;
        },
    );
}

#[test]
fn rejects_more_than_max_count_samples() {
    let s = sample();
    assert_breaks(&s, Rule::TotalCount, |w| w.zero_count = MAX_COUNT);
    assert_breaks(&s, Rule::TotalCount, |w| w.zero_count = u64::MAX);
}

#[test]
fn rejects_extremes_of_an_empty_sketch() {
    let empty = LatencySketch::default();
    assert_breaks(&empty, Rule::EmptyExtremes, |w| w.min = 0.0);
    assert_breaks(&empty, Rule::EmptyExtremes, |w| w.max = 5.0);
    assert_breaks(&empty, Rule::EmptyExtremes, |w| w.sum = 1.0);
}

#[test]
fn rejects_extremes_that_are_not_i32_values_in_order() {
    let s = sample();
    assert_breaks(&s, Rule::Extremes, |w| w.min = f64::NAN);
    assert_breaks(&s, Rule::Extremes, |w| w.max = f64::INFINITY);
    assert_breaks(&s, Rule::Extremes, |w| w.max = 2_147_483_648.0);
    assert_breaks(&s, Rule::Extremes, |w| w.min = 0.5);
    // min > max: quantile's clamp(min, max) would panic.
    assert_breaks(&s, Rule::Extremes, |w| (w.min, w.max) = (w.max, w.min));
}

#[test]
fn rejects_sums_out_of_range() {
    let s = sample();
    assert_breaks(&s, Rule::Sum, |w| w.sum = f64::NAN);
    assert_breaks(&s, Rule::Sum, |w| w.sum = f64::NEG_INFINITY);
    assert_breaks(&s, Rule::Sum, |w| w.sum = 7.0 * 2_147_483_648.0 + 1e6);
}

#[test]
fn rejects_keys_not_matching_the_extremes() {
    let s = sample();
    assert_breaks(&s, Rule::KeysVsExtremes(Side::Positive), |w| w.max = 2.0);
    assert_breaks(
        &sketch_of(&[40, 41, 250]),
        Rule::KeysVsExtremes(Side::Positive),
        |w| w.min = 1.0,
    );
    // Samples in a store the extremes say is empty.
    assert_breaks(
        &sketch_of(&[0, 5]),
        Rule::KeysVsExtremes(Side::Positive),
        |w| w.max = 0.0,
    );
    let signed = signed_sample();
    assert_breaks(&signed, Rule::KeysVsExtremes(Side::Negative), |w| {
        w.min = -100_000.0
    });
    assert_breaks(&signed, Rule::KeysVsExtremes(Side::Negative), |w| {
        w.min = 0.0
    });
}

#[test]
fn rejects_a_zero_bucket_not_matching_the_extremes() {
    assert_breaks(&sketch_of(&[0, 3, 40]), Rule::ZeroBucket, |w| w.min = 3.0);
    assert_breaks(&sketch_of(&[0, 3, 40]), Rule::ZeroBucket, |w| {
        w.zero_count = 0
    });
}

// ---------------------------------------------------------------------------------------------
// The attack: small values whose merge asked for gigabytes.
// ---------------------------------------------------------------------------------------------

/// One sample of 1 ms in a store claiming `bin_limit` and holding its single bin at `key`:
/// what today's (pre-check) decoder took as is.
fn crafted(key: i32, bin_limit: usize) -> Vec<u8> {
    let mut w = wire_of(&sketch_of(&[1]));
    w.store = WireStore {
        bins: Bins {
            kept: vec![1],
            encoded: 1,
        },
        count: 1,
        min_key: key,
        max_key: key,
        offset: key,
        bin_limit,
        is_collapsed: false,
    };
    encode(&w)
}

/// What `from_bytes` did before the checks.
fn decodes_unchecked(bytes: &[u8]) -> bool {
    postcard::from_bytes::<DDSketch>(&bytes[1..]).is_ok()
}

#[test]
fn unchecked_merge_of_crafted_sketches_allocates_what_they_ask() {
    // The attack on the crate directly, kept small: keys 0 and 2^20 make 2^20 + 128 bins
    // (8 MiB); the allocation follows the key, so 2^24 asks 128 MiB and 2^30 asks 8 GiB.
    let decode = |b: &[u8]| postcard::from_bytes::<DDSketch>(&b[1..]).unwrap();
    let mut a = decode(&crafted(0, usize::MAX));
    a.merge(&decode(&crafted(1 << 20, usize::MAX))).unwrap();
    assert_eq!(a.length(), (1 << 20) + 128);
}

#[test]
fn crafted_bin_limit_and_key_range_are_rejected_before_any_merge() {
    // Keys 0 and 2^24 with no cap: merging them resized the bins to 2^24 + 128 u64s (128 MiB);
    // keys 0 and 2^30, to 8 GiB. pg_test/t14_crafted_sketches.sql uses the printed values.
    for far in [1 << 24, 1 << 30] {
        let (a, b) = (crafted(0, usize::MAX), crafted(far, usize::MAX));
        println!("crafted, key 0, no bin limit: \\x{}", hex(&a));
        println!("crafted, key {far}, no bin limit: \\x{}", hex(&b));
        assert!(a.len() < 100 && b.len() < 100);
        assert!(decodes_unchecked(&a) && decodes_unchecked(&b));
        for bytes in [&a, &b] {
            assert_eq!(
                LatencySketch::from_bytes(bytes).unwrap_err(),
                SketchError::Invalid(Rule::BinLimit(Side::Positive))
            );
        }
        assert!(merge_encoded(Some(&a), Some(&b)).is_err());
        assert!(merge_encoded(Some(&sample().to_bytes()), Some(&b)).is_err());
        assert!(merge_encoded(None, Some(&a)).is_err());
    }
}

#[test]
fn crafted_key_ranges_with_the_right_limit_are_rejected() {
    // A key far beyond any i32's: merging made the crate re-centre 2048 bins around it.
    let far = crafted(1 << 30, MAX_BINS as usize);
    println!("crafted, key 2^30, bin limit 2048: \\x{}", hex(&far));
    assert!(decodes_unchecked(&far));
    assert_eq!(
        LatencySketch::from_bytes(&far).unwrap_err(),
        SketchError::Invalid(Rule::KeyRange(Side::Positive))
    );
    // A key range wider than the bins: merge indexed past them.
    let mut w = wire_of(&sample());
    w.store.max_key = 1 << 30;
    assert!(decodes_unchecked(&encode(&w)));
    assert_eq!(
        LatencySketch::from_bytes(&encode(&w)).unwrap_err(),
        SketchError::Invalid(Rule::KeyOrder(Side::Positive))
    );
}

#[test]
fn the_sql_regression_test_uses_these_values() {
    let sql = include_str!("../../../pg_test/t14_crafted_sketches.sql");
    let values = [
        crafted(0, usize::MAX),
        crafted(1 << 24, usize::MAX),
        crafted(1 << 30, MAX_BINS as usize),
    ];
    for bytes in values {
        assert!(sql.contains(&format!("'\\x{}'", hex(&bytes))));
        let error = LatencySketch::from_bytes(&bytes).unwrap_err();
        assert!(sql.contains(&format!("'centralcloud: {error}'")), "{error}");
    }
}

// ---------------------------------------------------------------------------------------------
// Whatever passes the checks is safe to use.
// ---------------------------------------------------------------------------------------------

/// Every operation the extension performs on a decoded sketch: no panic, no more than
/// `2 * MAX_BINS` bins (one full store each side), and every result decodes again.
fn exercise(decoded: &LatencySketch, ms: i32) {
    for q in [0.0, 0.5, 0.99, 1.0] {
        let _ = decoded.quantile(q);
    }
    assert!(decoded.count() <= MAX_COUNT);
    let bytes = decoded.to_bytes();
    assert!(bytes.len() <= MAX_ENCODED_LEN);
    assert_eq!(LatencySketch::from_bytes(&bytes).unwrap().to_bytes(), bytes);

    for other in [LatencySketch::default(), sample(), signed_sample()] {
        let (mut left, mut right) = (decoded.clone(), other.clone());
        assert_merge_is_safe(left.merge(&other), &left);
        assert_merge_is_safe(right.merge(decoded), &right);
    }
    if decoded.count() < MAX_COUNT {
        let mut added = decoded.clone();
        added.add(ms);
        assert_usable(&added);
    }
}

fn assert_merge_is_safe(result: Result<(), SketchError>, merged: &LatencySketch) {
    match result {
        Ok(()) => assert_usable(merged),
        Err(e) => assert_eq!(e, SketchError::TooManySamples),
    }
}

fn assert_usable(s: &LatencySketch) {
    assert!(s.inner.length() <= 2 * MAX_BINS as usize);
    for q in [0.0, 0.5, 0.99, 1.0] {
        let _ = s.quantile(q);
    }
    let bytes = s.to_bytes();
    assert!(bytes.len() <= MAX_ENCODED_LEN, "{} bytes", bytes.len());
    if let Err(e) = LatencySketch::from_bytes(&bytes) {
        panic!("a merge or add of checked sketches broke a rule: {e}");
    }
}

#[test]
fn unusual_but_valid_layouts_stay_safe() {
    // A single sample anywhere in bins of any length: the rules accept it, and merging it
    // with sketches at both ends of the key range must re-centre the bins without loss.
    let far_ends = sketch_of(&[1, i32::MAX, i32::MIN, -1, 0]);
    for value in [1, 1000, i32::MAX] {
        let key = expected().keys.key(f64::from(value));
        for len in [128usize, 1152, MAX_BINS as usize] {
            for at in [0, len / 2, len - 1] {
                let mut w = wire_of(&sketch_of(&[value]));
                w.store.bins.kept = vec![0; len];
                w.store.bins.kept[at] = 1;
                w.store.offset = key - at as i32;
                let decoded = LatencySketch::from_bytes(&encode(&w)).unwrap();
                exercise(&decoded, 3_600_000);
                let mut merged = decoded.clone();
                merged.merge(&far_ends).unwrap();
                assert_eq!(merged.count(), 6);
                assert_eq!(merged.quantile(1.0), Some(f64::from(i32::MAX)));
                assert_usable(&merged);
            }
        }
    }
}

pub(in crate::sketch) fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Latencies as ingest sees them, and any i32 as `latency_sketch_agg` may.
pub(in crate::sketch) fn values() -> impl Strategy<Value = Vec<i32>> {
    prop_oneof![
        3 => vec(0..3_600_000i32, 0..60),
        1 => vec(any::<i32>(), 0..20),
    ]
}

#[derive(Debug, Clone)]
pub(in crate::sketch) enum Mutation {
    Flip(Index, u8),
    Replace(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
}

pub(in crate::sketch) fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Remove),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

pub(in crate::sketch) fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match m {
        Mutation::Flip(i, bit) => bytes[i.index(len)] ^= 1 << bit,
        Mutation::Replace(i, b) => bytes[i.index(len)] = *b,
        Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
        Mutation::Remove(i) => {
            bytes.remove(i.index(bytes.len()));
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
    }
}

/// One field of the mirror set to an arbitrary value: reaches the rules past postcard.
pub(in crate::sketch) fn set_field(w: &mut WireSketch, field: u8, v: u64, at: &Index) {
    let store = if field % 2 == 0 {
        &mut w.store
    } else {
        &mut w.negative_store
    };
    match field / 2 {
        0 => store.count = v,
        1 => store.min_key = v as i32,
        2 => store.max_key = v as i32,
        3 => store.offset = v as i32,
        4 => store.bin_limit = v as usize,
        5 => store.is_collapsed = v & 1 == 1,
        6 if !store.bins.kept.is_empty() => {
            let i = at.index(store.bins.kept.len());
            store.bins.kept[i] = v;
        }
        7 => store.bins.kept.resize((v % 2200) as usize, v >> 60),
        8 => shift_keys(store, (v % 4000) as i32 - 2000),
        9 => w.min = v as i32 as f64,
        10 => w.max = v as i32 as f64,
        11 => w.sum = f64::from_bits(v),
        _ => w.zero_count = v,
    }
}

/// The same samples in bins of another length, at another offset: a layout the rules accept
/// whether or not the crate would have made it.
pub(in crate::sketch) fn relayout(s: &mut WireStore, len: &Index, at: &Index) {
    if s.bins.kept.is_empty() {
        return;
    }
    let (first, last) = (
        (s.min_key - s.offset) as usize,
        (s.max_key - s.offset) as usize,
    );
    let window = s.bins.kept[first..=last].to_vec();
    let span = window.len();
    let len = span + len.index(MAX_BINS as usize - span + 1);
    let at = at.index(len - span + 1);
    s.bins.kept = vec![0; len];
    s.bins.kept[at..at + span].copy_from_slice(&window);
    s.offset = s.min_key - at as i32;
}

proptest! {
    #![proptest_config(config(3000))]

    /// Arbitrary bytes: never a panic; whatever decodes is safe to use.
    #[test]
    fn decoder_survives_arbitrary_bytes(
        mut bytes in vec(any::<u8>(), 0..300),
        versioned in any::<bool>(),
        ms in 0..=3_600_000i32,
    ) {
        if versioned && !bytes.is_empty() {
            bytes[0] = FORMAT_V1;
        }
        if let Ok(decoded) = LatencySketch::from_bytes(&bytes) {
            exercise(&decoded, ms);
        }
    }

    /// Valid encodings with bytes flipped, replaced, inserted, removed or cut off.
    #[test]
    fn decoder_survives_mutated_sketches(
        values in values(),
        mutations in vec(mutation(), 1..4),
        ms in 0..=3_600_000i32,
    ) {
        let mut bytes = sketch_of(&values).to_bytes();
        mutations.iter().for_each(|m| apply(&mut bytes, m));
        if let Ok(decoded) = LatencySketch::from_bytes(&bytes) {
            exercise(&decoded, ms);
        }
    }

    /// Valid sketches with fields set to arbitrary values, re-encoded.
    #[test]
    fn decoder_survives_edited_fields(
        values in values(),
        edits in vec((0..26u8, prop_oneof![any::<u64>(), 0..3000u64], any::<Index>()), 1..4),
        ms in 0..=3_600_000i32,
    ) {
        let mut w = wire_of(&sketch_of(&values));
        edits.iter().for_each(|(field, v, at)| set_field(&mut w, *field, *v, at));
        if let Ok(decoded) = LatencySketch::from_bytes(&encode(&w)) {
            exercise(&decoded, ms);
        }
    }
}

proptest! {
    #![proptest_config(config(500))]

    /// Real samples in any layout of the bins the rules accept: merges and adds stay within
    /// the bins they have or `MAX_BINS`, and their results pass the rules again.
    #[test]
    fn any_accepted_layout_is_safe(
        values in vec(any::<i32>(), 1..40),
        layout in (any::<Index>(), any::<Index>(), any::<Index>(), any::<Index>()),
        ms in 0..=3_600_000i32,
    ) {
        let mut w = wire_of(&sketch_of(&values));
        relayout(&mut w.store, &layout.0, &layout.1);
        relayout(&mut w.negative_store, &layout.2, &layout.3);
        let decoded = LatencySketch::from_bytes(&encode(&w)).unwrap();
        prop_assert_eq!(decoded.count(), values.len() as u64);
        exercise(&decoded, ms);
    }

    /// Every sketch the extension can make (adds of any i32, merges) passes the checks and
    /// decodes to the same bytes: no stored sketch is refused.
    #[test]
    fn sketches_the_extension_makes_always_pass(parts in vec(values(), 1..5)) {
        let mut merged = LatencySketch::default();
        for part in &parts {
            let one = sketch_of(part);
            let bytes = one.to_bytes();
            prop_assert_eq!(LatencySketch::from_bytes(&bytes).unwrap().to_bytes(), bytes);
            merged.merge(&one).unwrap();
        }
        let bytes = merged.to_bytes();
        prop_assert_eq!(LatencySketch::from_bytes(&bytes).unwrap().to_bytes(), bytes);
    }
}

//! `MergedSketch` against the crate: the same bytes after any sequence of merges, the same
//! refusals for any input.

use super::*;
use crate::sketch::wire::tests::{
    apply, config, encode, mutation, relayout, sample, signed_sample, sketch_of, values, wire_of,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

/// A sketch of `values` in a layout of its bins the rules accept (`relayout`), encoded.
fn laid_out(values: &[i32], layout: &(Index, Index, Index, Index)) -> Vec<u8> {
    let mut w = wire_of(&sketch_of(values));
    relayout(&mut w.store, &layout.0, &layout.1);
    relayout(&mut w.negative_store, &layout.2, &layout.3);
    encode(&w)
}

/// Merges every input in order both ways and asserts the same bytes after every step.
fn assert_merges_like_the_crate(inputs: &[Vec<u8>]) {
    let (mut crate_merge, mut ours) = (LatencySketch::default(), MergedSketch::default());
    for (i, bytes) in inputs.iter().enumerate() {
        crate_merge
            .merge(&LatencySketch::from_bytes(bytes).unwrap())
            .unwrap();
        ours.merge_bytes(bytes).unwrap();
        assert_eq!(ours.to_bytes(), crate_merge.to_bytes(), "after input {i}");
        assert_same_quantiles(&ours, &crate_merge, QUANTILES);
    }
    assert_eq!(ours.count(), crate_merge.count());
    assert_eq!(ours.to_sketch().to_bytes(), crate_merge.to_bytes());
}

/// Every rank region (negative store, zero bucket, positive store), the ends, and what is not
/// a quantile (outside [0, 1], NaN).
const QUANTILES: &[f64] = &[
    0.0,
    1e-9,
    0.01,
    0.1,
    0.25,
    0.3,
    0.5,
    0.7,
    0.9,
    0.95,
    0.99,
    0.999,
    1.0,
    -0.0,
    -0.1,
    1.1,
    f64::NAN,
    f64::INFINITY,
];

/// `MergedSketch::quantile` against the crate's (`LatencySketch::quantile`), bit for bit.
fn assert_same_quantiles(ours: &MergedSketch, theirs: &LatencySketch, qs: &[f64]) {
    for &q in qs {
        let bits = |v: Option<f64>| v.map(f64::to_bits);
        assert_eq!(bits(ours.quantile(q)), bits(theirs.quantile(q)), "q={q}");
    }
}

#[test]
fn empty_is_the_crates_empty_sketch() {
    assert_eq!(
        MergedSketch::default().to_bytes(),
        LatencySketch::default().to_bytes()
    );
    assert_merges_like_the_crate(&[LatencySketch::default().to_bytes()]);
}

#[test]
fn merges_grow_and_recentre_like_the_crate() {
    // Empty, then copied, then widened downwards and upwards past the bins, negative side
    // too, and the zero bucket.
    let inputs: Vec<Vec<u8>> = [
        &[][..],
        &[1000],
        &[900, 1100],
        &[1],
        &[i32::MAX],
        &[-5, 0],
        &[i32::MIN, 3],
        &[0],
    ]
    .iter()
    .map(|v| sketch_of(v).to_bytes())
    .collect();
    assert_merges_like_the_crate(&inputs);
    assert_merges_like_the_crate(&[sample().to_bytes(), signed_sample().to_bytes()]);
}

#[test]
fn merges_any_accepted_layout_like_the_crate() {
    // The single-sample layouts of wire's unusual_but_valid_layouts_stay_safe, at both ends of
    // bins of every length, merged with sketches at both ends of the key range.
    let far_ends = sketch_of(&[1, i32::MAX, i32::MIN, -1, 0]).to_bytes();
    for value in [1, 1000, i32::MAX] {
        for len in [128usize, 1152, crate::sketch::MAX_BINS as usize] {
            for at in [0, len / 2, len - 1] {
                let mut w = wire_of(&sketch_of(&[value]));
                w.store.bins.kept = vec![0; len];
                w.store.bins.kept[at] = 1;
                w.store.offset = w.store.min_key - at as i32;
                let odd = encode(&w);
                assert_merges_like_the_crate(&[odd.clone(), far_ends.clone()]);
                assert_merges_like_the_crate(&[far_ends.clone(), odd]);
            }
        }
    }
}

#[test]
fn refuses_past_max_count_like_the_crate() {
    let mut w = wire_of(&sketch_of(&[5]));
    w.zero_count = MAX_COUNT - 1;
    w.min = 0.0;
    let big = encode(&w);
    let mut ours = MergedSketch::from_bytes(&big).unwrap();
    let one = sketch_of(&[7]).to_bytes();
    assert_eq!(ours.merge_bytes(&one), Err(SketchError::TooManySamples));
    let mut theirs = LatencySketch::from_bytes(&big).unwrap();
    let error = theirs.merge(&LatencySketch::from_bytes(&one).unwrap());
    assert_eq!(error, Err(SketchError::TooManySamples));
    assert_eq!(ours.to_bytes(), big, "a refused merge changes nothing");
}

/// `merge_bytes` refuses exactly what `LatencySketch::from_bytes` refuses, with its error,
/// and leaves the merge as it was.
fn assert_refuses_like_from_bytes(bytes: &[u8]) {
    let mut ours = MergedSketch::from_bytes(&sample().to_bytes()).unwrap();
    let before = ours.to_bytes();
    match (LatencySketch::from_bytes(bytes), ours.merge_bytes(bytes)) {
        (Ok(_), Ok(())) => {}
        (Err(theirs), Err(mine)) => {
            assert_eq!(mine, theirs);
            assert_eq!(ours.to_bytes(), before);
        }
        (theirs, mine) => panic!("from_bytes: {theirs:?}, merge_bytes: {mine:?}"),
    }
}

#[test]
fn refuses_what_from_bytes_refuses() {
    for bytes in [&[][..], &[2], &[FORMAT_V1], &[FORMAT_V1, 0xff]] {
        assert_refuses_like_from_bytes(bytes);
    }
    let mut trailing = sample().to_bytes();
    trailing.push(0);
    assert_refuses_like_from_bytes(&trailing);
    let mut long = sample().to_bytes();
    long.resize(crate::sketch::MAX_ENCODED_LEN + 1, 0);
    assert_refuses_like_from_bytes(&long);
}

proptest! {
    #![proptest_config(config(1000))]

    /// Sequences of sketches of any values, in any layout the rules accept: the same bytes as
    /// the crate's merges after every step.
    #[test]
    fn merges_like_the_crate(
        parts in vec((values(), any::<(Index, Index, Index, Index)>()), 1..8),
    ) {
        let inputs: Vec<Vec<u8>> = parts
            .iter()
            .map(|(values, layout)| match values.is_empty() {
                true => sketch_of(values).to_bytes(),
                false => laid_out(values, layout),
            })
            .collect();
        assert_merges_like_the_crate(&inputs);
    }

    /// Any q, on any sketch of any values in any accepted layout: the crate's quantile.
    #[test]
    fn quantiles_like_the_crate(
        values in values(),
        layout in any::<(Index, Index, Index, Index)>(),
        qs in vec(prop_oneof![0.0..=1.0f64, any::<f64>()], 1..20),
    ) {
        let bytes = match values.is_empty() {
            true => sketch_of(&values).to_bytes(),
            false => laid_out(&values, &layout),
        };
        let ours = MergedSketch::from_bytes(&bytes).unwrap();
        assert_same_quantiles(&ours, &LatencySketch::from_bytes(&bytes).unwrap(), &qs);
        assert_same_quantiles(&ours, &LatencySketch::from_bytes(&bytes).unwrap(), QUANTILES);
    }

    /// Partial merges merged (a parallel aggregate's combine): the crate's merge of the parts.
    #[test]
    fn merges_of_merges_like_the_crate(parts in vec(values(), 2..8), split in any::<Index>()) {
        let inputs: Vec<Vec<u8>> = parts.iter().map(|v| sketch_of(v).to_bytes()).collect();
        let (left, right) = inputs.split_at(split.index(inputs.len()));
        let crate_part = |part: &[Vec<u8>]| {
            let mut s = LatencySketch::default();
            part.iter().for_each(|b| s.merge(&LatencySketch::from_bytes(b).unwrap()).unwrap());
            s
        };
        let our_part = |part: &[Vec<u8>]| {
            let mut s = MergedSketch::default();
            part.iter().for_each(|b| s.merge_bytes(b).unwrap());
            s
        };
        let mut theirs = crate_part(left);
        theirs.merge(&crate_part(right)).unwrap();
        let mut ours = our_part(left);
        ours.merge(&our_part(right)).unwrap();
        prop_assert_eq!(ours.to_bytes(), theirs.to_bytes());
        assert_same_quantiles(&ours, &theirs, QUANTILES);
        let mut converted = MergedSketch::from_sketch(&crate_part(left));
        converted.merge(&MergedSketch::from_sketch(&crate_part(right))).unwrap();
        prop_assert_eq!(converted.to_bytes(), theirs.to_bytes());
    }

    /// Valid encodings with bytes flipped, replaced, inserted, removed or cut off.
    #[test]
    fn refuses_mutated_sketches_like_from_bytes(
        values in values(),
        mutations in vec(mutation(), 1..4),
    ) {
        let mut bytes = sketch_of(&values).to_bytes();
        mutations.iter().for_each(|m| apply(&mut bytes, m));
        assert_refuses_like_from_bytes(&bytes);
    }
}

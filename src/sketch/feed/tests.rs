//! `LatencySketch::from_bytes` (one parse, the crate's sketch fed from the mirror) against
//! `from_bytes_parsing_twice` (checked, then parsed again by postcard: what it was): the same
//! sketch, every field bit for bit (its encoding), or the same error, for any input.

use crate::sketch::wire::tests::{
    apply, config, encode, mutation, relayout, sample, set_field, signed_sample, sketch_of, values,
    wire_of,
};
use crate::sketch::{LatencySketch, MAX_BINS};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

fn assert_same_sketch(bytes: &[u8]) {
    match (
        LatencySketch::from_bytes(bytes),
        LatencySketch::from_bytes_parsing_twice(bytes),
    ) {
        (Ok(ours), Ok(theirs)) => {
            assert_eq!(ours.to_bytes(), theirs.to_bytes());
            assert_eq!(ours.inner.length(), theirs.inner.length());
            for q in [0.0, 0.25, 0.5, 0.99, 1.0] {
                let bits = |s: &LatencySketch| s.quantile(q).map(f64::to_bits);
                assert_eq!(bits(&ours), bits(&theirs), "q={q}");
            }
        }
        (Err(ours), Err(theirs)) => assert_eq!(ours, theirs),
        (ours, theirs) => panic!("from_bytes: {ours:?}, parsing twice: {theirs:?}"),
    }
}

#[test]
fn same_sketches_at_the_edges() {
    let wide = sketch_of(&(0..3000).map(|v| v * 997).collect::<Vec<_>>());
    for s in [
        LatencySketch::default(),
        sample(),
        signed_sample(),
        sketch_of(&[i32::MIN, i32::MAX]),
        wide,
    ] {
        let bytes = s.to_bytes();
        assert_same_sketch(&bytes);
        assert_eq!(LatencySketch::from_bytes(&bytes).unwrap().to_bytes(), bytes);
        for cut in 0..bytes.len() {
            assert_same_sketch(&bytes[..cut]);
        }
    }
    // Bins of every length the rules accept, the sample at either end.
    for len in [1usize, 127, 128, 1152, MAX_BINS as usize] {
        for at in [0, len - 1] {
            let mut w = wire_of(&sketch_of(&[1000]));
            w.store.bins.kept = vec![0; len];
            w.store.bins.kept[at] = 1;
            w.store.offset = w.store.min_key - at as i32;
            assert_same_sketch(&encode(&w));
        }
    }
    for bytes in [&[][..], &[2], &[1], &[1, 0xff]] {
        assert_same_sketch(bytes);
    }
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn same_on_arbitrary_bytes(mut bytes in vec(any::<u8>(), 0..300), versioned in any::<bool>()) {
        if versioned && !bytes.is_empty() {
            bytes[0] = 1;
        }
        assert_same_sketch(&bytes);
    }

    #[test]
    fn same_on_mutated_sketches(values in values(), mutations in vec(mutation(), 1..4)) {
        let mut bytes = sketch_of(&values).to_bytes();
        mutations.iter().for_each(|m| apply(&mut bytes, m));
        assert_same_sketch(&bytes);
    }

    #[test]
    fn same_on_edited_fields(
        values in values(),
        edits in vec((0..26u8, prop_oneof![any::<u64>(), 0..3000u64], any::<Index>()), 1..4),
    ) {
        let mut w = wire_of(&sketch_of(&values));
        edits.iter().for_each(|(field, v, at)| set_field(&mut w, *field, *v, at));
        assert_same_sketch(&encode(&w));
    }

    #[test]
    fn same_on_any_accepted_layout(
        values in vec(any::<i32>(), 1..40),
        layout in (any::<Index>(), any::<Index>(), any::<Index>(), any::<Index>()),
    ) {
        let mut w = wire_of(&sketch_of(&values));
        relayout(&mut w.store, &layout.0, &layout.1);
        relayout(&mut w.negative_store, &layout.2, &layout.3);
        assert_same_sketch(&encode(&w));
    }
}

//! `parse` against postcard: whenever it answers, postcard reads the same mirror from the same
//! bytes with nothing left; and `decode` (parse first) against `decode_with_postcard` (what
//! `decode` was): the same mirror, bit for bit, or the same error, for any input.

use super::super::tests::{
    apply, config, encode, mutation, relayout, sample, set_field, signed_sample, sketch_of, values,
    wire_of,
};
use super::super::{decode, decode_with_postcard, WireSketch};
use super::parse;
use crate::sketch::LatencySketch;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

/// Every field, floats by their bits, and how many bins each store's bytes held.
fn same_bits(a: &WireSketch, b: &WireSketch) -> bool {
    postcard::to_stdvec(a).unwrap() == postcard::to_stdvec(b).unwrap()
        && a.store.bins.encoded == b.store.bins.encoded
        && a.negative_store.bins.encoded == b.negative_store.bins.encoded
}

/// The body's verdicts agree: `parse` with postcard's reading, `decode` with the old one.
fn assert_agrees(body: &[u8]) {
    if let Some(ours) = parse(body) {
        let (theirs, rest) = postcard::take_from_bytes::<WireSketch>(body)
            .expect("parse answered where postcard fails");
        assert!(rest.is_empty(), "parse answered with bytes left over");
        assert!(same_bits(&ours, &theirs), "{ours:?} vs {theirs:?}");
    }
    match (decode(body), decode_with_postcard(body)) {
        (Ok(ours), Ok(theirs)) => assert!(same_bits(&ours, &theirs)),
        (Err(ours), Err(theirs)) => assert_eq!(ours, theirs),
        (ours, theirs) => panic!("decode: {ours:?}, decode_with_postcard: {theirs:?}"),
    }
}

/// The body of an encoded sketch (after the format byte), whatever its length.
fn body(bytes: &[u8]) -> &[u8] {
    bytes.get(1..).unwrap_or(&[])
}

/// Byte `at` written as the two-byte (overlong) varint of the same 7 bits, which postcard
/// accepts: where `at` starts a one-byte varint, the same value in another form.
fn overlong(bytes: &mut Vec<u8>, at: &Index) {
    if bytes.is_empty() {
        return;
    }
    let i = at.index(bytes.len());
    bytes[i] |= 0x80;
    bytes.insert(i + 1, 0);
}

fn samples() -> Vec<LatencySketch> {
    vec![
        LatencySketch::default(),
        sample(),
        signed_sample(),
        sketch_of(&[i32::MIN, i32::MAX]),
        sketch_of(&(0..3000).map(|v| v * 997).collect::<Vec<_>>()),
    ]
}

#[test]
fn sketches_the_extension_makes_take_the_one_pass_path() {
    for s in samples() {
        let bytes = s.to_bytes();
        let parsed = parse(body(&bytes)).expect("parse reads a sketch the crate wrote");
        assert_eq!(encode(&parsed), bytes);
        assert_agrees(body(&bytes));
    }
}

#[test]
fn every_cut_byte_change_and_overlong_form_agrees() {
    let replacements = [0x00, 0x01, 0x02, 0x0f, 0x10, 0x7f, 0x80, 0x81, 0xfe, 0xff];
    for s in samples().into_iter().take(4) {
        let bytes = s.to_bytes();
        for i in 0..=bytes.len() {
            assert_agrees(body(&bytes[..i]));
        }
        for i in 1..bytes.len() {
            for b in replacements {
                let mut changed = bytes.clone();
                changed[i] = b;
                assert_agrees(body(&changed));
            }
            let mut long = bytes.clone();
            long[i] |= 0x80;
            long.insert(i + 1, 0);
            assert_agrees(body(&long));
        }
    }
}

#[test]
fn varint_limits_agree() {
    // Lengths, counts and keys at postcard's limits: 5-byte u32s whose last byte is at and
    // past 0x0f, 10-byte u64s whose last byte is at and past 1, unterminated varints, bools.
    let config = postcard::to_stdvec(&wire_of(&sample()).config).unwrap();
    let u32_forms: [&[u8]; 4] = [
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
        &[0xff, 0xff, 0xff, 0xff, 0x10],
        &[0x80, 0x80, 0x80, 0x80, 0x00],
        &[0xff, 0xff, 0xff, 0xff, 0xff],
    ];
    let u64_forms: [&[u8]; 4] = [
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
        &[
            0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
        ],
    ];
    for form in u32_forms {
        let mut b = form.to_vec();
        b.extend(&config[b.len().min(config.len())..]);
        assert_agrees(&b);
    }
    let valid = sample().to_bytes();
    let after_config = 1 + config.len();
    for form in u64_forms {
        // As the positive store's bin count, and as its first bin.
        for at in [after_config, after_config + 2] {
            let mut b = valid[1..at].to_vec();
            b.extend(form);
            b.extend(&valid[at + 1..]);
            assert_agrees(&b);
        }
    }
}

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn agrees_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..300)) {
        assert_agrees(&bytes);
    }

    #[test]
    fn agrees_on_mutated_sketches(values in values(), mutations in vec(mutation(), 1..4)) {
        let mut bytes = sketch_of(&values).to_bytes();
        mutations.iter().for_each(|m| apply(&mut bytes, m));
        assert_agrees(body(&bytes));
    }

    #[test]
    fn agrees_on_overlong_forms(values in values(), at in vec(any::<Index>(), 1..4)) {
        let mut bytes = sketch_of(&values).to_bytes();
        at.iter().for_each(|i| overlong(&mut bytes, i));
        assert_agrees(body(&bytes));
    }

    #[test]
    fn agrees_on_edited_fields(
        values in values(),
        edits in vec((0..26u8, prop_oneof![any::<u64>(), 0..3000u64], any::<Index>()), 1..4),
    ) {
        let mut w = wire_of(&sketch_of(&values));
        edits.iter().for_each(|(field, v, at)| set_field(&mut w, *field, *v, at));
        assert_agrees(body(&encode(&w)));
    }

    #[test]
    fn agrees_on_any_accepted_layout(
        values in vec(any::<i32>(), 1..40),
        layout in (any::<Index>(), any::<Index>(), any::<Index>(), any::<Index>()),
    ) {
        let mut w = wire_of(&sketch_of(&values));
        relayout(&mut w.store, &layout.0, &layout.1);
        relayout(&mut w.negative_store, &layout.2, &layout.3);
        let bytes = encode(&w);
        prop_assert!(parse(body(&bytes)).is_some());
        assert_agrees(body(&bytes));
    }
}

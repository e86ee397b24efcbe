//! The crate's `DDSketch` built from a decoded mirror, without reading the bytes again.
//!
//! `DDSketch`'s fields are private; the only way to set them is its derived `Deserialize`. So
//! the mirror's fields are handed to it by a deserializer over the values already decoded, in
//! the order and with the types postcard hands them (a struct as a sequence of its fields, a
//! store's bins as a sequence of u64s): the crate gets the same values as from postcard, one
//! copy of the bins instead of a second parse (`tests`: same bytes as postcard's decode).

use super::wire::{WireConfig, WireSketch, WireStore};
use serde::de::value::{Error, U64Deserializer};
use serde::de::{DeserializeSeed, Deserializer, IntoDeserializer, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use sketches_ddsketch::DDSketch;

/// The crate's sketch holding exactly the mirror's fields.
pub(super) fn ddsketch(wire: &WireSketch) -> Result<DDSketch, Error> {
    serde::Deserialize::deserialize(Value::Sketch(wire))
}

/// One decoded value, as a deserializer of itself.
#[derive(Clone, Copy)]
enum Value<'a> {
    Sketch(&'a WireSketch),
    Config(&'a WireConfig),
    Store(&'a WireStore),
    Bins(&'a [u64]),
    U32(u32),
    U64(u64),
    I32(i32),
    F64(f64),
    Bool(bool),
}

impl<'a> Value<'a> {
    fn sketch_fields(w: &'a WireSketch) -> [Value<'a>; 7] {
        [
            Value::Config(&w.config),
            Value::Store(&w.store),
            Value::Store(&w.negative_store),
            Value::F64(w.min),
            Value::F64(w.max),
            Value::F64(w.sum),
            Value::U64(w.zero_count),
        ]
    }

    fn config_fields(c: &WireConfig) -> [Value<'a>; 5] {
        [
            Value::U32(c.max_num_bins),
            Value::F64(c.gamma),
            Value::F64(c.gamma_ln),
            Value::F64(c.min_value),
            Value::I32(c.offset),
        ]
    }

    fn store_fields(s: &'a WireStore) -> [Value<'a>; 7] {
        [
            Value::Bins(&s.bins.kept),
            Value::U64(s.count),
            Value::I32(s.min_key),
            Value::I32(s.max_key),
            Value::I32(s.offset),
            Value::U64(s.bin_limit as u64),
            Value::Bool(s.is_collapsed),
        ]
    }
}

impl<'de> Deserializer<'de> for Value<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Sketch(w) => visitor.visit_seq(Fields(Value::sketch_fields(w).into_iter())),
            Value::Config(c) => visitor.visit_seq(Fields(Value::config_fields(c).into_iter())),
            Value::Store(s) => visitor.visit_seq(Fields(Value::store_fields(s).into_iter())),
            Value::Bins(bins) => visitor.visit_seq(Bins(bins.iter())),
            Value::U32(v) => visitor.visit_u32(v),
            Value::U64(v) => visitor.visit_u64(v),
            Value::I32(v) => visitor.visit_i32(v),
            Value::F64(v) => visitor.visit_f64(v),
            Value::Bool(v) => visitor.visit_bool(v),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

/// A struct's fields, with their number as the hint.
struct Fields<I>(I);

impl<'de, 'a, I: ExactSizeIterator<Item = Value<'a>>> SeqAccess<'de> for Fields<I> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|value| seed.deserialize(value))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// A store's bins, each handed over by serde's own u64 deserializer: small enough to inline
/// into the crate's `Vec` loop (through `Value`, a call per bin cost more than postcard).
struct Bins<'a>(std::slice::Iter<'a, u64>);

impl<'de> SeqAccess<'de> for Bins<'_> {
    type Error = Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let bin = |&bin: &u64| -> U64Deserializer<Error> { bin.into_deserializer() };
        self.0.next().map(|b| seed.deserialize(bin(b))).transpose()
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

#[cfg(test)]
mod tests;

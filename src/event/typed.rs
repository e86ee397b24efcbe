//! The typed pass of [`super::parse_event`]: one walk over the text that keeps the fields the
//! schema knows, borrowed from the text unless an escape forces a copy, and drops the rest.
//! It builds no `Value` tree (a map node and a `String` per key and per string), which was
//! most of the time an event took.
//!
//! It answers only for an event it accepts: a rejection, or anything it does not expect (a
//! field of another type, a null required field, ...), makes it give up, and the `Value` path
//! judges the message, so every rejection is that path's own.
//!
//! Accepting is exact because this pass reads the text with the same serde_json deserializer
//! and the same calls `Value` makes (`deserialize_any` for every value, keys through
//! `parse_str`): it accepts no text `Value` refuses (numbers beyond f64, nesting of 128 levels,
//! lone surrogates, trailing text, ...), sees the same strings and numbers, and keeps the last
//! of duplicate keys as `Value`'s map does. The checks are the ones `validate_event` applies.
//! (`serde::de::IgnoredAny` would skip unknown fields faster, but serde_json skips with it
//! without those checks: `{"x": 1e400}` would pass.)

use super::{choice, response_time, score, timestamp_text, Limits, RoutingEvent, Strings, Value};
use serde::de::{Deserialize, DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
use std::borrow::Cow;
use std::fmt;

/// The event, if this pass accepts it (see the module's comment).
pub(super) fn accept(text: &str, limits: &Limits) -> Option<RoutingEvent> {
    // What serde_json::from_str does: the value, then nothing but whitespace.
    let mut root = Root::default();
    let mut de = serde_json::Deserializer::from_str(text);
    (&mut de).deserialize_any(Fill(&mut root)).ok()?;
    de.end().ok()?;
    root.validate(limits)
}

/// A known field's value: a string or a number (null is `None`, as absent: the schema treats
/// them alike). Any other type stops the pass.
pub(super) enum Scalar<'a> {
    Str(Cow<'a, str>),
    Num(Number),
}

impl<'a> Scalar<'a> {
    fn text(&self) -> Option<&str> {
        match self {
            Scalar::Str(text) => Some(text),
            Scalar::Num(_) => None,
        }
    }

    fn into_text(self) -> Option<Cow<'a, str>> {
        match self {
            Scalar::Str(text) => Some(text),
            Scalar::Num(_) => None,
        }
    }

    /// The number as a `Value`, for the checks that take one (no allocation).
    fn into_number(self) -> Option<Value> {
        match self {
            Scalar::Num(n) => Some(Value::Number(n)),
            Scalar::Str(_) => None,
        }
    }
}

/// The root's known fields, last occurrence winning.
#[derive(Default)]
pub(super) struct Root<'a> {
    pub(super) timestamp: Option<Scalar<'a>>,
    pub(super) instance_id: Option<Scalar<'a>>,
    pub(super) decision: Option<Decision<'a>>,
}

/// `routing_decision`'s known fields, last occurrence winning.
#[derive(Default)]
pub(super) struct Decision<'a> {
    pub(super) complexity: Option<Scalar<'a>>,
    pub(super) selected_model: Option<Scalar<'a>>,
    pub(super) selected_provider: Option<Scalar<'a>>,
    pub(super) complexity_score: Option<Scalar<'a>>,
    pub(super) outcome: Option<Scalar<'a>>,
    pub(super) response_time_ms: Option<Scalar<'a>>,
    pub(super) capabilities_required: Option<Vec<Cow<'a, str>>>,
    pub(super) prefer: Option<Scalar<'a>>,
    pub(super) user_model_request: Option<Scalar<'a>>,
}

impl Root<'_> {
    /// `validate_event`'s checks, any failure giving up (the `Value` path then says why).
    pub(super) fn validate(self, limits: &Limits) -> Option<RoutingEvent> {
        let d = self.decision?;
        let s = Strings { limits };
        // A bounded string, moved out of the copy serde_json made when it had escapes.
        let name = |v: Option<Scalar>, path| {
            let text = v?.into_text()?;
            s.check(&text, path).ok()?;
            Some(text.into_owned())
        };
        let stamp = self.timestamp?;
        let (timestamp_without_offset, micros) =
            timestamp_text(stamp.text()?, "timestamp", limits).ok()?;
        Some(RoutingEvent {
            micros,
            timestamp_without_offset,
            instance_id: name(self.instance_id, "instance_id")?,
            complexity: choice(d.complexity?.text()?, "routing_decision.complexity").ok()?,
            model: name(d.selected_model, "routing_decision.selected_model")?,
            provider: name(d.selected_provider, "routing_decision.selected_provider")?,
            score: score(&d.complexity_score?.into_number()?).ok()?,
            outcome: choice(d.outcome?.text()?, "routing_decision.outcome").ok()?,
            response_time_ms: optional(d.response_time_ms, |v| {
                response_time(Some(&v.into_number()?), limits).ok()?
            })?,
            capabilities: s.capabilities_of(d.capabilities_required.unwrap_or_default())?,
            prefer: optional(d.prefer, |v| {
                choice(v.text()?, "routing_decision.prefer").ok()
            })?,
            user_model_request: optional(d.user_model_request, |v| {
                name(Some(v), "routing_decision.user_model_request")
            })?,
        })
    }
}

/// An optional field: absent or null is `Some(None)`; present, what `read` makes of it, `None`
/// (giving up) where it rejects it.
fn optional<'a, T>(
    v: Option<Scalar<'a>>,
    read: impl FnOnce(Scalar<'a>) -> Option<T>,
) -> Option<Option<T>> {
    match v {
        None => Some(None),
        Some(v) => read(v).map(Some),
    }
}

impl Strings<'_> {
    /// `Strings::capabilities` of an array of strings, giving up where it rejects.
    fn capabilities_of(&self, items: Vec<Cow<str>>) -> Option<Vec<String>> {
        const ITEM: &str = "routing_decision.capabilities_required[]";
        if items.len() > self.limits.max_capabilities {
            return None;
        }
        items
            .into_iter()
            .map(|item| {
                self.check(&item, ITEM).ok()?;
                Some(item.into_owned())
            })
            .collect()
    }
}

// ---------------------------------------------------------------- reading the text

/// The keys the schema knows, at either level; a key is matched after unescaping, as `Value`
/// stores it.
enum Key {
    Timestamp,
    InstanceId,
    RoutingDecision,
    Complexity,
    SelectedModel,
    SelectedProvider,
    ComplexityScore,
    Outcome,
    ResponseTimeMs,
    CapabilitiesRequired,
    Prefer,
    UserModelRequest,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: Error>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "timestamp" => Key::Timestamp,
            "instance_id" => Key::InstanceId,
            "routing_decision" => Key::RoutingDecision,
            "complexity" => Key::Complexity,
            "selected_model" => Key::SelectedModel,
            "selected_provider" => Key::SelectedProvider,
            "complexity_score" => Key::ComplexityScore,
            "outcome" => Key::Outcome,
            "response_time_ms" => Key::ResponseTimeMs,
            "capabilities_required" => Key::CapabilitiesRequired,
            "prefer" => Key::Prefer,
            "user_model_request" => Key::UserModelRequest,
            _ => Key::Other,
        })
    }
}

/// Reads an object into the struct it borrows. In place: the structs take a few hundred
/// bytes, and returning them through serde's `Result`s copied them over and over (a sixth of
/// the time).
struct Fill<'r, T>(&'r mut T);

impl<'de> Visitor<'de> for Fill<'_, Root<'de>> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let root = self.0;
        while let Some(key) = map.next_key()? {
            match key {
                Key::Timestamp => root.timestamp = map.next_value_seed(ScalarSeed)?,
                Key::InstanceId => root.instance_id = map.next_value_seed(ScalarSeed)?,
                Key::RoutingDecision => {
                    // A later routing_decision replaces an earlier one whole.
                    let decision = root.decision.insert(Decision::default());
                    map.next_value_seed(Fill(decision))?
                }
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Fill<'_, Decision<'de>> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Fill<'_, Decision<'de>> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a routing_decision object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let d = self.0;
        while let Some(key) = map.next_key()? {
            match key {
                Key::Complexity => d.complexity = map.next_value_seed(ScalarSeed)?,
                Key::SelectedModel => d.selected_model = map.next_value_seed(ScalarSeed)?,
                Key::SelectedProvider => d.selected_provider = map.next_value_seed(ScalarSeed)?,
                Key::ComplexityScore => d.complexity_score = map.next_value_seed(ScalarSeed)?,
                Key::Outcome => d.outcome = map.next_value_seed(ScalarSeed)?,
                Key::ResponseTimeMs => d.response_time_ms = map.next_value_seed(ScalarSeed)?,
                Key::CapabilitiesRequired => {
                    d.capabilities_required = map.next_value_seed(StrsSeed)?
                }
                Key::Prefer => d.prefer = map.next_value_seed(ScalarSeed)?,
                Key::UserModelRequest => d.user_model_request = map.next_value_seed(ScalarSeed)?,
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(())
    }
}

/// Reads a known scalar field: a string, a number or null (`None`).
struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Option<Scalar<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Option<Scalar<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, a number or null")
    }

    fn visit_borrowed_str<E: Error>(self, text: &'de str) -> Result<Self::Value, E> {
        StrSeed
            .visit_borrowed_str(text)
            .map(|t| Some(Scalar::Str(t)))
    }

    fn visit_str<E: Error>(self, text: &str) -> Result<Self::Value, E> {
        StrSeed.visit_str(text).map(|t| Some(Scalar::Str(t)))
    }

    // The same numbers `Value` keeps for these calls.
    fn visit_u64<E: Error>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Num(n.into())))
    }

    fn visit_i64<E: Error>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Num(n.into())))
    }

    fn visit_f64<E: Error>(self, x: f64) -> Result<Self::Value, E> {
        let n = Number::from_f64(x).ok_or_else(|| E::custom("not finite"))?;
        Ok(Some(Scalar::Num(n)))
    }

    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Reads a string, borrowed from the text unless it had an escape.
struct StrSeed;

impl<'de> DeserializeSeed<'de> for StrSeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrSeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_str<E: Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text.to_string()))
    }
}

/// Reads `capabilities_required`: an array of strings, or null (`None`).
struct StrsSeed;

impl<'de> DeserializeSeed<'de> for StrsSeed {
    type Value = Option<Vec<Cow<'de, str>>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrsSeed {
    type Value = Option<Vec<Cow<'de, str>>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of strings or null")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrSeed)? {
            items.push(item);
        }
        Ok(Some(items))
    }

    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Any JSON value, read as `Value` reads it (every number, string, key and level checked) and
/// dropped: what the pass does with unknown fields.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E: Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E: Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E: Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E: Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_unit<E: Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

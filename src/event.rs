//! Routing events as the router instances publish them (the seed's event schema), and their
//! strict validation. Pure: no SPI, no Postgres; covered by plain unit tests.
//!
//! A message either becomes a [`RoutingEvent`] or a [`Rejection`] that says precisely which
//! field broke which rule. Unknown extra fields are tolerated, so instances can add fields
//! without breaking ingestion.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use std::fmt;

/// Task complexity as the router classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Complexity {
    Simple,
    Medium,
    Complex,
}

/// A closed set of string values (the seed's enumerations).
pub trait Choice: Copy + 'static {
    const ALL: &'static [Self];
    /// The allowed values as a reason shows them.
    const ALLOWED: &'static str;
    fn as_str(self) -> &'static str;

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == text)
    }
}

impl Choice for Complexity {
    const ALL: &'static [Self] = &[Complexity::Simple, Complexity::Medium, Complexity::Complex];
    const ALLOWED: &'static str = "simple/medium/complex";

    fn as_str(self) -> &'static str {
        match self {
            Complexity::Simple => "simple",
            Complexity::Medium => "medium",
            Complexity::Complex => "complex",
        }
    }
}

/// What the event reports: the routing decision itself or the outcome of the routed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Routed,
    Success,
    Failure,
}

impl Choice for Outcome {
    const ALL: &'static [Self] = &[Outcome::Routed, Outcome::Success, Outcome::Failure];
    const ALLOWED: &'static str = "routed/success/failure";

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Routed => "routed",
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// The router's optional preference when it picked the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preference {
    Speed,
    Cost,
}

impl Choice for Preference {
    const ALL: &'static [Self] = &[Preference::Speed, Preference::Cost];
    const ALLOWED: &'static str = "speed/cost";

    fn as_str(self) -> &'static str {
        match self {
            Preference::Speed => "speed",
            Preference::Cost => "cost",
        }
    }
}

/// Bounds the validator enforces; the ingest layer fills them from GUCs.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest accepted identifier-like string (instance, model, provider, ...), in characters.
    pub max_string_chars: usize,
    /// Largest accepted `response_time_ms`.
    pub max_response_time_ms: i64,
    /// Most entries accepted in `capabilities_required`.
    pub max_capabilities: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_string_chars: 256,
            max_response_time_ms: 3_600_000,
            max_capabilities: 32,
        }
    }
}

/// A validated routing event, normalised for storage.
#[derive(Clone, Debug, PartialEq)]
pub struct RoutingEvent {
    /// RFC 3339 in UTC with microseconds, ready for a `timestamptz` cast.
    pub timestamp: String,
    pub instance_id: String,
    pub complexity: Complexity,
    pub model: String,
    pub provider: String,
    pub score: f64,
    pub outcome: Outcome,
    pub response_time_ms: Option<i32>,
    pub capabilities: Vec<String>,
    pub prefer: Option<Preference>,
    pub user_model_request: Option<String>,
}

/// Why a message was not ingested. `code()` is stable (dashboards group by it); `Display` is
/// the precise human-readable reason with the field's path.
#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    /// The message body is SQL NULL.
    NullMessage,
    /// The body could not be parsed (a number beyond f64, nesting deeper than 128, ...).
    Unparseable {
        detail: String,
    },
    /// A field (or the root) must be a JSON object and is not.
    NotAnObject {
        path: &'static str,
        got: &'static str,
    },
    MissingField {
        path: &'static str,
    },
    WrongType {
        path: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    Empty {
        path: &'static str,
    },
    TooLong {
        path: &'static str,
        chars: usize,
        max: usize,
    },
    TooMany {
        path: &'static str,
        count: usize,
        max: usize,
    },
    NotAllowed {
        path: &'static str,
        allowed: &'static str,
        got: String,
    },
    OutOfRange {
        path: &'static str,
        rule: String,
        got: String,
    },
    BadTimestamp {
        path: &'static str,
        detail: String,
        got: String,
    },
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NullMessage => "null_message",
            Rejection::Unparseable { .. } => "unparseable",
            Rejection::NotAnObject { .. } => "not_an_object",
            Rejection::MissingField { .. } => "missing_field",
            Rejection::WrongType { .. } => "wrong_type",
            Rejection::Empty { .. } => "empty_string",
            Rejection::TooLong { .. } => "too_long",
            Rejection::TooMany { .. } => "too_many",
            Rejection::NotAllowed { .. } => "not_allowed",
            Rejection::OutOfRange { .. } => "out_of_range",
            Rejection::BadTimestamp { .. } => "bad_timestamp",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NullMessage => write!(f, "message is NULL"),
            Rejection::Unparseable { detail } => write!(f, "message cannot be parsed: {detail}"),
            Rejection::NotAnObject { path, got } => {
                write!(f, "{path}: must be an object, got {got}")
            }
            Rejection::MissingField { path } => write!(f, "{path}: required field is missing"),
            Rejection::WrongType {
                path,
                expected,
                got,
            } => {
                write!(f, "{path}: must be {expected}, got {got}")
            }
            Rejection::Empty { path } => write!(f, "{path}: must not be empty"),
            Rejection::TooLong { path, chars, max } => {
                write!(f, "{path}: {chars} characters, at most {max} allowed")
            }
            Rejection::TooMany { path, count, max } => {
                write!(f, "{path}: {count} entries, at most {max} allowed")
            }
            Rejection::NotAllowed { path, allowed, got } => {
                write!(f, "{path}: must be one of {allowed}, got {got}")
            }
            Rejection::OutOfRange { path, rule, got } => {
                write!(f, "{path}: must be {rule}, got {got}")
            }
            Rejection::BadTimestamp { path, detail, got } => {
                write!(f, "{path}: not an ISO 8601 / RFC 3339 timestamp with offset ({detail}), got {got}")
            }
        }
    }
}

/// Parses and validates one message body.
pub fn parse_event(body: Option<&str>, limits: &Limits) -> Result<RoutingEvent, Rejection> {
    let body = body.ok_or(Rejection::NullMessage)?;
    let root: Value = serde_json::from_str(body).map_err(|e| Rejection::Unparseable {
        detail: e.to_string(),
    })?;
    validate_event(&root, limits)
}

/// Validates an already parsed message against the seed's event schema.
pub fn validate_event(root: &Value, limits: &Limits) -> Result<RoutingEvent, Rejection> {
    let root = as_object(root, "$")?;
    let decision = as_object(
        required(root, "routing_decision", "routing_decision")?,
        "routing_decision",
    )?;
    let s = Strings { limits };

    Ok(RoutingEvent {
        timestamp: timestamp(required(root, "timestamp", "timestamp")?, "timestamp")?,
        instance_id: s.name(required(root, "instance_id", "instance_id")?, "instance_id")?,
        complexity: one_of(
            required(decision, "complexity", "routing_decision.complexity")?,
            "routing_decision.complexity",
        )?,
        model: s.name(
            required(
                decision,
                "selected_model",
                "routing_decision.selected_model",
            )?,
            "routing_decision.selected_model",
        )?,
        provider: s.name(
            required(
                decision,
                "selected_provider",
                "routing_decision.selected_provider",
            )?,
            "routing_decision.selected_provider",
        )?,
        score: score(required(
            decision,
            "complexity_score",
            "routing_decision.complexity_score",
        )?)?,
        outcome: one_of(
            required(decision, "outcome", "routing_decision.outcome")?,
            "routing_decision.outcome",
        )?,
        response_time_ms: response_time(decision.get("response_time_ms"), limits)?,
        capabilities: s.capabilities(decision.get("capabilities_required"))?,
        prefer: optional(decision.get("prefer"), |v| {
            one_of(v, "routing_decision.prefer")
        })?,
        user_model_request: optional(decision.get("user_model_request"), |v| {
            s.name(v, "routing_decision.user_model_request")
        })?,
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A short rendering of a rejected value, so reasons stay small even for 1 MB inputs.
fn shown(v: &Value) -> String {
    const MAX: usize = 64;
    let text = v.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}... ({} chars)", &text[..cut], text.chars().count()),
        None => text,
    }
}

fn as_object<'a>(v: &'a Value, path: &'static str) -> Result<&'a Map<String, Value>, Rejection> {
    v.as_object().ok_or(Rejection::NotAnObject {
        path,
        got: type_name(v),
    })
}

/// A required field: missing and JSON null are both "missing".
fn required<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<&'a Value, Rejection> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(Rejection::MissingField { path }),
        Some(v) => Ok(v),
    }
}

/// An optional field: missing and JSON null are both "absent".
fn optional<T>(
    v: Option<&Value>,
    parse: impl FnOnce(&Value) -> Result<T, Rejection>,
) -> Result<Option<T>, Rejection> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse(v).map(Some),
    }
}

fn string<'a>(v: &'a Value, path: &'static str) -> Result<&'a str, Rejection> {
    v.as_str().ok_or(Rejection::WrongType {
        path,
        expected: "a string",
        got: type_name(v),
    })
}

fn one_of<T: Choice>(v: &Value, path: &'static str) -> Result<T, Rejection> {
    T::parse(string(v, path)?).ok_or_else(|| Rejection::NotAllowed {
        path,
        allowed: T::ALLOWED,
        got: shown(v),
    })
}

struct Strings<'l> {
    limits: &'l Limits,
}

impl Strings<'_> {
    /// A bounded, non-empty string.
    fn name(&self, v: &Value, path: &'static str) -> Result<String, Rejection> {
        let text = string(v, path)?;
        self.bounded(text, path)
    }

    fn bounded(&self, text: &str, path: &'static str) -> Result<String, Rejection> {
        let max = self.limits.max_string_chars;
        if text.is_empty() {
            return Err(Rejection::Empty { path });
        }
        // Bytes bound chars from above: only count chars when the byte length is over the limit.
        if text.len() > max {
            let chars = text.chars().count();
            if chars > max {
                return Err(Rejection::TooLong { path, chars, max });
            }
        }
        if text.contains('\0') {
            return Err(Rejection::OutOfRange {
                path,
                rule: "free of NUL characters".into(),
                got: shown(&Value::String(text.to_string())),
            });
        }
        Ok(text.to_string())
    }

    /// `capabilities_required`: an array of bounded strings; absent or null means none.
    fn capabilities(&self, v: Option<&Value>) -> Result<Vec<String>, Rejection> {
        const PATH: &str = "routing_decision.capabilities_required";
        const ITEM: &str = "routing_decision.capabilities_required[]";
        let items = match v {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(Rejection::WrongType {
                    path: PATH,
                    expected: "an array of strings",
                    got: type_name(other),
                })
            }
        };
        let max = self.limits.max_capabilities;
        if items.len() > max {
            return Err(Rejection::TooMany {
                path: PATH,
                count: items.len(),
                max,
            });
        }
        items.iter().map(|item| self.name(item, ITEM)).collect()
    }
}

/// `complexity_score`: a finite JSON number in [0, 5]. JSON has no NaN or infinity, so a
/// string such as "NaN" is a type error, and numbers beyond f64 fail at parse time.
fn score(v: &Value) -> Result<f64, Rejection> {
    const PATH: &str = "routing_decision.complexity_score";
    let n = v.as_f64().ok_or(Rejection::WrongType {
        path: PATH,
        expected: "a number",
        got: type_name(v),
    })?;
    if !n.is_finite() || !(0.0..=5.0).contains(&n) {
        return Err(Rejection::OutOfRange {
            path: PATH,
            rule: "a number in [0, 5]".into(),
            got: shown(v),
        });
    }
    Ok(n)
}

/// `response_time_ms`: absent/null, or a non-negative integer up to the configured bound.
fn response_time(v: Option<&Value>, limits: &Limits) -> Result<Option<i32>, Rejection> {
    const PATH: &str = "routing_decision.response_time_ms";
    optional(v, |v| {
        let rule = || format!("an integer in [0, {}]", limits.max_response_time_ms);
        let Value::Number(n) = v else {
            return Err(Rejection::WrongType {
                path: PATH,
                expected: "an integer or null",
                got: type_name(v),
            });
        };
        let ms = n.as_i64().ok_or_else(|| Rejection::OutOfRange {
            path: PATH,
            rule: rule(),
            got: shown(v),
        })?;
        let max = limits.max_response_time_ms.min(i64::from(i32::MAX));
        if !(0..=max).contains(&ms) {
            return Err(Rejection::OutOfRange {
                path: PATH,
                rule: rule(),
                got: shown(v),
            });
        }
        Ok(ms as i32)
    })
}

/// `timestamp`: RFC 3339 (the ISO 8601 profile Elixir's `DateTime.to_iso8601` emits), with an
/// explicit offset, normalised to UTC. A timestamp without offset is ambiguous and rejected;
/// so is one before 1970 (no router ran then; PostgreSQL also refuses year 0).
fn timestamp(v: &Value, path: &'static str) -> Result<String, Rejection> {
    let text = string(v, path)?;
    let parsed = DateTime::parse_from_rfc3339(text).map_err(|e| Rejection::BadTimestamp {
        path,
        detail: e.to_string(),
        got: shown(v),
    })?;
    let utc = parsed.with_timezone(&Utc);
    if utc < DateTime::UNIX_EPOCH {
        return Err(Rejection::OutOfRange {
            path,
            rule: "1970 or later".into(),
            got: shown(v),
        });
    }
    Ok(utc.to_rfc3339_opts(SecondsFormat::Micros, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "timestamp": "2025-10-27T06:55:00Z",
            "instance_id": "singularity-1",
            "routing_decision": {
                "complexity": "complex",
                "selected_model": "gpt-4o",
                "selected_provider": "github_models",
                "complexity_score": 4.8,
                "outcome": "routed",
                "response_time_ms": null,
                "capabilities_required": [],
                "prefer": null,
                "user_model_request": null
            }
        })
    }

    fn check(v: &Value) -> Result<RoutingEvent, Rejection> {
        validate_event(v, &Limits::default())
    }

    fn with(path: &[&str], value: Value) -> Value {
        let mut v = valid();
        let mut cur = &mut v;
        for key in &path[..path.len() - 1] {
            cur = cur.get_mut(*key).unwrap();
        }
        cur.as_object_mut()
            .unwrap()
            .insert(path[path.len() - 1].to_string(), value);
        v
    }

    fn without(path: &[&str]) -> Value {
        let mut v = valid();
        let mut cur = &mut v;
        for key in &path[..path.len() - 1] {
            cur = cur.get_mut(*key).unwrap();
        }
        cur.as_object_mut().unwrap().remove(path[path.len() - 1]);
        v
    }

    fn code(v: &Value) -> &'static str {
        check(v).unwrap_err().code()
    }

    #[test]
    fn seed_example_is_valid() {
        let e = check(&valid()).unwrap();
        assert_eq!(e.timestamp, "2025-10-27T06:55:00.000000Z");
        assert_eq!(e.instance_id, "singularity-1");
        assert_eq!(e.complexity, Complexity::Complex);
        assert_eq!(e.model, "gpt-4o");
        assert_eq!(e.provider, "github_models");
        assert_eq!(e.score, 4.8);
        assert_eq!(e.outcome, Outcome::Routed);
        assert_eq!(e.response_time_ms, None);
        assert!(e.capabilities.is_empty());
        assert_eq!(e.prefer, None);
        assert_eq!(e.user_model_request, None);
    }

    #[test]
    fn optional_fields_may_be_absent_and_extra_fields_are_tolerated() {
        let mut v = without(&["routing_decision", "capabilities_required"]);
        v["routing_decision"]
            .as_object_mut()
            .unwrap()
            .remove("prefer");
        v["routing_decision"]
            .as_object_mut()
            .unwrap()
            .remove("response_time_ms");
        v["routing_decision"]
            .as_object_mut()
            .unwrap()
            .remove("user_model_request");
        v["extra"] = json!({"anything": [1, 2]});
        v["routing_decision"]["new_field"] = json!("x");
        assert!(check(&v).is_ok());
    }

    #[test]
    fn full_outcome_event_is_normalised() {
        let mut v = with(&["routing_decision", "outcome"], json!("success"));
        v["routing_decision"]["response_time_ms"] = json!(1234);
        v["routing_decision"]["capabilities_required"] = json!(["vision", "function_calling"]);
        v["routing_decision"]["prefer"] = json!("speed");
        v["routing_decision"]["user_model_request"] = json!("claude-3");
        v["timestamp"] = json!("2025-10-27T08:55:00.5+02:00");
        let e = check(&v).unwrap();
        assert_eq!(e.timestamp, "2025-10-27T06:55:00.500000Z");
        assert_eq!(e.outcome, Outcome::Success);
        assert_eq!(e.response_time_ms, Some(1234));
        assert_eq!(e.capabilities, vec!["vision", "function_calling"]);
        assert_eq!(e.prefer, Some(Preference::Speed));
        assert_eq!(e.user_model_request.as_deref(), Some("claude-3"));
    }

    #[test]
    fn null_message() {
        assert_eq!(
            parse_event(None, &Limits::default()).unwrap_err(),
            Rejection::NullMessage
        );
    }

    #[test]
    fn unparseable_number_out_of_range() {
        let body = r#"{"timestamp": "2025-10-27T06:55:00Z", "x": 1e400}"#;
        let err = parse_event(Some(body), &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "unparseable");
        assert!(err.to_string().contains("number out of range"), "{err}");
    }

    #[test]
    fn unparseable_nesting_too_deep() {
        let body = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        assert_eq!(
            parse_event(Some(&body), &Limits::default())
                .unwrap_err()
                .code(),
            "unparseable"
        );
    }

    #[test]
    fn not_an_object_root() {
        for v in [
            json!([1, 2]),
            json!("text"),
            json!(42),
            json!(true),
            json!(null),
        ] {
            let err = check(&v).unwrap_err();
            assert_eq!(err.code(), "not_an_object");
            assert!(err.to_string().starts_with("$: must be an object"), "{err}");
        }
    }

    #[test]
    fn routing_decision_not_an_object() {
        let err = check(&with(&["routing_decision"], json!("complex"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "routing_decision: must be an object, got a string"
        );
    }

    #[test]
    fn missing_required_fields() {
        for path in [
            &["timestamp"][..],
            &["instance_id"],
            &["routing_decision"],
            &["routing_decision", "complexity"],
            &["routing_decision", "selected_model"],
            &["routing_decision", "selected_provider"],
            &["routing_decision", "complexity_score"],
            &["routing_decision", "outcome"],
        ] {
            let err = check(&without(path)).unwrap_err();
            assert_eq!(
                err,
                Rejection::MissingField { path: leak(path) },
                "{path:?}"
            );
            // JSON null counts as missing for required fields.
            assert_eq!(code(&with(path, Value::Null)), "missing_field", "{path:?}");
        }
    }

    fn leak(path: &[&str]) -> &'static str {
        Box::leak(path.join(".").into_boxed_str())
    }

    #[test]
    fn wrong_types() {
        let cases = [
            (&["timestamp"][..], json!(1761548100)),
            (&["instance_id"], json!(7)),
            (&["routing_decision", "complexity"], json!(3)),
            (&["routing_decision", "selected_model"], json!(["gpt-4o"])),
            (
                &["routing_decision", "selected_provider"],
                json!({"name": "x"}),
            ),
            (&["routing_decision", "complexity_score"], json!("4.8")),
            (&["routing_decision", "complexity_score"], json!("NaN")),
            (&["routing_decision", "complexity_score"], json!("Infinity")),
            (&["routing_decision", "outcome"], json!(true)),
            (&["routing_decision", "response_time_ms"], json!("120")),
            (
                &["routing_decision", "capabilities_required"],
                json!("vision"),
            ),
            (
                &["routing_decision", "capabilities_required"],
                json!([1, 2]),
            ),
            (&["routing_decision", "prefer"], json!(1)),
            (&["routing_decision", "user_model_request"], json!(false)),
        ];
        for (path, value) in cases {
            let err = check(&with(path, value.clone())).unwrap_err();
            assert_eq!(err.code(), "wrong_type", "{path:?} = {value}: {err}");
            assert!(
                err.to_string().starts_with(path.join(".").as_str()),
                "{err}"
            );
        }
    }

    #[test]
    fn score_out_of_range() {
        for value in [json!(7.5), json!(-0.1), json!(5.000001), json!(1e300)] {
            let err = check(&with(
                &["routing_decision", "complexity_score"],
                value.clone(),
            ))
            .unwrap_err();
            assert_eq!(err.code(), "out_of_range", "{value}");
        }
        let err = check(&with(&["routing_decision", "complexity_score"], json!(7.5))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "routing_decision.complexity_score: must be a number in [0, 5], got 7.5"
        );
        for ok in [json!(0), json!(0.0), json!(5), json!(2.5)] {
            assert!(check(&with(&["routing_decision", "complexity_score"], ok)).is_ok());
        }
    }

    #[test]
    fn response_time_bounds() {
        let path = &["routing_decision", "response_time_ms"][..];
        for bad in [
            json!(-1),
            json!(3_600_001),
            json!(12.5),
            json!(1e12),
            json!(u64::MAX),
        ] {
            assert_eq!(code(&with(path, bad.clone())), "out_of_range", "{bad}");
        }
        for ok in [json!(0), json!(3_600_000), json!(250)] {
            assert!(check(&with(path, ok)).is_ok());
        }
        let tight = Limits {
            max_response_time_ms: 100,
            ..Limits::default()
        };
        assert!(validate_event(&with(path, json!(101)), &tight).is_err());
    }

    #[test]
    fn unknown_enum_values() {
        for (path, value) in [
            (&["routing_decision", "complexity"][..], "extreme"),
            (&["routing_decision", "complexity"], "Simple"),
            (&["routing_decision", "outcome"], "timeout"),
            (&["routing_decision", "prefer"], "quality"),
        ] {
            let err = check(&with(path, json!(value))).unwrap_err();
            assert_eq!(err.code(), "not_allowed", "{path:?}");
        }
        let err = check(&with(&["routing_decision", "complexity"], json!("extreme"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "routing_decision.complexity: must be one of simple/medium/complex, got \"extreme\""
        );
    }

    #[test]
    fn empty_strings() {
        for path in [
            &["instance_id"][..],
            &["routing_decision", "selected_model"],
            &["routing_decision", "selected_provider"],
        ] {
            assert_eq!(code(&with(path, json!(""))), "empty_string", "{path:?}");
        }
    }

    #[test]
    fn strings_are_bounded() {
        let huge = "x".repeat(1 << 20);
        for path in [
            &["instance_id"][..],
            &["routing_decision", "selected_model"],
            &["routing_decision", "selected_provider"],
            &["routing_decision", "user_model_request"],
        ] {
            let err = check(&with(path, json!(huge))).unwrap_err();
            assert_eq!(
                err,
                Rejection::TooLong {
                    path: leak(path),
                    chars: 1 << 20,
                    max: 256
                }
            );
        }
        // The limit is in characters, not bytes.
        let accented = "é".repeat(256);
        assert!(check(&with(&["instance_id"], json!(accented))).is_ok());
        let err = check(&with(
            &["routing_decision", "capabilities_required"],
            json!([huge]),
        ))
        .unwrap_err();
        assert_eq!(err.code(), "too_long");
    }

    #[test]
    fn rejection_reasons_stay_short_for_huge_values() {
        let huge = "y".repeat(1 << 20);
        let err = check(&with(&["routing_decision", "complexity"], json!(huge))).unwrap_err();
        assert!(err.to_string().len() < 200, "{}", err.to_string().len());
    }

    #[test]
    fn nul_characters_are_rejected() {
        assert_eq!(
            code(&with(&["instance_id"], json!("a\u{0}b"))),
            "out_of_range"
        );
    }

    #[test]
    fn too_many_capabilities() {
        let many: Vec<String> = (0..33).map(|i| format!("cap{i}")).collect();
        let err = check(&with(
            &["routing_decision", "capabilities_required"],
            json!(many),
        ))
        .unwrap_err();
        assert_eq!(err.code(), "too_many");
    }

    #[test]
    fn bad_timestamps() {
        for bad in [
            "2025-10-27",
            "2025-10-27T06:55:00",
            "27/10/2025 06:55",
            "2025-13-01T00:00:00Z",
            "2025-10-27T25:00:00Z",
            "yesterday",
            "",
        ] {
            assert_eq!(
                code(&with(&["timestamp"], json!(bad))),
                "bad_timestamp",
                "{bad}"
            );
        }
    }

    #[test]
    fn timestamps_before_1970_are_out_of_range() {
        for old in ["0000-01-01T00:00:00Z", "1969-12-31T23:59:59Z"] {
            assert_eq!(
                code(&with(&["timestamp"], json!(old))),
                "out_of_range",
                "{old}"
            );
        }
        assert!(check(&with(&["timestamp"], json!("1970-01-01T00:00:00Z"))).is_ok());
    }
}

//! Routing events as the router instances publish them (the seed's event schema), and their
//! strict validation. Pure: no SPI, no Postgres; covered by plain unit tests.
//!
//! A message either becomes a [`RoutingEvent`] or a [`Rejection`] that says precisely which
//! field broke which rule. Unknown extra fields are tolerated, so instances can add fields
//! without breaking ingestion.

use chrono::{DateTime, FixedOffset, SecondsFormat, Timelike, Utc};
use serde_json::{Map, Value};
use std::fmt;

mod jsonb;
mod typed;

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
    /// The server time event timestamps are judged against (ingest: the transaction's start,
    /// so one transaction judges every event alike); `None` applies no window.
    pub now: Option<DateTime<Utc>>,
    /// Oldest accepted timestamp, in seconds before `now`; 0: no bound.
    pub max_age_s: i64,
    /// Furthest accepted timestamp (clock skew), in seconds after `now`; 0: no bound.
    pub max_future_s: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_string_chars: 256,
            max_response_time_ms: 3_600_000,
            max_capabilities: 32,
            now: None,
            max_age_s: 7 * 86_400,
            max_future_s: 15 * 60,
        }
    }
}

impl Limits {
    /// The rule an event at `micros` (since 1970, UTC) breaks by lying outside the window
    /// around `now`, if any. The bounds themselves are inside.
    fn window_rule(&self, micros: i64) -> Option<String> {
        const MICROS_PER_S: i64 = 1_000_000;
        let now = self.now?.timestamp_micros();
        let oldest = now.saturating_sub(self.max_age_s.saturating_mul(MICROS_PER_S));
        if self.max_age_s > 0 && micros < oldest {
            let age = duration_text(self.max_age_s);
            return Some(format!(
                "at most {age} before the server time (centralcloud.max_event_age)"
            ));
        }
        let furthest = now.saturating_add(self.max_future_s.saturating_mul(MICROS_PER_S));
        if self.max_future_s > 0 && micros > furthest {
            let skew = duration_text(self.max_future_s);
            return Some(format!(
                "at most {skew} after the server time (centralcloud.max_event_clock_skew)"
            ));
        }
        None
    }
}

/// Seconds as an operator reads them in a reason: "7 days", "15 min", "1 day 12 h", "90 s"
/// as "1 min 30 s".
fn duration_text(seconds: i64) -> String {
    const UNITS: [(i64, &str, &str); 4] = [
        (86_400, "day", "days"),
        (3_600, "h", "h"),
        (60, "min", "min"),
        (1, "s", "s"),
    ];
    let mut left = seconds;
    let mut parts = Vec::new();
    for (size, one, many) in UNITS {
        let n = left / size;
        left %= size;
        if n > 0 {
            parts.push(format!("{n} {}", if n == 1 { one } else { many }));
        }
    }
    if parts.is_empty() {
        return "0 s".into();
    }
    parts.join(" ")
}

/// A validated routing event, normalised for storage.
#[derive(Clone, Debug, PartialEq)]
pub struct RoutingEvent {
    /// The event's instant in microseconds since 1970-01-01T00:00:00Z (what ingest stores);
    /// [`RoutingEvent::timestamp`] is its text.
    pub micros: i64,
    /// The instance wrote no offset: the timestamp was read as UTC.
    pub timestamp_without_offset: bool,
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

impl RoutingEvent {
    /// The instant as RFC 3339 in UTC with microseconds, ready for a `timestamptz` cast.
    /// Formatted on demand: ingest stores `micros`, only `routing_event_verdict()` shows it.
    pub fn timestamp(&self) -> String {
        DateTime::from_timestamp_micros(self.micros)
            .expect("within 1970..=9999")
            .to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

/// Why a message was not ingested. `code()` is stable (dashboards group by it); `Display` is
/// the precise human-readable reason with the field's path.
#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    /// The message body is SQL NULL.
    NullMessage,
    /// The body could not be parsed (a number beyond f64, nesting of 128 levels or more, ...).
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
///
/// Two passes, one verdict: the typed pass (src/event/typed.rs) reads the usual event without
/// building a `Value` tree and answers only when it accepts it; everything else, every
/// rejection among it, is judged by [`parse_event_via_value`], so results and reasons are that
/// path's own.
pub fn parse_event(body: Option<&str>, limits: &Limits) -> Result<RoutingEvent, Rejection> {
    let text = body.ok_or(Rejection::NullMessage)?;
    match typed::accept(text, limits) {
        Some(event) => Ok(event),
        None => parse_event_via_value(body, limits),
    }
}

/// Validates a message stored as jsonb, from `stored`, the binary form PostgreSQL keeps (see
/// [`jsonb`]); when that pass gives up, from the message's text, which `text` prints.
pub fn parse_stored_event(
    stored: &[u8],
    text: impl FnOnce() -> String,
    limits: &Limits,
) -> Result<RoutingEvent, Rejection> {
    match jsonb::accept(stored, limits) {
        Some(event) => Ok(event),
        None => parse_event(Some(&text()), limits),
    }
}

/// Parses a message body into a `Value` and validates that: the reference path, which judges
/// whatever the typed pass does not accept (and is its oracle in the tests).
pub fn parse_event_via_value(
    body: Option<&str>,
    limits: &Limits,
) -> Result<RoutingEvent, Rejection> {
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

    let (timestamp_without_offset, micros) = timestamp(
        required(root, "timestamp", "timestamp")?,
        "timestamp",
        limits,
    )?;
    Ok(RoutingEvent {
        micros,
        timestamp_without_offset,
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

/// [`shown`] of a JSON string: the checks below take `&str` so the typed pass can use them too.
fn shown_text(text: &str) -> String {
    shown(&Value::String(text.to_string()))
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
    choice(string(v, path)?, path)
}

fn choice<T: Choice>(text: &str, path: &'static str) -> Result<T, Rejection> {
    T::parse(text).ok_or_else(|| Rejection::NotAllowed {
        path,
        allowed: T::ALLOWED,
        got: shown_text(text),
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
        self.check(text, path)?;
        Ok(text.to_string())
    }

    /// The rules of [`Strings::bounded`], without the copy (the typed pass may own the text).
    fn check(&self, text: &str, path: &'static str) -> Result<(), Rejection> {
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
                got: shown_text(text),
            });
        }
        Ok(())
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

/// `response_time_ms`: absent/null, or a finite non-negative JSON number (the seed types it
/// "number": `812.0` and `15.51` are latencies too), rounded to whole milliseconds (half away
/// from zero), up to the configured bound after rounding.
fn response_time(v: Option<&Value>, limits: &Limits) -> Result<Option<i32>, Rejection> {
    const PATH: &str = "routing_decision.response_time_ms";
    optional(v, |v| {
        let Value::Number(n) = v else {
            return Err(Rejection::WrongType {
                path: PATH,
                expected: "a number or null",
                got: type_name(v),
            });
        };
        let max = limits.max_response_time_ms.min(i64::from(i32::MAX));
        let out_of_range = || Rejection::OutOfRange {
            path: PATH,
            rule: format!("a number in [0, {max}] (rounded to whole ms)"),
            got: shown(v),
        };
        // An integer is taken exactly; anything else as the double it denotes. -0 and -0.0 are
        // zero, not negative.
        let ms = match n.as_i64() {
            Some(ms) => ms,
            None => {
                let x = n
                    .as_f64()
                    .filter(|x| x.is_finite())
                    .ok_or_else(out_of_range)?;
                if x < 0.0 || x.round() > max as f64 {
                    return Err(out_of_range());
                }
                x.round() as i64
            }
        };
        if !(0..=max).contains(&ms) {
            return Err(out_of_range());
        }
        Ok(ms as i32)
    })
}

/// `timestamp`: RFC 3339 (the ISO 8601 profile Elixir's `DateTime.to_iso8601` emits),
/// normalised to UTC with microseconds. A timestamp without offset (Python's
/// `datetime.utcnow().isoformat()`: `2025-10-27T06:55:00.123456`, `T` or a space between date
/// and time, seconds required) is read as UTC, and the event says so
/// ([`RoutingEvent::timestamp_without_offset`]: ingest counts them).
///
/// The accepted instants are exactly those whose stored value, the instant truncated to the
/// microsecond, lies in [`FIRST_MICROS`, `LAST_MICROS`]: 1970-01-01T00:00:00Z (no router ran
/// before; PostgreSQL refuses year 0) to 9999-12-31T23:59:59.999999Z (the last one whose
/// normalised text has a four-digit year: chrono writes `+10000-...`, which `timestamptz`
/// refuses). The range is judged in UTC, after the offset: `9999-12-31T23:59:59-00:01` and
/// `1970-01-01T00:30:00+01:00` are out of range. Fractional digits beyond the sixth are
/// truncated, not rounded as PostgreSQL rounds its own input (at most 1 µs apart), so the
/// stored value never moves past the range: `...59.9999999Z` is stored as `...59.999999Z`.
///
/// What chrono accepts but PostgreSQL's `timestamptz` refuses is rejected too, so an event is
/// valid by one rule everywhere (ingest stores the normalised value, never the text): more than
/// [`MAX_TIMESTAMP_CHARS`] characters (chrono takes any number of fractional digits, PostgreSQL
/// about 128), a non-ASCII character (chrono takes U+2212 MINUS SIGN as the offset's sign), an
/// offset beyond ±15:59 (chrono goes to ±23:59) and a leap second (chrono takes `:60` anywhere,
/// PostgreSQL not `23:59:60.5`). No router emits any of these.
///
/// Last, the window around the server time ([`Limits::now`]), if any: far-future events would
/// otherwise sit in every "last 24 hours" view for good.
///
/// Returns whether the offset was missing, and the stored instant in microseconds.
fn timestamp(v: &Value, path: &'static str, limits: &Limits) -> Result<(bool, i64), Rejection> {
    timestamp_text(string(v, path)?, path, limits)
}

/// [`timestamp`] of the string's text.
fn timestamp_text(
    text: &str,
    path: &'static str,
    limits: &Limits,
) -> Result<(bool, i64), Rejection> {
    if text.len() > MAX_TIMESTAMP_CHARS {
        let chars = text.chars().count();
        if chars > MAX_TIMESTAMP_CHARS {
            return Err(Rejection::TooLong {
                path,
                chars,
                max: MAX_TIMESTAMP_CHARS,
            });
        }
    }
    let bad = |detail: String| Rejection::BadTimestamp {
        path,
        detail,
        got: shown_text(text),
    };
    if !text.is_ascii() {
        return Err(bad("non-ASCII character".into()));
    }
    let (parsed, without_offset) = match DateTime::parse_from_rfc3339(text) {
        Ok(parsed) => (parsed, false),
        Err(e) => (
            without_offset_as_utc(text).ok_or_else(|| bad(e.to_string()))?,
            true,
        ),
    };
    let out_of_range = |rule: String| Rejection::OutOfRange {
        path,
        rule,
        got: shown_text(text),
    };
    // Whole seconds since 1970 times 10^6 plus the truncated fraction: the instant floored to
    // the microsecond, which is what is stored.
    let micros = parsed.timestamp_micros();
    if !(FIRST_MICROS..=LAST_MICROS).contains(&micros) {
        return Err(out_of_range(
            "between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z".into(),
        ));
    }
    if parsed.offset().local_minus_utc().abs() >= 16 * 3600 {
        return Err(out_of_range("at a UTC offset within ±15:59".into()));
    }
    if parsed.nanosecond() >= 1_000_000_000 {
        return Err(out_of_range("free of leap seconds (second 60)".into()));
    }
    if let Some(rule) = limits.window_rule(micros) {
        return Err(out_of_range(rule));
    }
    Ok((without_offset, micros))
}

/// An RFC 3339 date-time without its offset, read as UTC: the same grammar (`T`, `t` or a
/// space; seconds required; any number of fractional digits), so only the missing offset is
/// forgiven.
fn without_offset_as_utc(text: &str) -> Option<DateTime<FixedOffset>> {
    let bytes = text.as_bytes();
    if bytes.len() < 19 || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let well_formed = bytes.iter().enumerate().all(|(i, b)| match i {
        4 | 7 => *b == b'-',
        10 => true,
        13 | 16 => *b == b':',
        19 => *b == b'.',
        _ => b.is_ascii_digit(),
    }) && bytes.len() != 20;
    if !well_formed {
        return None;
    }
    DateTime::parse_from_rfc3339(&format!("{text}Z")).ok()
}

/// First and last accepted instant, in microseconds since 1970-01-01T00:00:00Z (see
/// [`timestamp`]).
const FIRST_MICROS: i64 = 0;
const LAST_MICROS: i64 = 253_402_300_799_999_999;

/// Longest accepted `timestamp`: nanoseconds and an offset take 35 characters.
const MAX_TIMESTAMP_CHARS: usize = 64;

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
        assert_eq!(e.timestamp(), "2025-10-27T06:55:00.000000Z");
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
        assert_eq!(e.timestamp(), "2025-10-27T06:55:00.500000Z");
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
        for path in super::props::REQUIRED {
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
            json!(-0.4),
            json!(3_600_000.5),
            json!(1e12),
            json!(u64::MAX),
        ] {
            assert_eq!(code(&with(path, bad.clone())), "out_of_range", "{bad}");
        }
        // The seed types it "number": fractions are rounded to whole ms, half away from zero.
        for (ok, ms) in [
            (json!(0), 0),
            (json!(3_600_000), 3_600_000),
            (json!(250), 250),
            (json!(812.0), 812),
            (json!(15.51), 16),
            (json!(12.5), 13),
            (json!(0.4), 0),
            (json!(-0.0), 0),
            (json!(3_600_000.4), 3_600_000),
        ] {
            let event = check(&with(path, ok.clone())).unwrap();
            assert_eq!(event.response_time_ms, Some(ms), "{ok}");
        }
        // jsonb prints what it stores as numeric: the validator reads that text.
        for (text, ms) in [("1e3", 1000), ("-0", 0), ("3.6e6", 3_600_000), ("0e0", 0)] {
            let body = valid().to_string().replace(
                "\"response_time_ms\":null",
                &format!("\"response_time_ms\":{text}"),
            );
            let event = parse_event(Some(&body), &Limits::default()).unwrap();
            assert_eq!(event.response_time_ms, Some(ms), "{text}");
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
            "2025-10-27T06:55",
            "2025-10-27T06:55:00.",
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

    /// Python's `datetime.utcnow().isoformat()` and `str(datetime)`: read as UTC, and flagged.
    #[test]
    fn timestamps_without_offset_are_utc() {
        for (naive, stored) in [
            ("2025-10-27T06:55:00", "2025-10-27T06:55:00.000000Z"),
            ("2025-10-27 06:55:00.123456", "2025-10-27T06:55:00.123456Z"),
            ("2025-10-27t06:55:00.5", "2025-10-27T06:55:00.500000Z"),
        ] {
            let event = check(&with(&["timestamp"], json!(naive))).unwrap();
            assert_eq!(
                (event.timestamp().as_str(), event.timestamp_without_offset),
                (stored, true)
            );
        }
        let event = check(&with(&["timestamp"], json!("2025-10-27T06:55:00Z"))).unwrap();
        assert!(!event.timestamp_without_offset);
        // Only the offset is forgiven: range, leap seconds and the window still apply.
        for (naive, code_expected) in [
            ("1969-12-31T23:59:59", "out_of_range"),
            ("2016-12-31T23:59:60", "out_of_range"),
            ("2025-02-29T00:00:00", "bad_timestamp"),
            ("2025-10-27T06:55:00.+01:00", "bad_timestamp"),
        ] {
            assert_eq!(
                code(&with(&["timestamp"], json!(naive))),
                code_expected,
                "{naive}"
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

    /// The timestamp as stored, or the rejection's code and reason.
    fn stored(ts: &str, limits: &Limits) -> Result<String, (&'static str, String)> {
        validate_event(&with(&["timestamp"], json!(ts)), limits)
            .map(|e| e.timestamp())
            .map_err(|e| (e.code(), e.to_string()))
    }

    /// The accepted range is judged in UTC on the stored (truncated) instant: from 1970 to the
    /// last microsecond of 9999, the last one whose normalised text PostgreSQL accepts.
    #[test]
    fn timestamp_range_edges_in_utc() {
        let limits = Limits::default();
        for (ts, want) in [
            ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"),
            ("1970-01-01T15:59:00+15:59", "1970-01-01T00:00:00.000000Z"),
            ("1969-12-31T08:01:00-15:59", "1970-01-01T00:00:00.000000Z"),
            (
                "1970-01-01T00:00:00.0000001Z",
                "1970-01-01T00:00:00.000000Z",
            ),
            ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
            // Truncated, never rounded up past the range.
            (
                "9999-12-31T23:59:59.9999995Z",
                "9999-12-31T23:59:59.999999Z",
            ),
            (
                "9999-12-31T23:59:59.999999999Z",
                "9999-12-31T23:59:59.999999Z",
            ),
            (
                "9999-12-31T23:59:59.9999999999999Z",
                "9999-12-31T23:59:59.999999Z",
            ),
            ("9999-12-31T23:59:59+00:01", "9999-12-31T23:58:59.000000Z"),
            ("9999-12-31T08:00:00-15:59", "9999-12-31T23:59:00.000000Z"),
        ] {
            assert_eq!(stored(ts, &limits).as_deref(), Ok(want), "{ts}");
        }
        for ts in [
            "9999-12-31T23:59:59-15:00",
            "9999-12-31T23:59:59-00:01",
            "9999-12-31T23:59:59.9999999-00:01",
            "9999-12-31T08:01:00-15:59",
            "1970-01-01T00:30:00+01:00",
            "1970-01-01T15:59:00.999999+16:00",
            "1969-12-31T23:59:59.999999Z",
            "1969-12-31T23:59:59.9999999Z",
            "1970-01-01T00:00:00.999999+00:01",
        ] {
            assert_eq!(stored(ts, &limits).unwrap_err().0, "out_of_range", "{ts}");
        }
        assert_eq!(
            stored("9999-12-31T23:59:59-15:00", &limits).unwrap_err().1,
            "timestamp: must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z, \
             got \"9999-12-31T23:59:59-15:00\""
        );
        // Years beyond four digits are no RFC 3339 at all.
        for ts in ["10000-01-01T00:00:00Z", "+10000-01-01T00:00:00.000000Z"] {
            assert_eq!(stored(ts, &limits).unwrap_err().0, "bad_timestamp", "{ts}");
        }
    }

    fn window(now: &str, max_age_s: i64, max_future_s: i64) -> Limits {
        Limits {
            now: Some(
                DateTime::parse_from_rfc3339(now)
                    .unwrap()
                    .with_timezone(&Utc),
            ),
            max_age_s,
            max_future_s,
            ..Limits::default()
        }
    }

    /// With a server time, timestamps must lie within [now - max age, now + max skew] (bounds
    /// included, judged on the stored microsecond); 0 lifts either bound.
    #[test]
    fn window_around_the_server_time() {
        let now = "2026-11-27T07:49:33.123456Z";
        let limits = window(now, 7 * 86_400, 900);
        for ts in [
            now,
            "2026-11-20T07:49:33.123456Z",
            "2026-11-20T07:49:33.1234561Z",
            "2026-11-20T08:49:33.123456+01:00",
            "2026-11-27T08:04:33.123456Z",
            "2026-11-27T08:04:33.1234569Z",
            "2026-11-27T00:04:33.123456-08:00",
        ] {
            assert!(stored(ts, &limits).is_ok(), "{ts}");
        }
        let old = stored("2026-11-20T07:49:33.123455Z", &limits).unwrap_err();
        assert_eq!(
            old,
            (
                "out_of_range",
                "timestamp: must be at most 7 days before the server time \
                 (centralcloud.max_event_age), got \"2026-11-20T07:49:33.123455Z\""
                    .to_string()
            )
        );
        let ahead = stored("2026-11-27T08:04:33.123457Z", &limits).unwrap_err();
        assert_eq!(
            ahead,
            (
                "out_of_range",
                "timestamp: must be at most 15 min after the server time \
                 (centralcloud.max_event_clock_skew), got \"2026-11-27T08:04:33.123457Z\""
                    .to_string()
            )
        );
        for ts in [
            "2026-11-20T07:49:33.1234559Z",
            "2026-11-20T08:49:33.123455+01:00",
            "2026-11-27T08:04:34Z",
            "2026-11-27T09:04:33.123457+01:00",
            "1970-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
        ] {
            assert_eq!(stored(ts, &limits).unwrap_err().0, "out_of_range", "{ts}");
        }
        // 0 lifts one bound and keeps the other.
        let any_age = window(now, 0, 900);
        assert!(stored("1970-01-01T00:00:00Z", &any_age).is_ok());
        assert!(stored("2026-11-27T08:04:33.123457Z", &any_age).is_err());
        let any_future = window(now, 7 * 86_400, 0);
        assert!(stored("9999-12-31T23:59:59.999999Z", &any_future).is_ok());
        assert!(stored("2026-11-20T07:49:33.123455Z", &any_future).is_err());
        assert!(stored("9999-12-31T23:59:59-00:01", &window(now, 0, 0)).is_err());
        // No server time, no window (what unit tests and Limits::default() use).
        assert!(stored("1970-01-01T00:00:00Z", &Limits::default()).is_ok());
    }

    #[test]
    fn window_reasons_say_the_duration() {
        let now = "2026-11-27T07:49:33Z";
        let reason = |limits: &Limits, ts: &str| stored(ts, limits).unwrap_err().1;
        let r = reason(&window(now, 36 * 3600, 0), "2025-10-27T06:55:00Z");
        assert!(
            r.contains("at most 1 day 12 h before the server time"),
            "{r}"
        );
        let r = reason(&window(now, 0, 90), "2026-11-27T07:51:04Z");
        assert!(
            r.contains("at most 1 min 30 s after the server time"),
            "{r}"
        );
        for (s, text) in [
            (1, "1 s"),
            (60, "1 min"),
            (900, "15 min"),
            (3_600, "1 h"),
            (86_400, "1 day"),
            (604_800, "7 days"),
            (90_061, "1 day 1 h 1 min 1 s"),
            (i64::from(i32::MAX), "24855 days 3 h 14 min 7 s"),
        ] {
            assert_eq!(duration_text(s), text);
        }
        // The longest settings keep reasons short, and saturate instead of overflowing.
        let far = window(now, i64::from(i32::MAX), i64::from(i32::MAX));
        assert!(stored("1970-01-01T00:00:00Z", &far).is_ok());
        let far = window("9999-12-31T23:59:59Z", 1, 1);
        let r = reason(&far, "1970-01-01T00:00:00Z");
        assert!(r.chars().count() < 150, "{r}");
    }
}

/// Property-based tests (proptest) of the validator, and the check of the labels that
/// `pg_test/malformed_events.py` writes for the SQL-level test.
#[cfg(test)]
mod props {
    use super::*;
    use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, SubsecRound};
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;
    use proptest::sample::select;
    use proptest::strategy::Union;
    use serde_json::json;

    fn config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Longest reason a rejection may give, in characters.
    const MAX_REASON_CHARS: usize = 300;

    const ROOT_KEYS: [&str; 3] = ["timestamp", "instance_id", "routing_decision"];
    const DECISION_KEYS: [&str; 9] = [
        "complexity",
        "selected_model",
        "selected_provider",
        "complexity_score",
        "outcome",
        "response_time_ms",
        "capabilities_required",
        "prefer",
        "user_model_request",
    ];

    /// Every path a field of the event can sit at (the root is `[]`).
    fn field_paths() -> Vec<Vec<&'static str>> {
        let mut paths = vec![vec![]];
        paths.extend(ROOT_KEYS.iter().map(|k| vec![*k]));
        paths.extend(DECISION_KEYS.iter().map(|k| vec!["routing_decision", *k]));
        paths
    }

    /// Sets (`Some`) or removes (`None`) the value at `path`; `[]` replaces the root.
    fn put(root: &mut Value, path: &[&str], value: Option<Value>) {
        let Some((last, parents)) = path.split_last() else {
            *root = value.unwrap_or(Value::Null);
            return;
        };
        let mut cur = root;
        for key in parents {
            cur = cur.get_mut(*key).expect("parent exists");
        }
        let obj = cur.as_object_mut().expect("parent is an object");
        match value {
            Some(v) => {
                obj.insert(last.to_string(), v);
            }
            None => {
                obj.remove(*last);
            }
        }
    }

    fn depth(v: &Value) -> usize {
        match v {
            Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// serde_json refuses documents nested deeper than this (its recursion limit).
    const SERDE_MAX_DEPTH: usize = 127;

    fn check_reason(err: &Rejection) -> Result<(), TestCaseError> {
        let text = err.to_string();
        let chars = text.chars().count();
        prop_assert!(chars < MAX_REASON_CHARS, "{} chars: {}", chars, text);
        Ok(())
    }

    // ---------------------------------------------------------------- strategies: leaves

    /// Characters that tend to break things: controls, bidi and zero-width marks, combining
    /// marks, 4-byte characters, JSON's own metacharacters.
    fn special_char() -> impl Strategy<Value = char> {
        select(SPECIALS.to_vec())
    }

    #[rustfmt::skip]
    const SPECIALS: [char; 32] = [
        '\u{202E}', '\u{202B}', '\u{200F}', '\u{200B}', '\u{200D}', '\u{2060}', '\u{FEFF}',
        '\u{0301}', '\u{0308}', '\u{1F600}', '\u{1F680}', '\u{1F469}', '\u{10FFFF}',
        '\u{FFFD}', '\u{FFFF}', 'é', 'א', 'ع', 'ß', '\u{7F}', '\u{1}', '\u{1F}', '\n', '\t',
        '"', '\\', '/', '\u{2028}', '\u{E000}', '\u{1D518}', '\u{2212}', '\u{FF10}',
    ];

    /// `len` characters, anything but NUL: mostly ASCII identifier characters, then any
    /// Unicode scalar (1- to 4-byte) and the special characters above. Built from a seed
    /// rather than character by character: proptest's per-element trees cost ~20 µs a
    /// character in a debug build.
    fn chars_from_seed(len: usize, seed: u64) -> String {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..len)
            .map(|_| {
                let r = next();
                let pick = (r >> 32) as u32;
                match r % 10 {
                    0..=3 => char::from(b'a' + (pick % 26) as u8),
                    4 => ['-', '_', '.', ':', '0', '7', 'A', 'Z'][pick as usize % 8],
                    5 | 6 => SPECIALS[pick as usize % SPECIALS.len()],
                    7 => char::from_u32(1 + pick % 0x7FF).unwrap(),
                    8 => char::from_u32(0xE000 + pick % 0x2000).unwrap(),
                    _ => char::from_u32(0x10000 + pick % 0x100000).unwrap(),
                }
            })
            .collect()
    }

    fn string_of(
        chars: impl Strategy<Value = char>,
        len: std::ops::RangeInclusive<usize>,
    ) -> impl Strategy<Value = String> {
        vec(chars, len).prop_map(|cs| cs.into_iter().collect())
    }

    fn chars(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
        (len, any::<u64>()).prop_map(|(len, seed)| chars_from_seed(len, seed))
    }

    /// A valid identifier-like string: 1 to 256 characters, no NUL.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => chars(1..=24),
            1 => chars(1..=256),
            1 => chars(256..=256),
        ]
    }

    /// 64 KiB strings of one character each.
    fn huge_string() -> impl Strategy<Value = String> {
        select(vec![
            'x',
            '\0',
            '\u{1F600}',
            '\u{0301}',
            '\u{202E}',
            '"',
            '\\',
        ])
        .prop_map(|c| std::iter::repeat_n(c, 65_536 / c.len_utf8()).collect())
    }

    fn any_string() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => any::<String>(),
            4 => string_of(prop_oneof![any::<char>(), special_char(), Just('\0')], 0..=40),
            2 => chars(0..=300),
            1 => prop_oneof![19 => Just(String::new()), 1 => huge_string()],
        ]
    }

    fn finite(f: f64) -> Option<Value> {
        serde_json::Number::from_f64(f).map(Value::Number)
    }

    fn json_number() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", finite),
            select(vec![
                f64::MAX,
                f64::MIN,
                f64::MIN_POSITIVE,
                5e-324,
                -5e-324,
                -0.0,
                0.0,
                5.0,
                5.000000000000001,
                4.999999999999999,
                1e308,
                -1e-300,
                1e300,
            ])
            .prop_filter_map("finite", finite),
            select(vec![
                Value::from(i64::MIN),
                Value::from(u64::MAX),
                Value::from(i64::MAX)
            ]),
        ]
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            1 => Just(Value::Null),
            1 => any::<bool>().prop_map(Value::Bool),
            3 => json_number(),
            3 => any_string().prop_map(Value::String),
        ]
    }

    /// Small recursive JSON values (up to 5 levels, a few dozen nodes).
    fn small_json() -> BoxedStrategy<Value> {
        leaf()
            .prop_recursive(5, 48, 6, |inner| {
                prop_oneof![
                    vec(inner.clone(), 0..6).prop_map(Value::Array),
                    btree_map(any_string(), inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
            .boxed()
    }

    /// Arbitrary JSON: small recursive values, now and then containers of 64 KiB and more
    /// (16 Ki array entries, 8 Ki object keys) or nesting up to 300 levels (past serde_json's
    /// recursion limit).
    fn any_json() -> BoxedStrategy<Value> {
        // Small elements only: 16 Ki copies of a 64 KiB string would be 1 GiB.
        let element = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            json_number(),
            string_of(prop_oneof![any::<char>(), special_char()], 0..=8).prop_map(Value::String),
        ];
        let big = prop_oneof![
            element.clone().prop_map(|v| Value::Array(vec![v; 16_384])),
            element.prop_map(|v| {
                Value::Object((0..8_192).map(|i| (format!("k{i}"), v.clone())).collect())
            }),
        ];
        let deep = (1usize..=300, vec(any::<bool>(), 1..8), leaf()).prop_map(|(n, kinds, v)| {
            (0..n).fold(v, |inner, i| {
                if kinds[i % kinds.len()] {
                    Value::Array(vec![inner])
                } else {
                    json!({ "k": inner })
                }
            })
        });
        prop_oneof![40 => small_json(), 1 => big, 3 => deep].boxed()
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Kind {
        Null,
        Bool,
        Number,
        String,
        Array,
        Object,
    }

    fn of_kind(kind: Kind) -> BoxedStrategy<Value> {
        match kind {
            Kind::Null => Just(Value::Null).boxed(),
            Kind::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
            Kind::Number => json_number().boxed(),
            Kind::String => prop_oneof![
                any_string(),
                select(vec![
                    "NaN",
                    "Infinity",
                    "-Infinity",
                    "4.8",
                    "1e400",
                    "",
                    "null",
                    "[]"
                ])
                .prop_map(String::from),
            ]
            .prop_map(Value::String)
            .boxed(),
            // Mostly flat containers (cheap to generate), sometimes nested or huge ones.
            Kind::Array => prop_oneof![
                6 => vec(leaf(), 0..4).prop_map(Value::Array),
                2 => vec(small_json(), 1..3).prop_map(Value::Array),
                1 => any_json().prop_filter("an array", Value::is_array),
            ]
            .boxed(),
            Kind::Object => prop_oneof![
                6 => btree_map(any_string(), leaf(), 0..4),
                2 => btree_map(any_string(), small_json(), 1..3),
            ]
            .prop_map(|m| Value::Object(m.into_iter().collect()))
            .boxed(),
        }
    }

    /// A value of any JSON type but the given ones.
    fn any_but(excluded: &[Kind]) -> BoxedStrategy<Value> {
        let all = [
            Kind::Null,
            Kind::Bool,
            Kind::Number,
            Kind::String,
            Kind::Array,
            Kind::Object,
        ];
        Union::new(
            all.into_iter()
                .filter(|k| !excluded.contains(k))
                .map(of_kind),
        )
        .boxed()
    }

    // ---------------------------------------------------------------- strategies: valid events

    #[derive(Clone, Debug)]
    enum Field<T> {
        Absent,
        Null,
        Present(T),
    }

    fn field<T: Clone + fmt::Debug + 'static>(
        present: impl Strategy<Value = T> + 'static,
    ) -> BoxedStrategy<Field<T>> {
        prop_oneof![
            1 => Just(Field::Absent),
            1 => Just(Field::Null),
            3 => present.prop_map(Field::Present),
        ]
        .boxed()
    }

    fn epoch_date() -> NaiveDate {
        NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
    }

    /// `(offset_minutes) -> "Z" | "+HH:MM" | ...` (every spelling of zero).
    fn offset_text(minutes: i32, zero_style: usize) -> String {
        if minutes == 0 {
            return ["Z", "z", "+00:00", "-00:00"][zero_style % 4].to_string();
        }
        let sign = if minutes < 0 { '-' } else { '+' };
        let m = minutes.abs();
        format!("{sign}{:02}:{:02}", m / 60, m % 60)
    }

    /// Fractional seconds as text: the first `digits.min(9)` digits of `nanos`, then noise
    /// digits that chrono ignores. Returns the text and the nanoseconds it stands for.
    fn fraction(nanos: u32, digits: usize, noise: u64) -> (String, u32) {
        if digits == 0 {
            return (String::new(), 0);
        }
        let kept = digits.min(9);
        let nine = format!("{nanos:09}");
        let mut text = format!(".{}", &nine[..kept]);
        let mut n = noise;
        for _ in kept..digits {
            text.push(char::from(b'0' + (n % 10) as u8));
            n = n / 10 + 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(n | 1) % 1_000_003;
        }
        let value = nine[..kept].parse::<u32>().unwrap() * 10u32.pow(9 - kept as u32);
        (text, value)
    }

    fn local_text(local: NaiveDateTime, sep: char) -> String {
        format!(
            "{}{sep}{}",
            local.format("%Y-%m-%d"),
            local.format("%H:%M:%S")
        )
    }

    /// What the validator normalises an instant to (computed without parsing anything): the
    /// fraction truncated to microseconds.
    fn normalised(utc: NaiveDateTime) -> String {
        format!(
            "{}.{:06}Z",
            utc.format("%Y-%m-%dT%H:%M:%S"),
            utc.and_utc().timestamp_subsec_micros()
        )
    }

    /// The first instant past the accepted range, 10000-01-01T00:00:00Z.
    fn past_9999() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(10_000, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
    }

    /// A valid timestamp text (year 1970..9999 local and in UTC, offset within ±15:59, 0 to 38
    /// fractional digits, separators T/t/space, every spelling of UTC) and its normalised UTC.
    fn valid_timestamp() -> impl Strategy<Value = (String, String)> {
        let last_day = (NaiveDate::from_ymd_opt(9999, 12, 31).unwrap() - epoch_date()).num_days();
        (
            (0..=last_day, 0u32..86_400, 0u32..1_000_000_000),
            prop_oneof![6 => 0usize..=9, 1 => 10usize..=38],
            any::<u64>(),
            prop_oneof![
                2 => -959i32..=959,
                1 => select(vec![0, 0, 959, -959, 330, -210, 840, -720, 345]),
            ],
            select(vec!['T', 'T', 'T', 't', ' ']),
            0usize..4,
        )
            .prop_filter_map(
                "outside 1970..=9999 in UTC",
                |(day_time, digits, noise, offset, sep, zero)| {
                    let (day, secs, nanos) = day_time;
                    let (frac, nanos) = fraction(nanos, digits, noise);
                    let local = (epoch_date() + Duration::days(day)).and_hms_opt(0, 0, 0)?
                        + Duration::seconds(secs.into())
                        + Duration::nanoseconds(nanos.into());
                    let utc = local - Duration::minutes(offset.into());
                    if utc < epoch_date().and_hms_opt(0, 0, 0)? || utc >= past_9999() {
                        return None;
                    }
                    let zone = offset_text(offset, zero);
                    Some((
                        format!("{}{frac}{zone}", local_text(local, sep)),
                        normalised(utc),
                    ))
                },
            )
    }

    /// A complexity_score within [0, 5] as JSON and as the f64 it stands for.
    fn valid_score() -> impl Strategy<Value = (Value, f64)> {
        prop_oneof![
            4 => (0.0f64..=5.0).prop_map(|f| (json!(f), f)),
            2 => (0u64..=5).prop_map(|n| (json!(n), n as f64)),
            1 => select(vec![0.0, -0.0, 5.0, 5e-324, f64::MIN_POSITIVE, 4.999999999999999, 2.5])
                .prop_map(|f| (json!(f), f)),
        ]
    }

    fn extra_fields(known: &'static [&'static str]) -> impl Strategy<Value = Vec<(String, Value)>> {
        vec(
            (
                chars(1..=12).prop_filter("not a known key", move |k| !known.contains(&k.as_str())),
                leaf(),
            ),
            0..3,
        )
    }

    #[derive(Clone, Debug)]
    struct ValidEvent {
        value: Value,
        expected: RoutingEvent,
        /// The normalised timestamp text (`expected.timestamp()`).
        timestamp: String,
    }

    type Optionals = (
        Field<i32>,
        Field<Vec<String>>,
        Field<Preference>,
        Field<String>,
    );

    fn valid_event() -> impl Strategy<Value = ValidEvent> {
        let caps = prop_oneof![
            5 => vec(name(), 0..=4),
            1 => vec(name(), 0..=32),
            1 => vec(name(), 32),
        ];
        (
            (
                valid_timestamp(),
                name(),
                select(Complexity::ALL.to_vec()),
                name(),
            ),
            (name(), valid_score(), select(Outcome::ALL.to_vec())),
            (
                field(prop_oneof![0..=3_600_000i32, select(vec![0, 3_600_000])]),
                field(caps),
                field(select(Preference::ALL.to_vec())),
                field(name()),
            ),
            (extra_fields(&ROOT_KEYS), extra_fields(&DECISION_KEYS)),
        )
            .prop_map(|(a, b, optionals, extras)| build_event(a, b, optionals, extras))
    }

    /// Puts an optional field in `d` as generated: left out, null, or the value.
    fn put_optional<T>(
        d: &mut Map<String, Value>,
        key: &str,
        f: &Field<T>,
        to: impl Fn(&T) -> Value,
    ) {
        match f {
            Field::Absent => {}
            Field::Null => {
                d.insert(key.into(), Value::Null);
            }
            Field::Present(t) => {
                d.insert(key.into(), to(t));
            }
        }
    }

    fn present<T>(f: Field<T>) -> Option<T> {
        match f {
            Field::Present(t) => Some(t),
            _ => None,
        }
    }

    #[allow(clippy::type_complexity)]
    fn build_event(
        ((ts, ts_norm), instance, complexity, model): (
            (String, String),
            String,
            Complexity,
            String,
        ),
        (provider, (score_json, score), outcome): (String, (Value, f64), Outcome),
        (rt, caps, prefer, umr): Optionals,
        (root_extra, decision_extra): (Vec<(String, Value)>, Vec<(String, Value)>),
    ) -> ValidEvent {
        // Extra (unknown) fields first, so the known ones win a name clash.
        let mut decision: Map<String, Value> = decision_extra.into_iter().collect();
        decision.insert("complexity".into(), json!(complexity.as_str()));
        decision.insert("selected_model".into(), json!(model));
        decision.insert("selected_provider".into(), json!(provider));
        decision.insert("complexity_score".into(), score_json);
        decision.insert("outcome".into(), json!(outcome.as_str()));
        put_optional(&mut decision, "response_time_ms", &rt, |n| json!(n));
        put_optional(&mut decision, "capabilities_required", &caps, |c| json!(c));
        put_optional(&mut decision, "prefer", &prefer, |p| json!(p.as_str()));
        put_optional(&mut decision, "user_model_request", &umr, |s| json!(s));
        let mut root: Map<String, Value> = root_extra.into_iter().collect();
        root.insert("timestamp".into(), json!(ts));
        root.insert("instance_id".into(), json!(instance));
        root.insert("routing_decision".into(), Value::Object(decision));
        ValidEvent {
            value: Value::Object(root),
            expected: RoutingEvent {
                micros: DateTime::parse_from_rfc3339(&ts_norm)
                    .expect("a normalised timestamp")
                    .timestamp_micros(),
                timestamp_without_offset: false,
                instance_id: instance,
                complexity,
                model,
                provider,
                score,
                outcome,
                response_time_ms: present(rt),
                capabilities: present(caps).unwrap_or_default(),
                prefer: present(prefer),
                user_model_request: present(umr),
            },
            timestamp: ts_norm,
        }
    }

    /// Distance in units in the last place between two floats of the same sign.
    fn ulps(a: f64, b: f64) -> u64 {
        if a == b {
            0
        } else {
            (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
        }
    }

    // ---------------------------------------------------------------- strategies: one broken rule

    /// A change to a valid event that breaks exactly one rule, with the code it must yield and
    /// the path its reason must start with.
    #[derive(Clone, Debug)]
    struct Break {
        path: Vec<&'static str>,
        value: Option<Value>,
        code: &'static str,
        reason_path: String,
    }

    fn brk(path: &[&'static str], value: Option<Value>, code: &'static str) -> Break {
        let reason_path = if path.is_empty() {
            "$".to_string()
        } else {
            path.join(".")
        };
        Break {
            path: path.to_vec(),
            value,
            code,
            reason_path,
        }
    }

    /// The required fields, by path (the unit tests use them too).
    pub(super) const REQUIRED: [&[&str]; 8] = [
        &["timestamp"],
        &["instance_id"],
        &["routing_decision"],
        &["routing_decision", "complexity"],
        &["routing_decision", "selected_model"],
        &["routing_decision", "selected_provider"],
        &["routing_decision", "complexity_score"],
        &["routing_decision", "outcome"],
    ];
    /// Bounded non-empty strings.
    const NAMES: [&[&str]; 4] = [
        &["instance_id"],
        &["routing_decision", "selected_model"],
        &["routing_decision", "selected_provider"],
        &["routing_decision", "user_model_request"],
    ];
    const ENUMS: [&[&str]; 3] = [
        &["routing_decision", "complexity"],
        &["routing_decision", "outcome"],
        &["routing_decision", "prefer"],
    ];
    const CAPS: &[&str] = &["routing_decision", "capabilities_required"];
    const CAP_ITEM: &str = "routing_decision.capabilities_required[]";

    fn path_of(
        paths: &'static [&'static [&'static str]],
    ) -> impl Strategy<Value = &'static [&'static str]> {
        select(paths.to_vec())
    }

    /// `capabilities_required` holding `bad` among valid names.
    fn caps_with(
        bad: impl Strategy<Value = Value> + 'static,
        code: &'static str,
    ) -> BoxedStrategy<Break> {
        (vec(name(), 0..=31), any::<prop::sample::Index>(), bad)
            .prop_map(move |(names, at, bad)| {
                let mut items: Vec<Value> = names.into_iter().map(Value::String).collect();
                let at = at.index(items.len() + 1);
                items.insert(at, bad);
                Break {
                    path: CAPS.to_vec(),
                    value: Some(Value::Array(items)),
                    code,
                    reason_path: CAP_ITEM.to_string(),
                }
            })
            .boxed()
    }

    fn too_long_name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => chars(257..=700),
            1 => select(vec!['x', '\u{1F600}', '\u{0301}', 'é'])
                .prop_map(|c| std::iter::repeat_n(c, 100_000).collect()),
        ]
    }

    fn with_nul() -> impl Strategy<Value = String> {
        (chars(0..=255), any::<prop::sample::Index>()).prop_map(|(s, at)| {
            let mut cs: Vec<char> = s.chars().collect();
            let at = at.index(cs.len() + 1);
            cs.insert(at, '\0');
            cs.into_iter().collect()
        })
    }

    fn not_in<T: Choice>() -> impl Strategy<Value = String> {
        let near: Vec<String> = T::ALL
            .iter()
            .flat_map(|c| {
                let s = c.as_str();
                [
                    s.to_uppercase(),
                    format!("{}{}", s[..1].to_uppercase(), &s[1..]),
                    format!(" {s}"),
                    format!("{s} "),
                    format!("{s}\n"),
                    format!("{s}\u{200B}"),
                    format!("\u{202E}{s}"),
                    format!("{s}\u{0301}"),
                    format!("{s}\0"),
                    s.chars()
                        .map(|ch| char::from_u32(ch as u32 - 'a' as u32 + 0xFF41).unwrap())
                        .collect(),
                    s.repeat(2),
                    s[..s.len() - 1].to_string(),
                ]
            })
            .chain(["", "null", "quality", "extreme", "timeout", "speed,cost"].map(String::from))
            .collect();
        prop_oneof![select(near), any_string()]
            .prop_filter("not an allowed value", |s| T::parse(s).is_none())
    }

    fn bad_timestamp_text() -> impl Strategy<Value = String> {
        let fixed = select(vec![
            "2025-10-27",
            "2025-10-27T06:55",
            "2025-10-27T06:55:00.",
            "2025-10-27X06:55:00",
            "06:55:00Z",
            "27/10/2025 06:55",
            "2025/10/27T06:55:00Z",
            "2025-13-01T00:00:00Z",
            "2025-00-10T00:00:00Z",
            "2025-01-32T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "2025-10-27T24:00:00Z",
            "2025-10-27T25:00:00Z",
            "2025-10-27T06:60:00Z",
            "2025-10-27T06:55:61Z",
            "2025-10-27T06:55:00+24:00",
            "2025-10-27T06:55:00+05:60",
            "2025-10-27T06:55:00+0530",
            "2025-10-27T06:55:00+05",
            "2025-10-27T06:55:00 +05:00",
            "2025-10-27T06:55:00.Z",
            "2025-10-27T06:55:00Z ",
            " 2025-10-27T06:55:00Z",
            "2025-10-27T06:55:00ZZ",
            "2025-10-27T06:55:00UTC",
            "2025-10-27T06:55:00 GMT",
            "+2025-10-27T06:55:00Z",
            "25-10-27T06:55:00Z",
            "20251027T065500Z",
            "2025-W44-1T06:55:00Z",
            "2025-300T06:55:00Z",
            "Mon, 27 Oct 2025 06:55:00 +0000",
            "1761548100",
            "1761548100000",
            "yesterday",
            "now",
            "null",
            "",
            "2025-10-27T06:55:00\u{2212}05:00",
            "２０２５-10-27T06:55:00Z",
            "2025-10-27T06:55:00\u{FF3A}",
            "\u{0662}\u{0660}\u{0662}\u{0665}-10-27T06:55:00Z",
            "2025\u{2010}10-27T06:55:00Z",
            "2025-10-27\u{2009}06:55:00Z",
            "2025-10-27T06:55:00Z\u{200B}",
            "\u{202E}2025-10-27T06:55:00Z",
            "2025-10-27T06:55:00.123\u{0301}Z",
        ])
        .prop_map(String::from);
        // A valid timestamp with one digit replaced by a non-digit.
        let corrupted = (
            valid_timestamp(),
            any::<prop::sample::Index>(),
            any::<char>(),
        )
            .prop_filter_map("has a digit", |((text, _), at, with)| {
                if with.is_ascii_digit() {
                    return None;
                }
                let digits: Vec<usize> = text
                    .char_indices()
                    .filter(|(_, c)| c.is_ascii_digit())
                    .map(|(i, _)| i)
                    .collect();
                let i = digits[at.index(digits.len())];
                Some(format!("{}{with}{}", &text[..i], &text[i + 1..]))
            });
        prop_oneof![fixed, corrupted]
    }

    /// Timestamps that parse but are out of range: before 1970 or after 9999 in UTC, an offset
    /// beyond ±15:59, a leap second.
    fn out_of_range_timestamp() -> impl Strategy<Value = String> {
        let since_year0 = (epoch_date() - NaiveDate::from_ymd_opt(0, 1, 1).unwrap()).num_days();
        let span = (NaiveDate::from_ymd_opt(9999, 12, 30).unwrap() - epoch_date()).num_days();
        let before_1970 = (1..=since_year0 * 86_400, -1439i32..=1439, 0usize..4).prop_filter_map(
            "local year 0..9999",
            |(secs_before, offset, zero)| {
                let utc = epoch_date().and_hms_opt(0, 0, 0)? - Duration::seconds(secs_before);
                let local = utc + Duration::minutes(offset.into());
                (local.year() >= 0)
                    .then(|| format!("{}{}", local_text(local, 'T'), offset_text(offset, zero)))
            },
        );
        let far_offset = (1..=span, 0u32..86_400, 960i32..=1439, any::<bool>()).prop_map(
            |(day, secs, m, neg)| {
                let local = (epoch_date() + Duration::days(day))
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
                    + Duration::seconds(secs.into());
                format!(
                    "{}{}",
                    local_text(local, 'T'),
                    offset_text(if neg { -m } else { m }, 0)
                )
            },
        );
        let leap = (
            1..=span,
            0u32..24,
            0u32..60,
            0usize..=9,
            0u32..1_000_000_000,
            -959i32..=959,
        )
            .prop_map(|(day, h, m, digits, nanos, offset)| {
                let date = epoch_date() + Duration::days(day);
                let (frac, _) = fraction(nanos, digits, 7);
                format!(
                    "{}T{h:02}:{m:02}:60{frac}{}",
                    date.format("%Y-%m-%d"),
                    offset_text(offset, 0)
                )
            });
        // On 9999-12-31 local, at a negative offset that takes it into year 10000 in UTC.
        let after_9999 = (0u32..86_400, -959i32..=-1, 0usize..=9, 0u32..1_000_000_000)
            .prop_filter_map("10000 in UTC", |(secs, offset, digits, nanos)| {
                let (frac, nanos) = fraction(nanos, digits, 3);
                let local = NaiveDate::from_ymd_opt(9999, 12, 31)?.and_hms_opt(0, 0, 0)?
                    + Duration::seconds(secs.into());
                let utc =
                    local + Duration::nanoseconds(nanos.into()) - Duration::minutes(offset.into());
                (utc >= past_9999())
                    .then(|| format!("{}{frac}{}", local_text(local, 'T'), offset_text(offset, 0)))
            });
        prop_oneof![
            before_1970,
            select(vec![
                "1969-12-31T23:59:59Z",
                "1970-01-01T00:59:59+01:00",
                "0000-01-01T00:00:00Z",
                "1969-12-31T23:59:60Z",
                "1969-12-31T23:59:59.9999999Z"
            ])
            .prop_map(String::from),
            after_9999,
            select(vec![
                "9999-12-31T23:59:59-15:00",
                "9999-12-31T23:59:59-00:01",
                "9999-12-31T23:59:59.9999999-00:01",
                "9999-12-31T08:01:00-15:59"
            ])
            .prop_map(String::from),
            far_offset,
            select(vec![
                "2025-10-27T06:55:00+16:00",
                "2025-10-27T06:55:00-16:00",
                "2025-10-27T06:55:00+23:59"
            ])
            .prop_map(String::from),
            leap,
            select(vec![
                "2016-12-31T23:59:60Z",
                "2025-12-31T23:59:60.5Z",
                "2025-10-27T12:34:60+02:00"
            ])
            .prop_map(String::from),
        ]
    }

    fn too_long_timestamp() -> impl Strategy<Value = String> {
        prop_oneof![
            (valid_timestamp(), 65usize..=2_000).prop_map(|((_, _), len)| {
                // Pad the fraction with zeros until the text is `len` characters long.
                let base = "2025-10-27T06:55:00.";
                format!("{base}{}Z", "0".repeat(len - base.len() - 1))
            }),
            chars(65..=300),
            Just("\u{1F600}".repeat(100_000)),
        ]
    }

    fn one_broken_rule() -> BoxedStrategy<Break> {
        let non_object = || any_but(&[Kind::Object, Kind::Null]);
        prop_oneof![
            // A required field missing, or null.
            path_of(&REQUIRED).prop_map(|p| brk(p, None, "missing_field")),
            path_of(&REQUIRED).prop_map(|p| brk(p, Some(Value::Null), "missing_field")),
            // The root or routing_decision of another type.
            any_but(&[Kind::Object]).prop_map(|v| brk(&[], Some(v), "not_an_object")),
            non_object().prop_map(|v| brk(&["routing_decision"], Some(v), "not_an_object")),
            // Every string field (required or optional) of another type.
            (
                select(vec![
                    &["timestamp"][..],
                    &["instance_id"],
                    &["routing_decision", "complexity"],
                    &["routing_decision", "selected_model"],
                    &["routing_decision", "selected_provider"],
                    &["routing_decision", "outcome"],
                    &["routing_decision", "prefer"],
                    &["routing_decision", "user_model_request"]
                ]),
                any_but(&[Kind::String, Kind::Null]),
            )
                .prop_map(|(p, v)| brk(p, Some(v), "wrong_type")),
            any_but(&[Kind::Number, Kind::Null]).prop_map(|v| brk(
                &["routing_decision", "complexity_score"],
                Some(v),
                "wrong_type"
            )),
            any_but(&[Kind::Number, Kind::Null]).prop_map(|v| brk(
                &["routing_decision", "response_time_ms"],
                Some(v),
                "wrong_type"
            )),
            any_but(&[Kind::Array, Kind::Null]).prop_map(|v| brk(CAPS, Some(v), "wrong_type")),
            caps_with(any_but(&[Kind::String]), "wrong_type"),
            // Numbers out of range.
            prop_oneof![
                any::<f64>().prop_filter_map("finite, outside [0, 5]", |f| {
                    (f.is_finite() && !(0.0..=5.0).contains(&f))
                        .then(|| finite(f))
                        .flatten()
                }),
                (5.0f64..10.0)
                    .prop_filter_map("above 5", |f| (f > 5.0).then(|| finite(f)).flatten()),
                (6u64..).prop_map(Value::from),
                (i64::MIN..0).prop_map(Value::from),
                select(vec![
                    5.000000000000001,
                    5.0000001,
                    -5e-324,
                    -0.1,
                    7.5,
                    1e308,
                    -1e-300,
                    f64::MAX,
                    f64::MIN
                ])
                .prop_filter_map("finite", finite),
            ]
            .prop_map(|v| brk(
                &["routing_decision", "complexity_score"],
                Some(v),
                "out_of_range"
            )),
            prop_oneof![
                (i64::MIN..0).prop_map(Value::from),
                (3_600_001i64..).prop_map(Value::from),
                (i64::MAX as u64 + 1..).prop_map(Value::from),
                // Floats below zero or that round above the bound.
                any::<f64>().prop_filter_map("finite, out of range", |f| {
                    (f.is_finite() && (f < 0.0 || f.round() > 3_600_000.0))
                        .then(|| finite(f))
                        .flatten()
                }),
                select(vec![-1i64, 3_600_001, i64::MIN, i64::MAX]).prop_map(Value::from),
                select(vec![-0.4, -1e-300, 3_600_000.5, 1e12]).prop_filter_map("finite", finite),
            ]
            .prop_map(|v| brk(
                &["routing_decision", "response_time_ms"],
                Some(v),
                "out_of_range"
            )),
            // Empty strings.
            path_of(&NAMES).prop_map(|p| brk(p, Some(json!("")), "empty_string")),
            caps_with(Just(json!("")), "empty_string"),
            path_of(&ENUMS).prop_map(|p| brk(p, Some(json!("")), "not_allowed")),
            Just(brk(&["timestamp"], Some(json!("")), "bad_timestamp")),
            // Overlong strings and lists.
            (path_of(&NAMES), too_long_name()).prop_map(|(p, s)| brk(
                p,
                Some(json!(s)),
                "too_long"
            )),
            caps_with(too_long_name().prop_map(Value::String), "too_long"),
            prop_oneof![
                vec(name().prop_map(Value::String), 33..=200),
                vec(small_json(), 33..=40)
            ]
            .prop_map(|items| brk(CAPS, Some(Value::Array(items)), "too_many")),
            too_long_timestamp().prop_map(|s| brk(&["timestamp"], Some(json!(s)), "too_long")),
            // NUL inside a bounded string.
            (path_of(&NAMES), with_nul()).prop_map(|(p, s)| brk(p, Some(json!(s)), "out_of_range")),
            caps_with(with_nul().prop_map(Value::String), "out_of_range"),
            // Values outside the enumerations.
            not_in::<Complexity>().prop_map(|s| brk(
                &["routing_decision", "complexity"],
                Some(json!(s)),
                "not_allowed"
            )),
            not_in::<Outcome>().prop_map(|s| brk(
                &["routing_decision", "outcome"],
                Some(json!(s)),
                "not_allowed"
            )),
            not_in::<Preference>().prop_map(|s| brk(
                &["routing_decision", "prefer"],
                Some(json!(s)),
                "not_allowed"
            )),
            // Timestamps.
            bad_timestamp_text().prop_map(|s| brk(&["timestamp"], Some(json!(s)), "bad_timestamp")),
            out_of_range_timestamp().prop_map(|s| brk(
                &["timestamp"],
                Some(json!(s)),
                "out_of_range"
            )),
        ]
        .boxed()
    }

    /// Soup of JSON tokens, broken escapes included, for parse_event on arbitrary text.
    fn json_soup() -> impl Strategy<Value = String> {
        let tokens = select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"",
            "\\",
            " ",
            "\n",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\udc00\"",
            "\"\\ud83d\\ude00\"",
            "\"\\u0000\"",
            "\"\\u00\"",
            "\"\\x41\"",
            "1e400",
            "-1e400",
            "1e-400",
            "-",
            "-0",
            "0.",
            ".5",
            "01",
            "1.7976931348623159e308",
            "18446744073709551616",
            "true",
            "false",
            "null",
            "nul",
            "NaN",
            "Infinity",
            "\"timestamp\"",
            "\"routing_decision\"",
            "\"complexity_score\"",
            "\u{FEFF}",
            "\u{202E}",
            "\u{1F600}",
            "\0",
            "\"\u{0301}\"",
            "\"2025-10-27T06:55:00Z\"",
        ]);
        vec(tokens, 0..60).prop_map(|t| t.concat())
    }

    /// A valid event's text, cut, spliced or overwritten at arbitrary char boundaries.
    fn mangled_event_text() -> impl Strategy<Value = String> {
        (
            valid_event(),
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            any_string(),
            0..3u8,
        )
            .prop_map(|(ev, a, b, insert, op)| {
                let text = ev.value.to_string();
                let bounds: Vec<usize> = text
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain([text.len()])
                    .collect();
                let (mut i, mut j) = (bounds[a.index(bounds.len())], bounds[b.index(bounds.len())]);
                if i > j {
                    std::mem::swap(&mut i, &mut j);
                }
                match op {
                    0 => text[..i].to_string(),
                    1 => format!("{}{insert}{}", &text[..i], &text[i..]),
                    _ => format!("{}{insert}{}", &text[..i], &text[j..]),
                }
            })
    }

    // ---------------------------------------------------------------- properties

    #[test]
    fn null_body_is_a_null_message() {
        let err = parse_event(None, &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "null_message");
        assert_eq!(err.to_string(), "message is NULL");
    }

    proptest! {
        #![proptest_config(config(4000))]

        /// parse_event never panics on any text, and every reason stays short.
        #[test]
        fn parse_never_panics_on_arbitrary_text(
            body in prop_oneof![
                3 => any::<String>(),
                3 => json_soup(),
                3 => mangled_event_text(),
                1 => (1usize..5_000, select(vec!["[", "{\"a\":"])).prop_map(|(n, open)| open.repeat(n)),
            ]
        ) {
            if let Err(err) = parse_event(Some(&body), &Limits::default()) {
                check_reason(&err)?;
            }
        }
    }

    proptest! {
        #![proptest_config(config(3000))]

        /// validate_event and parse_event never panic on any JSON value, agree with each
        /// other (parsing the value's text changes nothing but past serde_json's depth limit),
        /// and every reason stays short.
        #[test]
        fn never_panics_on_arbitrary_json(v in any_json()) {
            let direct = validate_event(&v, &Limits::default());
            let text = v.to_string();
            let parsed = parse_event(Some(&text), &Limits::default());
            if let Err(err) = &direct {
                check_reason(err)?;
            }
            if let Err(err) = &parsed {
                check_reason(err)?;
            }
            if depth(&v) > SERDE_MAX_DEPTH {
                prop_assert_eq!(parsed.unwrap_err().code(), "unparseable");
            } else {
                prop_assert_eq!(parsed.map_err(|e| e.code()), direct.map_err(|e| e.code()));
            }
        }

    }

    proptest! {
        #![proptest_config(config(2000))]

        /// Any field of a valid event (the root and routing_decision included) replaced by
        /// any JSON value: no panic, and a rejection names a path of the schema.
        #[test]
        fn any_field_replaced_by_any_json(
            ev in valid_event(),
            path in select(field_paths()),
            v in any_json(),
        ) {
            let mut event = ev.value;
            put(&mut event, &path, Some(v));
            let limits = Limits::default();
            if let Err(err) = validate_event(&event, &limits) {
                check_reason(&err)?;
                let reason = err.to_string();
                let mut paths = vec!["$".to_string(), CAP_ITEM.to_string()];
                paths.extend(ROOT_KEYS.iter().map(|k| k.to_string()));
                paths.extend(DECISION_KEYS.iter().map(|k| format!("routing_decision.{k}")));
                let named = paths.iter().any(|p| reason.starts_with(&format!("{p}: ")));
                prop_assert!(named, "{}", reason);
            }
            if let Err(err) = parse_event(Some(&event.to_string()), &limits) {
                check_reason(&err)?;
            }
        }

    }

    proptest! {
        #![proptest_config(config(3000))]

        /// Every valid event is accepted, and what comes out is what went in (the timestamp
        /// normalised to UTC with microseconds, absent and null optional fields alike).
        #[test]
        fn valid_events_are_accepted_and_normalised(ev in valid_event()) {
            let limits = Limits::default();
            prop_assert_eq!(validate_event(&ev.value, &limits), Ok(ev.expected.clone()));
            prop_assert_eq!(ev.expected.timestamp(), ev.timestamp);
            let text = ev.value.to_string();
            let mut parsed = match parse_event(Some(&text), &limits) {
                Ok(e) => e,
                Err(err) => return Err(TestCaseError::fail(format!("{err}: {text}"))),
            };
            // The score goes f64 -> shortest text -> f64: exact with serde_json's
            // float_roundtrip feature (enabled); the test keeps a unit in the last place of
            // slack from before it was. Everything else must be exact.
            let (got, want) = (parsed.score, ev.expected.score);
            prop_assert!(ulps(got, want) <= 1, "{} vs {}", got, want);
            parsed.score = ev.expected.score;
            prop_assert_eq!(parsed, ev.expected);
        }

        /// A valid event with exactly one rule broken is rejected with the code of that rule,
        /// and the reason starts with the field's path and stays short.
        #[test]
        fn one_broken_rule_is_rejected_precisely(ev in valid_event(), b in one_broken_rule()) {
            let mut event = ev.value;
            put(&mut event, &b.path, b.value.clone());
            let err = match validate_event(&event, &Limits::default()) {
                Ok(_) => return Err(TestCaseError::fail(format!("accepted: {b:?}"))),
                Err(err) => err,
            };
            prop_assert_eq!(err.code(), b.code, "{}", err);
            let reason = err.to_string();
            prop_assert!(reason.starts_with(&format!("{}: ", b.reason_path)), "{}", reason);
            check_reason(&err)?;
            // The same through the text, unless the break made it too deep for serde_json.
            let parsed = parse_event(Some(&event.to_string()), &Limits::default()).unwrap_err();
            if depth(&event) > SERDE_MAX_DEPTH {
                prop_assert_eq!(parsed.code(), "unparseable");
            } else {
                // Same code and path; the value shown may differ in the last digit (serde_json
                // parses decimals to within one unit in the last place).
                prop_assert_eq!(parsed.code(), b.code);
                let prefix = format!("{}: ", b.reason_path);
                prop_assert!(parsed.to_string().starts_with(&prefix), "{}", parsed);
            }
        }
    }

    /// Beyond f64, or not JSON numbers at all.
    const BAD_NUMBERS: [&str; 19] = [
        "1e309",
        "-1e309",
        "1e400",
        "1E99999",
        "-1e400",
        "1.7976931348623159e308",
        "NaN",
        "Infinity",
        "-Infinity",
        "nan",
        "+1",
        "01",
        ".5",
        "5.",
        "0x10",
        "1_000",
        "--1",
        "1e",
        "1e+",
    ];
    /// Valid scores however they are written: underflow to (-)0, excess digits round to 5.
    const FINE_SCORES: [&str; 9] = [
        "1e-99999",
        "-1e-99999",
        "0e99999",
        "-0",
        "4.99999999999999999999999",
        "0.000000000000000000000000000001",
        "5e0",
        "50e-1",
        "0.5E1",
    ];

    proptest! {
        #![proptest_config(config(2000))]

        /// Numbers beyond f64 (or no JSON numbers at all) anywhere in the text make it
        /// unparseable; tiny ones and excess digits round to a valid score.
        #[test]
        fn number_literals_in_text(
            ev in valid_event(),
            at in select(vec!["complexity_score", "response_time_ms", "extra"]),
            bad in prop_oneof![
                select(BAD_NUMBERS.to_vec()).prop_map(String::from),
                (309usize..2_000, select(vec!["", "-"]))
                    .prop_map(|(zeros, sign)| format!("{sign}1{}", "0".repeat(zeros))),
            ],
            fine in select(FINE_SCORES.to_vec()),
        ) {
            let limits = Limits::default();
            let mut event = ev.value;
            let key = if at == "extra" { "extra" } else { at };
            put(&mut event, &["routing_decision", key], Some(json!("@@RAW@@")));
            let text = event.to_string();
            let bad_text = text.replace("\"@@RAW@@\"", &bad);
            let err = parse_event(Some(&bad_text), &limits).unwrap_err();
            prop_assert_eq!(err.code(), "unparseable", "{}", err);
            check_reason(&err)?;
            if at == "complexity_score" {
                let fine_text = text.replace("\"@@RAW@@\"", fine);
                prop_assert!(parse_event(Some(&fine_text), &limits).is_ok(), "{}", fine);
            }
        }
    }

    // ---------------------------------------------------------------- the timestamp fix

    /// Timestamps chrono accepts but PostgreSQL's `::timestamptz` refuses (ingest casts the
    /// original text) are rejected, so they are dead-lettered with a reason instead of failing
    /// the batch's INSERT.
    #[test]
    fn timestamps_postgresql_refuses_are_rejected() {
        let check = |ts: &str| {
            let mut v = json!({
                "timestamp": ts, "instance_id": "i",
                "routing_decision": {"complexity": "simple", "selected_model": "m",
                    "selected_provider": "p", "complexity_score": 1, "outcome": "routed"}
            });
            let r = validate_event(&v, &Limits::default());
            v["timestamp"] = json!("2025-10-27T06:55:00Z");
            assert!(validate_event(&v, &Limits::default()).is_ok());
            r.map(|e| e.timestamp())
                .map_err(|e| (e.code(), e.to_string()))
        };
        for (ts, code) in [
            ("2025-10-27T06:55:00+16:00", "out_of_range"),
            ("2025-10-27T06:55:00-23:59", "out_of_range"),
            ("2025-10-27T06:55:00\u{2212}05:00", "bad_timestamp"),
            ("2025-12-31T23:59:60.5Z", "out_of_range"),
            ("2025-10-27T12:34:60Z", "out_of_range"),
        ] {
            assert_eq!(check(ts).unwrap_err().0, code, "{ts}");
        }
        let long = format!("2025-10-27T06:55:00.{}Z", "1".repeat(200));
        assert_eq!(check(&long).unwrap_err().0, "too_long");
        assert_eq!(
            check(&long).unwrap_err().1,
            "timestamp: 221 characters, at most 64 allowed"
        );
        // The bounds themselves are accepted.
        let at_limit = format!("2025-10-27T06:55:00.{}+05:30", "1".repeat(38));
        assert_eq!(at_limit.len(), 64);
        assert_eq!(check(&at_limit).unwrap(), "2025-10-27T01:25:00.111111Z");
        assert_eq!(
            check("2025-10-27T06:55:00-15:59").unwrap(),
            "2025-10-27T22:54:00.000000Z"
        );
        assert_eq!(
            check("2025-10-27 06:55:00z").unwrap(),
            "2025-10-27T06:55:00.000000Z"
        );
    }

    // ---------------------------------------------------------------- the accepted range

    /// A timestamp text, local time anywhere in 1960..=10000 or within two days of the range's
    /// edges (1970-01-01, 10000-01-01), at an offset within ±15:59, with 0 to 9 fractional
    /// digits (now and then up to 12, beyond chrono's nanoseconds); with the instant it stands
    /// for in UTC and whether its local year has four digits (RFC 3339 has no other).
    fn edge_timestamp() -> impl Strategy<Value = (String, NaiveDateTime, bool)> {
        let start = NaiveDate::from_ymd_opt(1960, 1, 1).unwrap();
        let end = NaiveDate::from_ymd_opt(10_000, 12, 31).unwrap();
        let anywhere = (0..=(end - start).num_seconds() + 86_399)
            .prop_map(move |s| start.and_hms_opt(0, 0, 0).unwrap() + Duration::seconds(s));
        let edge = (
            select(vec![
                epoch_date().and_hms_opt(0, 0, 0).unwrap(),
                past_9999(),
            ]),
            -2 * 86_400i64..=2 * 86_400,
        )
            .prop_map(|(at, s)| at + Duration::seconds(s));
        let nanos = prop_oneof![
            2 => 0u32..1_000_000_000,
            1 => select(vec![0, 999_999_999, 999_999_500, 999_999_000, 999_000_000, 500]),
        ];
        (
            prop_oneof![1 => anywhere, 2 => edge],
            nanos,
            prop_oneof![8 => 0usize..=9, 1 => 10usize..=12],
            any::<u64>(),
            prop_oneof![
                3 => -959i32..=959,
                1 => select(vec![0, 1, -1, 959, -959, 60, -60]),
            ],
            0usize..4,
        )
            .prop_map(|(local, nanos, digits, noise, offset, zero)| {
                let (frac, nanos) = fraction(nanos, digits, noise);
                let text = format!(
                    "{}{frac}{}",
                    local_text(local, 'T'),
                    offset_text(offset, zero)
                );
                let utc =
                    local + Duration::nanoseconds(nanos.into()) - Duration::minutes(offset.into());
                (text, utc, local.year() <= 9999)
            })
    }

    /// `dddd-dd-ddTdd:dd:dd.ddddddZ`, `d` an ASCII digit: what PostgreSQL's timestamptz input
    /// reads back exactly (four-digit year, microseconds, UTC).
    fn is_stored_form(text: &str) -> bool {
        const FORM: &[u8] = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
        text.len() == FORM.len()
            && text.bytes().zip(FORM).all(|(b, &f)| match f {
                b'd' => b.is_ascii_digit(),
                _ => b == f,
            })
    }

    proptest! {
        #![proptest_config(config(4000))]

        /// Whatever timestamp the validator accepts, it hands ingest a text PostgreSQL accepts
        /// and stores as the event's instant truncated to the microsecond, within
        /// 1970-01-01T00:00:00Z..=9999-12-31T23:59:59.999999Z; and it accepts every timestamp
        /// whose instant (so truncated) is in that range, unless its year cannot be written.
        #[test]
        fn accepted_timestamps_are_what_postgresql_stores(
            (text, utc, four_digit_year) in edge_timestamp()
        ) {
            let event = json!({
                "timestamp": text, "instance_id": "i",
                "routing_decision": {"complexity": "simple", "selected_model": "m",
                    "selected_provider": "p", "complexity_score": 1, "outcome": "routed"}
            });
            let stored = utc.and_utc().trunc_subsecs(6);
            let first = epoch_date().and_hms_opt(0, 0, 0).unwrap().and_utc();
            let last = past_9999().and_utc() - Duration::microseconds(1);
            let in_range = (first..=last).contains(&stored);
            match validate_event(&event, &Limits::default()) {
                Ok(e) => {
                    let norm = e.timestamp();
                    prop_assert!(is_stored_form(&norm), "{} -> {}", text, norm);
                    let back = DateTime::parse_from_rfc3339(&norm).map(|t| t.with_timezone(&Utc));
                    prop_assert_eq!(back, Ok(stored), "{} -> {}", text, norm);
                    prop_assert!(in_range, "{} -> {}", text, norm);
                    prop_assert_eq!(norm, normalised(utc));
                }
                Err(err) => {
                    check_reason(&err)?;
                    let want = if four_digit_year { "out_of_range" } else { "bad_timestamp" };
                    prop_assert_eq!(err.code(), want, "{}", err);
                    prop_assert!(!(in_range && four_digit_year), "{}", err);
                }
            }
        }
    }

    // ---------------------------------------------------------------- pg_test/malformed_events.py

    /// The brackets of JSON text that stand outside strings, with their byte positions (the
    /// text must not start inside a string).
    fn brackets(text: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
        let (mut in_string, mut escaped) = (false, false);
        text.bytes().enumerate().filter(move |&(_, b)| {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                return false;
            }
            in_string = b == b'"';
            matches!(b, b'[' | b'{' | b']' | b'}')
        })
    }

    /// Nesting depth of JSON text (brackets outside strings).
    fn text_depth(text: &str) -> usize {
        let (mut depth, mut max) = (0usize, 0usize);
        for (_, b) in brackets(text) {
            if matches!(b, b'[' | b'{') {
                depth += 1;
                max = max.max(depth);
            } else {
                depth = depth.saturating_sub(1);
            }
        }
        max
    }

    /// Every line the generator labels "valid" or "invalid" gets that verdict (and code) from
    /// parse_event with the default limits; every message is something jsonb accepts (no
    /// `\u0000`, nesting at most 200) on a line under 2 MB.
    #[test]
    fn malformed_events_labels_match_the_validator() {
        let root = env!("CARGO_MANIFEST_DIR");
        let out = std::process::Command::new("python3")
            .current_dir(root)
            .args([
                "pg_test/malformed_events.py",
                "--count",
                "3000",
                "--seed",
                "7",
            ])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 3000);
        let limits = Limits::default();
        let mut mismatches = Vec::new();
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        const KEY: &str = ", \"message\": ";
        for (n, line) in lines.iter().enumerate() {
            assert!(line.len() < 2 << 20, "line {n}: {} bytes", line.len());
            // The message is the last key; its text can be deeper than serde_json's limit.
            let at = line
                .find(KEY)
                .unwrap_or_else(|| panic!("line {n}: no message"));
            let head: Value = serde_json::from_str(&format!("{}}}", &line[..at])).expect("label");
            let message = line[at + KEY.len()..]
                .strip_suffix('}')
                .expect("closing brace");
            assert!(
                !message.to_ascii_lowercase().contains("\\u0000"),
                "line {n}: \\u0000"
            );
            assert!(text_depth(message) <= 200, "line {n}: deeper than 200");
            let expect = head["expect"].as_str().expect("expect");
            let code = head["code"].as_str();
            *counts
                .entry(format!("{expect}/{}", code.unwrap_or("-")))
                .or_default() += 1;
            let got = parse_event(Some(message), &limits);
            let ok = match (expect, code, &got) {
                ("valid", None, Ok(_)) => true,
                ("invalid", Some(c), Err(e)) => e.code() == c,
                _ => false,
            };
            if !ok {
                let got = got.map(|_| "valid".to_string()).map_err(|e| e.to_string());
                let shown: String = message.chars().take(200).collect();
                mismatches.push(format!(
                    "line {n}: labelled {expect}/{code:?}, got {got:?}: {shown}"
                ));
            }
        }
        println!("{counts:#?}");
        assert!(
            mismatches.is_empty(),
            "{} mismatches:\n{}",
            mismatches.len(),
            mismatches[..mismatches.len().min(20)].join("\n")
        );
        let valid = counts
            .iter()
            .filter(|(k, _)| k.starts_with("valid/"))
            .map(|(_, n)| n)
            .sum::<usize>();
        // About 20% valid events, plus the mutations that keep one valid (response_float).
        assert!((450..=850).contains(&valid), "{valid} valid of 3000");
        for code in [
            "unparseable",
            "not_an_object",
            "missing_field",
            "wrong_type",
            "empty_string",
            "too_long",
            "too_many",
            "not_allowed",
            "out_of_range",
            "bad_timestamp",
        ] {
            assert!(
                counts.contains_key(&format!("invalid/{code}")),
                "no {code} line"
            );
        }
    }

    // ---------------------------------------------------------------- the typed pass

    /// Text as PostgreSQL prints a jsonb value: keys shorter first, then bytewise; ", " and
    /// ": " between items. With a seed, keys in an order shuffled by it instead.
    fn jsonb_text(v: &Value, shuffle: Option<u64>) -> String {
        let mut out = String::new();
        write_jsonb(v, shuffle, &mut out);
        out
    }

    fn write_jsonb(v: &Value, shuffle: Option<u64>, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_by_key(|k| (k.len(), k.as_bytes()));
                if let Some(seed) = shuffle {
                    keys.sort_by_key(|k| (fnv(k) ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                }
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    out.push_str(if i == 0 { "" } else { ", " });
                    out.push_str(&json!(key).to_string());
                    out.push_str(": ");
                    write_jsonb(&map[key], shuffle, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    out.push_str(if i == 0 { "" } else { ", " });
                    write_jsonb(item, shuffle, out);
                }
                out.push(']');
            }
            _ => out.push_str(&v.to_string()),
        }
    }

    fn fnv(text: &str) -> u64 {
        text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    }

    /// The text of an event: as jsonb prints it (mostly), compact with keys in bytewise
    /// order, pretty-printed, or with shuffled keys.
    fn rendered(v: Value) -> impl Strategy<Value = String> {
        (0..6u8, any::<u64>()).prop_map(move |(how, seed)| match how {
            0..=2 => jsonb_text(&v, None),
            3 => v.to_string(),
            4 => serde_json::to_string_pretty(&v).unwrap(),
            _ => jsonb_text(&v, Some(seed)),
        })
    }

    /// The limits ingest may run with: the defaults, or tight ones and a window around a
    /// server time somewhere in the accepted range.
    fn any_limits() -> impl Strategy<Value = Limits> {
        let tight = (
            1usize..=300,
            0i64..=4_000_000,
            0usize..=40,
            0i64..=LAST_MICROS / 1_000_000,
            select(vec![
                0,
                1,
                86_400,
                7 * 86_400,
                100 * 365 * 86_400,
                i64::from(i32::MAX),
            ]),
            select(vec![0, 1, 900, 100 * 365 * 86_400]),
        )
            .prop_map(|(chars, ms, caps, now, age, skew)| Limits {
                max_string_chars: chars,
                max_response_time_ms: ms,
                max_capabilities: caps,
                now: DateTime::from_timestamp(now, 0),
                max_age_s: age,
                max_future_s: skew,
            });
        prop_oneof![3 => Just(Limits::default()), 1 => tight]
    }

    /// At most 200 characters of a text, for failure messages.
    fn clip(text: &str) -> String {
        text.chars().take(200).collect()
    }

    /// parse_event (the typed pass first) and the Value path alone give the same verdict on
    /// `text`: the same event (the score to the bit) or the same rejection.
    fn same_verdict(text: &str, limits: &Limits) -> Result<(), TestCaseError> {
        let fast = parse_event(Some(text), limits);
        let slow = parse_event_via_value(Some(text), limits);
        match (&fast, &slow) {
            (Ok(a), Ok(b)) => {
                prop_assert_eq!(a, b, "{}", clip(text));
                prop_assert_eq!(a.score.to_bits(), b.score.to_bits(), "{}", clip(text));
            }
            (Err(a), Err(b)) => {
                prop_assert_eq!(a, b, "{}", clip(text));
                prop_assert_eq!(a.to_string(), b.to_string());
            }
            _ => prop_assert!(false, "{:?} vs {:?}: {}", fast, slow, clip(text)),
        }
        Ok(())
    }

    /// JSON literals for the text surgery below: numbers in every spelling (exponents, -0,
    /// 812.0, beyond f64 and u64), strings with escapes (in enumerations and timestamps too),
    /// lone surrogates, NUL, and values of every other type.
    const LITERALS: [&str; 62] = [
        "null",
        "true",
        "false",
        "0",
        "-0",
        "-0.0",
        "0.0",
        "0e0",
        "1",
        "812",
        "812.0",
        "8.12e2",
        "1e2",
        "1E2",
        "1e+2",
        "100e-2",
        "5e0",
        "0.5E1",
        "4.8",
        "-1",
        "-0.4",
        "12.5",
        "3600000",
        "3600000.4",
        "3600000.5",
        "3600001",
        "1e400",
        "-1e400",
        "1e-400",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "4.99999999999999999999",
        "5.0000000000000001",
        "1.7976931348623157e308",
        "[]",
        "{}",
        "[\"vision\"]",
        "[\"vision\", \"function_calling\"]",
        "[\"vis\\u0069on\", \"\\u00e9\"]",
        "[\"a\", 1]",
        "[null]",
        "{\"a\": [1, {\"b\": null}], \"c\": \"\\ud83d\\ude00\"}",
        "\"\"",
        "\"speed\"",
        "\"sp\\u0065ed\"",
        "\"\\u0073uccess\"",
        "\"medium\"",
        "\"x\\ny\"",
        "\"\\ud800\"",
        "\"\\udc00x\"",
        "\"\\ud83d\\ude00\"",
        "\"a\\u0000b\"",
        "\"\\/\"",
        "\"2026-11-27T10:11:12.345Z\"",
        "\"2026-11-27T10:11:12\\u002e345\\u005a\"",
        "\"2026-11-27 10:11:12\"",
        "\"router-3\"",
        "\"\u{e9}\\u00e9\u{1F600}\"",
        "\"4.8\"",
        "\"NaN\"",
    ];

    /// Whole routing decisions, valid ones, for a duplicate routing_decision.
    const DECISIONS: [&str; 2] = [
        "{\"complexity\": \"simple\", \"selected_model\": \"m\", \"selected_provider\": \"p\", \
         \"complexity_score\": 1, \"outcome\": \"routed\"}",
        "{\"outcome\": \"failure\", \"complexity_sc\\u006fre\": 0.5e1, \"complexity\": \"complex\", \
         \"selected_model\": \"m2\", \"selected_provider\": \"p2\", \"response_time_ms\": 1e3}",
    ];

    /// One edit of an event's text.
    #[derive(Clone, Debug)]
    enum Surgery {
        /// `"key": literal` added to the root or routing_decision, first or last: a duplicate
        /// of a known key (routing_decision too), or an unknown one.
        Add {
            decision: bool,
            key: &'static str,
            literal: &'static str,
            first: bool,
        },
        /// A known key written with one character as a `\u` escape.
        EscapeKey { key: &'static str, at: usize },
        /// An unknown field nested around serde_json's depth limit.
        Deep {
            decision: bool,
            levels: usize,
            arrays: bool,
        },
    }

    fn surgery() -> impl Strategy<Value = Surgery> {
        let mut keys = ROOT_KEYS.to_vec();
        keys.extend(DECISION_KEYS);
        keys.extend(["extra", "Timestamp", "outcome ", ""]);
        prop_oneof![
            4 => (
                any::<bool>(),
                select(keys.clone()),
                prop_oneof![1 => Just("null"), 4 => select(LITERALS.to_vec())],
                any::<bool>()
            )
                .prop_map(|(decision, key, literal, first)| Surgery::Add {
                    decision,
                    key,
                    literal,
                    first
                }),
            2 => (select(keys), 0usize..30)
                .prop_map(|(key, at)| Surgery::EscapeKey { key, at }),
            1 => (select(DECISIONS.to_vec()), any::<bool>())
                .prop_map(|(literal, first)| Surgery::Add {
                    decision: false,
                    key: "routing_decision",
                    literal,
                    first
                }),
            1 => (any::<bool>(), 118usize..=130, any::<bool>())
                .prop_map(|(decision, levels, arrays)| Surgery::Deep { decision, levels, arrays }),
        ]
    }

    /// Where fields of the root or routing_decision may be inserted: right after its `{`
    /// (`first`) or right before its `}`. `None` when the text has no such object.
    fn insert_at(text: &str, decision: bool, first: bool) -> Option<(usize, bool)> {
        let open = if decision {
            ["\"routing_decision\": {", "\"routing_decision\":{"]
                .iter()
                .find_map(|k| text.find(k).map(|at| at + k.len()))?
        } else {
            text.find('{')? + 1
        };
        let empty = text[open..].trim_start().starts_with('}');
        if first {
            return Some((open, empty));
        }
        // The matching `}`: count brackets outside strings.
        let mut depth = 1usize;
        for (i, b) in brackets(&text[open..]) {
            if matches!(b, b'[' | b'{') {
                depth += 1;
            } else {
                depth -= 1;
                if depth == 0 {
                    return Some((open + i, empty));
                }
            }
        }
        None
    }

    fn add_field(text: &mut String, decision: bool, field: &str, first: bool) {
        if let Some((at, empty)) = insert_at(text, decision, first) {
            let field = match (empty, first) {
                (true, _) => field.to_string(),
                (false, true) => format!("{field}, "),
                (false, false) => format!(", {field}"),
            };
            text.insert_str(at, &field);
        }
    }

    fn operate(text: &mut String, op: &Surgery) {
        match op {
            Surgery::Add {
                decision,
                key,
                literal,
                first,
            } => add_field(text, *decision, &format!("\"{key}\": {literal}"), *first),
            Surgery::EscapeKey { key, at } => {
                let Some(c) = key.chars().nth(*at % key.len().max(1)) else {
                    return;
                };
                let escaped: String = key
                    .chars()
                    .enumerate()
                    .map(|(i, ch)| match i == *at % key.len() {
                        true => format!("\\u{:04x}", u32::from(c)),
                        false => ch.to_string(),
                    })
                    .collect();
                for sep in [":", ": "] {
                    let from = format!("\"{key}\"{sep}");
                    if let Some(i) = text.find(&from) {
                        text.replace_range(i..i + from.len(), &format!("\"{escaped}\"{sep}"));
                        return;
                    }
                }
            }
            Surgery::Deep {
                decision,
                levels,
                arrays,
            } => {
                let (open, close) = if *arrays {
                    ("[", "]")
                } else {
                    ("{\"k\": ", "}")
                };
                let junk = format!("{}1{}", open.repeat(*levels), close.repeat(*levels));
                add_field(text, *decision, &format!("\"junk\": {junk}"), true);
            }
        }
    }

    /// A valid event's text, a known field (or an unknown one) set to a literal, then up to
    /// four edits.
    fn edited_event_text() -> impl Strategy<Value = String> {
        let mut at = field_paths();
        at.extend([vec!["extra"], vec!["routing_decision", "extra"]]);
        (
            valid_event(),
            proptest::option::of((select(at), select(LITERALS.to_vec()))),
            vec(surgery(), 0..=4),
        )
            .prop_flat_map(|(ev, literal, ops)| {
                let mut value = ev.value;
                if let Some((path, _)) = &literal {
                    put(&mut value, path, Some(json!("@@RAW@@")));
                }
                rendered(value).prop_map(move |text| {
                    let mut text = match &literal {
                        Some((_, raw)) => text.replace("\"@@RAW@@\"", raw),
                        None => text,
                    };
                    for op in &ops {
                        operate(&mut text, op);
                    }
                    text
                })
            })
    }

    /// The typical message of the ingest path, as jsonb prints it (varied by `i`).
    fn typical_message(i: usize) -> String {
        let pick = |n: usize, of: usize| (i / n) % of;
        let outcome = ["routed", "success", "failure", "success"][pick(1, 4)];
        let response = match (outcome, pick(7, 5)) {
            ("routed", _) | (_, 0) => "null".to_string(),
            (_, k) => format!("{}", 120 + 37 * k + i % 900),
        };
        let caps = [
            "[]",
            "[\"vision\"]",
            "[\"vision\", \"function_calling\"]",
            "null",
        ][pick(3, 4)];
        let prefer = ["\"speed\"", "\"cost\"", "null"][pick(5, 3)];
        let request = ["null", "null", "\"claude-3\""][pick(11, 3)];
        format!(
            "{{\"timestamp\": \"2026-11-27T{:02}:{:02}:{:02}.{:03}Z\", \"instance_id\": \
             \"router-{}\", \"routing_decision\": {{\"prefer\": {prefer}, \"outcome\": \
             \"{outcome}\", \"complexity\": \"{}\", \"selected_model\": \"model-{}\", \
             \"complexity_score\": {}, \"response_time_ms\": {response}, \"selected_provider\": \
             \"{}\", \"user_model_request\": {request}, \"capabilities_required\": {caps}}}}}",
            pick(1, 24),
            pick(13, 60),
            pick(17, 60),
            i % 1000,
            pick(19, 10),
            ["simple", "medium", "complex"][pick(2, 3)],
            pick(23, 12),
            ["0", "1.5", "3.25", "4.8", "5"][pick(29, 5)],
            ["anthropic", "openai", "github_models", "google"][pick(31, 4)],
        )
    }

    /// The message the brief of the typed pass names, and a few that trip a lax reader: each
    /// gets the same verdict both ways, and the typed pass takes the valid ones itself.
    #[test]
    fn typed_pass_on_chosen_messages() {
        let limits = Limits::default();
        let typical = "{\"timestamp\": \"2026-11-27T10:11:12.345Z\", \"instance_id\": \"router-3\", \
            \"routing_decision\": {\"prefer\": \"speed\", \"outcome\": \"success\", \"complexity\": \
            \"medium\", \"selected_model\": \"model-7\", \"response_time_ms\": 812, \
            \"complexity_score\": 3.25, \"selected_provider\": \"anthropic\", \
            \"user_model_request\": null, \"capabilities_required\": [\"vision\", \
            \"function_calling\"]}}";
        let event = typed::accept(typical, &limits).expect("the typed pass takes it");
        assert_eq!(
            Ok(event.clone()),
            parse_event_via_value(Some(typical), &limits)
        );
        assert_eq!(event.timestamp(), "2026-11-27T10:11:12.345000Z");
        assert_eq!(event.capabilities, vec!["vision", "function_calling"]);
        assert_eq!(event.response_time_ms, Some(812));
        let at = |old: &str, new: &str| typical.replacen(old, new, 1);
        let valid = [
            // Duplicates: the last one counts, as in serde_json's map.
            at("{\"timestamp\"", "{\"timestamp\": 5, \"timestamp\""),
            at(
                "\"instance_id\"",
                "\"routing_decision\": {\"outcome\": 1, \"complexity\": \"simple\"}, \"instance_id\"",
            ),
            // Escapes in keys and strings.
            at("\"timestamp\"", "\"time\\u0073tamp\""),
            at("\"medium\"", "\"m\\u0065dium\""),
            at("\"router-3\"", "\"router\\u002d3\\ud83d\\ude00\""),
            // Numbers however they are spelled.
            at("812", "8.12e2"),
            at("812", "-0"),
            at("3.25", "0.325E1"),
            // Unknown fields, however deep (within serde_json's limit).
            at("{\"timestamp\"", "{\"x\": {\"y\": [1, 2.5e-3, \"\\u00e9\"]}, \"timestamp\""),
            at(
                "{\"prefer\"",
                &format!("{{\"j\": {}{}, \"prefer\"", "[".repeat(125), "]".repeat(125)),
            ),
        ];
        for text in &valid {
            let fast = typed::accept(text, &limits);
            assert!(fast.is_some(), "{text}");
            assert_eq!(
                fast.map(Ok),
                Some(parse_event_via_value(Some(text), &limits))
            );
        }
        let invalid = [
            at("{\"timestamp\"", "{\"x\": 1e400, \"timestamp\""),
            at("{\"timestamp\"", "{\"x\": \"\\ud800\", \"timestamp\""),
            at("{\"timestamp\"", "{\"x\": 01, \"timestamp\""),
            at(
                "{\"prefer\"",
                &format!(
                    "{{\"j\": {}{}, \"prefer\"",
                    "[".repeat(126),
                    "]".repeat(126)
                ),
            ),
            at("\"speed\"", "\"speed\", \"prefer\": \"fast\""),
            at(
                "\"outcome\": \"success\"",
                "\"outcome\": \"success\", \"outcome\": null",
            ),
            at(
                "\"anthropic\"",
                "\"anthropic\", \"selected_provider\": \"\"",
            ),
            at("812", "812.5e7"),
            at("[\"vision\", ", "[\"vision\", 7, "),
            format!("{typical} x"),
            format!("[{typical}]"),
        ];
        // A duplicate of another type first: the typed pass leaves it to the Value path.
        let text = at("{\"prefer\"", "{\"outcome\": [], \"prefer\"");
        assert!(typed::accept(&text, &limits).is_none());
        assert_eq!(parse_event(Some(&text), &limits), Ok(event));
        for text in &invalid {
            assert!(typed::accept(text, &limits).is_none(), "{text}");
            assert!(parse_event(Some(text), &limits).is_err(), "{text}");
            assert_eq!(
                parse_event(Some(text), &limits),
                parse_event_via_value(Some(text), &limits)
            );
        }
    }

    proptest! {
        #![proptest_config(config(2000))]

        /// Every valid event, however its keys are ordered and spaced: the typed pass takes it
        /// and reads exactly what the Value path reads.
        #[test]
        fn typed_pass_takes_valid_events(
            text in valid_event().prop_flat_map(|ev| rendered(ev.value)),
            limits in any_limits(),
        ) {
            let slow = parse_event_via_value(Some(&text), &limits);
            let fast = typed::accept(&text, &limits);
            prop_assert_eq!(fast.is_some(), slow.is_ok(), "{:?}: {}", slow, clip(&text));
            same_verdict(&text, &limits)?;
        }

        /// One broken rule, or any field replaced by any JSON value: the same verdict.
        #[test]
        fn typed_pass_agrees_on_broken_events(
            text in prop_oneof![
                (valid_event(), one_broken_rule()).prop_flat_map(|(ev, b)| {
                    let mut v = ev.value;
                    put(&mut v, &b.path, b.value);
                    rendered(v)
                }),
                (valid_event(), select(field_paths()), any_json()).prop_flat_map(|(ev, p, j)| {
                    let mut v = ev.value;
                    put(&mut v, &p, Some(j));
                    rendered(v)
                }),
            ],
            limits in any_limits(),
        ) {
            same_verdict(&text, &limits)?;
        }

        /// Arbitrary text, token soup and mangled events: the same verdict.
        #[test]
        fn typed_pass_agrees_on_arbitrary_text(
            text in prop_oneof![any::<String>(), json_soup(), mangled_event_text()],
            limits in any_limits(),
        ) {
            same_verdict(&text, &limits)?;
        }
    }

    proptest! {
        #![proptest_config(config(6000))]

        /// Literals of every spelling in known and unknown fields, duplicate keys, escaped
        /// keys, junk nested around serde_json's depth limit: the same verdict.
        #[test]
        fn typed_pass_agrees_on_edited_text(
            text in edited_event_text(),
            limits in any_limits(),
        ) {
            same_verdict(&text, &limits)?;
        }
    }

    /// ns per typical message (200,000 of them, varied) through parse_event, through the
    /// Value path alone, and through what parse_event did before the typed pass (the Value
    /// path, the timestamp's text formatted for every event); best of five rounds. In a
    /// release build: `cargo test --release --lib typed_pass_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn typed_pass_speed() {
        use std::hint::black_box;
        use std::time::Instant;
        const N: usize = 200_000;
        type Parse = fn(Option<&str>, &Limits) -> Result<RoutingEvent, Rejection>;
        let messages: Vec<String> = (0..N).map(typical_message).collect();
        // As ingest judges them: with a window around the server time.
        let limits = Limits {
            now: DateTime::parse_from_rfc3339("2026-11-28T00:00:00Z")
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            ..Limits::default()
        };
        let before: Parse = |body, limits| {
            parse_event_via_value(body, limits).inspect(|e| drop(black_box(e.timestamp())))
        };
        let paths: [(&str, Parse); 3] = [
            ("before (Value path + timestamp text)", before),
            ("Value path", parse_event_via_value),
            ("parse_event", parse_event),
        ];
        let mut best = [f64::INFINITY; 3];
        for round in 1..=5 {
            for (i, (name, parse)) in paths.iter().enumerate() {
                let start = Instant::now();
                let mut accepted = 0;
                for text in &messages {
                    let verdict = parse(Some(black_box(text.as_str())), &limits);
                    accepted += usize::from(black_box(verdict).is_ok());
                }
                let ns = start.elapsed().as_nanos() as f64 / N as f64;
                assert_eq!(accepted, N, "{name}");
                best[i] = best[i].min(ns);
                println!("round {round}: {ns:5.0} ns/message  {name}");
            }
        }
        for (i, (name, _)) in paths.iter().enumerate() {
            let less = 100.0 * (1.0 - best[i] / best[0]);
            println!("best: {:5.0} ns/message  {name} ({less:.0}% less)", best[i]);
        }
    }
}

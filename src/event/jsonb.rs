//! The typed pass over a jsonb value's stored form, so ingest need not have PostgreSQL print
//! each message as text for it (printing took about 1 µs an event, more than judging it).
//!
//! The layout read here is PostgreSQL's on-disk jsonb format (`src/include/utils/jsonb.h`,
//! unchanged since 9.4, which pg_upgrade relies on): a container is a `uint32` header (count
//! and kind) and a `JEntry` per key and value (type, and the end offset or the length of its
//! data), then the data; numbers are `numeric` varlenas (`src/backend/utils/adt/numeric.c`)
//! at int-aligned offsets. Strings are stored unescaped, so they are borrowed as they are.
//!
//! Like the text pass, this one answers only for events it accepts, and only where the text
//! path would read the same: a number becomes the decimal text `numeric_out` prints, parsed by
//! serde_json as the text path parses it; an unknown field that holds a number or a container
//! (which the text path checks for numbers beyond f64 and depth) makes it give up, as does
//! anything unexpected in the layout. Giving up costs nothing but speed: the caller then judges
//! the message's text.

use super::typed::{Decision, Root, Scalar};
use super::{Limits, RoutingEvent};
use serde_json::Number;
use std::borrow::Cow;

/// The event, if this pass accepts the jsonb whose stored form (after the varlena header) is
/// `stored`.
pub(super) fn accept(stored: &[u8], limits: &Limits) -> Option<RoutingEvent> {
    // The varlena and numeric header bits read below are laid out for little-endian machines.
    if cfg!(target_endian = "big") {
        return None;
    }
    let root = Container::new(stored)?;
    if root.kind != Kind::Object {
        return None;
    }
    let mut event = Root::default();
    for i in 0..root.count {
        let (key, value) = root.field(i)?;
        match key {
            "timestamp" => event.timestamp = scalar(value)?,
            "instance_id" => event.instance_id = scalar(value)?,
            "routing_decision" => event.decision = Some(decision(value)?),
            _ => unknown(value)?,
        }
    }
    event.validate(limits)
}

/// `routing_decision`, which must be an object.
fn decision(value: Jv<'_>) -> Option<Decision<'_>> {
    let Jv::Container(c) = value else {
        return None;
    };
    if c.kind != Kind::Object {
        return None;
    }
    let mut d = Decision::default();
    for i in 0..c.count {
        let (key, value) = c.field(i)?;
        match key {
            "complexity" => d.complexity = scalar(value)?,
            "selected_model" => d.selected_model = scalar(value)?,
            "selected_provider" => d.selected_provider = scalar(value)?,
            "complexity_score" => d.complexity_score = scalar(value)?,
            "outcome" => d.outcome = scalar(value)?,
            "response_time_ms" => d.response_time_ms = scalar(value)?,
            "capabilities_required" => d.capabilities_required = strings(value)?,
            "prefer" => d.prefer = scalar(value)?,
            "user_model_request" => d.user_model_request = scalar(value)?,
            _ => unknown(value)?,
        }
    }
    Some(d)
}

/// A known scalar field: `Some(None)` for null (as absent), `None` (give up) for a boolean or
/// a container.
fn scalar(value: Jv<'_>) -> Option<Option<Scalar<'_>>> {
    match value {
        Jv::Null => Some(None),
        Jv::Str(text) => Some(Some(Scalar::Str(Cow::Borrowed(text)))),
        Jv::Num(numeric) => Some(Some(Scalar::Num(number(numeric)?))),
        Jv::Bool | Jv::Container(_) => None,
    }
}

/// `capabilities_required`: an array of strings, or null.
fn strings(value: Jv<'_>) -> Option<Option<Vec<Cow<'_, str>>>> {
    let c = match value {
        Jv::Null => return Some(None),
        Jv::Container(c) if c.kind == Kind::Array => c,
        _ => return None,
    };
    (0..c.count)
        .map(|i| match c.value(i)? {
            Jv::Str(text) => Some(Cow::Borrowed(text)),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .map(Some)
}

/// An unknown field: ignored if its text could not fail to parse (a string, a boolean, null).
fn unknown(value: Jv<'_>) -> Option<()> {
    match value {
        Jv::Null | Jv::Bool | Jv::Str(_) => Some(()),
        Jv::Num(_) | Jv::Container(_) => None,
    }
}

/// A number as the text path sees it: serde_json's reading of `numeric_out`'s text.
fn number(numeric: &[u8]) -> Option<Number> {
    serde_json::from_str(&Numeric::read(numeric)?.text()).ok()
}

// ---------------------------------------------------------------- the stored layout

const JB_CMASK: u32 = 0x0FFF_FFFF;
const JB_FSCALAR: u32 = 0x1000_0000;
const JB_FOBJECT: u32 = 0x2000_0000;
const JB_FARRAY: u32 = 0x4000_0000;
const JENTRY_OFFLENMASK: u32 = 0x0FFF_FFFF;
const JENTRY_TYPEMASK: u32 = 0x7000_0000;
const JENTRY_HAS_OFF: u32 = 0x8000_0000;
const JENTRY_ISSTRING: u32 = 0x0000_0000;
const JENTRY_ISNUMERIC: u32 = 0x1000_0000;
const JENTRY_ISBOOL_FALSE: u32 = 0x2000_0000;
const JENTRY_ISBOOL_TRUE: u32 = 0x3000_0000;
const JENTRY_ISNULL: u32 = 0x4000_0000;
const JENTRY_ISCONTAINER: u32 = 0x5000_0000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Object,
    Array,
    /// A scalar stored as a one-element array (a top-level `"text"` or `1`).
    Scalar,
}

/// One value in a container.
enum Jv<'a> {
    Null,
    Bool,
    Str(&'a str),
    /// The numeric varlena, header included.
    Num(&'a [u8]),
    Container(Container<'a>),
}

/// A jsonb container: its bytes from the header on.
struct Container<'a> {
    bytes: &'a [u8],
    kind: Kind,
    /// Pairs of an object, elements of an array.
    count: usize,
}

impl<'a> Container<'a> {
    fn new(bytes: &'a [u8]) -> Option<Self> {
        let header = read_u32(bytes, 0)?;
        let kind = match header & !JB_CMASK {
            JB_FOBJECT => Kind::Object,
            JB_FARRAY => Kind::Array,
            flags if flags == JB_FARRAY | JB_FSCALAR => Kind::Scalar,
            _ => return None,
        };
        let container = Container {
            bytes,
            kind,
            count: (header & JB_CMASK) as usize,
        };
        // The entries must fit before any data is read through them.
        (container.data_start()? <= bytes.len()).then_some(container)
    }

    fn entries(&self) -> usize {
        match self.kind {
            Kind::Object => self.count * 2,
            Kind::Array | Kind::Scalar => self.count,
        }
    }

    fn data_start(&self) -> Option<usize> {
        self.entries().checked_mul(4)?.checked_add(4)
    }

    fn entry(&self, index: usize) -> Option<u32> {
        read_u32(self.bytes, 4 + 4 * index)
    }

    /// Where entry `index`'s data starts, relative to the data: the sum of the lengths before
    /// it, back to the nearest entry that stores its end offset (every 32nd does).
    fn offset(&self, index: usize) -> Option<usize> {
        let mut offset = 0usize;
        for i in (0..index).rev() {
            let entry = self.entry(i)?;
            offset = offset.checked_add((entry & JENTRY_OFFLENMASK) as usize)?;
            if entry & JENTRY_HAS_OFF != 0 {
                break;
            }
        }
        Some(offset)
    }

    /// Entry `index`'s data (numbers and containers without their alignment padding).
    fn data(&self, index: usize) -> Option<(u32, &'a [u8])> {
        let entry = self.entry(index)?;
        let start = self.offset(index)?;
        let end = if entry & JENTRY_HAS_OFF != 0 {
            (entry & JENTRY_OFFLENMASK) as usize
        } else {
            start.checked_add((entry & JENTRY_OFFLENMASK) as usize)?
        };
        let kind = entry & JENTRY_TYPEMASK;
        let start = if matches!(kind, JENTRY_ISNUMERIC | JENTRY_ISCONTAINER) {
            start.checked_add(3)? & !3
        } else {
            start
        };
        let base = self.data_start()?;
        let data = self
            .bytes
            .get(base.checked_add(start)?..base.checked_add(end)?)?;
        Some((kind, data))
    }

    /// Value `index` (of an array, or the `index`th value of an object).
    fn value(&self, index: usize) -> Option<Jv<'a>> {
        let index = match self.kind {
            Kind::Object => self.count + index,
            Kind::Array | Kind::Scalar => index,
        };
        let (kind, data) = self.data(index)?;
        Some(match kind {
            JENTRY_ISNULL => Jv::Null,
            JENTRY_ISBOOL_FALSE | JENTRY_ISBOOL_TRUE => Jv::Bool,
            JENTRY_ISSTRING => Jv::Str(std::str::from_utf8(data).ok()?),
            JENTRY_ISNUMERIC => Jv::Num(data),
            JENTRY_ISCONTAINER => Jv::Container(Container::new(data)?),
            _ => return None,
        })
    }

    /// An object's `index`th key and value.
    fn field(&self, index: usize) -> Option<(&'a str, Jv<'a>)> {
        let (kind, key) = self.data(index)?;
        if kind != JENTRY_ISSTRING {
            return None;
        }
        Some((std::str::from_utf8(key).ok()?, self.value(index)?))
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(word.try_into().ok()?))
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let word = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes(word.try_into().ok()?))
}

/// A finite `numeric`: sign, weight of its first base-10,000 digit, display scale, digits.
struct Numeric {
    negative: bool,
    weight: i32,
    dscale: usize,
    digits: Vec<u16>,
}

const NUMERIC_SIGN_MASK: u16 = 0xC000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_SHORT: u16 = 0x8000;
const NUMERIC_SPECIAL: u16 = 0xC000;
const NUMERIC_SHORT_SIGN_MASK: u16 = 0x2000;
const NUMERIC_SHORT_DSCALE_MASK: u16 = 0x1F80;
const NUMERIC_SHORT_DSCALE_SHIFT: u16 = 7;
const NUMERIC_SHORT_WEIGHT_SIGN_MASK: u16 = 0x0040;
const NUMERIC_SHORT_WEIGHT_MASK: u16 = 0x003F;
const NUMERIC_DSCALE_MASK: u16 = 0x3FFF;
const NBASE: u16 = 10_000;

impl Numeric {
    /// Reads a numeric varlena (a 4-byte or a 1-byte header; NaN and infinities, which JSON
    /// cannot hold, are refused).
    fn read(varlena: &[u8]) -> Option<Self> {
        let (header_len, size) = match varlena.first()? {
            b if b & 0x01 == 0x01 => (1, usize::from(b >> 1)),
            b if b & 0x03 == 0x00 => (4, (read_u32(varlena, 0)? >> 2) as usize),
            _ => return None,
        };
        let body = varlena.get(header_len..size)?;
        let n_header = read_u16(body, 0)?;
        let (negative, weight, dscale, digits_at) = match n_header & NUMERIC_SIGN_MASK {
            NUMERIC_SPECIAL => return None,
            NUMERIC_SHORT => {
                let magnitude = i32::from(n_header & NUMERIC_SHORT_WEIGHT_MASK);
                let weight = if n_header & NUMERIC_SHORT_WEIGHT_SIGN_MASK != 0 {
                    magnitude - 64
                } else {
                    magnitude
                };
                let dscale = (n_header & NUMERIC_SHORT_DSCALE_MASK) >> NUMERIC_SHORT_DSCALE_SHIFT;
                let negative = n_header & NUMERIC_SHORT_SIGN_MASK != 0;
                (negative, weight, usize::from(dscale), 2)
            }
            sign => {
                let weight = i32::from(read_u16(body, 2)? as i16);
                let dscale = usize::from(n_header & NUMERIC_DSCALE_MASK);
                (sign == NUMERIC_NEG, weight, dscale, 4)
            }
        };
        let digits = body
            .get(digits_at..)?
            .chunks(2)
            .map(|pair| Some(u16::from_ne_bytes(pair.try_into().ok()?)).filter(|d| *d < NBASE))
            .collect::<Option<Vec<u16>>>()?;
        Some(Numeric {
            negative,
            weight,
            dscale,
            digits,
        })
    }

    /// The text `numeric_out` prints: the integer part without leading zeros ("0" if none),
    /// then exactly `dscale` fractional digits.
    fn text(&self) -> String {
        let digit = |i: i32| -> u16 {
            usize::try_from(i)
                .ok()
                .and_then(|i| self.digits.get(i).copied())
                .unwrap_or(0)
        };
        let mut text = String::new();
        if self.negative {
            text.push('-');
        }
        if self.weight < 0 {
            text.push('0');
        } else {
            text.push_str(&digit(0).to_string());
            for i in 1..=self.weight {
                text.push_str(&format!("{:04}", digit(i)));
            }
        }
        if self.dscale > 0 {
            text.push('.');
            let mut fraction = String::new();
            let mut i = self.weight + 1;
            while fraction.len() < self.dscale {
                fraction.push_str(&format!("{:04}", digit(i)));
                i += 1;
            }
            fraction.truncate(self.dscale);
            text.push_str(&fraction);
        }
        text
    }
}

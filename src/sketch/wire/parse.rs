//! A one-pass reader of the body's postcard layout into the mirror, without serde.
//!
//! Learning decodes about 80,000 stored sketches per 10,000 cells, and postcard's serde path
//! (a call and a bounds check per bin, a `Vec` grown element by element) was most of the cost.
//! This reader restates what postcard 1.2 does for the mirror's fields, and answers only when
//! it is sure: `Some` is exactly what `postcard::take_from_bytes::<WireSketch>` returns with
//! nothing left over; anything else (a bin length beyond `MAX_BINS` or beyond the input, a bad
//! varint or bool, bytes left over, too few bytes) is `None`, and the caller asks postcard,
//! so every error, and its message, stays postcard's. Property-tested against postcard in
//! `tests`.

use super::{Bins, WireConfig, WireSketch, WireStore};
use crate::sketch::MAX_BINS;

/// The mirror of `body` when postcard would read exactly it from all of `body`, else None.
pub(super) fn parse(body: &[u8]) -> Option<WireSketch> {
    let mut input = Input { rest: body };
    let sketch = WireSketch {
        config: input.config()?,
        store: input.store()?,
        negative_store: input.store()?,
        min: input.f64()?,
        max: input.f64()?,
        sum: input.f64()?,
        zero_count: input.u64()?,
    };
    input.rest.is_empty().then_some(sketch)
}

/// The bytes not read yet.
struct Input<'a> {
    rest: &'a [u8],
}

impl Input<'_> {
    fn config(&mut self) -> Option<WireConfig> {
        Some(WireConfig {
            max_num_bins: self.u32()?,
            gamma: self.f64()?,
            gamma_ln: self.f64()?,
            min_value: self.f64()?,
            offset: self.i32()?,
        })
    }

    fn store(&mut self) -> Option<WireStore> {
        Some(WireStore {
            bins: self.bins()?,
            count: self.u64()?,
            min_key: self.i32()?,
            max_key: self.i32()?,
            offset: self.i32()?,
            bin_limit: usize::try_from(self.u64()?).ok()?,
            is_collapsed: self.bool()?,
        })
    }

    /// A sequence of at most `MAX_BINS` u64s (longer ones are left to postcard, which keeps
    /// `MAX_BINS` of them and counts the rest). Each bin takes at least a byte, so a length
    /// beyond the input is left to postcard too, before any allocation.
    fn bins(&mut self) -> Option<Bins> {
        let len = usize::try_from(self.u64()?).ok()?;
        if len > MAX_BINS as usize || len > self.rest.len() {
            return None;
        }
        let mut kept = Vec::with_capacity(len);
        while kept.len() < len {
            // Most bins are under 128, one byte each: copied a run at a time.
            let ahead = (len - kept.len()).min(self.rest.len());
            let run = self.rest[..ahead]
                .iter()
                .take_while(|&&byte| byte < 0x80)
                .count();
            kept.extend(self.rest[..run].iter().map(|&byte| u64::from(byte)));
            self.rest = &self.rest[run..];
            if kept.len() < len {
                kept.push(self.u64()?);
            }
        }
        Some(Bins { kept, encoded: len })
    }

    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(first)
    }

    /// postcard's `try_take_varint_*`: 7 bits a byte, low first, at most `max_bytes` bytes,
    /// the last of which may hold at most `last_max`; overlong forms are accepted as postcard
    /// accepts them.
    fn varint(&mut self, max_bytes: u32, last_max: u8) -> Option<u64> {
        let mut out = 0u64;
        for i in 0..max_bytes {
            let byte = self.byte()?;
            out |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return (i < max_bytes - 1 || byte <= last_max).then_some(out);
            }
        }
        None
    }

    fn u64(&mut self) -> Option<u64> {
        // The common case, a bin under 128: one byte, no loop.
        match self.rest.first() {
            Some(&byte) if byte < 0x80 => {
                self.rest = &self.rest[1..];
                Some(u64::from(byte))
            }
            _ => self.varint(10, 0x01),
        }
    }

    fn u32(&mut self) -> Option<u32> {
        // At most 5 bytes, the last at most 0x0f: the value fits in 32 bits.
        self.varint(5, 0x0f).map(|v| v as u32)
    }

    /// Zigzag, as postcard's `de_zig_zag_i32`.
    fn i32(&mut self) -> Option<i32> {
        let n = self.u32()?;
        Some(((n >> 1) as i32) ^ -((n & 1) as i32))
    }

    fn f64(&mut self) -> Option<f64> {
        let (bytes, rest) = self.rest.split_first_chunk::<8>()?;
        self.rest = rest;
        Some(f64::from_le_bytes(*bytes))
    }

    fn bool(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;

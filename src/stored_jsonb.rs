//! A `jsonb` argument as PostgreSQL stores it: the bytes of its binary form, borrowed for the
//! call, without the text pgrx's `JsonB` has PostgreSQL print and serde parse (ingest reads
//! each message's binary form, `event::jsonb`, and asks for the text only when that gives up).

use pgrx::callconv::{Arg, ArgAbi};
use pgrx::prelude::*;
use std::ffi::CStr;

pub struct StoredJsonb<'a> {
    /// The (detoasted) varlena, for `text()`.
    datum: pg_sys::Datum,
    /// Its payload: the root container, from its header on.
    pub bytes: &'a [u8],
}

impl StoredJsonb<'_> {
    /// The value as `jsonb_out` prints it (what a `::text` cast gives).
    pub fn text(&self) -> String {
        // SAFETY: the datum is this call's jsonb argument; jsonb_out returns a palloc'd C
        // string, copied here and freed.
        unsafe {
            let printed =
                pgrx::direct_function_call::<&CStr>(pg_sys::jsonb_out, &[Some(self.datum)])
                    .expect("jsonb_out returns a string");
            let text = printed.to_string_lossy().into_owned();
            pg_sys::pfree(printed.as_ptr().cast_mut().cast());
            text
        }
    }
}

impl FromDatum for StoredJsonb<'_> {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null || datum.is_null() {
            return None;
        }
        // SAFETY: the caller passes a jsonb, a varlena: detoasted (in the call's memory
        // context, which outlives the borrow) and its payload borrowed, as for bytea.
        unsafe {
            let detoasted = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
            let bytes = <&[u8]>::from_polymorphic_datum(detoasted.into(), false, typoid)?;
            Some(StoredJsonb {
                datum: detoasted.into(),
                bytes,
            })
        }
    }
}

// SAFETY: the SQL type is jsonb, whose datums from_polymorphic_datum reads.
unsafe impl<'fcx> ArgAbi<'fcx> for StoredJsonb<'fcx> {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        // SAFETY: as above; pgrx calls this only for a non-null argument.
        unsafe { arg.unbox_arg_using_from_datum() }
            .unwrap_or_else(|| panic!("argument {index} must not be null"))
    }
}

pgrx::impl_sql_translatable!(StoredJsonb<'_>, arg_only = "jsonb");

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::StoredJsonb;
    use crate::event::{parse_event, parse_stored_event, Limits};
    use chrono::DateTime;
    use pgrx::prelude::*;
    use std::ffi::CString;

    /// `text` as a jsonb datum, if PostgreSQL takes it as jsonb.
    fn jsonb_of(text: &str) -> Option<pg_sys::Datum> {
        let text = CString::new(text).ok()?;
        // SAFETY: jsonb_in reads a C string; an error it raises stays in the subtransaction.
        crate::subxact::run(|| unsafe {
            pgrx::direct_function_call_as_datum(pg_sys::jsonb_in, &[text.as_c_str().into_datum()])
        })
        .ok()
        .flatten()
    }

    /// Judges `text` stored as jsonb and as the text PostgreSQL prints for it (what ingest read
    /// before); the verdicts must be equal, the score to the bit. Returns whether the binary
    /// pass took the message, or None when PostgreSQL refuses the text as jsonb.
    fn judged_alike(text: &str, limits: &Limits) -> Option<bool> {
        let datum = jsonb_of(text)?;
        // SAFETY: a jsonb datum, made just above.
        let message =
            unsafe { StoredJsonb::from_polymorphic_datum(datum, false, pg_sys::JSONBOID) }?;
        let printed = message.text();
        let mut from_text = false;
        let stored = parse_stored_event(
            message.bytes,
            || {
                from_text = true;
                printed.clone()
            },
            limits,
        );
        let direct = parse_event(Some(&printed), limits);
        assert_eq!(stored, direct, "{printed} with {limits:?}");
        if let (Ok(a), Ok(b)) = (&stored, &direct) {
            assert_eq!(a.score.to_bits(), b.score.to_bits(), "{printed}");
        }
        Some(!from_text)
    }

    /// Literals a field may hold: numbers of every spelling numeric keeps apart, strings with
    /// escapes and other scripts, the other JSON types.
    const LITERALS: &[&str] = &[
        "0",
        "-0",
        "5",
        "5.0",
        "4.99999999999999999999",
        "0.000001",
        "1e-7",
        "2.5e0",
        "1e2",
        "3.14159265358979323846264338327950288",
        "1e-400",
        "0.1",
        "100e-2",
        "812",
        "812.0",
        "812.5",
        "812.4999999",
        "1e3",
        "3600000",
        "3600000.4",
        "3600000.5",
        "1e400",
        "-0.4",
        "-1",
        "0.00012",
        "1234567.890123",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890",
        r#""simple""#,
        r#""medium""#,
        r#""complex""#,
        r#""success""#,
        r#""failure""#,
        r#""routed""#,
        r#""speed""#,
        r#""cost""#,
        r#""gpt-4o""#,
        r#""a\"b\\c\n\t\u00e9""#,
        r#""日本語 ✓ 🚀""#,
        r#""""#,
        r#""x""#,
        "null",
        "true",
        "false",
        "[]",
        r#"["vision"]"#,
        r#"["a", "b", "a"]"#,
        r#"[1, "a"]"#,
        "{}",
        r#"{"a": 1}"#,
        r#""2025-10-27T06:55:00Z""#,
        r#""2025-10-27T06:55:00.123456789+05:30""#,
        r#""2025-10-27 06:55:00""#,
        r#""2025-10-27""#,
    ];

    /// A small deterministic generator (xorshift), so the corpus is the same on every run.
    struct Draw(u64);

    impl Draw {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    /// A routing event, mostly valid: each field is sometimes replaced by any literal or
    /// left out, and up to 40 unknown fields (past jsonb's stride of 32 entries, where the
    /// layout stores offsets instead of lengths) are added at either level.
    fn event(draw: &mut Draw) -> String {
        let mut decision = vec![
            (r#""complexity""#.to_string(), r#""medium""#.to_string()),
            (
                r#""selected_model""#.into(),
                format!(r#""model-{}""#, draw.below(50)),
            ),
            (r#""selected_provider""#.into(), r#""anthropic""#.into()),
            (
                r#""complexity_score""#.into(),
                format!("{}.{}", draw.below(5), draw.below(100)),
            ),
            (r#""outcome""#.into(), r#""success""#.into()),
            (r#""response_time_ms""#.into(), draw.below(5000).to_string()),
            (
                r#""capabilities_required""#.into(),
                r#"["vision", "function_calling"]"#.into(),
            ),
            (r#""prefer""#.into(), r#""speed""#.into()),
            (r#""user_model_request""#.into(), "null".into()),
        ];
        for _ in 0..[0, 0, 0, 1, 2, 3][draw.below(6)] {
            let field = draw.below(decision.len());
            match draw.below(4) {
                0 => decision[field].1 = "null".into(),
                _ => decision[field].1 = draw.pick(LITERALS).into(),
            }
        }
        let extra = |draw: &mut Draw| -> Vec<(String, String)> {
            let count = [0, 0, 1, 3, 17, 40][draw.below(6)];
            // Mostly strings, booleans and null, which the binary pass skips; a number or a
            // container makes it leave the message to the text path.
            let kinds = [
                r#""text""#,
                r#""more text""#,
                "true",
                "false",
                "null",
                "7",
                r#"{"deep": [1, {"x": "y"}]}"#,
            ];
            (0..count)
                .map(|i| {
                    let value = match draw.below(12) {
                        0 => draw.pick(&kinds[5..]),
                        _ => draw.pick(&kinds[..5]),
                    };
                    (format!(r#""extra_{i}""#), value.to_string())
                })
                .collect()
        };
        decision.extend(extra(draw));
        let object = |fields: &[(String, String)]| {
            let inner: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("{{{}}}", inner.join(", "))
        };
        let mut root = vec![
            (
                r#""timestamp""#.to_string(),
                r#""2025-10-27T06:55:00.5+02:00""#.to_string(),
            ),
            (
                r#""instance_id""#.into(),
                format!(r#""router-{}""#, draw.below(20)),
            ),
            (r#""routing_decision""#.into(), object(&decision)),
        ];
        if draw.below(5) == 0 {
            root[draw.below(3)].1 = draw.pick(LITERALS).into();
        }
        root.extend(extra(draw));
        object(&root)
    }

    #[pg_test]
    fn the_binary_pass_judges_as_the_text_does() {
        let tight = Limits {
            max_string_chars: 8,
            max_response_time_ms: 1000,
            max_capabilities: 1,
            now: DateTime::from_timestamp(1_761_548_000, 0),
            max_age_s: 3600,
            max_future_s: 60,
        };
        let mut draw = Draw(0x9E37_79B9_7F4A_7C15);
        let (mut judged, mut binary) = (0, 0);
        for _ in 0..3000 {
            let text = event(&mut draw);
            for limits in [Limits::default(), tight] {
                if let Some(taken) = judged_alike(&text, &limits) {
                    judged += 1;
                    binary += usize::from(taken);
                }
            }
        }
        assert!(judged > 5000, "{judged} judged");
        assert!(binary > 400, "the binary pass took {binary} of {judged}");
    }

    #[pg_test]
    fn the_binary_pass_reads_past_the_offset_stride() {
        // 40 unknown fields at each level: more than 32 entries, so the layout stores end
        // offsets every 32nd entry, and the known keys sort among and after them.
        let extra: Vec<String> = (0..40).map(|i| format!(r#""x{i:02}": "{i}""#)).collect();
        let extra = extra.join(", ");
        let text = format!(
            r#"{{"timestamp": "2025-10-27T06:55:00Z", "instance_id": "i", {extra},
                 "routing_decision": {{{extra}, "complexity": "simple", "selected_model": "m",
                   "selected_provider": "p", "complexity_score": 2.5, "outcome": "success",
                   "response_time_ms": 812.5, "capabilities_required": ["vision"],
                   "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz": "last"}}}}"#
        );
        assert_eq!(judged_alike(&text, &Limits::default()), Some(true));
    }
}

#!/usr/bin/env python3
"""Routing events for the SQL-level ingest test: about 20% valid, the rest malformed.

Usage: python3 pg_test/malformed_events.py --count N --seed S > events.jsonl

Writes N lines, one per message:

    {"expect": "valid"|"invalid", "code": <reason code or null>, "message": <event>}

`message` is always the last key (a reader can cut it off the line as text: it may be nested
deeper than some JSON parsers allow). `expect`/`code` are what `parse_event` in src/event.rs
decides with `Limits::default()` (max 256 characters per string, response_time_ms up to
3600000, 32 capabilities, no window around the server time: valid timestamps span 1970..9999,
so ingest needs centralcloud.max_event_age and max_event_clock_skew at 0, as
pg_test/stress.sh sets them); `cargo test` checks them (event::props::
malformed_events_labels_match_the_validator, seed 7, 3000 lines).

Every message is something PostgreSQL's jsonb accepts (checked against PostgreSQL 15 with a
UTF8 database): no `\\u0000` (NUL cannot be stored in jsonb text), no lone surrogates, nesting at
most 200 levels, numbers at most a few hundred digits. Each line stays under 1.5 MB.

Mutations break exactly one rule of a valid event: a required field dropped or null, a field
(the root and routing_decision included) of the wrong JSON type, numbers out of range (1e308,
-1e-300, 10**30 written as an integer, 5.0000001), numbers beyond f64 (1e400: unparseable),
empty, overlong (100 000 characters) and NUL-free unicode strings, 10 000-item arrays, nesting
up to 200 levels (serde_json refuses more than 127: unparseable), values outside the
enumerations, timestamps in bad formats, before 1970 or after 9999 in UTC, at offsets beyond
+-15:59 or with leap seconds.

Valid events include the forms the seed allows that are easy to get wrong: a timestamp without
offset (read as UTC) and a response_time_ms with a fraction or exponent (rounded to whole ms).

Not produced: duplicate keys (jsonb keeps only the last one, so they never reach the
validator), "\\u0000", lone surrogates (jsonb refuses both at send time).
"""

import argparse
import json
import random
import sys
from datetime import datetime, timedelta, timezone

COMPLEXITY = ["simple", "medium", "complex"]
OUTCOME = ["routed", "success", "failure"]
PREFER = ["speed", "cost"]
MAX_CHARS = 256
MAX_CAPS = 32
MAX_RESPONSE_MS = 3_600_000
MAX_TIMESTAMP_CHARS = 64
SERDE_MAX_DEPTH = 127  # serde_json's recursion limit: 128 nested containers fail
JSONB_MAX_DEPTH = 200  # what the SQL side asks for
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_LINE_BYTES = 1_500_000


class Raw:
    """A number literal written exactly as given (1e400, -0, 1e3, ...)."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return f"Raw({self.text})"


def dump(value, ascii_only):
    out = []

    def walk(v):
        if isinstance(v, Raw):
            out.append(v.text)
        elif v is None:
            out.append("null")
        elif v is True:
            out.append("true")
        elif v is False:
            out.append("false")
        elif isinstance(v, int):
            out.append(str(v))
        elif isinstance(v, float):
            assert v == v and v not in (float("inf"), float("-inf")), v
            out.append(json.dumps(v))
        elif isinstance(v, str):
            assert "\x00" not in v, "NUL cannot be stored in jsonb"
            out.append(json.dumps(v, ensure_ascii=ascii_only))
        elif isinstance(v, list):
            out.append("[")
            for i, item in enumerate(v):
                if i:
                    out.append(",")
                walk(item)
            out.append("]")
        elif isinstance(v, dict):
            out.append("{")
            for i, (k, item) in enumerate(v.items()):
                if i:
                    out.append(",")
                out.append(json.dumps(k, ensure_ascii=ascii_only))
                out.append(":")
                walk(item)
            out.append("}")
        else:
            raise TypeError(type(v))

    walk(value)
    return "".join(out)


def depth(v):
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((depth(x) for x in v.values()), default=0)
    return 0


def nested(rng, levels, leaf):
    """`leaf` inside `levels` arrays/objects."""
    v = leaf
    for _ in range(levels):
        v = [v] if rng.random() < 0.5 else {"k": v}
    return v


# ------------------------------------------------------------------------------ strings

# Characters the validator takes like any other (it only refuses NUL): combining marks,
# zero-width and bidi controls, right-to-left scripts, 4-byte characters, controls.
SPECIALS = [
    "\u0301", "\u0308", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202e", "\u202b",
    "\u200f", "\u061c", "\u05d0", "\u05e9", "\u0627", "\u0639", "\u0663", "\U0001F600",
    "\U0001F680", "\U0001F469\u200d\U0001F4BB", "\U0001D518", "\U00010FFFD", "\uFFFD", "\uFFFF",
    "\u00e9", "\u00df", "\u4e2d", "\u6587", "\u0001", "\u001f", "\u007f", "\n", "\t", '"', "\\",
    "/", "\u2028", "\u2212", "\uff10",
]
NAME_POOL = [
    "singularity-1", "singularity-2", "router-eu-west-1", "router_7", "gpt-4o", "gpt-4o-mini",
    "claude-3-5-sonnet", "llama-3.1-70b", "github_models", "anthropic", "openai", "groq",
    "\u8def\u7531\u5668-7", "\u0631\u0627\u0648\u062a\u0631-\u0663", "\u05de\u05d5\u05d3\u05dc",
    "emoji-\U0001F680-router", "e\u0301cole", "zero\u200bwidth", "rtl-\u202eevil",
    "\U0001D518\U0001D52B\U0001D526\U0001D520\U0001D52C\U0001D521\U0001D522",
    "\U0001F469\u200d\U0001F4BB", "a", "x" * MAX_CHARS, "\U0001F600" * MAX_CHARS,
    "e\u0301" * (MAX_CHARS // 2), "line\nbreak", "tab\there", 'quote"and\\backslash',
]


def random_char(rng):
    r = rng.random()
    if r < 0.45:
        return rng.choice("abcdefghijklmnopqrstuvwxyz")
    if r < 0.55:
        return rng.choice("-_.:0123456789ABCZ")
    if r < 0.75:
        return rng.choice(SPECIALS)[0]
    if r < 0.85:
        return chr(rng.randrange(0x80, 0x800))
    if r < 0.93:
        c = rng.randrange(0x800, 0x10000)
        return chr(c) if not 0xD800 <= c <= 0xDFFF else "\ue000"
    return chr(rng.randrange(0x10000, 0x110000))


def random_chars(rng, n):
    return "".join(random_char(rng) for _ in range(n))


def name(rng):
    r = rng.random()
    if r < 0.5:
        return rng.choice(NAME_POOL)
    if r < 0.85:
        return random_chars(rng, rng.randint(1, 40))
    return random_chars(rng, rng.choice([MAX_CHARS, rng.randint(1, MAX_CHARS)]))


def too_long_string(rng):
    r = rng.random()
    if r < 0.4:
        return random_chars(rng, rng.choice([MAX_CHARS + 1, rng.randint(MAX_CHARS + 1, 2000)]))
    unit = rng.choice(["x", "\U0001F600", "e\u0301", "\u202e", "\u4e2d"])
    return unit * (100_000 // len(unit))  # 100 000 characters


# ------------------------------------------------------------------------------ timestamps


def offset_text(minutes, rng):
    if minutes == 0:
        return rng.choice(["Z", "Z", "z", "+00:00", "-00:00"])
    sign = "-" if minutes < 0 else "+"
    m = abs(minutes)
    return f"{sign}{m // 60:02d}:{m % 60:02d}"


def local_text(local, sep="T"):
    return f"{local.year:04d}-{local.month:02d}-{local.day:02d}{sep}" \
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}"


def fraction(rng):
    digits = rng.choice([0, 0, 0, 1, 3, 3, 6, 6, 9, rng.randint(1, 12)])
    if digits == 0:
        return ""
    return "." + "".join(rng.choice("0123456789") for _ in range(digits))


def valid_timestamp(rng, without_offset_ok=False):
    if rng.random() < 0.7:
        start, end = datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2026, 12, 31, tzinfo=timezone.utc)
    else:
        start, end = EPOCH, datetime(9999, 12, 30, tzinfo=timezone.utc)
    utc = start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))
    offset = rng.choice([0, 0, 0, 60, 120, 330, 345, 540, -300, -420, -480, 840, -720, 959, -959,
                         rng.randint(-959, 959)])
    if utc < EPOCH + timedelta(days=1):
        offset = abs(offset)
    local = utc + timedelta(minutes=offset)
    sep = rng.choice(["T"] * 8 + ["t", " "])
    if without_offset_ok and rng.random() < 0.1:  # datetime.utcnow().isoformat(): read as UTC
        return local_text(utc, sep) + fraction(rng)
    return local_text(local, sep) + fraction(rng) + offset_text(offset, rng)


BAD_TIMESTAMPS = [
    "2025-10-27", "2025-10-27T06:55", "2025-10-27T06:55:00.", "2025-10-27X06:55:00", "06:55:00Z",
    "27/10/2025 06:55", "2025/10/27T06:55:00Z", "2025-13-01T00:00:00Z", "2025-00-10T00:00:00Z",
    "2025-01-32T00:00:00Z", "2025-02-29T00:00:00Z", "2025-04-31T00:00:00Z",
    "2025-10-27T24:00:00Z", "2025-10-27T25:00:00Z", "2025-10-27T06:60:00Z",
    "2025-10-27T06:55:61Z", "2025-10-27T06:55:00+24:00", "2025-10-27T06:55:00+05:60",
    "2025-10-27T06:55:00+0530", "2025-10-27T06:55:00+05", "2025-10-27T06:55:00 +05:00",
    "2025-10-27T06:55:00.Z", "2025-10-27T06:55:00Z ", " 2025-10-27T06:55:00Z",
    "2025-10-27T06:55:00ZZ", "2025-10-27T06:55:00UTC", "2025-10-27T06:55:00 GMT",
    "+2025-10-27T06:55:00Z", "25-10-27T06:55:00Z", "20251027T065500Z", "2025-W44-1T06:55:00Z",
    "2025-300T06:55:00Z", "Mon, 27 Oct 2025 06:55:00 +0000", "1761548100", "1761548100000",
    "yesterday", "now", "today", "null", "", "NaN",
    "2025-10-27T06:55:00\u221205:00",  # U+2212 MINUS SIGN: chrono takes it, PostgreSQL does not
    "\uff12\uff10\uff12\uff15-10-27T06:55:00Z",  # fullwidth digits
    "\u0662\u0660\u0662\u0665-10-27T06:55:00Z",  # Arabic-Indic digits
    "2025\u201010-27T06:55:00Z", "2025-10-27\u200906:55:00Z", "2025-10-27T06:55:00Z\u200b",
    "\u202e2025-10-27T06:55:00Z", "2025-10-27T06:55:00.123\u0301Z", "2025-10-27T06:55:00\uff3a",
]


def bad_timestamp(rng):
    if rng.random() < 0.6:
        return rng.choice(BAD_TIMESTAMPS)
    text = valid_timestamp(rng)
    digits = [i for i, c in enumerate(text) if c.isdigit()]
    i = rng.choice(digits)
    return text[:i] + rng.choice("xO/:-+ .TZ\u0661\u2212") + text[i + 1:]


def out_of_range_timestamp(rng):
    r = rng.random()
    if r < 0.3:  # before 1970 (in UTC)
        utc = datetime(1, 1, 2, tzinfo=timezone.utc) + timedelta(
            seconds=rng.randrange(int((EPOCH - datetime(1, 1, 2, tzinfo=timezone.utc)).total_seconds())))
        if rng.random() < 0.5:
            utc = EPOCH - timedelta(seconds=rng.randint(1, 86400))
        offset = rng.randint(-959, 959)
        local = utc + timedelta(minutes=offset)
        return local_text(local) + fraction(rng) + offset_text(offset, rng)
    if r < 0.4:
        return rng.choice(["1969-12-31T23:59:59Z", "1970-01-01T00:59:59+01:00", "0000-01-01T00:00:00Z",
                           "1969-12-31T23:59:60Z", "1900-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00",
                           "1969-12-31T23:59:59.9999999Z", "9999-12-31T23:59:59-15:00",
                           "9999-12-31T23:59:59-00:01", "9999-12-31T23:59:59.9999999-00:01"])
    if r < 0.45:  # after 9999 (in UTC): 9999-12-31 local at a negative offset reaching 10000
        minutes = rng.randint(1, 959)
        secs = rng.randint(86400 - minutes * 60, 86399)
        local = f"9999-12-31T{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
        return local + fraction(rng) + offset_text(-minutes, rng)
    if r < 0.75:  # offset beyond +-15:59 (PostgreSQL: time zone displacement out of range)
        local = datetime(1970, 1, 2) + timedelta(seconds=rng.randrange(int((datetime(9999, 12, 30) - datetime(1970, 1, 2)).total_seconds())))
        m = rng.choice([960, 1439, rng.randint(960, 1439)])
        return local_text(local) + fraction(rng) + offset_text(rng.choice([m, -m]), rng)
    # leap second (PostgreSQL refuses 23:59:60.5)
    day = datetime(1970, 1, 2) + timedelta(days=rng.randrange(2_900_000))
    h, m = rng.choice([(23, 59), (rng.randrange(24), rng.randrange(60))])
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}T{h:02d}:{m:02d}:60" + fraction(rng) + \
        offset_text(rng.randint(-959, 959), rng)


def too_long_timestamp(rng):
    r = rng.random()
    if r < 0.6:
        n = rng.choice([MAX_TIMESTAMP_CHARS + 1, rng.randint(MAX_TIMESTAMP_CHARS + 1, 300), 5000])
        head = "2025-10-27T06:55:00."
        return head + "1" * (n - len(head) - 1) + "Z"
    if r < 0.8:
        return random_chars(rng, rng.randint(MAX_TIMESTAMP_CHARS + 1, 500))
    return "\U0001F600" * 100_000


# ------------------------------------------------------------------------------ valid events


def valid_score(rng):
    r = rng.random()
    if r < 0.6:
        return round(rng.uniform(0, 5), rng.choice([1, 2, 3, 4, 15]))
    if r < 0.8:
        return rng.randint(0, 5)
    return rng.choice([0, 0.0, 5, 5.0, 2.5, 4.999999, 1e-300, Raw("-0"), Raw("0e10"), Raw("1e-400"),
                       Raw("-1e-400"), Raw("5e0"), Raw("0.5E1"), Raw("4.99999999999999999999"),
                       Raw("0.000000000000000000000000000000001")])


def optional(rng, make, present=0.6):
    """absent (None key), JSON null, or a value."""
    r = rng.random()
    if r < present:
        return make()
    return "<absent>" if r < present + (1 - present) / 2 else None


def extra_value(rng):
    return rng.choice([1, "x", True, None, [1, 2], {"a": {"b": [None]}}, 1e308, 10 ** 30,
                       "\U0001F600\u202e", Raw("1e308"), Raw("-0")])


def valid_event(rng):
    decision = {
        "complexity": rng.choice(COMPLEXITY),
        "selected_model": name(rng),
        "selected_provider": name(rng),
        "complexity_score": valid_score(rng),
        "outcome": rng.choice(OUTCOME),
    }
    fields = {
        "response_time_ms": optional(rng, lambda: rng.choice([0, MAX_RESPONSE_MS, rng.randint(0, MAX_RESPONSE_MS),
                                                              rng.randint(1, 5000)])),
        "capabilities_required": optional(rng, lambda: [name(rng) for _ in range(
            rng.choice([0, 1, 2, 3, MAX_CAPS, rng.randint(0, MAX_CAPS)]))]),
        "prefer": optional(rng, lambda: rng.choice(PREFER)),
        "user_model_request": optional(rng, lambda: name(rng)),
    }
    for k, v in fields.items():
        if v != "<absent>":
            decision[k] = v
    event = {"timestamp": valid_timestamp(rng, without_offset_ok=True), "instance_id": name(rng), "routing_decision": decision}
    if rng.random() < 0.2:  # unknown fields are tolerated
        event[rng.choice(["extra", "metadata", "version", "\u202eextra"])] = extra_value(rng)
        decision[rng.choice(["new_field", "latency_budget", "tags"])] = extra_value(rng)
    keys = list(event)
    rng.shuffle(keys)
    return {k: event[k] for k in keys}


# ------------------------------------------------------------------------------ mutations

REQUIRED = [("timestamp",), ("instance_id",), ("routing_decision",), ("routing_decision", "complexity"),
            ("routing_decision", "selected_model"), ("routing_decision", "selected_provider"),
            ("routing_decision", "complexity_score"), ("routing_decision", "outcome")]
STRINGY = [("timestamp",), ("instance_id",), ("routing_decision", "complexity"),
           ("routing_decision", "selected_model"), ("routing_decision", "selected_provider"),
           ("routing_decision", "outcome"), ("routing_decision", "prefer"),
           ("routing_decision", "user_model_request")]
NAMES = [("instance_id",), ("routing_decision", "selected_model"),
         ("routing_decision", "selected_provider"), ("routing_decision", "user_model_request")]
ENUMS = {("routing_decision", "complexity"): COMPLEXITY, ("routing_decision", "outcome"): OUTCOME,
         ("routing_decision", "prefer"): PREFER}
SCORE = ("routing_decision", "complexity_score")
RESPONSE = ("routing_decision", "response_time_ms")
CAPS = ("routing_decision", "capabilities_required")


def put(event, path, value="<absent>"):
    obj = event
    for key in path[:-1]:
        obj = obj[key]
    if value == "<absent>":
        obj.pop(path[-1], None)
    else:
        obj[path[-1]] = value


def with_bad_cap(rng, bad):
    items = [name(rng) for _ in range(rng.randint(0, MAX_CAPS - 1))]
    items.insert(rng.randint(0, len(items)), bad)
    return items


def not_string(rng):
    return rng.choice([True, False, 0, 7, -1, 4.8, 1e308, 10 ** 30, 1761548100, 1761548100000,
                       1761548100.5, [], ["gpt-4o"], {}, {"name": "x"}, [[["deep"]]],
                       {"a": [1, {"b": None}]}, ["2025-10-27T06:55:00Z"]])


def not_number(rng):
    return rng.choice(["4.8", "NaN", "Infinity", "-Infinity", "1e400", "", "0", True, False, [], [4.8],
                       {}, {"value": 4.8}])


def not_array(rng):
    return rng.choice(["vision", "", "[\"vision\"]", 1, 0, True, False, {}, {"0": "vision"}, 4.8])


def not_object(rng):
    return rng.choice([[], [1, 2], "complex", "", "{}", 3, 0, 1e308, True, False])


def near_miss(rng, allowed):
    word = rng.choice(allowed)
    miss = rng.choice([
        word.upper(), word.capitalize(), " " + word, word + " ", word + "\n", word + "\u200b",
        "\u202e" + word, word + "\u0301", word[:-1], word * 2,
        "".join(chr(ord(c) - ord("a") + 0xFF41) for c in word),  # fullwidth
        "\U0001F642", "extreme", "quality", "timeout", "fast", "speed,cost", "null", "none",
        random_chars(rng, rng.randint(1, 30)), "y" * 100_000,
    ])
    return miss if miss not in allowed else miss + "!"


def mutate(rng, event):
    """Returns (message, code); code None means still valid."""
    kind = rng.choice([
        "drop", "null", "root", "decision", "retype", "retype", "score_type", "response_type",
        "caps_type", "cap_item_type", "score_range", "score_range", "score_beyond_f64",
        "response_range", "response_range", "response_float", "empty", "empty", "too_long",
        "too_long", "too_many", "enum", "enum", "timestamp_bad", "timestamp_bad", "timestamp_bad",
        "timestamp_range", "timestamp_range", "timestamp_too_long", "deep", "deep_field",
        "beyond_f64_elsewhere",
    ])
    if kind == "drop":
        put(event, rng.choice(REQUIRED))
        return event, "missing_field"
    if kind == "null":
        put(event, rng.choice(REQUIRED), None)
        return event, "missing_field"
    if kind == "root":
        return rng.choice([[event], [], "event", "", 42, -0.0, 1e308, True, None,
                           dump(event, False), [1, "two", None]]), "not_an_object"
    if kind == "decision":
        d = event["routing_decision"]
        put(event, ("routing_decision",), rng.choice([[d], not_object(rng)]))
        return event, "not_an_object"
    if kind == "retype":
        put(event, rng.choice(STRINGY), not_string(rng))
        return event, "wrong_type"
    if kind == "score_type":
        put(event, SCORE, not_number(rng))
        return event, "wrong_type"
    if kind == "response_type":
        put(event, RESPONSE, rng.choice(["120", "", "fast", True, [120], {"ms": 1}]))
        return event, "wrong_type"
    if kind == "caps_type":
        put(event, CAPS, not_array(rng))
        return event, "wrong_type"
    if kind == "cap_item_type":
        put(event, CAPS, with_bad_cap(rng, rng.choice([1, None, True, 4.8, ["vision"], {"x": 1}])))
        return event, "wrong_type"
    if kind == "score_range":
        put(event, SCORE, rng.choice([5.0000001, 5.000001, 5.1, 6, 7.5, -0.1, -1, 1e308, 1e30, 10 ** 30,
                                      -(10 ** 30), 2 ** 63, -(2 ** 63), 2 ** 64, Raw("1e308"),
                                      Raw("-1e-300"), Raw("5.0000001"), Raw("-1e-300"),
                                      Raw("1" + "0" * 308), Raw("-0.1e1")]))
        return event, "out_of_range"
    if kind == "score_beyond_f64":
        put(event, SCORE, rng.choice([Raw("1e400"), Raw("-1e400"), Raw("1e309"), Raw("1.8e308"),
                                      Raw("1" + "0" * 400), Raw("-" + "9" * 330)]))
        return event, "unparseable"
    if kind == "beyond_f64_elsewhere":
        where = rng.choice([RESPONSE, ("extra",), ("routing_decision", "extra")])
        put(event, where, rng.choice([Raw("1e400"), Raw("-1e309"), Raw("1" + "0" * 500)]))
        return event, "unparseable"
    if kind == "response_range":
        put(event, RESPONSE, rng.choice([-1, MAX_RESPONSE_MS + 1, 10 ** 30, 2 ** 31, 2 ** 63, 2 ** 64,
                                         -(2 ** 63), -0.4, Raw("-1e-300"), 1e12, Raw("1e7"),
                                         Raw("-1e3"), Raw("3600000.5"), rng.randint(-10 ** 9, -1),
                                         rng.randint(MAX_RESPONSE_MS + 1, 10 ** 12)]))
        return event, "out_of_range"
    if kind == "response_float":  # still valid: rounded to whole ms
        put(event, RESPONSE, rng.choice([Raw("-0"), Raw("1e3"), Raw("1E2"), Raw("1.0e2"), Raw("3.6e6"),
                                         Raw("0e0"), 12.5, 12.0, 0.0, Raw("-0.0"), 812.0, 15.51,
                                         Raw("3600000.4"), rng.uniform(0, MAX_RESPONSE_MS)]))
        return event, None
    if kind == "empty":
        path = rng.choice(NAMES + list(ENUMS) + [("timestamp",), CAPS])
        if path == CAPS:
            put(event, CAPS, with_bad_cap(rng, ""))
            return event, "empty_string"
        put(event, path, "")
        if path in ENUMS:
            return event, "not_allowed"
        return event, "bad_timestamp" if path == ("timestamp",) else "empty_string"
    if kind == "too_long":
        path = rng.choice(NAMES + [CAPS])
        s = too_long_string(rng)
        put(event, path, with_bad_cap(rng, s) if path == CAPS else s)
        return event, "too_long"
    if kind == "too_many":
        n = rng.choice([MAX_CAPS + 1, rng.randint(MAX_CAPS + 1, 200), 10_000])
        pool = ["vision", "function_calling", "\U0001F600", "e\u0301", 1, None]
        items = [rng.choice(pool) for _ in range(n)]
        put(event, CAPS, items)
        return event, "too_many"
    if kind == "enum":
        path = rng.choice(list(ENUMS))
        put(event, path, near_miss(rng, ENUMS[path]))
        return event, "not_allowed"
    if kind == "timestamp_bad":
        put(event, ("timestamp",), bad_timestamp(rng))
        return event, "bad_timestamp"
    if kind == "timestamp_range":
        put(event, ("timestamp",), out_of_range_timestamp(rng))
        return event, "out_of_range"
    if kind == "timestamp_too_long":
        put(event, ("timestamp",), too_long_timestamp(rng))
        return event, "too_long"
    if kind == "deep":  # an unknown field nested deep: fine up to serde_json's limit
        where = rng.choice([("extra",), ("routing_decision", "extra")])
        total = rng.choice([rng.randint(len(where) + 1, JSONB_MAX_DEPTH), SERDE_MAX_DEPTH,
                            SERDE_MAX_DEPTH + 1, JSONB_MAX_DEPTH])
        leaf = rng.choice([1, "x", None, []])
        levels = total - len(where) - depth(leaf)
        put(event, where, nested(rng, levels, leaf))
        assert depth(event) == total
        return event, None
    if kind == "deep_field":  # a typed field nested deep: wrong type, or unparseable
        path = rng.choice(STRINGY + [SCORE, RESPONSE, ("routing_decision",)])
        levels = rng.randint(1, JSONB_MAX_DEPTH - len(path))
        leaf = rng.choice([1, "x", None])
        value = nested(rng, levels, leaf)
        put(event, path, value)
        if path == ("routing_decision",):
            # An array is not an object; {"k": ...} is one, without the required fields.
            return event, "not_an_object" if isinstance(value, list) else "missing_field"
        return event, "wrong_type"
    raise AssertionError(kind)


def message(rng):
    """(message, expect, code)."""
    event = valid_event(rng)
    if rng.random() < 0.2:
        if rng.random() < 0.08:  # a big but valid event
            where = rng.choice([("extra",), ("routing_decision", "extra")])
            put(event, where, rng.choice([list(range(10_000)), "z" * 100_000,
                                          nested(rng, SERDE_MAX_DEPTH - len(where), "ok")]))
        return event, "valid", None
    msg, code = mutate(rng, event)
    if isinstance(msg, (dict, list)) and depth(msg) > SERDE_MAX_DEPTH:
        return msg, "invalid", "unparseable"
    if code is None:
        return msg, "valid", None
    return msg, "invalid", code


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    out = sys.stdout
    out.reconfigure(encoding="utf-8", newline="\n")
    written = 0
    while written < args.count:
        msg, expect, code = message(rng)
        text = dump(msg, ascii_only=rng.random() < 0.3)
        if len(text.encode("utf-8")) > MAX_LINE_BYTES:  # \uXXXX escapes take 6 bytes
            text = dump(msg, ascii_only=False)
        line = f'{{"expect": {json.dumps(expect)}, "code": {json.dumps(code)}, "message": {text}}}\n'
        if len(line.encode("utf-8")) > MAX_LINE_BYTES:
            continue
        assert "\\u0000" not in text.lower()
        assert depth(msg) <= JSONB_MAX_DEPTH
        out.write(line)
        written += 1


if __name__ == "__main__":
    main()

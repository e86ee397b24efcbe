-- Crafted latency sketches: the sketch functions are executable by PUBLIC, so a login with no
-- centralcloud role passes them bytes of its own. Each value below decoded, before the checks,
-- into a sketch the crate then trusted: merging the first two made the backend allocate 128
-- MiB (with a key of 2^30 instead of 2^24, 8 GiB: a failed allocation aborts the backend and
-- restarts the cluster). Now every decode failure is an ERROR with SQLSTATE 22P03
-- (invalid_binary_representation), before anything is allocated or merged, and valid sketches
-- work as before. The hex values are printed by the Rust tests in src/sketch/wire/tests.rs
-- (cargo test --lib crafted -- --nocapture) and src/sketch.rs (PINNED_HEX).
\ir lib.sql
GRANT USAGE ON SCHEMA test TO PUBLIC;

-- Expects `statement` to fail with invalid_binary_representation and exactly `message`.
CREATE FUNCTION test.rejected(statement text, message text, label text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RAISE EXCEPTION 'FAILED %: accepted: %', label, statement;
EXCEPTION WHEN invalid_binary_representation THEN
    PERFORM test.eq(SQLERRM, message, label);
END $$;

-- The attacker: a login with no centralcloud role. It is given USAGE on the extension's schema
-- only (what the reader and operator groups have), so every function it reaches runs on the
-- EXECUTE privilege PUBLIC holds.
DROP ROLE IF EXISTS t14_attacker;
CREATE ROLE t14_attacker LOGIN;
GRANT USAGE ON SCHEMA centralcloud TO t14_attacker;
SELECT test.eq((SELECT count(*) FROM pg_auth_members WHERE member = 't14_attacker'::regrole), 0::bigint,
               'the attacker is in no role');
SET ROLE t14_attacker;

CREATE TEMP TABLE crafted (name text PRIMARY KEY, bytes bytea NOT NULL, message text NOT NULL);
INSERT INTO crafted VALUES
    -- One sample at key 0, in a store whose bin limit is 2^64 - 1.
    ('key 0, no bin limit',
     '\x018010fd4a815abf52f03f97059d050e7b943f000000000000e03f46010101000000ffffffffffffffffff01000000feffffff0fffffffff0f00801000000000000000f03f000000000000f03f000000000000f03f00',
     'centralcloud: latency sketch is corrupt: positive store: bin limit is not 2048'),
    -- The same at key 2^24: merged with the first, 2^24 + 128 bins of 8 bytes.
    ('key 2^24, no bin limit',
     '\x018010fd4a815abf52f03f97059d050e7b943f000000000000e03f46010101808080108080801080808010ffffffffffffffffff01000000feffffff0fffffffff0f00801000000000000000f03f000000000000f03f000000000000f03f00',
     'centralcloud: latency sketch is corrupt: positive store: bin limit is not 2048'),
    -- The right bin limit, but a key (2^30) no i32 latency maps to.
    ('key 2^30',
     '\x018010fd4a815abf52f03f97059d050e7b943f000000000000e03f460101018080808008808080800880808080088010000000feffffff0fffffffff0f00801000000000000000f03f000000000000f03f000000000000f03f00',
     'centralcloud: latency sketch is corrupt: positive store: keys outside those of i32 values'),
    -- A valid sketch (PINNED_HEX) with one byte more.
    ('trailing byte',
     '\x018010fd4a815abf52f03f97059d050e7b943f000000000000e03f468001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000200000000000000000100000000000000000000020000000000000000010000000000000000000000000000000000000000000000000000000000000000000006ce038804ce028010000000feffffff0fffffffff0f008010000000000000000000000000000080664000000000000889400100',
     'centralcloud: latency sketch is corrupt: bytes left over after the sketch'),
    ('zero bytes', '\x', 'centralcloud: latency sketch is empty (zero bytes)'),
    ('unknown version', '\x02', 'centralcloud: unknown latency sketch format version 2');

-- Every function, on every crafted value.
SELECT test.rejected(format('SELECT centralcloud.latency_sketch_count(bytes) FROM crafted WHERE name = %L', name),
                     message, 'latency_sketch_count: ' || name)
  FROM crafted;
SELECT test.rejected(format('SELECT centralcloud.latency_quantile(bytes, 0.5) FROM crafted WHERE name = %L', name),
                     message, 'latency_quantile: ' || name)
  FROM crafted;
SELECT test.rejected(format('SELECT centralcloud.latency_sketch_merge(bytes, NULL) FROM crafted WHERE name = %L', name),
                     message, 'latency_sketch_merge with NULL: ' || name)
  FROM crafted;
SELECT test.rejected(format('SELECT centralcloud.latency_sketch_union(bytes) FROM crafted WHERE name = %L', name),
                     message, 'latency_sketch_union: ' || name)
  FROM crafted;

-- The attack itself: the two values merged, by the function and by the aggregate.
SELECT test.rejected($$SELECT centralcloud.latency_sketch_merge(a.bytes, b.bytes)
                         FROM crafted a, crafted b
                        WHERE a.name = 'key 0, no bin limit' AND b.name = 'key 2^24, no bin limit'$$,
                     'centralcloud: latency sketch is corrupt: positive store: bin limit is not 2048',
                     'latency_sketch_merge(crafted, crafted)');
SELECT test.rejected($$SELECT centralcloud.latency_sketch_union(bytes ORDER BY name)
                         FROM crafted WHERE name LIKE '%no bin limit'$$,
                     'centralcloud: latency sketch is corrupt: positive store: bin limit is not 2048',
                     'latency_sketch_union over both');

-- A valid sketch merged with a crafted one: rejected too, whichever side it is on.
CREATE TEMP TABLE valid AS
SELECT centralcloud.latency_sketch_agg(v) AS sketch FROM generate_series(1, 1000) AS v;
SELECT test.rejected($$SELECT centralcloud.latency_sketch_merge(v.sketch, c.bytes)
                         FROM valid v, crafted c WHERE c.name = 'key 2^30'$$,
                     'centralcloud: latency sketch is corrupt: positive store: keys outside those of i32 values',
                     'latency_sketch_merge(valid, crafted)');
SELECT test.rejected($$SELECT centralcloud.latency_sketch_merge(c.bytes, v.sketch)
                         FROM valid v, crafted c WHERE c.name = 'key 2^24, no bin limit'$$,
                     'centralcloud: latency sketch is corrupt: positive store: bin limit is not 2048',
                     'latency_sketch_merge(crafted, valid)');
SELECT test.rejected($$SELECT centralcloud.latency_sketch_union(s) FROM (
                         SELECT sketch FROM valid UNION ALL SELECT bytes FROM crafted WHERE name = 'key 2^30') AS u(s)$$,
                     'centralcloud: latency sketch is corrupt: positive store: keys outside those of i32 values',
                     'latency_sketch_union(valid, crafted)');

-- The SQLSTATE itself, read from the diagnostics.
DO $$
DECLARE
    state text;
BEGIN
    PERFORM centralcloud.latency_sketch_union(bytes) FROM crafted WHERE name = 'key 0, no bin limit';
    RAISE EXCEPTION 'FAILED: crafted sketch accepted by latency_sketch_union';
EXCEPTION WHEN invalid_binary_representation THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
    PERFORM test.eq(state, '22P03', 'SQLSTATE of a crafted sketch');
END $$;

-- Valid sketches still work, for the same unprivileged login.
SELECT test.eq((SELECT centralcloud.latency_sketch_count(sketch) FROM valid), 1000::bigint, 'valid sketch: count');
SELECT test.eq((SELECT abs(centralcloud.latency_quantile(sketch, 0.5) - 500) <= 5 FROM valid), true,
               'valid sketch: median within 1%');
SELECT test.eq((SELECT centralcloud.latency_quantile(sketch, 1) FROM valid), 1000::float8, 'valid sketch: max');
SELECT test.eq((SELECT centralcloud.latency_sketch_count(centralcloud.latency_sketch_merge(sketch, sketch)) FROM valid),
               2000::bigint, 'valid sketch: merge');
SELECT test.eq((SELECT centralcloud.latency_sketch_count(centralcloud.latency_sketch_union(s))
                  FROM (SELECT sketch FROM valid UNION ALL SELECT sketch FROM valid) AS u(s)),
               2000::bigint, 'valid sketch: union');
SELECT test.eq((SELECT centralcloud.latency_sketch_merge(sketch, NULL) = sketch FROM valid), true,
               'valid sketch: re-encodes to the same bytes');

-- A sketch encoded before the checks existed (PINNED_HEX in src/sketch.rs: 0, 100, 101, 120,
-- 150, 150, 180 ms) decodes as it did.
CREATE TEMP TABLE pinned AS SELECT '\x018010fd4a815abf52f03f97059d050e7b943f000000000000e03f468001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000200000000000000000100000000000000000000020000000000000000010000000000000000000000000000000000000000000000000000000000000000000006ce038804ce028010000000feffffff0fffffffff0f0080100000000000000000000000000000806640000000000008894001'::bytea AS sketch;
SELECT test.eq((SELECT centralcloud.latency_sketch_count(sketch) FROM pinned), 7::bigint, 'pinned sketch: count');
SELECT test.eq((SELECT round(centralcloud.latency_quantile(sketch, 0.5)::numeric, 6) FROM pinned), 120.314563,
               'pinned sketch: median');
SELECT test.eq((SELECT centralcloud.latency_quantile(sketch, 1) FROM pinned), 180::float8, 'pinned sketch: max');
SELECT test.eq((SELECT centralcloud.latency_sketch_merge(sketch, NULL) = sketch FROM pinned), true,
               'pinned sketch: re-encodes to the same bytes');

DROP TABLE crafted, valid, pinned;
RESET ROLE;
DROP OWNED BY t14_attacker;
DROP ROLE t14_attacker;

-- Event timestamps: every one the validator accepts is a timestamptz text PostgreSQL reads back
-- unchanged, within 1970-01-01T00:00:00Z..9999-12-31T23:59:59.999999Z (in UTC, after the
-- offset; the fraction truncated to microseconds); and, by default, within 7 days before and
-- 15 minutes after the server time (the transaction's start).
\ir lib.sql
LOAD 'centralcloud';

SELECT test.eq(current_setting('centralcloud.max_event_age'), '7d', 'default max_event_age');
SELECT test.eq(current_setting('centralcloud.max_event_clock_skew'), '15min', 'default max_event_clock_skew');

-- Ingest's verdict on a valid event with the given timestamp text.
CREATE OR REPLACE FUNCTION test.verdict_at(ts text) RETURNS text[] LANGUAGE sql AS $$
    SELECT centralcloud.routing_event_verdict(
        jsonb_set(test.event('i', 'm', 'simple', 'routed'), '{timestamp}', to_jsonb(ts))::text)
$$;

-- ------------------------------------------------------------------ the range, window off
SET centralcloud.max_event_age = 0;
SET centralcloud.max_event_clock_skew = 0;

SELECT test.eq((test.verdict_at('1970-01-01T00:00:00Z'))[3], '1970-01-01T00:00:00.000000Z', 'first instant');
SELECT test.eq((test.verdict_at('9999-12-31T23:59:59.999999Z'))[3], '9999-12-31T23:59:59.999999Z', 'last instant');
SELECT test.eq((test.verdict_at('9999-12-31T23:59:59.9999999Z'))[3], '9999-12-31T23:59:59.999999Z', 'truncated, not rounded past 9999');
SELECT test.eq((test.verdict_at('9999-12-31T23:59:59.9999995Z'))[3], '9999-12-31T23:59:59.999999Z', 'truncated at the half microsecond');
SELECT test.eq((test.verdict_at('9999-12-31T08:00:00-15:59'))[3], '9999-12-31T23:59:00.000000Z', 'last minute at -15:59');
SELECT test.eq((test.verdict_at('1969-12-31T08:01:00-15:59'))[3], '1970-01-01T00:00:00.000000Z', '1969 local, 1970 in UTC');
SELECT test.eq((test.verdict_at(ts))[1:1], ARRAY['out_of_range'], ts)
  FROM unnest(ARRAY['9999-12-31T23:59:59-15:00', '9999-12-31T23:59:59-00:01', '9999-12-31T23:59:59.9999999-00:01',
                    '1970-01-01T00:30:00+01:00', '1969-12-31T23:59:59.999999Z', '1969-12-31T23:59:59.9999999Z']) AS ts;
SELECT test.eq((test.verdict_at('9999-12-31T23:59:59-15:00'))[2],
               'timestamp: must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z, got "9999-12-31T23:59:59-15:00"',
               'reason names the range');

-- A few thousand timestamps around both edges (and anywhere in 1960..10000): local times
-- within two days of 1970-01-01 and 10000-01-01, offsets within ±15:59 (often the extremes),
-- 0 to 12 fractional digits (often all nines, or a 5 in the seventh place, which PostgreSQL
-- rounds up).
SELECT setseed(0.15);
CREATE TABLE test.edge_timestamps AS
WITH r AS (
    SELECT i, random() AS place, random() AS at, random() AS digits, random() AS kind,
           random() AS frac, random() AS zone
      FROM generate_series(1, 4000) AS i
), parts AS (
    SELECT i,
           CASE WHEN place < 0.2
                THEN timestamp '1960-01-01' + make_interval(secs => floor(at * extract(epoch FROM
                         (timestamp '9999-12-31' + interval '1 year') - timestamp '1960-01-01')))
                WHEN place < 0.6
                THEN timestamp '1970-01-01' + make_interval(secs => floor(at * 4 * 86400) - 2 * 86400)
                ELSE timestamp '9999-12-31' + interval '1 day' + make_interval(secs => floor(at * 4 * 86400) - 2 * 86400)
           END AS local,
           floor(digits * 13)::int AS n_digits,
           CASE WHEN kind < 0.3 THEN '999999999999'
                WHEN kind < 0.45 THEN '999999500000'
                WHEN kind < 0.55 THEN '000000500000'
                ELSE lpad(floor(frac * 1e12)::bigint::text, 12, '0')
           END AS frac_digits,
           CASE WHEN zone < 0.15 THEN 0
                WHEN zone < 0.25 THEN 959
                WHEN zone < 0.35 THEN -959
                ELSE floor((zone - 0.35) / 0.65 * 1919)::int - 959
           END AS offset_min
      FROM r
)
SELECT i,
       to_char(local, 'YYYY-MM-DD"T"HH24:MI:SS')
       || CASE WHEN n_digits = 0 THEN '' ELSE '.' || left(frac_digits, n_digits) END
       || CASE WHEN offset_min = 0 THEN 'Z'
               ELSE CASE WHEN offset_min < 0 THEN '-' ELSE '+' END
                    || lpad((abs(offset_min) / 60)::text, 2, '0') || ':' || lpad((abs(offset_min) % 60)::text, 2, '0')
          END AS ts,
       extract(year FROM local) <= 9999 AS four_digit_year
  FROM parts;

-- Every accepted one: timestamptz takes the stored text and prints it back identically, it is
-- in the range, and at most 1 µs below PostgreSQL's own reading of the instance's text (which
-- rounds where the validator truncates). Every rejected one is out_of_range or (a five-digit
-- year) bad_timestamp, and none is inside the range by PostgreSQL's reading.
DO $$
DECLARE
    e record;
    v text[];
    stored timestamptz;
    pg_reading timestamptz;
    first_instant constant timestamptz := '1970-01-01 00:00:00+00';
    last_instant constant timestamptz := '9999-12-31 23:59:59.999999+00';
    accepted int := 0;
    rejected int := 0;
BEGIN
    FOR e IN SELECT * FROM test.edge_timestamps ORDER BY i LOOP
        v := test.verdict_at(e.ts);
        BEGIN
            pg_reading := e.ts::timestamptz;
        EXCEPTION WHEN OTHERS THEN
            pg_reading := NULL;
        END;
        IF v[1] IS NULL THEN
            accepted := accepted + 1;
            BEGIN
                stored := v[3]::timestamptz;
            EXCEPTION WHEN OTHERS THEN
                RAISE EXCEPTION 'FAILED % accepted as %, which timestamptz refuses: %', e.ts, v[3], SQLERRM;
            END;
            PERFORM test.eq(to_char(stored AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), v[3],
                            'round trip of ' || e.ts);
            PERFORM test.eq(stored BETWEEN first_instant AND last_instant AND e.four_digit_year, true,
                            'in range: ' || e.ts || ' -> ' || v[3]);
            PERFORM test.eq(pg_reading - stored BETWEEN interval '0' AND interval '1 microsecond', true,
                            'PostgreSQL''s reading of ' || e.ts || ' = ' || coalesce(pg_reading::text, 'error')
                            || ', stored ' || v[3]);
        ELSE
            rejected := rejected + 1;
            PERFORM test.eq(v[1] = CASE WHEN e.four_digit_year THEN 'out_of_range' ELSE 'bad_timestamp' END, true,
                            'code for ' || e.ts || ': ' || v[1] || ' ' || v[2]);
            PERFORM test.eq(coalesce(e.four_digit_year
                                     AND pg_reading BETWEEN first_instant + interval '1 microsecond' AND last_instant, false), false,
                            'in range but rejected: ' || e.ts || ': ' || v[2]);
        END IF;
    END LOOP;
    PERFORM test.eq(accepted > 500 AND rejected > 500, true,
                    format('both kinds generated: %s accepted, %s rejected', accepted, rejected));
END $$;

-- ------------------------------------------------------------------ the window, defaults
RESET centralcloud.max_event_age;
RESET centralcloud.max_event_clock_skew;

-- Each statement is its own transaction: now() is the server time the validator uses.
SELECT test.eq((test.verdict_at(to_char(now() AT TIME ZONE 'UTC' - d, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')))[1], code, d::text)
  FROM (VALUES (interval '8 days', 'out_of_range'), (interval '-1 hour', 'out_of_range'),
               (interval '6 days', NULL), (interval '-5 minutes', NULL),
               (interval '7 days', NULL), (interval '7 days 1 microsecond', 'out_of_range'),
               (interval '-15 minutes', NULL), (interval '-15 minutes -1 microsecond', 'out_of_range'),
               (interval '0', NULL)) AS t(d, code);
-- The reason names the rule, in words (the value shown after ", got" is the event's text).
SELECT test.eq(r[1] || ': ' || split_part(r[2], ', got ', 1),
               'out_of_range: timestamp: must be at most 7 days before the server time (centralcloud.max_event_age)',
               'reason: too old')
  FROM centralcloud.routing_event_rejection(
           test.event('i', 'm', 'simple', 'routed', NULL, 2.5, now() - interval '8 days')::text) AS x(r);
SELECT test.eq(r[1] || ': ' || split_part(r[2], ', got ', 1),
               'out_of_range: timestamp: must be at most 15 min after the server time (centralcloud.max_event_clock_skew)',
               'reason: too far ahead')
  FROM centralcloud.routing_event_rejection(
           test.event('i', 'm', 'simple', 'routed', NULL, 2.5, now() + interval '1 hour')::text) AS x(r);
SET centralcloud.max_event_age = '36h';
SELECT test.eq(split_part(r[2], ', got ', 1),
               'timestamp: must be at most 1 day 12 h before the server time (centralcloud.max_event_age)', 'units: 36h')
  FROM centralcloud.routing_event_rejection(
           test.event('i', 'm', 'simple', 'routed', NULL, 2.5, now() - interval '2 days')::text) AS x(r);
RESET centralcloud.max_event_age;

-- Through ingest: a far-future event is dead-lettered, a current one recorded.
SET centralcloud.max_event_clock_skew = '10min';
SELECT test.eq(current_setting('centralcloud.max_event_clock_skew'), '10min', 'set with a unit');
INSERT INTO test.published (msg, expected) VALUES
    (test.event('future', 'gpt-4o', 'simple', 'routed', NULL, 2.5, now() + interval '1 day'), 'out_of_range'),
    (test.event('current', 'gpt-4o', 'simple', 'routed'), NULL);
SELECT test.eq(test.publish(), 2::bigint, 'published');
CREATE TEMP TABLE result AS SELECT * FROM centralcloud.ingest_routing_events();
SELECT test.eq((SELECT (read, ingested, rejected, duplicates, retry_later, dead_lettered_on_error) FROM result)::text,
               '(2,1,1,0,0,0)', 'one recorded, one rejected');
SELECT test.eq((SELECT array_agg(instance_id::text) FROM centralcloud.routing_records), ARRAY['current'], 'the current one recorded');
SELECT test.eq((SELECT array_agg(x.reason_code) FROM centralcloud.routing_events_rejected x
                  JOIN test.published p USING (msg_id) WHERE p.expected = 'out_of_range'),
               ARRAY['out_of_range'], 'the future one dead-lettered');
SELECT test.eq((SELECT reason LIKE 'timestamp: must be at most 10 min after the server time %' FROM centralcloud.routing_events_rejected),
               true, 'reason names the rule');
SELECT test.empty($$SELECT * FROM centralcloud.check_invariants('test.published')$$, 'checker: exact');
RESET centralcloud.max_event_clock_skew;

-- Everything the extension defines, one line per fact, sorted: what an upgraded database and a
-- fresh install must have alike (pg_test/upgrade.sh diffs the two). Relations, columns with
-- types, defaults and order, constraints, indexes, views, functions with their security,
-- settings, volatility and body, aggregates, sequences, comments, privileges (grantee by
-- name), extension membership, pg_dump's config tables, and the grants on the event queue.
-- Daily partitions are data, not schema: their names are folded into one, so every partition
-- must have the same structure.
\set ON_ERROR_STOP 1
\pset tuples_only on
\pset format unaligned
WITH ext AS (SELECT oid, extconfig, extcondition FROM pg_extension WHERE extname = 'centralcloud'),
rel AS (
    SELECT c.oid, c.relkind, c.relpersistence,
           regexp_replace(c.relname, '^routing_records_p[0-9]{8}$', 'routing_records_p<day>') AS name,
           c.relname ~ '^routing_records_p[0-9]{8}$' AS daily
      FROM pg_class c
     WHERE c.relnamespace = 'centralcloud'::regnamespace
    UNION ALL
    SELECT c.oid, c.relkind, c.relpersistence, 'pgmq.' || c.relname, false
      FROM pg_class c
     WHERE c.oid IN ('pgmq.meta'::regclass, 'pgmq.q_model_routing_decisions'::regclass)),
acl AS (
    SELECT 'relation ' || r.name AS object, r.oid AS owner_of, x.*
      FROM rel r JOIN pg_class c ON c.oid = r.oid, LATERAL aclexplode(c.relacl) x
    UNION ALL
    SELECT 'column ' || r.name || '.' || a.attname, r.oid, x.*
      FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0, LATERAL aclexplode(a.attacl) x
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure, p.oid, x.*
      FROM pg_proc p, LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x
     WHERE p.pronamespace = 'centralcloud'::regnamespace
    UNION ALL
    SELECT 'schema ' || n.nspname, n.oid, x.*
      FROM pg_namespace n, LATERAL aclexplode(n.nspacl) x
     WHERE n.nspname IN ('centralcloud', 'pgmq'))
SELECT DISTINCT line FROM (
    SELECT format('relation %s kind %s persistence %s partition key %s bound %s', r.name, r.relkind, r.relpersistence,
                  pg_get_partkeydef(r.oid),
                  CASE WHEN r.daily THEN 'daily' ELSE pg_get_expr(c.relpartbound, c.oid) END) AS line
      FROM rel r JOIN pg_class c ON c.oid = r.oid
     WHERE r.relkind IN ('r', 'p', 'v', 'S')
    UNION ALL
    SELECT format('column %s #%s %s %s not null %s default %s', r.name, a.attnum, a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
      FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE r.relkind IN ('r', 'p', 'v')
    UNION ALL
    SELECT format('constraint %s %s %s', r.name, regexp_replace(con.conname, 'routing_records_p[0-9]{8}', 'routing_records_p<day>'),
                  pg_get_constraintdef(con.oid))
      FROM rel r JOIN pg_constraint con ON con.conrelid = r.oid
    UNION ALL
    SELECT format('index %s', regexp_replace(pg_get_indexdef(i.indexrelid), 'routing_records_p[0-9]{8}', 'routing_records_p<day>', 'g'))
      FROM rel r JOIN pg_index i ON i.indrelid = r.oid
    UNION ALL
    SELECT format('view %s %s', r.name, pg_get_viewdef(r.oid))
      FROM rel r WHERE r.relkind = 'v'
    UNION ALL
    SELECT format('sequence %s %s', r.name, (SELECT row(s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle)
                                              FROM pg_sequence s WHERE s.seqrelid = r.oid))
      FROM rel r WHERE r.relkind = 'S'
    UNION ALL
    SELECT format('function %s kind %s returns %s language %s security definer %s config %s volatility %s parallel %s strict %s leakproof %s cost %s rows %s body md5 %s',
                  p.oid::regprocedure, p.prokind, pg_get_function_result(p.oid), l.lanname, p.prosecdef, p.proconfig,
                  p.provolatile, p.proparallel, p.proisstrict, p.proleakproof, p.procost, p.prorows, md5(p.prosrc))
      FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
     WHERE p.pronamespace = 'centralcloud'::regnamespace
    UNION ALL
    SELECT format('aggregate %s transition %s final %s combine %s serial %s deserial %s state %s', a.aggfnoid::regprocedure,
                  a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn, a.aggdeserialfn, a.aggtranstype::regtype)
      FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
     WHERE p.pronamespace = 'centralcloud'::regnamespace
    UNION ALL
    SELECT format('comment relation %s: %s', r.name, obj_description(r.oid, 'pg_class'))
      FROM rel r WHERE NOT r.daily AND obj_description(r.oid, 'pg_class') IS NOT NULL
    UNION ALL
    SELECT format('comment column %s.%s: %s', r.name, a.attname, col_description(r.oid, a.attnum))
      FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0
     WHERE col_description(r.oid, a.attnum) IS NOT NULL
    UNION ALL
    SELECT format('comment function %s: %s', p.oid::regprocedure, obj_description(p.oid, 'pg_proc'))
      FROM pg_proc p WHERE p.pronamespace = 'centralcloud'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NOT NULL
    UNION ALL
    SELECT format('privilege %s to %s: %s%s', a.object,
                  CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type,
                  CASE WHEN a.is_grantable THEN ' with grant option' ELSE '' END)
      FROM acl a
     WHERE a.object !~ 'routing_records_p[0-9]{8}'
       AND a.grantee NOT IN (SELECT oid FROM pg_roles WHERE rolsuper)
    UNION ALL
    SELECT format('member of the extension: %s', regexp_replace(pg_describe_object(d.classid, d.objid, d.objsubid),
                                                                 'routing_records_p[0-9]{8}', 'routing_records_p<day>'))
      FROM pg_depend d, ext WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
    UNION ALL
    SELECT format('dumped with the extension: %s where %s', c.conf::regclass, c.cond)
      FROM ext, LATERAL unnest(ext.extconfig, ext.extcondition) AS c(conf, cond)
    UNION ALL
    SELECT format('extension version %s', extversion) FROM pg_extension WHERE extname = 'centralcloud'
) facts
ORDER BY line;

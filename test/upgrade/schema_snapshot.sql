-- Prints the schema of the taskq extension in this database as sorted text
-- lines, one fact per line, each starting with the object it is about:
-- every extension member (pg_depend deptype 'e') and every object in schema
-- taskq with its full definition, comment and privileges, the extension's
-- version and its pg_extension_config_dump registrations. Table contents
-- are not part of it.
--
-- test/upgrade/run prints it for a database updated from an older version
-- and for a fresh install and diffs the two: any line that differs is a
-- difference between the upgrade script and sql/src. Two installs of the
-- same scripts print the same text, whoever owns them (owners show as
-- OWNER) and whatever OIDs they got.
--
--   psql -X -At -f test/upgrade/schema_snapshot.sql DATABASE
\set QUIET 1
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only on
\pset pager off
-- Fully qualified names in every deparsed definition.
SET search_path = pg_catalog;

WITH ext AS (
  SELECT e.oid, e.extname, e.extversion, e.extrelocatable, e.extnamespace, e.extconfig, e.extcondition
  FROM pg_extension e WHERE e.extname = 'taskq'
),
ns AS (SELECT n.oid, n.nspname, n.nspowner, n.nspacl FROM pg_namespace n WHERE n.nspname = 'taskq'),
rels AS (SELECT c.* FROM pg_class c JOIN ns ON c.relnamespace = ns.oid),
procs AS (SELECT p.* FROM pg_proc p JOIN ns ON p.pronamespace = ns.oid),
types AS (
  -- Row types of tables and views come with their relation; array types
  -- with their element type.
  SELECT t.* FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
  WHERE (t.typelem = 0 OR NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.oid = t.typelem AND e.typarray = t.oid))
    AND (t.typrelid = 0 OR EXISTS (SELECT 1 FROM pg_class r WHERE r.oid = t.typrelid AND r.relkind = 'c'))
),
-- An ACL item by item, with NULL (never granted) read as the default it
-- stands for, and the owner's name replaced by OWNER.
acl_lines AS (
  SELECT 'schema ' || ns.nspname AS obj, ns.nspowner AS owner, coalesce(ns.nspacl, acldefault('n', ns.nspowner)) AS acl
  FROM ns
  UNION ALL
  SELECT CASE c.relkind WHEN 'S' THEN 'sequence ' WHEN 'v' THEN 'view ' WHEN 'm' THEN 'materialized view '
                        ELSE 'table ' END || c.oid::regclass::text,
         c.relowner, coalesce(c.relacl, acldefault((CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))
  FROM rels c WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  UNION ALL
  SELECT 'column ' || a.attrelid::regclass::text || '.' || quote_ident(a.attname), c.relowner, a.attacl
  FROM rels c JOIN pg_attribute a ON a.attrelid = c.oid
  WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
  UNION ALL
  SELECT 'function ' || p.oid::regprocedure::text, p.proowner, coalesce(p.proacl, acldefault('f', p.proowner))
  FROM procs p
  UNION ALL
  SELECT 'type ' || t.oid::regtype::text, t.typowner, coalesce(t.typacl, acldefault('T', t.typowner))
  FROM types t
),
-- Everything a comment can be on: the members, the schema, and the parts
-- of tables (columns, constraints, indexes, triggers, policies).
commented AS (
  SELECT d.classid, d.objid FROM pg_depend d JOIN ext ON d.refobjid = ext.oid
  WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
  UNION SELECT 'pg_namespace'::regclass, ns.oid FROM ns
  UNION SELECT 'pg_extension'::regclass, ext.oid FROM ext
  UNION SELECT 'pg_class'::regclass, c.oid FROM rels c
  UNION SELECT 'pg_proc'::regclass, p.oid FROM procs p
  UNION SELECT 'pg_type'::regclass, t.oid FROM types t
  UNION SELECT 'pg_constraint'::regclass, k.oid FROM pg_constraint k JOIN ns ON k.connamespace = ns.oid
  UNION SELECT 'pg_trigger'::regclass, g.oid FROM pg_trigger g JOIN rels c ON g.tgrelid = c.oid
  UNION SELECT 'pg_policy'::regclass, y.oid FROM pg_policy y JOIN rels c ON y.polrelid = c.oid
),
lines (obj, line) AS (
  -- The extension itself.
  SELECT 'extension taskq', format('version %s, relocatable %s, schema %s', ext.extversion, ext.extrelocatable,
                                   ext.extnamespace::regnamespace)
  FROM ext
  UNION ALL
  -- pg_extension_config_dump registrations, as a set (the order of the
  -- calls does not matter to pg_dump).
  SELECT 'extension taskq', format('dumps the contents of %s where %L', cfg.tab::regclass, cfg.cond)
  FROM ext, unnest(ext.extconfig, ext.extcondition) AS cfg(tab, cond)
  UNION ALL
  SELECT 'extension taskq', 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM pg_depend d JOIN ext ON d.refobjid = ext.oid
  WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
  UNION ALL
  -- Objects created in schema taskq outside the extension scripts (none
  -- should be, in either database).
  SELECT 'schema taskq', 'not an extension member: ' || pg_describe_object(o.classid, o.objid, 0)
  FROM (SELECT 'pg_class'::regclass AS classid, c.oid AS objid FROM rels c
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
        UNION ALL SELECT 'pg_proc'::regclass, p.oid FROM procs p
        UNION ALL SELECT 'pg_type'::regclass, t.oid FROM types t WHERE t.typtype <> 'c') o
  WHERE NOT EXISTS (SELECT 1 FROM pg_depend d JOIN ext ON d.refobjid = ext.oid
                    WHERE d.classid = o.classid AND d.objid = o.objid AND d.deptype = 'e')
  UNION ALL
  -- Relations: kind, persistence, storage options, row security.
  SELECT CASE c.relkind WHEN 'S' THEN 'sequence ' WHEN 'v' THEN 'view ' WHEN 'm' THEN 'materialized view '
                        WHEN 'i' THEN 'index ' WHEN 'I' THEN 'index ' WHEN 'c' THEN 'type ' ELSE 'table ' END
           || c.oid::regclass::text,
         format('relkind %s, persistence %s, options %s, replica identity %s, row security %s%s', c.relkind,
                c.relpersistence, coalesce(c.reloptions::text, '{}'), c.relreplident, c.relrowsecurity,
                CASE WHEN c.relforcerowsecurity THEN ' (forced)' ELSE '' END)
  FROM rels c
  UNION ALL
  -- Columns in their order (position among the live columns: a column
  -- dropped by an upgrade leaves a gap in attnum that a fresh install has
  -- not). Options named pg_* are set by the server, not by a script.
  SELECT CASE c.relkind WHEN 'v' THEN 'view ' WHEN 'c' THEN 'type ' ELSE 'table ' END || c.oid::regclass::text,
         format('column %s %s %s%s%s%s%s%s%s', lpad((row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum))::text, 4, '0'),
                quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
                CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                CASE WHEN ad.adbin IS NOT NULL THEN ' default ' || pg_get_expr(ad.adbin, ad.adrelid) ELSE '' END,
                CASE WHEN a.attcollation <> 0 THEN ' collate ' || a.attcollation::regcollation::text ELSE '' END,
                CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END,
                CASE WHEN a.attgenerated <> '' THEN ' generated ' || a.attgenerated::text ELSE '' END,
                coalesce((SELECT ' options ' || array_agg(o ORDER BY o)::text FROM unnest(a.attoptions) o
                          WHERE o NOT LIKE 'pg\_%'), ''))
  FROM rels c JOIN pg_attribute a ON a.attrelid = c.oid
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  -- Constraints of tables and domains.
  SELECT CASE WHEN k.conrelid <> 0 THEN 'table ' || k.conrelid::regclass::text
              ELSE 'type ' || k.contypid::regtype::text END,
         format('constraint %s %s%s', quote_ident(k.conname), pg_get_constraintdef(k.oid),
                CASE WHEN NOT k.convalidated THEN ' (not validated)' ELSE '' END)
  FROM pg_constraint k JOIN ns ON k.connamespace = ns.oid
  UNION ALL
  SELECT 'table ' || i.indrelid::regclass::text, pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN rels c ON c.oid = i.indexrelid
  UNION ALL
  -- Sequences: their parameters and owning column (not their value).
  SELECT 'sequence ' || s.seqrelid::regclass::text,
         format('%s start %s increment %s min %s max %s cache %s%s%s', format_type(s.seqtypid, NULL), s.seqstart,
                s.seqincrement, s.seqmin, s.seqmax, s.seqcache, CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END,
                (SELECT ' owned by ' || d.refobjid::regclass::text || '.' || quote_ident(a.attname)
                 FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid AND d.deptype IN ('a', 'i')
                   AND d.refclassid = 'pg_class'::regclass))
  FROM pg_sequence s JOIN rels c ON c.oid = s.seqrelid
  UNION ALL
  -- Views and materialized views, line by line.
  SELECT CASE c.relkind WHEN 'v' THEN 'view ' ELSE 'materialized view ' END || c.oid::regclass::text,
         format('definition %s: %s', lpad(l.n::text, 4, '0'), l.text)
  FROM rels c, regexp_split_to_table(pg_get_viewdef(c.oid, true), E'\n') WITH ORDINALITY AS l(text, n)
  WHERE c.relkind IN ('v', 'm')
  UNION ALL
  -- Functions and procedures, line by line (pg_get_functiondef names no
  -- owner). Aggregates have no functiondef; their parts are listed.
  SELECT 'function ' || p.oid::regprocedure::text, format('definition %s: %s', lpad(l.n::text, 4, '0'), l.text)
  FROM procs p, regexp_split_to_table(pg_get_functiondef(p.oid), E'\n') WITH ORDINALITY AS l(text, n)
  WHERE p.prokind IN ('f', 'p')
  UNION ALL
  SELECT 'function ' || p.oid::regprocedure::text,
         format('aggregate sfunc %s stype %s finalfunc %s combinefunc %s initcond %L', g.aggtransfn::regproc,
                format_type(g.aggtranstype, NULL), g.aggfinalfn::regproc, g.aggcombinefn::regproc, g.agginitval)
  FROM procs p JOIN pg_aggregate g ON g.aggfnoid = p.oid
  UNION ALL
  -- Types: enum labels in their order, domains, ranges, base types.
  SELECT 'type ' || t.oid::regtype::text,
         format('enum (%s)', (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                              FROM pg_enum e WHERE e.enumtypid = t.oid))
  FROM types t WHERE t.typtype = 'e'
  UNION ALL
  SELECT 'type ' || t.oid::regtype::text,
         format('domain over %s%s%s%s', format_type(t.typbasetype, t.typtypmod),
                CASE WHEN t.typnotnull THEN ' not null' ELSE '' END,
                CASE WHEN t.typdefaultbin IS NOT NULL THEN ' default ' || pg_get_expr(t.typdefaultbin, 0) ELSE '' END,
                CASE WHEN t.typcollation <> 0 THEN ' collate ' || t.typcollation::regcollation::text ELSE '' END)
  FROM types t WHERE t.typtype = 'd'
  UNION ALL
  SELECT 'type ' || t.oid::regtype::text,
         format('range of %s, subtype diff %s, canonical %s', format_type(r.rngsubtype, NULL), r.rngsubdiff::regproc,
                r.rngcanonical::regproc)
  FROM types t JOIN pg_range r ON r.rngtypid = t.oid
  UNION ALL
  SELECT 'type ' || t.oid::regtype::text,
         format('base type input %s output %s length %s', t.typinput::regproc, t.typoutput::regproc, t.typlen)
  FROM types t WHERE t.typtype = 'b'
  UNION ALL
  -- Triggers and row-security policies.
  SELECT 'table ' || g.tgrelid::regclass::text, pg_get_triggerdef(g.oid, true)
         || CASE g.tgenabled WHEN 'O' THEN '' ELSE ' (enabled ' || g.tgenabled::text || ')' END
  FROM pg_trigger g JOIN rels c ON g.tgrelid = c.oid
  WHERE NOT g.tgisinternal
  UNION ALL
  SELECT 'table ' || y.polrelid::regclass::text,
         format('policy %s %s for %s to %s using (%s) with check (%s)', quote_ident(y.polname),
                CASE WHEN y.polpermissive THEN 'permissive' ELSE 'restrictive' END, y.polcmd,
                (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE r::regrole::text END, ', ' ORDER BY 1)
                 FROM unnest(y.polroles) r),
                pg_get_expr(y.polqual, y.polrelid), pg_get_expr(y.polwithcheck, y.polrelid))
  FROM pg_policy y JOIN rels c ON y.polrelid = c.oid
  UNION ALL
  -- Comments, on whatever they are on.
  SELECT pg_describe_object(d.classoid, d.objoid, 0), format('comment%s %L',
         CASE WHEN d.objsubid <> 0 THEN ' on ' || pg_describe_object(d.classoid, d.objoid, d.objsubid) ELSE '' END,
         d.description)
  FROM pg_description d JOIN commented o ON o.classid = d.classoid AND o.objid = d.objoid
  UNION ALL
  -- Privileges, one grant per line; the owner's own grants read OWNER.
  SELECT a.obj,
         format('grant %s%s to %s by %s', x.privilege_type, CASE WHEN x.is_grantable THEN ' with grant option' ELSE '' END,
                CASE WHEN x.grantee = 0 THEN 'PUBLIC' WHEN x.grantee = a.owner THEN 'OWNER' ELSE x.grantee::regrole::text END,
                CASE WHEN x.grantor = a.owner THEN 'OWNER' ELSE x.grantor::regrole::text END)
  FROM acl_lines a, aclexplode(a.acl) x
  UNION ALL
  SELECT 'schema taskq', format('default privileges for %s of role %s: %s',
                                CASE da.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences'
                                  WHEN 'f' THEN 'functions' WHEN 'T' THEN 'types' ELSE da.defaclobjtype::text END,
                                da.defaclrole::regrole, da.defaclacl)
  FROM pg_default_acl da JOIN ns ON da.defaclnamespace = ns.oid
)
SELECT obj || ' | ' || line FROM lines ORDER BY obj COLLATE "C", line COLLATE "C";

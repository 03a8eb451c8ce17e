-- Nothing in schema taskq is open to PUBLIC: no function executable, no
-- table, view or sequence usable in any way, no usage of the schema itself.
-- Prints one line per object that is; nothing when there is none.
\set QUIET 1
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only on
SET client_min_messages = warning;

SELECT format('PUBLIC can execute %s', p.oid::regprocedure)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'taskq' AND has_function_privilege('public', p.oid, 'EXECUTE')
UNION ALL
SELECT format('PUBLIC has %s on %s', priv, c.oid::regclass)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
     unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) priv
WHERE n.nspname = 'taskq' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND has_table_privilege('public', c.oid, priv)
UNION ALL
SELECT format('PUBLIC has %s on sequence %s', priv, c.oid::regclass)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) priv
WHERE n.nspname = 'taskq' AND c.relkind = 'S' AND has_sequence_privilege('public', c.oid, priv)
UNION ALL
SELECT format('PUBLIC has %s on schema taskq', priv)
FROM unnest(ARRAY['USAGE', 'CREATE']) priv WHERE has_schema_privilege('public', 'taskq', priv)
UNION ALL
SELECT 'schema taskq is missing' WHERE NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'taskq');

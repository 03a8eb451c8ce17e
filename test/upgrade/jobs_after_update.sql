-- After ALTER EXTENSION taskq UPDATE: every row jobs_before_update.sql
-- copied is still there, every column it had unchanged (columns a newer
-- version adds are not compared), no row came or went, and the sequences
-- did not move. Prints one line per difference; nothing when all is kept.
\set QUIET 1
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only on
SET client_min_messages = warning;

WITH pairs (tab, key, before, after) AS (
  SELECT 'queues', b.r ->> 'queue_name', b.r, to_jsonb(a)
  FROM public.before_queues b LEFT JOIN taskq.queues a ON a.queue_name = b.r ->> 'queue_name'
  UNION ALL
  SELECT 'jobs', b.r ->> 'id', b.r, to_jsonb(a)
  FROM public.before_jobs b LEFT JOIN taskq.jobs a ON a.id = (b.r ->> 'id')::uuid
  UNION ALL
  SELECT 'outbox', b.r ->> 'id', b.r, to_jsonb(a)
  FROM public.before_outbox b LEFT JOIN taskq.outbox a ON a.id = (b.r ->> 'id')::bigint
  UNION ALL
  SELECT 'callbacks', b.r ->> 'id', b.r, to_jsonb(a)
  FROM public.before_callbacks b LEFT JOIN taskq.callbacks a ON a.id = (b.r ->> 'id')::bigint
),
counts (tab, before, after) AS (
  SELECT 'queues', (SELECT count(*) FROM public.before_queues), (SELECT count(*) FROM taskq.queues)
  UNION ALL SELECT 'jobs', (SELECT count(*) FROM public.before_jobs), (SELECT count(*) FROM taskq.jobs)
  UNION ALL SELECT 'outbox', (SELECT count(*) FROM public.before_outbox), (SELECT count(*) FROM taskq.outbox)
  UNION ALL SELECT 'callbacks', (SELECT count(*) FROM public.before_callbacks), (SELECT count(*) FROM taskq.callbacks)
),
sequences (name, after) AS (
  SELECT 'outbox_id_seq', last_value FROM taskq.outbox_id_seq
  UNION ALL SELECT 'callbacks_id_seq', last_value FROM taskq.callbacks_id_seq
)
SELECT format('%s %s: gone after the update', p.tab, p.key) FROM pairs p WHERE p.after IS NULL
UNION ALL
SELECT format('%s %s: %s was %s, is %s', p.tab, p.key, e.key, e.value, coalesce((p.after -> e.key)::text, '(no such column)'))
FROM pairs p, jsonb_each(p.before) e
WHERE p.after IS NOT NULL AND p.after -> e.key IS DISTINCT FROM e.value
UNION ALL
SELECT format('%s: %s rows before the update, %s after', c.tab, c.before, c.after) FROM counts c WHERE c.before <> c.after
UNION ALL
SELECT format('sequence %s: was at %s, is at %s', s.name, b.last_value, s.after)
FROM sequences s JOIN public.before_sequences b USING (name) WHERE b.last_value <> s.after
UNION ALL
SELECT 'the fixture made no jobs' WHERE NOT EXISTS (SELECT 1 FROM public.before_jobs);

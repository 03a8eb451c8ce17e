-- The batched worker functions (taskq._start_batch, _heartbeat_batch,
-- _complete_batch) apply exactly the rules of start/heartbeat/complete to
-- many jobs at once: only current attempts act, duplicates act once, stale
-- items are left alone, callbacks are written, bad input changes nothing.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS taskq CASCADE;
CREATE EXTENSION taskq;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT no_plan();

SELECT lives_ok($$SELECT taskq.create_queue('wb', lease => '1 minute')$$, 'queue');
SELECT taskq.enqueue('wb', '{"n": 1}') AS a \gset
SELECT taskq.enqueue('wb', '{"n": 2}', callback_url => 'https://example.com/hook') AS b \gset
SELECT taskq.enqueue('wb', '{"n": 3}', delay => '1 hour') AS later \gset
SELECT taskq.enqueue('wb', '{"n": 4}') AS c \gset
CREATE TEMP TABLE items AS
SELECT jsonb_build_array(
  jsonb_build_object('id', :'a', 'attempt', 1),
  jsonb_build_object('id', :'a', 'attempt', 1),      -- a duplicate delivery in the same batch
  jsonb_build_object('id', :'b', 'attempt', 1),
  jsonb_build_object('id', :'later', 'attempt', 1),  -- not due yet
  jsonb_build_object('id', :'c', 'attempt', 2),      -- wrong attempt
  jsonb_build_object('id', '01a20000-0000-7000-8000-000000000000', 'attempt', 1)  -- unknown job
) AS v;

-- start
SELECT results_eq($$SELECT job_id::text, attempt, max_attempts, lease_ms FROM taskq._start_batch((SELECT v FROM items), 'w1') ORDER BY job_id$$,
                  format($$VALUES (%L, 1, 5, 60000::bigint), (%L, 1, 5, 60000::bigint)$$, :'a', :'b'),
                  'start_batch starts each current, due job once and returns its lease');
SELECT results_eq($$SELECT status::text, attempts, worker FROM taskq.jobs WHERE id IN ($$ || quote_literal(:'a') || ',' || quote_literal(:'b') || $$)$$,
                  $$VALUES ('running', 1, 'w1'), ('running', 1, 'w1')$$, 'both are running under w1');
SELECT results_eq($$SELECT status::text, attempts FROM taskq.jobs WHERE id IN ($$ || quote_literal(:'later') || ',' || quote_literal(:'c') || $$)$$,
                  $$VALUES ('pending', 0), ('pending', 0)$$, 'stale and not-due items are left alone');
SELECT is_empty($$SELECT * FROM taskq._start_batch((SELECT v FROM items), 'w2')$$, 'a second delivery of the batch is stale');
SELECT is_empty($$SELECT * FROM taskq._start_batch('[]', 'w1')$$, 'an empty batch starts nothing');

-- heartbeat
SELECT taskq.cancel(:'b') \g /dev/null
SELECT results_eq(format($$SELECT id::text FROM taskq._heartbeat_batch('[{"id": "%s", "attempt": 1}, {"id": "%s", "attempt": 1}, {"id": "%s", "attempt": 1}]') AS id$$, :'a', :'b', :'c'),
                  format($$VALUES (%L)$$, :'a'),
                  'heartbeat_batch extends only running attempts without a cancel request');

-- complete: the cancel-requested job completes anyway (as complete does), and its callback is written
SELECT results_eq(format($$SELECT id::text FROM taskq._complete_batch('[{"id": "%s", "attempt": 1, "result": {"ok": true}}, {"id": "%s", "attempt": 1, "result": null}, {"id": "%s", "attempt": 2, "result": 1}, {"id": "%s", "attempt": 1, "result": 2}]') AS id ORDER BY id$$, :'a', :'b', :'a', :'c'),
                  format($$VALUES (%L), (%L)$$, :'a', :'b'),
                  'complete_batch completes the running attempts only');
SELECT results_eq($$SELECT status::text, result FROM taskq.jobs WHERE id = $$ || quote_literal(:'a'),
                  $$VALUES ('completed', '{"ok": true}'::jsonb)$$, 'result recorded');
SELECT ok(result IS NULL AND finished_at IS NOT NULL, 'a JSON null result is stored as NULL') FROM taskq.jobs WHERE id = :'b';
SELECT results_eq($$SELECT event, body->>'status', body->>'id' FROM taskq.callbacks WHERE job_id = $$ || quote_literal(:'b'),
                  format($$VALUES ('job.completed', 'completed', %L)$$, :'b'), 'callback written in the same transaction');
SELECT results_eq(format($$SELECT id::text FROM taskq._complete_batch('[{"id": "%s", "attempt": 1, "result": 1}]') AS id$$, :'a'),
                  format($$VALUES (%L)$$, :'a'), 'completing again is answered as before');
SELECT is(result, '{"ok": true}'::jsonb, 'and changes nothing') FROM taskq.jobs WHERE id = :'a';

-- bad input: clear errors, nothing changed
SELECT throws_ok($$SELECT * FROM taskq._start_batch('{"id": 1}', 'w1')$$, '22023', NULL, 'items must be an array');
SELECT throws_ok($$SELECT * FROM taskq._start_batch(NULL, 'w1')$$, '22023', NULL, 'items must not be null');
SELECT throws_ok($$SELECT * FROM taskq._start_batch('[]', '')$$, '22023', NULL, 'worker must not be empty');
SELECT throws_ok($$SELECT * FROM taskq._start_batch('[{"id": "not-a-uuid", "attempt": 1}]', 'w1')$$, '22P02', NULL,
                 'a malformed id refuses the batch');
SELECT taskq._start_batch(jsonb_build_array(jsonb_build_object('id', :'c', 'attempt', 1)), 'w1') \g /dev/null
SELECT throws_ok(format($$SELECT * FROM taskq._complete_batch('[{"id": "%s", "attempt": 1, "result": {"big": "%s"}}]')$$, :'c', repeat('x', 1100000)),
                 '22023', NULL, 'a result over 1 MiB refuses the batch');
SELECT is(status, 'running'::taskq.job_status, 'and changes nothing') FROM taskq.jobs WHERE id = :'c';

-- A batch start reads its own jobs, not the pending backlog, even when the
-- statistics know nothing of that backlog (never analyzed here): a joined
-- UPDATE was planned as a hash over every pending job then.
SELECT taskq.create_queue('backlog') \g /dev/null
SELECT count(*) FROM taskq.enqueue_many('backlog', (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 5000))) \g /dev/null
SELECT jsonb_agg(jsonb_build_object('id', id, 'attempt', 1)) AS sixteen
FROM (SELECT id FROM taskq.jobs WHERE queue_name = 'backlog' ORDER BY id LIMIT 16) s \gset
-- Counts of earlier statements go out now, so that the transaction's own
-- counts below are all there is.
SELECT pg_stat_force_next_flush() \g /dev/null
BEGIN;
SELECT is((SELECT count(*)::int FROM taskq._start_batch(:'sixteen', 'w1')), 16,
          'a batch of 16 starts out of a backlog of 5,000');
SELECT cmp_ok((SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables
               WHERE schemaname = 'taskq' AND relname = 'jobs'), '<', 200::bigint,
              'reading about its 16 rows, not the backlog');
COMMIT;

-- privileges: the worker role may call them, the producer role may not
SELECT ok(has_function_privilege('taskq_worker', 'taskq._start_batch(jsonb, text, uuid, boolean)', 'EXECUTE'), 'worker role may start batches');
SELECT ok(has_function_privilege('taskq_worker', 'taskq._complete_batch(jsonb)', 'EXECUTE'), 'worker role may complete batches');
SELECT ok(has_function_privilege('taskq_worker', 'taskq._heartbeat_batch(jsonb)', 'EXECUTE'), 'worker role may heartbeat batches');
SELECT ok(NOT has_function_privilege('taskq_producer', 'taskq._start_batch(jsonb, text, uuid, boolean)', 'EXECUTE'), 'producer role may not');

SELECT * FROM finish();

-- taskq.wait() in one session: bad input, a finished job at once, the
-- timeout, interruption, the transactions it refuses, the grants, and that
-- every SQL path that finishes a job wakes the waiters (the wake-ups
-- themselves, across sessions: test/specs/wait_finish.spec and the
-- integration test wait_test.cpp).
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS taskq CASCADE;
CREATE EXTENSION taskq;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT no_plan();

SELECT lives_ok($$SELECT taskq.create_queue('w', max_attempts => 1)$$, 'queue');
SELECT taskq.enqueue('w', '{"n": 1}') AS pending \gset
SELECT taskq.enqueue('w', '{"n": 2}') AS done \gset
SELECT count(*) FROM taskq.start(:'done', 1, 'tap') \gset
SELECT taskq.complete(:'done', 1, '{"answer": 42}') \gset

-- bad input: nothing waits
SELECT throws_ok($$SELECT taskq.wait('01a20000-0000-7000-8000-000000000000')$$, '42704',
                 'job 01a20000-0000-7000-8000-000000000000 does not exist', 'unknown job: 42704');
SELECT throws_ok($$SELECT taskq.wait(NULL)$$, '22004', 'job_id must not be null', 'NULL job_id: 22004');
SELECT throws_ok($$SELECT taskq.wait('$$ || :'pending' || $$', NULL)$$, '22004', 'timeout must not be null',
                 'NULL timeout: 22004');
SELECT throws_ok($$SELECT taskq.wait('$$ || :'pending' || $$', '-1 second')$$, '22023',
                 'timeout must not be negative, not @ 1 sec ago', 'negative timeout: 22023');
SELECT throws_ok($$SELECT taskq.wait('$$ || :'pending' || $$', '-1 month')$$, '22023', NULL,
                 'negative month timeout: 22023');

-- a finished job comes back at once, whole
SELECT clock_timestamp() AS t0 \gset
SELECT results_eq($$SELECT id, status::text, result FROM taskq.wait('$$ || :'done' || $$', '1 minute')$$,
                  $$VALUES ('$$ || :'done' || $$'::uuid, 'completed', '{"answer": 42}'::jsonb)$$,
                  'a completed job is returned with its result');
SELECT ok(clock_timestamp() - :'t0'::timestamptz < interval '1 second', 'at once, not after the timeout');
SELECT is((SELECT w::text FROM taskq.wait(:'done') w), (SELECT j::text FROM taskq.jobs j WHERE id = :'done'),
          'the row is the job''s row');

-- timeout: the job as it is
SELECT clock_timestamp() AS t0 \gset
SELECT is((taskq.wait(:'pending', '300 ms')).status, 'pending'::taskq.job_status, 'after the timeout: still pending');
SELECT ok(clock_timestamp() - :'t0'::timestamptz >= interval '300 ms', 'waited for the timeout');
SELECT ok(clock_timestamp() - :'t0'::timestamptz < interval '3 seconds', 'and not much longer');
SELECT clock_timestamp() AS t0 \gset
SELECT is((taskq.wait(:'pending', '0')).status, 'pending'::taskq.job_status, 'timeout 0: a look, no wait');
SELECT ok(clock_timestamp() - :'t0'::timestamptz < interval '1 second', 'timeout 0 returns at once');
SELECT is((taskq.wait(:'done', '100000 years')).status, 'completed'::taskq.job_status, 'a huge timeout is accepted');

-- interrupted: statement_timeout ends the wait with its own error
SET statement_timeout = '300ms';
SELECT clock_timestamp() AS t0 \gset
-- (not through throws_ok: PL/pgSQL cannot catch a cancel; the expected
-- output holds the error, 57014)
\set VERBOSITY terse
SELECT taskq.wait(:'pending', '1 minute');
\set VERBOSITY default
RESET statement_timeout;
SELECT ok(clock_timestamp() - :'t0'::timestamptz < interval '3 seconds', 'promptly');
SELECT is((taskq.wait(:'pending', '0')).status, 'pending'::taskq.job_status, 'the session can wait again after that');

-- the job's own transaction: it cannot finish before that commits
SELECT throws_ok($$SELECT taskq.wait(taskq.enqueue('w'), '1 minute')$$, '55000', NULL,
                 'enqueue and wait in one statement: 55000 at once');
BEGIN;
SELECT taskq.enqueue('w') AS fresh \gset
SELECT throws_ok($$SELECT taskq.wait('$$ || :'fresh' || $$', '1 minute')$$, '55000',
                 'job ' || :'fresh' || ' was enqueued or changed by this transaction, so it cannot finish before this transaction ends',
                 'enqueue then wait in one transaction: 55000');
ROLLBACK;
BEGIN;
-- lives_ok runs its statement in a subtransaction: the row's xmin is a subtransaction's
SELECT lives_ok($$SELECT taskq.cancel('$$ || :'pending' || $$')$$, 'cancel in a subtransaction');
SELECT is((taskq.wait(:'pending', '1 minute')).status, 'cancelled'::taskq.job_status,
          'a job this transaction finished is finished: returned at once');
ROLLBACK;
SELECT taskq.enqueue('w') AS running \gset
SELECT count(*) FROM taskq.start(:'running', 1, 'tap') \gset
BEGIN;
SELECT lives_ok($$SELECT taskq.cancel('$$ || :'running' || $$')$$, 'cancel request of a running job');
SELECT throws_ok($$SELECT taskq.wait('$$ || :'running' || $$', '1 minute')$$, '55000', NULL,
                 'a job this transaction changed but did not finish: 55000');
ROLLBACK;

-- REPEATABLE READ / SERIALIZABLE: one snapshot never shows a finish
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT throws_ok($$SELECT taskq.wait('$$ || :'pending' || $$', '1 minute')$$, '55000',
                 'taskq.wait needs a READ COMMITTED transaction: the snapshot of this REPEATABLE READ transaction never shows the job finish',
                 'REPEATABLE READ: 55000 for an unfinished job');
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT throws_ok($$SELECT taskq.wait('$$ || :'pending' || $$', '1 minute')$$, '55000', NULL, 'SERIALIZABLE: 55000');
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT is((taskq.wait(:'done', '1 minute')).status, 'completed'::taskq.job_status,
          'REPEATABLE READ: a job its snapshot shows finished is returned');
COMMIT;
BEGIN;
SELECT is((taskq.wait(:'pending', '100 ms')).status, 'pending'::taskq.job_status, 'READ COMMITTED transaction block: waits');
COMMIT;

-- who may wait: producers (they read jobs); nobody else
DROP ROLE IF EXISTS tq_wait_app, tq_wait_runner;
CREATE ROLE tq_wait_app IN ROLE taskq_producer;
CREATE ROLE tq_wait_runner IN ROLE taskq_worker;
SET ROLE tq_wait_app;
SELECT is((taskq.wait(:'done')).status, 'completed'::taskq.job_status, 'a producer waits');
SELECT throws_ok($$SELECT taskq._wake_waiters_at_commit(ARRAY['$$ || :'done' || $$'::uuid])$$, '42501', NULL,
                 'a producer cannot signal');
SELECT throws_ok($$SELECT taskq._wait_sleep('$$ || :'done' || $$', now())$$, '42501', NULL,
                 'a producer cannot call the internals');
RESET ROLE;
SET ROLE tq_wait_runner;
SELECT throws_ok($$SELECT taskq.wait('$$ || :'done' || $$')$$, '42501', NULL, 'a worker role cannot wait');
RESET ROLE;
DROP ROLE tq_wait_app, tq_wait_runner;

-- the signal itself: marks are harmless without a commit, NULLs are skipped
SELECT lives_ok($$SELECT taskq._wake_waiters_at_commit(NULL)$$, 'NULL array: nothing');
SELECT lives_ok($$SELECT taskq._wake_waiters_at_commit(ARRAY[NULL, '$$ || :'done' || $$']::uuid[])$$,
                'NULL elements skipped');
SELECT lives_ok($$SELECT taskq._wake_waiters_at_commit('{}')$$, 'empty array: nothing');

-- Every function that finishes a job (sets finished_at to now) wakes its
-- waiters: a new finishing path that forgets it fails here.
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = 'taskq' AND p.prosrc ~* 'finished_at\s*:?=\s*now\(\)'
                  AND p.prosrc !~ 'taskq\._wake_waiters_at_commit\('
                ORDER BY 1),
          '{}'::text[], 'every function that sets finished_at calls taskq._wake_waiters_at_commit');
SELECT ok((SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'taskq' AND p.prosrc ~* 'finished_at\s*:?=\s*now\(\)') >= 4,
          'the check above finds the finishing functions (complete, _complete_batch, _fail_attempt, cancel)');

SELECT * FROM finish();

-- Privileges: a producer can enqueue/retry/cancel/read, a worker can run the
-- worker functions, an unprivileged role can do neither; every function pins
-- search_path and nothing is granted to PUBLIC.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS taskq CASCADE;
CREATE EXTENSION taskq;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT no_plan();

DROP ROLE IF EXISTS tq_app, tq_runner, tq_nobody;
CREATE ROLE tq_app IN ROLE taskq_producer;
CREATE ROLE tq_runner IN ROLE taskq_worker;
CREATE ROLE tq_nobody;
GRANT USAGE ON SCHEMA public TO tq_app, tq_runner, tq_nobody;
SELECT lives_ok($$SELECT taskq.create_queue('p')$$, 'queue');

SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           JOIN pg_language l ON l.oid = p.prolang
           -- C functions resolve no names (and _uuid_v7 is on the enqueue path, where a SET clause costs)
           WHERE n.nspname = 'taskq' AND l.lanname <> 'c'
             AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)),
          0, 'every taskq SQL function pins search_path');
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'taskq' AND has_function_privilege('public', p.oid, 'EXECUTE')), 0, 'no function is executable by PUBLIC');
SELECT ok(NOT has_schema_privilege('tq_nobody', 'taskq', 'USAGE'), 'unprivileged role has no schema access');
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'taskq' AND obj_description(p.oid, 'pg_proc') IS NULL AND p.proname NOT LIKE '\_%'), 0,
          'every public function has a comment');

-- producer
SET ROLE tq_app;
SELECT taskq.enqueue('p', '{"by": "producer"}') AS j \gset
SELECT is((SELECT count(*)::int FROM taskq.jobs WHERE id = :'j'), 1, 'producer reads jobs');
SELECT is((SELECT count(*)::int FROM taskq.enqueue_many('p', '[1, 2]')), 2, 'producer enqueues many');
SELECT is((taskq.cancel(:'j')).status, 'cancelled'::taskq.job_status, 'producer cancels');
SELECT is((taskq.retry(:'j')).status, 'pending'::taskq.job_status, 'producer retries');
SELECT is((SELECT count(*)::int FROM taskq.job(:'j')), 1, 'producer reads one job');
SELECT lives_ok($$SELECT * FROM taskq.queue_stats$$, 'producer reads queue_stats');
SELECT throws_ok($$SELECT taskq.start('$$ || :'j' || $$', 1, 'x')$$, '42501', NULL, 'producer cannot start jobs');
SELECT throws_ok($$SELECT taskq.complete('$$ || :'j' || $$', 1)$$, '42501', NULL, 'producer cannot complete jobs');
SELECT throws_ok($$UPDATE taskq.jobs SET status = 'completed'$$, '42501', NULL, 'producer cannot write jobs directly');
SELECT throws_ok($$DELETE FROM taskq.outbox$$, '42501', NULL, 'producer cannot touch the outbox');
SELECT throws_ok($$SELECT taskq.create_queue('mine')$$, '42501', NULL, 'producer cannot create queues');
SELECT throws_ok($$SELECT taskq.drop_queue('p', true)$$, '42501', NULL, 'producer cannot drop queues');
SELECT throws_ok($$SELECT * FROM taskq._outbox_claim(10)$$, '42501', NULL, 'producer cannot claim the outbox');
RESET ROLE;

-- worker
SET ROLE tq_runner;
SELECT is((SELECT count(*)::int FROM taskq.start(:'j', 1, 'runner')), 1, 'worker starts');
SELECT ok(taskq.heartbeat(:'j', 1), 'worker heartbeats');
SELECT ok(taskq.complete(:'j', 1, '{"done": true}'), 'worker completes');
SELECT lives_ok($$SELECT * FROM taskq._callbacks_claim('runner', 10, '1 minute')$$, 'worker claims callbacks');
SELECT throws_ok($$SELECT taskq.enqueue('p')$$, '42501', NULL, 'worker cannot enqueue');
SELECT throws_ok($$SELECT taskq.retry('$$ || :'j' || $$')$$, '42501', NULL, 'worker cannot retry');
SELECT throws_ok($$INSERT INTO taskq.outbox (job_id, attempt, due_at) VALUES (taskq._uuid_v7(), 1, now())$$, '42501', NULL,
                 'worker cannot write the outbox');
RESET ROLE;

-- nobody
SET ROLE tq_nobody;
SELECT throws_ok($$SELECT taskq.enqueue('p')$$, '42501', NULL, 'unprivileged role cannot enqueue');
SELECT throws_ok($$SELECT taskq.start('$$ || :'j' || $$', 3, 'x')$$, '42501', NULL, 'unprivileged role cannot start');
SELECT throws_ok($$SELECT * FROM taskq.jobs$$, '42501', NULL, 'unprivileged role cannot read jobs');
RESET ROLE;

DROP OWNED BY tq_app, tq_runner, tq_nobody;
DROP ROLE tq_app, tq_runner, tq_nobody;
SELECT * FROM finish();

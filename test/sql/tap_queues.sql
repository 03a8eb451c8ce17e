-- Queue administration, enqueue options, enqueue_many, unique_key, pause,
-- queue_stats.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS taskq CASCADE;
CREATE EXTENSION taskq;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT no_plan();

-- create / alter
SELECT results_eq($$SELECT queue_name, max_attempts, lease, backoff_base, backoff_max, retention, delivery_delay, queue_type, paused
                    FROM taskq.create_queue('q1')$$,
                  $$VALUES ('q1', 5, interval '5 minutes', interval '1 second', interval '1 hour', interval '7 days', interval '0', 'classic', false)$$,
                  'create_queue defaults');
SELECT results_eq($$SELECT max_attempts, lease, queue_type FROM taskq.alter_queue('q1', max_attempts => 7)$$,
                  $$VALUES (7, interval '5 minutes', 'classic')$$, 'alter_queue changes only what is given');
SELECT results_eq($$SELECT queue_type FROM taskq.create_queue('q2', queue_type => 'quorum', delivery_delay => '1 minute')$$,
                  $$VALUES ('quorum')$$, 'quorum queue');

-- enqueue options
SELECT taskq.enqueue('q1', '{"a": 1}', max_attempts => 2) AS a \gset
SELECT is(max_attempts, 2, 'max_attempts per job overrides the queue') FROM taskq.jobs WHERE id = :'a';
SELECT taskq.enqueue('q1', '{}') AS b \gset
SELECT is(max_attempts, 7, 'max_attempts from the queue') FROM taskq.jobs WHERE id = :'b';
SELECT ok(:'a'::uuid < :'b'::uuid, 'ids sort in enqueue order');
SELECT taskq.enqueue('q1', '{}', delay => '1 hour') AS d \gset
SELECT ok(run_at > now() + interval '59 minutes', 'delay') FROM taskq.jobs WHERE id = :'d';
SELECT ok(due_at = (SELECT run_at FROM taskq.jobs WHERE id = :'d'), 'the outbox row is due when the job is') FROM taskq.outbox WHERE job_id = :'d';
SELECT taskq.enqueue('q1', '{}', run_at => now() - interval '1 day') AS past \gset
SELECT ok(run_at >= created_at, 'a run_at in the past means now') FROM taskq.jobs WHERE id = :'past';
SELECT taskq.enqueue('q2', '{}') AS dd \gset
SELECT ok(run_at >= created_at + interval '1 minute', 'the queue''s delivery_delay is added') FROM taskq.jobs WHERE id = :'dd';
SELECT is_empty($$SELECT * FROM taskq._outbox_claim(100) WHERE job_id IN ('$$ || :'d' || $$', '$$ || :'dd' || $$')$$,
                'delayed jobs are not claimed before they are due');
SELECT ok(taskq._outbox_next_due() <= now() + interval '1 minute', 'next_due tells when the next delayed row is due');

-- enqueue_many: one job per element, ids in array order, one outbox row each
SELECT is((SELECT count(*)::int FROM taskq.enqueue_many('q1', '[{"i": 1}, {"i": 2}, 3, "four"]', task => 'batch')), 4, 'enqueue_many');
SELECT is(array_agg(payload ORDER BY id), ARRAY['{"i": 1}', '{"i": 2}', '3', '"four"']::jsonb[], 'one job per element, ids in array order')
FROM taskq.jobs WHERE task = 'batch';
SELECT is((SELECT count(*)::int FROM taskq.jobs j JOIN taskq.outbox o ON o.job_id = j.id WHERE j.task = 'batch'), 4,
          'one outbox row per job');
SELECT is((SELECT array_agg(ord ORDER BY id) = array_agg(ord ORDER BY ord)
           FROM (SELECT id, row_number() OVER () AS ord FROM taskq.enqueue_many('q1', (SELECT jsonb_agg(g) FROM generate_series(1, 2000) g)) id) s),
          true, 'returned ids are in array order for 2000 elements');

-- unique_key: same id while unfinished; a new job once it finished
SELECT taskq.enqueue('q1', '{"v": 1}', unique_key => 'order-42') AS u1 \gset
SELECT is(taskq.enqueue('q1', '{"v": 2}', unique_key => 'order-42'), :'u1'::uuid, 'same key: existing id');
SELECT is((SELECT count(*)::int FROM taskq.jobs WHERE unique_key = 'order-42'), 1, 'no second job');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE job_id = :'u1'), 1, 'no second outbox row');
SELECT isnt(taskq.enqueue('q2', '{}', unique_key => 'order-42'), :'u1'::uuid, 'keys are per queue');
SELECT is((SELECT count(DISTINCT id)::int FROM taskq.enqueue_many('q1', '[1, 2, 3]', unique_key => 'order-42') id), 1,
          'enqueue_many with a key: every element gets the existing job');
SELECT isnt_empty($$SELECT * FROM taskq.start('$$ || :'u1' || $$', 1, 'w')$$, 'start');
SELECT is(taskq.enqueue('q1', '{}', unique_key => 'order-42'), :'u1'::uuid, 'running job still holds its key');
SELECT ok(taskq.complete(:'u1', 1), 'complete');
SELECT isnt(taskq.enqueue('q1', '{}', unique_key => 'order-42'), :'u1'::uuid, 'finished job releases its key');
SELECT throws_ok($$SELECT taskq.retry('$$ || :'u1' || $$')$$, '55000', NULL,
                 'retry refused while another unfinished job has the key');

-- pause / resume
SELECT is((taskq.pause_queue('q1')).paused, true, 'pause');
SELECT is_empty($$SELECT * FROM taskq._outbox_claim(10000) WHERE queue_name = 'q1'$$, 'paused queue is not published');
SELECT ok((SELECT count(*) FROM taskq.outbox o JOIN taskq.jobs j ON j.id = o.job_id WHERE j.queue_name = 'q1') > 0,
          'its outbox rows are kept');
SELECT lives_ok($$SELECT taskq.enqueue('q1', '{}')$$, 'enqueue into a paused queue works');
SELECT is((taskq.resume_queue('q1')).paused, false, 'resume');
SELECT isnt_empty($$SELECT * FROM taskq._outbox_claim(10000) WHERE queue_name = 'q1'$$, 'resumed queue is published');

-- publisher bookkeeping: failed publishes back off
SELECT taskq.enqueue('q1', '{"publish": "fails"}') AS pf \gset
SELECT is(taskq._outbox_failed(ARRAY(SELECT id FROM taskq.outbox WHERE job_id = :'pf'), 'nack'), 1, 'nacked row recorded');
SELECT results_eq($$SELECT publish_attempts, last_error, due_at > now() FROM taskq.outbox WHERE job_id = '$$ || :'pf' || $$'$$,
                  $$VALUES (1, 'nack', true)$$, 'nacked row is kept and due later');

-- queue_stats
SELECT results_eq($$SELECT waiting, pending, running, completed, scheduled, outbox_backlog > 0 FROM taskq.queue_stats WHERE queue_name = 'q1'$$,
                  $$SELECT count(*) FILTER (WHERE status = 'waiting'), count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'running'),
                           count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'pending' AND run_at > now()), true
                    FROM taskq.jobs WHERE queue_name = 'q1'$$, 'queue_stats counts per status');
SELECT is(enum_range(NULL::taskq.job_status)::text, '{waiting,pending,running,completed,failed,cancelled}', 'the statuses, in life-cycle order');
SELECT ok(oldest_pending_age >= interval '0', 'oldest pending age') FROM taskq.queue_stats WHERE queue_name = 'q1';

-- drop_queue: refused with unfinished jobs, force deletes them
SELECT throws_ok($$SELECT taskq.drop_queue('q1')$$, '55000', NULL, 'drop refused with unfinished jobs');
SELECT ok(EXISTS (SELECT 1 FROM taskq.queues WHERE queue_name = 'q1'), 'queue still there');
SELECT lives_ok($$SELECT taskq.drop_queue('q1', force => true)$$, 'drop with force');
SELECT is((SELECT count(*)::int FROM taskq.jobs WHERE queue_name = 'q1'), 0, 'its jobs are gone');
SELECT is((SELECT count(*)::int FROM taskq.outbox o LEFT JOIN taskq.jobs j ON j.id = o.job_id WHERE j.id IS NULL), 0,
          'no orphaned outbox rows');
SELECT lives_ok($$SELECT taskq.create_queue('empty')$$, 'a queue without jobs');
SELECT lives_ok($$SELECT taskq.drop_queue('empty')$$, 'drops without force');

-- jobs_per_message: 1 by default; bad values refused (22023) and nothing changed
SELECT is((taskq.create_queue('packed')).jobs_per_message, 1, 'one job per message by default');
SELECT throws_ok($$SELECT taskq.create_queue('packed0', jobs_per_message => 0)$$, '22023', NULL, 'jobs_per_message 0');
SELECT throws_ok($$SELECT taskq.create_queue('packed0', jobs_per_message => -3)$$, '22023', NULL, 'negative jobs_per_message');
SELECT throws_ok($$SELECT taskq.create_queue('packed0', jobs_per_message => 101)$$, '22023', NULL, 'jobs_per_message over 100');
SELECT throws_ok($$SELECT taskq.create_queue('packed0', jobs_per_message => NULL)$$, '22004', NULL, 'jobs_per_message NULL at create');
SELECT ok(NOT EXISTS (SELECT 1 FROM taskq.queues WHERE queue_name = 'packed0'), 'no queue made by the refused calls');
SELECT is((taskq.alter_queue('packed', jobs_per_message => 50)).jobs_per_message, 50, 'alter_queue sets it');
SELECT throws_ok($$SELECT taskq.alter_queue('packed', jobs_per_message => 1000)$$, '22023', NULL, 'alter_queue refuses 1000');
SELECT is((SELECT jobs_per_message FROM taskq.queues WHERE queue_name = 'packed'), 50, 'unchanged after the refusal');
SELECT is((taskq.alter_queue('packed', max_attempts => 3)).jobs_per_message, 50, 'NULL leaves it unchanged');
SELECT results_eq($$SELECT queue_name, jobs_per_message FROM taskq._batched_queues()$$,
                  $$VALUES ('packed'::text, 50)$$, 'the publisher sees the packed queues only');
SELECT lives_ok($$SELECT taskq.drop_queue('packed')$$, 'drop it');

SELECT * FROM finish();

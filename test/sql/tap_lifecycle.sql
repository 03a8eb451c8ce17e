-- The job state machine end to end: enqueue -> outbox -> start -> complete /
-- fail / retry / cancel, attempt fencing and stale calls, callbacks written
-- in the same transaction.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS taskq CASCADE;
CREATE EXTENSION taskq;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT no_plan();

SELECT lives_ok($$SELECT taskq.create_queue('life', max_attempts => 3, backoff_base => '10 seconds', backoff_max => '20 seconds')$$,
                'create_queue with options');

-- enqueue writes the job and its outbox row together
SELECT taskq.enqueue('life', '{"n": 1}', task => 'greet', priority => 4, headers => '{"tenant": "acme"}',
                     callback_url => 'https://example.com/hook') AS id \gset
SELECT is(status, 'pending'::taskq.job_status, 'new job is pending') FROM taskq.jobs WHERE id = :'id';
SELECT is(attempts, 0, 'no attempt yet') FROM taskq.jobs WHERE id = :'id';
SELECT is(max_attempts, 3, 'max_attempts from the queue') FROM taskq.jobs WHERE id = :'id';
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE job_id = :'id' AND attempt = 1), 1, 'one outbox row for attempt 1');

-- the publisher's view of it: the contract's message body
SELECT is(body::jsonb - 'enqueued_at' - 'id',
          '{"queue": "life", "task": "greet", "payload": {"n": 1}, "attempt": 1, "max_attempts": 3, "headers": {"tenant": "acme"},
            "depends_on": []}'::jsonb,
          'claimed message body') FROM taskq._outbox_claim(10) WHERE job_id = :'id';
SELECT is((SELECT priority FROM taskq._outbox_claim(10) WHERE job_id = :'id'), 4, 'priority carried to the message');
SELECT is(taskq._outbox_published(ARRAY(SELECT id FROM taskq.outbox WHERE job_id = :'id')), ARRAY[:'id'::uuid], 'confirm deletes the row, names its job');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE job_id = :'id'), 0, 'outbox row gone');
SELECT is(taskq._jobs_published(ARRAY[:'id'::uuid]), 1, 'publish time recorded after the pass');
SELECT ok(published_at IS NOT NULL, 'published_at recorded') FROM taskq.jobs WHERE id = :'id';

-- fencing on start
SELECT is_empty($$SELECT * FROM taskq.start('$$ || :'id' || $$', 2, 'w1')$$, 'start with a future attempt is stale');
SELECT is_empty($$SELECT * FROM taskq.start('$$ || :'id' || $$', 0, 'w1')$$, 'start with a past attempt is stale');
SELECT is_empty($$SELECT * FROM taskq.start('01a20000-0000-7000-8000-000000000000', 1, 'w1')$$, 'start of an unknown job is stale');
SELECT results_eq($$SELECT status::text, attempts, worker FROM taskq.start('$$ || :'id' || $$', 1, 'w1')$$,
                  $$VALUES ('running', 1, 'w1')$$, 'start of attempt 1 runs it');
SELECT is_empty($$SELECT * FROM taskq.start('$$ || :'id' || $$', 1, 'w2')$$, 'a duplicate delivery of attempt 1 is stale');
SELECT ok(lease_expires_at > now() + interval '4 minutes', 'lease from the queue (5 minutes)') FROM taskq.jobs WHERE id = :'id';

-- heartbeat
SELECT is(taskq.heartbeat(:'id', 1), true, 'heartbeat of the running attempt');
SELECT is(taskq.heartbeat(:'id', 2), false, 'heartbeat of another attempt is stale');

-- fail with retry: backoff within [base/2, base] for attempt 1, new outbox row for attempt 2
SELECT is(taskq.fail(:'id', 1, 'boom'), 'pending'::taskq.job_status, 'fail retries');
SELECT ok(run_at BETWEEN now() + interval '5 seconds' AND now() + interval '10 seconds', 'backoff with jitter within [base/2, base]')
  FROM taskq.jobs WHERE id = :'id';
SELECT is(last_error, 'boom', 'error recorded') FROM taskq.jobs WHERE id = :'id';
SELECT is((SELECT attempt FROM taskq.outbox WHERE job_id = :'id'), 2, 'outbox row for attempt 2');
SELECT is(taskq.fail(:'id', 1, 'again'), 'pending'::taskq.job_status, 'a second fail of the same attempt gets the same status');
SELECT is(last_error, 'boom', 'and changes nothing') FROM taskq.jobs WHERE id = :'id';
SELECT is(taskq.complete(:'id', 1), false, 'complete of a finished attempt is stale');
SELECT is_empty($$SELECT * FROM taskq.start('$$ || :'id' || $$', 2, 'w1')$$, 'start before run_at is refused');
SELECT is_empty($$SELECT * FROM taskq._outbox_claim(10) WHERE job_id = '$$ || :'id' || $$'$$, 'not published before it is due');

-- make it due, start attempt 2, fail with an explicit retry_in
UPDATE taskq.jobs SET run_at = now() WHERE id = :'id';
UPDATE taskq.outbox SET due_at = now() WHERE job_id = :'id';
SELECT is((SELECT count(*)::int FROM taskq._outbox_claim(10) WHERE job_id = :'id' AND attempt = 2), 1, 'published when due');
SELECT isnt_empty($$SELECT * FROM taskq.start('$$ || :'id' || $$', 2, 'w1')$$, 'attempt 2 starts');
SELECT is(taskq.fail(:'id', 2, 'later', retry_in => '1 hour'), 'pending'::taskq.job_status, 'fail with retry_in');
SELECT ok(run_at BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes', 'retry_in overrides the backoff')
  FROM taskq.jobs WHERE id = :'id';

-- third (last) attempt fails: failed for good, callback written
UPDATE taskq.jobs SET run_at = now() WHERE id = :'id';
SELECT isnt_empty($$SELECT * FROM taskq.start('$$ || :'id' || $$', 3, 'w1')$$, 'attempt 3 starts');
SELECT is(taskq.fail(:'id', 3, 'final'), 'failed'::taskq.job_status, 'max_attempts reached: failed');
SELECT ok(finished_at IS NOT NULL, 'finished_at set') FROM taskq.jobs WHERE id = :'id';
SELECT results_eq($$SELECT event, url, body->>'status', body->>'error', (body->>'attempts')::int, state FROM taskq.callbacks WHERE job_id = '$$ || :'id' || $$'$$,
                  $$VALUES ('job.failed', 'https://example.com/hook', 'failed', 'final', 3, 'pending')$$,
                  'failed job wrote its callback');

-- retry: fresh budget, attempt numbers never reused
SELECT results_eq($$SELECT status::text, attempts, max_attempts FROM taskq.retry('$$ || :'id' || $$')$$,
                  $$VALUES ('pending', 3, 6)$$, 'retry grants a fresh budget');
SELECT is((SELECT attempt FROM taskq.outbox WHERE job_id = :'id' ORDER BY id DESC LIMIT 1), 4, 'retry publishes attempt 4');
SELECT is_empty($$SELECT * FROM taskq.start('$$ || :'id' || $$', 1, 'w1')$$, 'an old attempt number cannot start the retried job');
SELECT isnt_empty($$SELECT * FROM taskq.start('$$ || :'id' || $$', 4, 'w1')$$, 'attempt 4 starts');
SELECT is(taskq.complete(:'id', 4, '{"ok": true}'), true, 'complete');
SELECT is(taskq.complete(:'id', 4, '{"ok": true}'), true, 'a second complete gets true again');
SELECT results_eq($$SELECT status::text, result FROM taskq.jobs WHERE id = '$$ || :'id' || $$'$$,
                  $$VALUES ('completed', '{"ok": true}'::jsonb)$$, 'completed with result');
SELECT is((SELECT count(*)::int FROM taskq.callbacks WHERE job_id = :'id' AND event = 'job.completed'), 1, 'completed callback');
SELECT is(taskq.fail(:'id', 4, 'late'), NULL, 'fail after complete is stale');

-- permanent failure
SELECT taskq.enqueue('life', '{}') AS p \gset
SELECT isnt_empty($$SELECT * FROM taskq.start('$$ || :'p' || $$', 1, 'w1')$$, 'start');
SELECT is(taskq.fail(:'p', 1, 'bad input', permanent => true), 'failed'::taskq.job_status, 'permanent fails at once');
SELECT is((SELECT count(*)::int FROM taskq.callbacks WHERE job_id = :'p'), 0, 'no callback without callback_url');

-- cancel pending: at once; its outbox row is dropped by the next claim
SELECT taskq.enqueue('life', '{}', callback_url => 'http://example.com/c') AS c \gset
SELECT is((taskq.cancel(:'c')).status, 'cancelled'::taskq.job_status, 'cancel of a pending job');
SELECT is_empty($$SELECT * FROM taskq._outbox_claim(100) WHERE job_id = '$$ || :'c' || $$'$$, 'cancelled job is not published');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE job_id = :'c'), 0, 'its outbox row was dropped');
SELECT is((SELECT event FROM taskq.callbacks WHERE job_id = :'c'), 'job.cancelled', 'cancelled callback');

-- cancel running: requested; heartbeat says stop; fail ends it cancelled
SELECT taskq.enqueue('life', '{}') AS r \gset
SELECT isnt_empty($$SELECT * FROM taskq.start('$$ || :'r' || $$', 1, 'w1')$$, 'start');
SELECT results_eq($$SELECT status::text, cancel_requested FROM taskq.cancel('$$ || :'r' || $$')$$,
                  $$VALUES ('running', true)$$, 'cancel of a running job is requested');
SELECT is(taskq.heartbeat(:'r', 1), false, 'heartbeat returns false after a cancel request');
SELECT is(taskq.fail(:'r', 1, 'stopped'), 'cancelled'::taskq.job_status, 'the next fail ends it cancelled');
SELECT throws_ok($$SELECT taskq.cancel('$$ || :'r' || $$')$$, '55000', NULL, 'cancel of a finished job is refused');
SELECT taskq.enqueue('life', '{}') AS pend \gset
SELECT throws_ok($$SELECT taskq.retry('$$ || :'pend' || $$')$$, '55000', NULL, 'retry of a pending job is refused');
SELECT throws_ok($$SELECT taskq.retry('01a20000-0000-7000-8000-000000000000')$$, '42704', NULL, 'retry of an unknown job');
SELECT throws_ok($$SELECT taskq.cancel('01a20000-0000-7000-8000-000000000000')$$, '42704', NULL, 'cancel of an unknown job');

-- a cancel that comes too late: complete wins
SELECT taskq.enqueue('life', '{}') AS late \gset
SELECT isnt_empty($$SELECT * FROM taskq.start('$$ || :'late' || $$', 1, 'w1')$$, 'start');
SELECT lives_ok($$SELECT taskq.cancel('$$ || :'late' || $$')$$, 'cancel requested');
SELECT is(taskq.complete(:'late', 1), true, 'complete after a cancel request completes the job');

-- retry of a cancelled job with a delay
SELECT ok((taskq.retry(:'c', delay => '1 hour')).run_at > now() + interval '59 minutes', 'retry with delay');

-- job(): one row or none
SELECT is((SELECT count(*)::int FROM taskq.job(:'id')), 1, 'job() finds the job');
SELECT is((SELECT count(*)::int FROM taskq.job('01a20000-0000-7000-8000-000000000000')), 0, 'job() of an unknown id: zero rows');

-- rolled-back enqueue leaves nothing behind
BEGIN;
SELECT taskq.enqueue('life', '{"rolled": "back"}') AS rb \gset
ROLLBACK;
SELECT is((SELECT count(*)::int FROM taskq.jobs WHERE payload ? 'rolled'), 0, 'rolled-back job does not exist');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE job_id = :'rb'), 0, 'nor its outbox row');
BEGIN;
SAVEPOINT s;
SELECT taskq.enqueue('life', '{"savepoint": "rolled back"}') AS sp \gset
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE job_id = :'sp'), 0, 'savepoint rollback removes the outbox row');

-- _give_back: an attempt the worker stopped itself (shutdown) is not counted
SELECT taskq.create_queue('giveback', max_attempts => 1) \g /dev/null
SELECT taskq.enqueue('giveback', '{}') AS gb \gset
SELECT is((SELECT count(*)::int FROM taskq.start(:'gb', 1, 'w1')), 1, 'give-back job started');
SELECT is(taskq._give_back(:'gb', 2, 'stopped'), NULL, 'give back of another attempt is stale');
SELECT is(taskq._give_back(:'gb', 1, 'stopped: the worker is shutting down'), 'pending'::taskq.job_status,
          'given back on its last attempt: pending, not failed');
SELECT is(max_attempts, 2, 'the stopped attempt does not count') FROM taskq.jobs WHERE id = :'gb';
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE job_id = :'gb' AND attempt = 2 AND due_at <= now()), 1,
          'attempt 2 goes out at once');
SELECT is(taskq._give_back(:'gb', 1, 'again'), 'pending'::taskq.job_status, 'giving back twice gets the same status');
SELECT is((SELECT count(*)::int FROM taskq.start(:'gb', 2, 'w2')), 1, 'attempt 2 starts');
SELECT is((SELECT status FROM taskq.cancel(:'gb')), 'running'::taskq.job_status, 'cancel requested while it runs');
SELECT is(taskq._give_back(:'gb', 2, 'stopped'), 'cancelled'::taskq.job_status, 'a cancel requested meanwhile wins');
SELECT is(max_attempts, 2, 'and the budget is left alone') FROM taskq.jobs WHERE id = :'gb';

SELECT * FROM finish();

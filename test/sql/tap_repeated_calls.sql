-- Repeats of the worker's calls: a worker whose connection broke before the
-- answer arrived calls again. A repeat of start, complete, fail, _give_back
-- and the batch forms that committed gets the same answer and writes nothing
-- more (no second callback, outbox row or backoff); another worker, another
-- start under the same name, another attempt, a rescued lease or a job
-- cancelled or retried since stay stale.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS taskq CASCADE;
CREATE EXTENSION taskq;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT no_plan();

SELECT taskq.create_queue('rep', max_attempts => 2, lease => '1 minute') \g /dev/null
SELECT gen_random_uuid() AS r1, gen_random_uuid() AS r2 \gset

-- start
SELECT taskq.enqueue('rep', '{}', callback_url => 'https://example.com/hook') AS s \gset
SELECT results_eq(format($$SELECT status::text, attempts, worker FROM taskq.start(%L, 1, 'w1', %L)$$, :'s', :'r1'),
                  $$VALUES ('running', 1, 'w1')$$, 'start with a request id');
SELECT started_at AS started FROM taskq.jobs WHERE id = :'s' \gset
UPDATE taskq.jobs SET lease_expires_at = now() + interval '1 second' WHERE id = :'s';
SELECT results_eq(format($$SELECT status::text, attempts, worker, started_at FROM taskq.start(%L, 1, 'w1', %L)$$, :'s', :'r1'),
                  format($$VALUES ('running', 1, 'w1', %L::timestamptz)$$, :'started'),
                  'a repeat of the start gets the same row again');
SELECT ok(lease_expires_at > now() + interval '50 seconds', 'and renews the lease') FROM taskq.jobs WHERE id = :'s';
SELECT is_empty(format($$SELECT * FROM taskq.start(%L, 1, 'w2', %L)$$, :'s', :'r1'), 'the same request id from another worker is stale');
SELECT is_empty(format($$SELECT * FROM taskq.start(%L, 1, 'w1', %L)$$, :'s', :'r2'),
                'another start under the same worker name (a duplicate delivery) is stale');
SELECT is_empty(format($$SELECT * FROM taskq.start(%L, 1, 'w1')$$, :'s'), 'a start without a request id is stale');
SELECT is_empty(format($$SELECT * FROM taskq.start(%L, 2, 'w1', %L)$$, :'s', :'r1'), 'another attempt is stale');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE job_id = :'s'), 1, 'no outbox row written');

-- a start without a request id cannot be repeated
SELECT taskq.enqueue('rep', '{}') AS anon \gset
SELECT is((SELECT count(*)::int FROM taskq.start(:'anon', 1, 'w1')), 1, 'start without a request id');
SELECT is_empty(format($$SELECT * FROM taskq.start(%L, 1, 'w1')$$, :'anon'), 'its repeat is stale, as before');

-- a cancel requested meanwhile: the row again (the heartbeat says stop), the lease as it was
SELECT taskq.enqueue('rep', '{}') AS cr \gset
SELECT is((SELECT count(*)::int FROM taskq.start(:'cr', 1, 'w1', :'r1')), 1, 'start');
SELECT taskq.cancel(:'cr') \g /dev/null
UPDATE taskq.jobs SET lease_expires_at = now() + interval '1 second' WHERE id = :'cr';
SELECT is((SELECT count(*)::int FROM taskq.start(:'cr', 1, 'w1', :'r1')), 1, 'a repeat after a cancel request gets the row');
SELECT ok(lease_expires_at < now() + interval '2 seconds', 'without renewing the lease') FROM taskq.jobs WHERE id = :'cr';
SELECT is(taskq.heartbeat(:'cr', 1), false, 'and the heartbeat says stop');

-- complete
SELECT is(taskq.complete(:'s', 1, '{"n": 1}'), true, 'complete');
SELECT finished_at AS finished FROM taskq.jobs WHERE id = :'s' \gset
SELECT is(taskq.complete(:'s', 1, '{"n": 1}'), true, 'a repeat of the complete is true again');
SELECT results_eq(format($$SELECT result, finished_at FROM taskq.jobs WHERE id = %L$$, :'s'),
                  format($$VALUES ('{"n": 1}'::jsonb, %L::timestamptz)$$, :'finished'), 'and changes nothing');
SELECT is((SELECT count(*)::int FROM taskq.callbacks WHERE job_id = :'s'), 1, 'one callback row');
SELECT is(taskq.complete(:'s', 2), false, 'complete of another attempt is stale');
SELECT is(taskq.fail(:'s', 1, 'late'), NULL, 'fail of a completed attempt is stale');
SELECT is_empty(format($$SELECT * FROM taskq.start(%L, 1, 'w1', %L)$$, :'s', :'r1'), 'a repeat of its start is stale now');
SELECT taskq.retry(:'s') \g /dev/null
SELECT is(taskq.complete(:'s', 1), false, 'retried since: a repeat of the complete is stale');
SELECT is((SELECT count(*)::int FROM taskq.callbacks WHERE job_id = :'s'), 1, 'still one callback row');

-- fail that retries: pending again, one outbox row, one backoff
SELECT taskq.enqueue('rep', '{}', callback_url => 'https://example.com/hook') AS f \gset
SELECT is((SELECT count(*)::int FROM taskq.start(:'f', 1, 'w1')), 1, 'start');
SELECT is(taskq.fail(:'f', 1, 'boom'), 'pending'::taskq.job_status, 'fail retries');
SELECT run_at AS due FROM taskq.jobs WHERE id = :'f' \gset
SELECT is(taskq.fail(:'f', 1, 'boom'), 'pending'::taskq.job_status, 'a repeat of the fail gets pending again');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE job_id = :'f' AND attempt = 2), 1, 'one outbox row for attempt 2');
SELECT is(run_at, :'due'::timestamptz, 'the backoff is not drawn again') FROM taskq.jobs WHERE id = :'f';
SELECT is(taskq.complete(:'f', 1), false, 'complete of a failed attempt is stale');
SELECT is(taskq.fail(:'f', 2, 'boom'), NULL, 'fail of another attempt is stale');
SELECT taskq.cancel(:'f') \g /dev/null
SELECT is(taskq.fail(:'f', 1, 'boom'), NULL, 'cancelled since: a repeat of the fail is stale');
SELECT taskq.retry(:'f') \g /dev/null
SELECT is(taskq.fail(:'f', 1, 'boom'), NULL, 'retried since (pending with the same attempts again): stale');
SELECT is((SELECT count(*)::int FROM taskq.callbacks WHERE job_id = :'f'), 1, 'one callback row (the cancel)');

-- fail on the last attempt, and a fail that carries out a cancel request
SELECT taskq.enqueue('rep', '{}', max_attempts => 1, callback_url => 'https://example.com/hook') AS last \gset
SELECT is((SELECT count(*)::int FROM taskq.start(:'last', 1, 'w1')), 1, 'start');
SELECT is(taskq.fail(:'last', 1, 'final'), 'failed'::taskq.job_status, 'the last attempt fails');
SELECT is(taskq.fail(:'last', 1, 'final'), 'failed'::taskq.job_status, 'a repeat gets failed again');
SELECT is((SELECT count(*)::int FROM taskq.callbacks WHERE job_id = :'last'), 1, 'one callback row');
SELECT is(taskq.fail(:'cr', 1, 'stopped'), 'cancelled'::taskq.job_status, 'fail after a cancel request');
SELECT is(taskq.fail(:'cr', 1, 'stopped'), 'cancelled'::taskq.job_status, 'a repeat gets cancelled again');

-- a lease rescue is not the worker's failure: its late calls stay stale
SELECT taskq.enqueue('rep', '{}') AS lost \gset
SELECT is((SELECT count(*)::int FROM taskq.start(:'lost', 1, 'w1', :'r1')), 1, 'start');
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :'lost';
SELECT is(taskq.rescue_expired(), 1, 'the lease ran out');
SELECT is(taskq.fail(:'lost', 1, 'late'), NULL, 'a fail after the rescue is stale');
SELECT is(taskq._give_back(:'lost', 1, 'late'), NULL, 'a give-back after the rescue is stale');
SELECT is_empty(format($$SELECT * FROM taskq.start(%L, 1, 'w1', %L)$$, :'lost', :'r1'), 'a repeat of its start is stale');

-- _give_back: pending again, the budget raised once, one outbox row
SELECT taskq.create_queue('rep1', max_attempts => 1) \g /dev/null
SELECT taskq.enqueue('rep1', '{}') AS gb \gset
SELECT is((SELECT count(*)::int FROM taskq.start(:'gb', 1, 'w1')), 1, 'start');
SELECT is(taskq._give_back(:'gb', 1, 'stopped'), 'pending'::taskq.job_status, 'given back');
SELECT is(taskq._give_back(:'gb', 1, 'stopped'), 'pending'::taskq.job_status, 'a repeat gets pending again');
SELECT is(max_attempts, 2, 'the budget is raised once') FROM taskq.jobs WHERE id = :'gb';
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE job_id = :'gb' AND attempt = 2), 1, 'one outbox row for attempt 2');
SELECT is(taskq._give_back(:'gb', 2, 'stopped'), NULL, 'another attempt is stale');

-- the batch forms
SELECT taskq.enqueue('rep', '{}', callback_url => 'https://example.com/hook') AS a \gset
SELECT taskq.enqueue('rep', '{}', callback_url => 'https://example.com/hook') AS b \gset
SELECT jsonb_build_array(jsonb_build_object('id', :'a', 'attempt', 1), jsonb_build_object('id', :'b', 'attempt', 1)) AS ab \gset
SELECT results_eq(format($$SELECT job_id::text, attempt, lease_ms FROM taskq._start_batch(%L, 'w1', %L) ORDER BY job_id$$, :'ab', :'r1'),
                  format($$VALUES (%L, 1, 60000::bigint), (%L, 1, 60000::bigint)$$, :'a', :'b'), 'a batch starts');
SELECT results_eq(format($$SELECT job_id::text, attempt, lease_ms FROM taskq._start_batch(%L, 'w1', %L) ORDER BY job_id$$, :'ab', :'r1'),
                  format($$VALUES (%L, 1, 60000::bigint), (%L, 1, 60000::bigint)$$, :'a', :'b'),
                  'a repeat of the batch gets the same rows');
SELECT is_empty(format($$SELECT * FROM taskq._start_batch(%L, 'w2', %L)$$, :'ab', :'r1'), 'from another worker: stale');
SELECT is_empty(format($$SELECT * FROM taskq._start_batch(%L, 'w1', %L)$$, :'ab', :'r2'), 'another batch of the same deliveries: stale');
SELECT is_empty(format($$SELECT * FROM taskq._start_batch(%L, 'w1')$$, :'ab'), 'a batch without a request id: stale');
SELECT is_empty(format($$SELECT * FROM taskq._start_batch('[{"id": "%s", "attempt": 2}]', 'w1', %L)$$, :'a', :'r1'),
                'another attempt: stale');
SELECT results_eq(format($$SELECT id::text FROM taskq._complete_batch('[{"id": "%s", "attempt": 1, "result": 1}]') AS id$$, :'a'),
                  format($$VALUES (%L)$$, :'a'), 'a batch completes a');
SELECT results_eq(format($$SELECT id::text FROM taskq._complete_batch('[{"id": "%s", "attempt": 1, "result": 1}, {"id": "%s", "attempt": 1, "result": 2}, {"id": "%s", "attempt": 2, "result": 3}]') AS id ORDER BY id$$, :'a', :'b', :'b'),
                  format($$VALUES (%L), (%L)$$, :'a', :'b'),
                  'a batch with a repeat for a and a first completion of b returns both');
SELECT results_eq(format($$SELECT id::text FROM taskq._complete_batch('[{"id": "%s", "attempt": 1, "result": 9}, {"id": "%s", "attempt": 1, "result": 9}]') AS id ORDER BY id$$, :'a', :'b'),
                  format($$VALUES (%L), (%L)$$, :'a', :'b'), 'a repeat of the whole batch returns both again');
SELECT is_empty(format($$SELECT * FROM taskq._complete_batch('[{"id": "%s", "attempt": 2, "result": 1}]')$$, :'a'),
                'another attempt: stale');
SELECT results_eq(format($$SELECT id::text, result FROM taskq.jobs WHERE id IN (%L, %L) ORDER BY id$$, :'a', :'b'),
                  format($$VALUES (%L, '1'::jsonb), (%L, '2'::jsonb)$$, :'a', :'b'), 'results as first recorded');
SELECT results_eq(format($$SELECT job_id::text, count(*)::int FROM taskq.callbacks WHERE job_id IN (%L, %L) GROUP BY job_id ORDER BY job_id$$, :'a', :'b'),
                  format($$VALUES (%L, 1), (%L, 1)$$, :'a', :'b'), 'one callback row each');

SELECT * FROM finish();

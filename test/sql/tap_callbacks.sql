-- What the callback dispatcher relies on beyond claim/delivered/failed
-- (those are in tap_maintenance): _callbacks_next_due() for sleeping until
-- the next retry or lease expiry, the claim's order and lease, and the
-- worker role's grants.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS taskq CASCADE;
CREATE EXTENSION taskq;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT no_plan();

SELECT lives_ok($$SELECT taskq.create_queue('cbq')$$, 'queue');
SELECT is(taskq._callbacks_next_due(), NULL, 'nothing pending: no next due time');

-- a job ending with a callback_url: due at once
SELECT taskq.enqueue('cbq', '{}', callback_url => 'http://127.0.0.1/a') AS a \gset
SELECT isnt_empty($$SELECT * FROM taskq.start('$$ || :'a' || $$', 1, 'w')$$, 'start a');
SELECT ok(taskq.complete(:'a', 1), 'complete a');
SELECT ok(taskq._callbacks_next_due() <= now(), 'a fresh callback is due now');

-- leased: due again when the lease runs out
SELECT is((SELECT count(*)::int FROM taskq._callbacks_claim('d1', 10, '30 seconds')), 1, 'claimed');
SELECT is(taskq._callbacks_next_due(), (SELECT lease_expires_at FROM taskq.callbacks WHERE job_id = :'a'),
          'a leased callback is due when its lease runs out');
SELECT ok(taskq._callbacks_next_due() > now() + interval '29 seconds', 'that is the lease given to the claim');

-- failed with retry_in: due after it, lease released
SELECT ok(taskq._callback_failed((SELECT id FROM taskq.callbacks WHERE job_id = :'a'), 'd1', 503, 'busy',
                                 '10 minutes', false), 'failed, retry in 10 minutes');
SELECT is(taskq._callbacks_next_due(), (SELECT next_attempt_at FROM taskq.callbacks WHERE job_id = :'a'),
          'due at its next attempt');
SELECT ok(taskq._callbacks_next_due() BETWEEN now() + interval '9 minutes' AND now() + interval '11 minutes',
          'ten minutes from now');
SELECT is_empty($$SELECT * FROM taskq._callbacks_claim('d1', 10, '30 seconds')$$, 'not claimable before then');

-- an earlier one wins; delivered and dead ones never count
SELECT taskq.enqueue('cbq', '{}', callback_url => 'http://127.0.0.1/b') AS b \gset
SELECT lives_ok($$SELECT taskq.cancel('$$ || :'b' || $$')$$, 'cancel b');
SELECT ok(taskq._callbacks_next_due() <= now(), 'the new one is due now');
SELECT is((SELECT url FROM taskq._callbacks_claim('d2', 10, '30 seconds')), 'http://127.0.0.1/b', 'only the due one is claimed');
SELECT ok(taskq._callback_delivered((SELECT id FROM taskq.callbacks WHERE job_id = :'b'), 'd2', 204), 'b delivered');
UPDATE taskq.callbacks SET next_attempt_at = now() + interval '1 minute' WHERE job_id = :'a';
SELECT is(taskq._callbacks_next_due(), (SELECT next_attempt_at FROM taskq.callbacks WHERE job_id = :'a'),
          'delivered callbacks are ignored');
UPDATE taskq.callbacks SET state = 'dead' WHERE job_id = :'a';
SELECT is(taskq._callbacks_next_due(), NULL, 'dead callbacks are ignored');

-- the claim: oldest due first, at most max_rows, each with its own delivery id
DELETE FROM taskq.callbacks;
SELECT is((SELECT count(*)::int FROM (
  SELECT taskq.complete(id, 1) FROM (
    SELECT (taskq.start(taskq.enqueue('cbq', '{}', callback_url => 'http://127.0.0.1/n/' || i), 1, 'w')).id
    FROM generate_series(1, 5) i) s) t), 5, 'five jobs ended');
UPDATE taskq.callbacks SET next_attempt_at = now() - (substring(url FROM '[0-9]+$')::int * interval '1 second');
SELECT results_eq($$SELECT url FROM taskq._callbacks_claim('d3', 2, '1 minute') ORDER BY next_attempt_at$$,
                  $$VALUES ('http://127.0.0.1/n/5'), ('http://127.0.0.1/n/4')$$, 'oldest due first, max_rows of them');
SELECT is((SELECT count(DISTINCT delivery_id)::int FROM taskq.callbacks), 5, 'one delivery id per callback');
SELECT is((SELECT count(*)::int FROM taskq.callbacks WHERE leased_by = 'd3' AND attempts = 1
             AND lease_expires_at BETWEEN now() + interval '59 seconds' AND now() + interval '61 seconds'), 2,
          'leased for the given interval, attempt counted');
SELECT throws_ok($$SELECT taskq._callbacks_claim('w', 1, '0 seconds')$$, '22023', NULL, 'claim needs a positive lease');

-- the worker role may call what the dispatcher calls
DROP ROLE IF EXISTS tq_cb_runner;
CREATE ROLE tq_cb_runner IN ROLE taskq_worker;
SET ROLE tq_cb_runner;
SELECT lives_ok($$SELECT taskq._callbacks_next_due()$$, 'worker role reads the next due time');
SELECT is((SELECT count(*)::int FROM taskq._callbacks_claim('runner', 10, '1 minute')), 3, 'worker role claims');
SELECT throws_ok($$SELECT * FROM taskq.callbacks$$, '42501', NULL, 'but cannot read the table directly');
RESET ROLE;
DROP OWNED BY tq_cb_runner;
DROP ROLE tq_cb_runner;

SELECT * FROM finish();

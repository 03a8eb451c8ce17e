-- Maintenance (rescue_expired, purge_finished, _reconcile_lost) and the
-- callback bookkeeping the worker's dispatcher uses.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS taskq CASCADE;
CREATE EXTENSION taskq;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT no_plan();

SELECT lives_ok($$SELECT taskq.create_queue('m', max_attempts => 2, lease => '1 second', backoff_base => '0', backoff_max => '0', retention => '1 hour')$$, 'queue');

-- rescue_expired: an expired lease is a failed attempt
SELECT taskq.enqueue('m', '{}', callback_url => 'http://127.0.0.1/cb') AS r \gset
SELECT isnt_empty($$SELECT * FROM taskq.start('$$ || :'r' || $$', 1, 'crashed-worker')$$, 'start');
SELECT is(taskq.rescue_expired(), 0, 'nothing to rescue while the lease is live');
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :'r';
SELECT is(taskq.rescue_expired(), 1, 'one expired lease rescued');
SELECT results_eq($$SELECT status::text, attempts, last_error LIKE 'lease expired%' FROM taskq.jobs WHERE id = '$$ || :'r' || $$'$$,
                  $$VALUES ('pending', 1, true)$$, 'rescued job goes back to pending');
SELECT is((SELECT max(attempt) FROM taskq.outbox WHERE job_id = :'r'), 2, 'and is published again for attempt 2');
SELECT is(taskq.complete(:'r', 1), false, 'the lost worker''s late complete is stale');
SELECT isnt_empty($$SELECT * FROM taskq.start('$$ || :'r' || $$', 2, 'w2')$$, 'attempt 2 starts');
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :'r';
SELECT is(taskq.rescue_expired(), 1, 'second expiry rescued');
SELECT is(status, 'failed'::taskq.job_status, 'out of attempts: failed') FROM taskq.jobs WHERE id = :'r';
SELECT is((SELECT event FROM taskq.callbacks WHERE job_id = :'r'), 'job.failed', 'rescue writes the callback');

-- rescue of a cancel-requested job ends it cancelled
SELECT taskq.enqueue('m', '{}') AS c \gset
SELECT isnt_empty($$SELECT * FROM taskq.start('$$ || :'c' || $$', 1, 'w')$$, 'start');
SELECT lives_ok($$SELECT taskq.cancel('$$ || :'c' || $$')$$, 'cancel requested');
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :'c';
SELECT is(taskq.rescue_expired(), 1, 'rescued');
SELECT is(status, 'cancelled'::taskq.job_status, 'cancel-requested job ends cancelled') FROM taskq.jobs WHERE id = :'c';

-- purge_finished: only finished jobs older than the retention
UPDATE taskq.jobs SET finished_at = now() - interval '2 hours' WHERE id = :'r';
SELECT taskq.enqueue('m', '{}') AS keep \gset
SELECT is(taskq.purge_finished(), 1, 'one job past retention purged');
SELECT is((SELECT count(*)::int FROM taskq.jobs WHERE id = :'r'), 0, 'old finished job gone');
SELECT is((SELECT count(*)::int FROM taskq.jobs WHERE id IN (:'c', :'keep')), 2, 'recent and unfinished jobs kept');
SELECT is((SELECT count(*)::int FROM taskq.callbacks WHERE job_id = :'r'), 1, 'its undelivered callback is kept');

-- _reconcile_lost: republish pending jobs whose message was lost
SELECT taskq.enqueue('m', '{}') AS lost \gset
SELECT is(taskq._outbox_published(ARRAY(SELECT id FROM taskq.outbox WHERE job_id = :'lost')), ARRAY[:'lost'::uuid], 'published');
SELECT is(taskq._jobs_published(ARRAY[:'lost'::uuid]), 1, 'publish time recorded');
SELECT is(taskq._reconcile_lost('m', '10 minutes'), 0, 'recently published: not republished');
UPDATE taskq.jobs SET published_at = now() - interval '1 hour', run_at = now() - interval '1 hour', created_at = now() - interval '1 hour' WHERE id = :'lost';
SELECT ok(taskq._reconcile_lost('m', '10 minutes') >= 1, 'long-pending published job republished');
SELECT is((SELECT attempt FROM taskq.outbox WHERE job_id = :'lost'), 1, 'for the same attempt (start fences duplicates)');
SELECT is(taskq._reconcile_lost('m', '10 minutes'), 0, 'not twice while its outbox row is waiting');

-- callbacks: claim with a lease, delivered, failed with retry, dead
DELETE FROM taskq.callbacks;
SELECT taskq.enqueue('m', '{}', callback_url => 'http://127.0.0.1/cb') AS cb \gset
SELECT isnt_empty($$SELECT * FROM taskq.start('$$ || :'cb' || $$', 1, 'w')$$, 'start');
SELECT ok(taskq.complete(:'cb', 1, '{"r": 1}'), 'complete');
SELECT results_eq($$SELECT event, body->>'status', body->'result', (body->>'attempts')::int, state, attempts
                    FROM taskq._callbacks_claim('d1', 10, '30 seconds')$$,
                  $$VALUES ('job.completed', 'completed', '{"r": 1}'::jsonb, 1, 'pending', 1)$$, 'claim leases the callback');
SELECT is_empty($$SELECT * FROM taskq._callbacks_claim('d2', 10, '30 seconds')$$, 'a leased callback is not claimed twice');
SELECT is(taskq._callback_delivered((SELECT id FROM taskq.callbacks WHERE job_id = :'cb'), 'd2', 200), false,
          'another dispatcher cannot mark it');
SELECT is(taskq._callback_failed((SELECT id FROM taskq.callbacks WHERE job_id = :'cb'), 'd1', 503, 'busy', '0', false), true,
          'failed try recorded');
SELECT results_eq($$SELECT state, last_status, last_error, leased_by FROM taskq.callbacks WHERE job_id = '$$ || :'cb' || $$'$$,
                  $$VALUES ('pending', 503, 'busy', NULL::text)$$, 'due again, lease released');
SELECT is((SELECT attempts FROM taskq._callbacks_claim('d1', 10, '30 seconds')), 2, 'claimed again: attempt 2');
UPDATE taskq.callbacks SET lease_expires_at = now() - interval '1 second' WHERE job_id = :'cb';
SELECT results_eq($$SELECT delivery_id = (SELECT delivery_id FROM taskq.callbacks WHERE job_id = '$$ || :'cb' || $$'), attempts
                    FROM taskq._callbacks_claim('d3', 10, '30 seconds')$$,
                  $$VALUES (true, 3)$$, 'an expired lease is claimed by another dispatcher with the same delivery id');
SELECT is(taskq._callback_delivered((SELECT id FROM taskq.callbacks WHERE job_id = :'cb'), 'd3', 204), true, 'delivered');
SELECT is((SELECT state FROM taskq.callbacks WHERE job_id = :'cb'), 'delivered', 'state delivered');
SELECT is_empty($$SELECT * FROM taskq._callbacks_claim('d1', 10, '30 seconds')$$, 'delivered callbacks are not claimed');

SELECT taskq.enqueue('m', '{}', callback_url => 'http://127.0.0.1/dead') AS dead \gset
SELECT isnt_empty($$SELECT * FROM taskq.start('$$ || :'dead' || $$', 1, 'w')$$, 'start');
SELECT ok(taskq.complete(:'dead', 1), 'complete');
SELECT isnt_empty($$SELECT * FROM taskq._callbacks_claim('d1', 10, '30 seconds')$$, 'claimed');
SELECT ok(taskq._callback_failed((SELECT id FROM taskq.callbacks WHERE job_id = :'dead'), 'd1', 500, 'gave up', '0', true), 'give up');
SELECT is((SELECT state FROM taskq.callbacks WHERE job_id = :'dead'), 'dead', 'dead');
SELECT throws_ok($$SELECT taskq._callbacks_claim('', 10, '1 second')$$, '22023', NULL, 'claim needs a worker name');
SELECT throws_ok($$SELECT taskq._callbacks_claim('w', 0, '1 second')$$, '22023', NULL, 'claim needs max_rows >= 1');

SELECT * FROM finish();

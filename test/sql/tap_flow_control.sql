-- Flow control: the options and their checks, the gate before publishing
-- (claim + _flow_step), the limits at start (third-party starts, duplicate
-- deliveries), releases by the transactions that free a slot, priorities,
-- alter_queue and remove_queue_limit, the rate window, queue_stats.held and
-- the README examples. No publisher runs in this database: the tests call
-- the claim and the flow step themselves.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS taskq CASCADE;
CREATE EXTENSION taskq;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT no_plan();

-- Helpers: publish everything the claim returns (as if RabbitMQ confirmed
-- it) and say how many; run the flow step.
CREATE FUNCTION pg_temp.publish() RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  ids bigint[];
BEGIN
  ids := ARRAY(SELECT outbox_id FROM taskq._outbox_claim(1000));
  PERFORM taskq._outbox_published(ids);
  RETURN cardinality(ids);
END;
$$;
CREATE FUNCTION pg_temp.states(q text) RETURNS TABLE (concurrency_key text, status text, flow_state text, n bigint)
LANGUAGE sql AS $$
  SELECT j.concurrency_key, j.status::text, j.flow_state, count(*) FROM taskq.jobs j WHERE j.queue_name = q
  GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
$$;

-- ---------------------------------------------------------------------------
-- options and their checks
SELECT results_eq($$SELECT rate_limit, rate_period, concurrency_limit FROM taskq.create_queue('plain')$$,
                  $$VALUES (NULL::int, interval '1 second', NULL::int)$$, 'no limits by default');
SELECT results_eq($$SELECT rate_limit, rate_period, concurrency_limit
                    FROM taskq.create_queue('lim', rate_limit => 10, rate_period => '1 minute', concurrency_limit => 3)$$,
                  $$VALUES (10, interval '1 minute', 3)$$, 'create_queue with limits');
SELECT results_eq($$SELECT side FROM taskq.rate_windows WHERE queue_name = 'lim' ORDER BY side$$,
                  $$VALUES ('publish'), ('start')$$, 'a rate-limited queue gets its window rows');
SELECT throws_ok($$SELECT taskq.create_queue('bad', rate_limit => 0)$$, '22023', NULL, 'rate_limit 0');
SELECT throws_ok($$SELECT taskq.create_queue('bad', rate_limit => -1)$$, '22023', NULL, 'negative rate_limit');
SELECT throws_ok($$SELECT taskq.create_queue('bad', rate_limit => 1000001)$$, '22023', NULL, 'absurd rate_limit');
SELECT throws_ok($$SELECT taskq.create_queue('bad', rate_limit => 5, rate_period => '0')$$, '22023', NULL, 'rate_period 0');
SELECT throws_ok($$SELECT taskq.create_queue('bad', rate_limit => 5, rate_period => '-1 second')$$, '22023', NULL,
                 'negative rate_period');
SELECT throws_ok($$SELECT taskq.create_queue('bad', rate_period => '2 days')$$, '22023', NULL, 'rate_period over a day');
SELECT throws_ok($$SELECT taskq.create_queue('bad', rate_period => '1 mon')$$, '22023', NULL, 'rate_period of a month');
SELECT throws_ok($$SELECT taskq.create_queue('bad', rate_period => NULL)$$, '22004', NULL, 'rate_period NULL');
SELECT throws_ok($$SELECT taskq.create_queue('bad', concurrency_limit => 0)$$, '22023', NULL, 'concurrency_limit 0');
SELECT throws_ok($$SELECT taskq.create_queue('bad', concurrency_limit => -3)$$, '22023', NULL, 'negative concurrency_limit');
SELECT throws_ok($$SELECT taskq.create_queue('bad', concurrency_limit => 2147483647)$$, '22023', NULL,
                 'absurd concurrency_limit');
SELECT is((SELECT count(*) FROM taskq.queues WHERE queue_name = 'bad'), 0::bigint, 'no queue made by bad options');
SELECT throws_ok($$SELECT taskq.alter_queue('lim', rate_limit => 0)$$, '22023', NULL, 'alter: rate_limit 0');
SELECT throws_ok($$SELECT taskq.alter_queue('lim', concurrency_limit => -1)$$, '22023', NULL, 'alter: negative limit');
SELECT throws_ok($$SELECT taskq.alter_queue('lim', rate_period => '0 seconds')$$, '22023', NULL, 'alter: rate_period 0');
SELECT throws_ok($$SELECT taskq.alter_queue('lim', concurrency_limit => 4, rate_limit => 2000000)$$, '22023', NULL,
                 'alter: one bad value refuses the call');
SELECT results_eq($$SELECT rate_limit, rate_period, concurrency_limit FROM taskq.queues WHERE queue_name = 'lim'$$,
                  $$VALUES (10, interval '1 minute', 3)$$, 'nothing changed by refused alters');
SELECT results_eq($$SELECT rate_limit, rate_period, concurrency_limit FROM taskq.alter_queue('lim', max_attempts => 2)$$,
                  $$VALUES (10, interval '1 minute', 3)$$, 'alter_queue: NULL leaves the limits as they are');
SELECT results_eq($$SELECT rate_limit, rate_period, concurrency_limit FROM taskq.alter_queue('lim', rate_period => '1 second')$$,
                  $$VALUES (10, interval '1 second', 3)$$, 'alter_queue changes what is given');
SELECT results_eq($$SELECT rate_limit, concurrency_limit FROM taskq.remove_queue_limit('lim', 'rate_limit')$$,
                  $$VALUES (NULL::int, 3)$$, 'remove_queue_limit removes one limit');
SELECT is((SELECT count(*) FROM taskq.rate_windows WHERE queue_name = 'lim'), 0::bigint, 'and its window rows');
SELECT results_eq($$SELECT rate_limit, concurrency_limit FROM taskq.remove_queue_limit('lim', 'concurrency_limit')$$,
                  $$VALUES (NULL::int, NULL::int)$$, 'and the other');
SELECT throws_ok($$SELECT taskq.remove_queue_limit('lim', 'speed')$$, '22023', NULL, 'an unknown limit name');
SELECT throws_ok($$SELECT taskq.remove_queue_limit('lim', NULL)$$, '22004', NULL, 'a NULL limit name');
SELECT throws_ok($$SELECT taskq.remove_queue_limit('nope', 'rate_limit')$$, '42704', NULL, 'an unknown queue');
SELECT throws_ok($$SELECT taskq.remove_queue_limit('x''; DROP TABLE taskq.jobs; --', 'rate_limit')$$, '22023', NULL,
                 'an injected queue name');
SELECT throws_ok($$SELECT taskq.enqueue('plain', '{}', concurrency_key => '')$$, '22023', NULL, 'an empty key');
SELECT throws_ok($$SELECT taskq.enqueue('plain', '{}', concurrency_key => repeat('k', 256))$$, '22023', NULL,
                 'a key over 255 bytes');
SELECT throws_ok($$SELECT taskq.enqueue('plain', '{}', concurrency_key => repeat('é', 128))$$, '22023', NULL,
                 'the length is counted in bytes');
SELECT throws_ok($$SELECT taskq.enqueue_many('plain', '[{}, {}]', concurrency_key => repeat('k', 300))$$, '22023', NULL,
                 'enqueue_many: a key over 255 bytes');
SELECT is((SELECT count(*) FROM taskq.jobs), 0::bigint, 'no job made by refused enqueues');
SELECT throws_ok($$SELECT taskq.enqueue('plain', '{}', concurrency_key => 'k', depends_on => ARRAY[taskq._uuid_v7()])$$,
                 '42704', NULL, 'with a key too, an unknown dependency is refused');
SELECT isnt(taskq.enqueue('plain', '{}', concurrency_key => repeat('k', 255)), NULL, 'a key of 255 bytes');

-- A queue without limits ignores keys: published, started, completed as ever.
SELECT taskq.enqueue('plain', '{}', concurrency_key => 'a') AS p1 \gset
SELECT is(pg_temp.publish(), 2, 'a keyed job of a queue without limits is published at once');
SELECT is((SELECT count(*) FROM taskq.start(:'p1', 1, 'w')), 1::bigint, 'and starts');
SELECT ok(taskq.complete(:'p1', 1), 'and completes');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'p1'), NULL, 'with no flow state');

-- ---------------------------------------------------------------------------
-- concurrency_limit: gate, start, release
SELECT lives_ok($$SELECT taskq.create_queue('c', concurrency_limit => 2, lease => '1 minute',
                                           backoff_base => '0', backoff_max => '0')$$, 'queue c (retries at once)');
-- key a: five jobs, priorities 0, 5, 0, 5, 9 (in enqueue order); key b: one; one job without a key.
SELECT taskq.enqueue('c', '{"n": 1}', concurrency_key => 'a') AS a1 \gset
SELECT taskq.enqueue('c', '{"n": 2}', concurrency_key => 'a', priority => 5) AS a2 \gset
SELECT taskq.enqueue('c', '{"n": 3}', concurrency_key => 'a') AS a3 \gset
SELECT taskq.enqueue('c', '{"n": 4}', concurrency_key => 'a', priority => 5) AS a4 \gset
SELECT taskq.enqueue('c', '{"n": 5}', concurrency_key => 'a', priority => 9) AS a5 \gset
SELECT taskq.enqueue('c', '{"n": 6}', concurrency_key => 'b') AS b1 \gset
SELECT taskq.enqueue('c', '{"n": 7}') AS u1 \gset
SELECT results_eq($$SELECT job_id FROM taskq._outbox_claim(100)$$, ARRAY[:'u1'::uuid],
                  'the claim publishes only the job without a key');
SELECT is((SELECT count(*) FROM taskq.outbox WHERE held), 6::bigint, 'and sets the keyed ones aside');
SELECT is((taskq._flow_step()).next_at, now(), 'the flow step wants to run again at once after locking keys');
SELECT results_eq($$SELECT id FROM taskq.jobs WHERE queue_name = 'c' AND flow_state = 'admitted' ORDER BY id$$,
                  ARRAY[:'a2'::uuid, :'a5'::uuid, :'b1'::uuid], 'admitted: the highest priorities of each key');
SELECT results_eq($$SELECT id FROM taskq.jobs WHERE queue_name = 'c' AND flow_state = 'key_held' ORDER BY id$$,
                  ARRAY[:'a1'::uuid, :'a3'::uuid, :'a4'::uuid], 'held: the rest');
SELECT is((SELECT held FROM taskq.queue_stats WHERE queue_name = 'c'), 3::bigint, 'queue_stats.held');
SELECT is((SELECT count(*) FROM taskq.outbox o JOIN taskq.jobs j ON j.id = o.job_id WHERE j.flow_state = 'key_held'),
          0::bigint, 'held jobs have no outbox row');
SELECT is(pg_temp.publish(), 4, 'the claim publishes the admitted jobs (and the unkeyed one)');
SELECT is((taskq._flow_step()).next_at, NULL, 'nothing timed while no slot is running');

-- A third-party consumer starting a held job while the slots are taken by
-- admitted jobs: it may (the limit counts running jobs), and the limit holds.
SELECT is((SELECT count(*) FROM taskq.start(:'a1', 1, 'third-party')), 1::bigint, 'a held job may start while a slot is free');
SELECT is((SELECT count(*) FROM taskq.start(:'a5', 1, 'w1')), 1::bigint, 'an admitted job starts');
SELECT is((SELECT count(*) FROM taskq.start(:'a2', 1, 'w2')), 0::bigint, 'a third start of key a is refused');
SELECT results_eq($$SELECT status::text, attempts, flow_state, worker FROM taskq.jobs WHERE id = '$$ || :'a2' || $$'$$,
                  $$VALUES ('pending', 0, 'key_held', NULL::text)$$, 'refused: pending, no attempt spent, held');
SELECT is((SELECT count(*) FROM taskq.start(:'a2', 1, 'w2')), 0::bigint, 'a duplicate delivery is refused too');
SELECT is((SELECT count(*) FROM taskq.start(:'a3', 1, 'w3')), 0::bigint, 'a third-party start of another held job too');
SELECT is((SELECT count(*) FROM taskq.jobs WHERE concurrency_key = 'a' AND status = 'running'), 2::bigint,
          'two of key a run');
SELECT results_eq($$SELECT count(*)::int FROM taskq._start_batch(
                      jsonb_build_array(jsonb_build_object('id', '$$ || :'a4' || $$', 'attempt', 1)), 'w4')$$,
                  ARRAY[0], '_start_batch: held back, not reported by default');
SELECT results_eq($$SELECT job_id, held, lease_ms FROM taskq._start_batch(
                      jsonb_build_array(jsonb_build_object('id', '$$ || :'a4' || $$', 'attempt', 1),
                                        jsonb_build_object('id', '$$ || :'b1' || $$', 'attempt', 1)), 'w4', NULL, true)
                    ORDER BY held$$,
                  $$VALUES ('$$ || :'b1' || $$'::uuid, false, 60000::bigint), ('$$ || :'a4' || $$'::uuid, true, NULL)$$,
                  '_start_batch: started and held items, with report_held');
SELECT is((SELECT count(*) FROM taskq.start(:'a1', 2, 'w')), 0::bigint, 'a stale attempt stays stale');
SELECT results_eq($$SELECT * FROM pg_temp.states('c')$$,
                  $$VALUES ('a', 'pending', 'key_held', 3::bigint), ('a', 'running', NULL, 2), ('b', 'running', NULL, 1),
                           (NULL, 'pending', NULL, 1)$$, 'states');

-- Releases: complete frees a slot for the highest priority held job, in
-- the same transaction.
SELECT ok(taskq.complete(:'a1', 1), 'complete a1');
SELECT results_eq($$SELECT id FROM taskq.jobs WHERE flow_state = 'admitted'$$, ARRAY[:'a2'::uuid],
                  'its slot went to a2 (priority 5 before 0, older before newer)');
SELECT is((SELECT attempt FROM taskq.outbox WHERE job_id = :'a2'), 1, 'with an outbox row for its attempt 1');
SELECT is(pg_temp.publish(), 1, 'published');
SELECT is((SELECT count(*) FROM taskq.start(:'a2', 1, 'w')), 1::bigint, 'and started');
-- fail (retry later) frees the slot; the failed job queues up again.
SELECT is(taskq.fail(:'a5', 1, 'boom', retry_in => '0'), 'pending'::taskq.job_status, 'fail a5 (retry at once)');
SELECT results_eq($$SELECT id FROM taskq.jobs WHERE flow_state = 'admitted'$$, ARRAY[:'a4'::uuid],
                  'its slot went to a4');
SELECT results_eq($$SELECT job_id FROM taskq._outbox_claim(100) ORDER BY job_id$$, ARRAY[:'a4'::uuid],
                  'the retry of a5 is set aside by the claim');
SELECT is((taskq._flow_step()).next_at, now(), 'flow step');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'a5'), 'key_held', 'the retry of a5 waits for a slot');
SELECT is((SELECT count(*) FROM taskq.start(:'a4', 1, 'w')), 1::bigint, 'a4 starts');
-- cancel of an admitted job frees its slot; cancel of a running one does not (yet).
SELECT ok(taskq.complete(:'a2', 1), 'complete a2');
SELECT results_eq($$SELECT id FROM taskq.jobs WHERE flow_state = 'admitted'$$, ARRAY[:'a5'::uuid],
                  'a5 (priority 9) is next');
SELECT is((SELECT status::text FROM taskq.cancel(:'a5')), 'cancelled', 'cancel the admitted a5');
SELECT results_eq($$SELECT id FROM taskq.jobs WHERE flow_state = 'admitted'$$, ARRAY[:'a3'::uuid],
                  'its slot went to a3');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'a5'), NULL, 'a cancelled job has no flow state');
-- a lease that runs out frees the slot through rescue_expired.
SELECT is((SELECT count(*) FROM taskq.start(:'a3', 1, 'w')), 1::bigint, 'a3 starts');
SELECT taskq.enqueue('c', '{"n": 8}', concurrency_key => 'a') AS a6 \gset
SELECT is(pg_temp.publish(), 0, 'a6 set aside');
SELECT is((taskq._flow_step()).next_at, now(), 'flow step');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'a6'), 'key_held', 'a6 waits');
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :'a3';
SELECT is((taskq._flow_step()).next_at, now(), 'the flow step rescues an expired lease holding a slot that a held job waits for');
SELECT is((SELECT status::text FROM taskq.jobs WHERE id = :'a3'), 'pending', 'a3 was rescued');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'a6'), 'admitted', 'and its slot went to a6');
SELECT is((taskq._flow_step()).next_at, NULL, 'nothing timed once no job waits');
-- _complete_batch and _give_back free slots too.
SELECT is((SELECT count(*) FROM taskq.start(:'a6', 1, 'w')), 1::bigint, 'a6 starts');
SELECT taskq.enqueue('c', '{"n": 9}', concurrency_key => 'a') AS a7 \gset
SELECT taskq.enqueue('c', '{"n": 10}', concurrency_key => 'a') AS a8 \gset
SELECT is(pg_temp.publish(), 0, 'the retry of a3, a7 and a8 are set aside');
SELECT is((taskq._flow_step()).next_at, now(), 'flow step');
SELECT results_eq($$SELECT flow_state, count(*) FROM taskq.jobs WHERE id IN ('$$ || :'a3' || $$', '$$ || :'a7' || $$', '$$
                    || :'a8' || $$') GROUP BY 1$$, $$VALUES ('key_held', 3::bigint)$$, 'a3, a7 and a8 wait');
SELECT is((SELECT count(*) FROM taskq._complete_batch(jsonb_build_array(jsonb_build_object('id', :'a4', 'attempt', 1)))),
          1::bigint, '_complete_batch a4');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'a3'), 'admitted', 'a3 (the oldest) got its slot');
SELECT is(taskq._give_back(:'a6', 1, 'shutdown'), 'pending'::taskq.job_status, '_give_back a6');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'a7'), 'admitted', 'a7 got its slot');
SELECT is(taskq._key_slots_taken('c', 'a'), 2, 'two slots of key a are taken');

-- The reconciler leaves held jobs alone (they have no message on purpose).
SELECT is(pg_temp.publish(), 2, 'a3, a7 published; the given back a6 set aside');
SELECT is((taskq._flow_step()).next_at, now(), 'flow step');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'a6'), 'key_held', 'a6 waits behind a8');
UPDATE taskq.jobs SET created_at = created_at - interval '1 hour', published_at = published_at - interval '1 hour',
                      run_at = run_at - interval '1 hour' WHERE queue_name = 'c';
SELECT results_eq($$SELECT taskq._reconcile_lost('c', '1 minute')$$, ARRAY[3],
                  'the reconciler republishes the admitted and plain pending jobs only');
SELECT is((SELECT count(*) FROM taskq.outbox o JOIN taskq.jobs j ON j.id = o.job_id
           WHERE j.flow_state IN ('key_held', 'rate_held')), 0::bigint, 'not the held ones');

-- alter_queue: a higher limit releases held jobs at once; remove_queue_limit all of them.
SELECT is(pg_temp.publish(), 3, 'republished');
SELECT ok((taskq._flow_step()).next_at > now() + interval '50 seconds',
          'timed: when the lease of a running job of the queue (b1) runs out');
SELECT is((SELECT count(*) FROM taskq.jobs WHERE queue_name = 'c' AND flow_state = 'key_held'), 2::bigint,
          'two held (a6, a8)');
SELECT lives_ok($$SELECT taskq.alter_queue('c', concurrency_limit => 3)$$, 'raise the limit to 3');
SELECT is((SELECT count(*) FROM taskq.jobs WHERE queue_name = 'c' AND flow_state = 'key_held'), 1::bigint,
          'one held job went out with the new slot');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'a6'), 'admitted', 'a6 (older than a8)');
SELECT lives_ok($$SELECT taskq.alter_queue('c', concurrency_limit => 1)$$, 'lower it to 1');
SELECT is((SELECT count(*) FROM taskq.start(:'a3', 2, 'w')), 1::bigint, 'one admitted job starts (key a)');
SELECT is((SELECT count(*) FROM taskq.start(:'a6', 2, 'w')), 0::bigint, 'another admitted job is over the new limit');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'a6'), 'key_held', 'and waits again');
SELECT lives_ok($$SELECT taskq.remove_queue_limit('c', 'concurrency_limit')$$, 'remove the limit');
SELECT is((SELECT count(*) FROM taskq.jobs WHERE queue_name = 'c' AND flow_state IS NOT NULL AND status = 'pending'),
          0::bigint, 'no pending job has a flow state any more');
SELECT is((SELECT count(DISTINCT job_id) FROM taskq.outbox WHERE job_id IN (:'a6', :'a8')), 2::bigint,
          'the jobs that were held have outbox rows');
SELECT is((SELECT held FROM taskq.queue_stats WHERE queue_name = 'c'), 0::bigint, 'held 0');

-- Repeatable read cannot see the running jobs a start must count.
SELECT pg_temp.publish() IS NOT NULL AS drained \gset
SELECT lives_ok($$SELECT taskq.create_queue('rr', concurrency_limit => 1)$$, 'queue rr');
SELECT taskq.enqueue('rr', '{}', concurrency_key => 'k') AS rr1 \gset
SELECT is(pg_temp.publish(), 0, 'set aside');
SELECT is((taskq._flow_step()).next_at, now(), 'admitted');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT throws_ok($$SELECT taskq.start('$$ || :'rr1' || $$', 1, 'w')$$, '0A000', NULL,
                 'a limited start in REPEATABLE READ is refused');
ROLLBACK;
SELECT is((SELECT count(*) FROM taskq.start(:'rr1', 1, 'w')), 1::bigint, 'in READ COMMITTED it starts');

-- ---------------------------------------------------------------------------
-- rate_limit: the window and the pacing
SELECT lives_ok($$SELECT taskq.create_queue('r', rate_limit => 3, rate_period => '2 seconds')$$, 'queue r');
SELECT results_eq($$SELECT granted FROM taskq._rate_take('rt', 3, '10 seconds', 5)$$, ARRAY[3],
                  'the window grants up to the limit');
SELECT results_eq($$SELECT granted FROM taskq._rate_take('rt', 3, '10 seconds', 1)$$, ARRAY[0],
                  'then nothing');
SELECT is((SELECT next_at FROM taskq._rate_take('rt', 3, '10 seconds', 1, dry_run => true)),
          (SELECT times[1] + interval '10.000001 seconds' FROM taskq.rate_windows WHERE queue_name = 'rt' AND side = 'start'),
          'until the first grant leaves the window');
SELECT results_eq($$SELECT granted FROM taskq._rate_take('rs', 3, '300 milliseconds', 5)$$, ARRAY[3],
                  'a short window');
SELECT pg_sleep(0.35);
SELECT results_eq($$SELECT granted FROM taskq._rate_take('rs', 3, '300 milliseconds', 5)$$, ARRAY[3],
                  'a period later, the limit again');
SELECT results_eq($$SELECT cardinality(times), counts FROM taskq.rate_windows WHERE queue_name = 'rs' AND side = 'start'$$,
                  $$VALUES (1, ARRAY[3])$$, 'old entries leave the window');
-- The pacing: one per period / limit (a burst of 1 here), and never more
-- than the start window has room for once the jobs in flight have started.
SELECT clock_timestamp() AS before_grant \gset
SELECT results_eq($$SELECT granted FROM taskq._rate_pace('rp', 3, '10 seconds', 0, 5)$$, ARRAY[1],
                  'pacing: one at a time');
SELECT clock_timestamp() AS after_grant \gset
SELECT results_eq($$SELECT granted FROM taskq._rate_pace('rp', 3, '10 seconds', 0, 5)$$, ARRAY[0],
                  'pacing: the next one later');
SELECT ok((SELECT next_at BETWEEN :'before_grant'::timestamptz + interval '10 seconds' / 3
                          AND :'after_grant'::timestamptz + interval '10 seconds' / 3
           FROM taskq.rate_windows WHERE queue_name = 'rp' AND side = 'publish'),
          'pacing: the next slot is a period / limit after the grant');
SELECT results_eq($$SELECT granted FROM taskq._rate_pace('rc', 100, '10 seconds', 0, 50)$$, ARRAY[1],
                  'pacing: after a pause, one at once');
SELECT results_eq($$SELECT granted FROM taskq._rate_pace('rb', 100, '100 seconds', 0, 50)$$, ARRAY[1], 'pacing: one');
UPDATE taskq.rate_windows SET next_at = clock_timestamp() - interval '2.5 seconds' WHERE queue_name = 'rb' AND side = 'publish';
SELECT results_eq($$SELECT granted FROM taskq._rate_pace('rb', 100, '100 seconds', 0, 50)$$, ARRAY[3],
                  'pacing: the slots missed while late by less than the burst go at once');
SELECT results_eq($$SELECT granted FROM taskq._rate_pace('rt', 3, '10 seconds', 0, 5)$$, ARRAY[0],
                  'pacing: nothing while the start window is full');
SELECT ok((SELECT next_at = (SELECT times[1] + interval '10.000001 seconds' FROM taskq.rate_windows
                             WHERE queue_name = 'rt' AND side = 'start')
           FROM taskq._rate_pace('rt', 3, '10 seconds', 0, 5, dry_run => true)),
          'pacing: until the window has room');
SELECT results_eq($$SELECT granted FROM taskq._rate_pace('rq', 1000, '10 seconds', 1000, 5)$$, ARRAY[0],
                  'pacing: nothing while the jobs in flight would fill the window');
SELECT results_eq($$SELECT granted FROM taskq._rate_pace('rq', 100, '1 second', 50, 5)$$, ARRAY[0],
                  'pacing: nothing while 500 ms worth of jobs are in flight');
DELETE FROM taskq.rate_windows WHERE queue_name IN ('rt', 'rs', 'rb', 'rc', 'rp', 'rq');
-- Jobs of a rate-limited queue: the claim sets them aside; the flow step
-- parks them and paces them out; a start over the limit holds the job back.
SELECT pg_temp.publish() IS NOT NULL AS drained \gset
SELECT taskq.enqueue('r', jsonb_build_object('n', g), priority => CASE WHEN g = 6 THEN 9 ELSE 0 END) FROM generate_series(1, 6) g \gset
SELECT is(pg_temp.publish(), 0, 'all set aside');
SELECT ok((taskq._flow_step()).next_at > clock_timestamp(), 'the flow step wants to run when the next may go');
SELECT is((SELECT count(*) FROM taskq.jobs WHERE queue_name = 'r' AND flow_state = 'admitted'), 1::bigint,
          'one admitted');
SELECT is((SELECT (payload->>'n')::int FROM taskq.jobs WHERE queue_name = 'r' AND flow_state = 'admitted'), 6,
          'the one of priority 9');
SELECT is((SELECT held FROM taskq.queue_stats WHERE queue_name = 'r'), 5::bigint, 'five held');
SELECT is(pg_temp.publish(), 1, 'published');
SELECT ok((taskq._flow_step()).next_at > clock_timestamp(), 'flow step');
SELECT is((SELECT count(*) FROM taskq.jobs WHERE queue_name = 'r' AND flow_state = 'admitted'), 1::bigint,
          'no more in flight than the burst (one here) while the first has not started');
SELECT is((SELECT count(*) FROM taskq.start(id, 1, 'w')), 1::bigint, 'a start within the rate')
FROM taskq.jobs WHERE queue_name = 'r' AND flow_state = 'admitted';
SELECT pg_sleep(0.7);
SELECT ok((taskq._flow_step()).next_at > clock_timestamp(), 'flow step');
SELECT is((SELECT count(*) FROM taskq.jobs WHERE queue_name = 'r' AND flow_state = 'admitted'), 1::bigint,
          'a period / limit later, the next');
SELECT is(pg_temp.publish(), 1, 'published');
SELECT is((SELECT count(*) FROM taskq.start(id, 1, 'w')), 1::bigint, 'another')
FROM taskq.jobs WHERE queue_name = 'r' AND flow_state = 'admitted';
-- Third-party starts of held jobs: the third fits in the window, the fourth is held back.
SELECT is((SELECT count(*) FROM taskq.start(id, 1, 'w')), 1::bigint, 'a held job started by a third party, within the rate')
FROM taskq.jobs WHERE queue_name = 'r' AND flow_state = 'rate_held' ORDER BY id LIMIT 1;
SELECT is((SELECT count(*) FROM taskq.start(id, 1, 'w')), 0::bigint, 'one more in the same window is held back')
FROM taskq.jobs WHERE queue_name = 'r' AND flow_state = 'rate_held' ORDER BY id LIMIT 1;
SELECT is((SELECT count(*) FROM taskq.jobs WHERE queue_name = 'r' AND status = 'running'), 3::bigint, 'three started');
SELECT is((SELECT max(attempts) FROM taskq.jobs WHERE queue_name = 'r' AND status = 'pending'), 0, 'no attempt spent');
-- A rate limit removed: the held jobs go out at once.
SELECT lives_ok($$SELECT taskq.remove_queue_limit('r', 'rate_limit')$$, 'remove the rate limit');
SELECT is((SELECT count(*) FROM taskq.jobs WHERE queue_name = 'r' AND status = 'pending' AND flow_state IS NOT NULL),
          0::bigint, 'nothing held');
SELECT is(pg_temp.publish(), 3, 'the three left are published');

-- Both limits: a slot first, then the rate.
SELECT lives_ok($$SELECT taskq.create_queue('both', rate_limit => 1000, concurrency_limit => 1)$$, 'queue both');
SELECT taskq.enqueue('both', '{}', concurrency_key => 'k') AS bo1 \gset
SELECT taskq.enqueue('both', '{}', concurrency_key => 'k') AS bo2 \gset
SELECT is(pg_temp.publish(), 0, 'set aside');
SELECT is((taskq._flow_step()).next_at, now(), 'flow step: keys');
SELECT is((taskq._flow_step()).next_at, NULL, 'flow step: pacing');
SELECT results_eq($$SELECT flow_state FROM taskq.jobs WHERE queue_name = 'both' ORDER BY id$$,
                  $$VALUES ('admitted'), ('key_held')$$, 'one has the slot and was paced out, one waits');
SELECT is(pg_temp.publish(), 1, 'published');
SELECT is((SELECT count(*) FROM taskq.start(:'bo1', 1, 'w')), 1::bigint, 'starts');
SELECT ok(taskq.complete(:'bo1', 1), 'completes');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'bo2'), 'rate_held', 'the next takes the slot, waits for the rate');

-- Paused queues: nothing is paced out; resume asks for the flow step.
SELECT lives_ok($$SELECT taskq.pause_queue('both')$$, 'pause');
SELECT is((taskq._flow_step()).next_at, NULL, 'a paused queue is left alone');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'bo2'), 'rate_held', 'still held');
SELECT lives_ok($$SELECT taskq.resume_queue('both')$$, 'resume');
SELECT is((taskq._flow_step()).next_at, NULL, 'flow step');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'bo2'), 'admitted', 'paced out after the resume');

-- The sweep fills slots a release missed (here: taken away by hand).
SELECT lives_ok($$SELECT taskq.create_queue('sw', concurrency_limit => 1)$$, 'queue sw');
INSERT INTO taskq.jobs (id, queue_name, payload, max_attempts, attempt_budget, run_at, concurrency_key, flow_state)
VALUES (taskq._uuid_v7(), 'sw', '{}', 1, 1, now(), 'k', 'key_held');
SELECT is((taskq._flow_step()).next_at, NULL, 'without the sweep nothing happens');
SELECT is((taskq._flow_step(sweep => true)).next_at, now(), 'the sweep');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE queue_name = 'sw'), 'admitted', 'released the stranded job');
-- At most 500 keys per call: the lock table stays small; the sweep goes on.
INSERT INTO taskq.jobs (id, queue_name, payload, max_attempts, attempt_budget, run_at, concurrency_key, flow_state)
SELECT taskq._uuid_v7(), 'sw', '{}', 1, 1, now(), 'k' || g, 'key_held' FROM generate_series(1, 501) g;
SELECT results_eq($$SELECT sweep_again FROM taskq._flow_step(sweep => true)$$, ARRAY[true], 'a sweep of 501 keys: more to do');
SELECT is((SELECT count(*) FROM taskq.jobs WHERE queue_name = 'sw' AND flow_state = 'key_held'), 1::bigint,
          '500 keys released');
SELECT results_eq($$SELECT sweep_again FROM taskq._flow_step(sweep => true)$$, ARRAY[false], 'then the last one');
SELECT is((SELECT count(*) FROM taskq.jobs WHERE queue_name = 'sw' AND flow_state = 'key_held'), 0::bigint,
          'all released');

-- drop_queue takes the window rows with it.
SELECT lives_ok($$SELECT taskq.create_queue('gone', rate_limit => 5)$$, 'queue gone');
SELECT lives_ok($$SELECT taskq.drop_queue('gone')$$, 'dropped');
SELECT is((SELECT count(*) FROM taskq.rate_windows WHERE queue_name = 'gone'), 0::bigint, 'its window rows too');

-- ---------------------------------------------------------------------------
-- A dependent job of a limited queue: released by its dependency's
-- completion, it goes through the gate like any other job, and waits for a
-- slot of its key.
SELECT lives_ok($$SELECT taskq.create_queue('dk', concurrency_limit => 1)$$, 'queue dk');
SELECT lives_ok($$SELECT pg_temp.publish()$$, 'dk: publish what the sections above left');
SELECT taskq.enqueue('plain', '{}') AS dk_dep \gset
SELECT taskq.enqueue('dk', '{}', concurrency_key => 'x') AS dk_first \gset
SELECT taskq.enqueue('dk', '{}', concurrency_key => 'x', depends_on => ARRAY[:'dk_dep'::uuid]) AS dk_second \gset
SELECT is((SELECT status::text FROM taskq.jobs WHERE id = :'dk_second'), 'waiting', 'dk: the dependent waits');
SELECT is(pg_temp.publish(), 1, 'dk: the dependency is published, the keyed job set aside');
SELECT lives_ok($$SELECT taskq._flow_step()$$, 'dk: flow step');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'dk_first'), 'admitted', 'dk: the first keyed job admitted');
SELECT is(pg_temp.publish(), 1, 'dk: and published');
SELECT is((SELECT count(*) FROM taskq.start(:'dk_first', 1, 'w')), 1::bigint, 'dk: the first keyed job runs');
SELECT is((SELECT count(*) FROM taskq.start(:'dk_dep', 1, 'w')), 1::bigint, 'dk: the dependency runs');
SELECT ok(taskq.complete(:'dk_dep', 1), 'dk: the dependency completes');
SELECT is((SELECT status::text FROM taskq.jobs WHERE id = :'dk_second'), 'pending', 'dk: which releases the dependent');
SELECT is(pg_temp.publish(), 0, 'dk: the released job is set aside by the claim');
SELECT lives_ok($$SELECT taskq._flow_step()$$, 'dk: flow step');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'dk_second'), 'key_held', 'dk: it waits for the slot of x');
SELECT ok(taskq.complete(:'dk_first', 1), 'dk: the slot frees');
SELECT is((SELECT flow_state FROM taskq.jobs WHERE id = :'dk_second'), 'admitted', 'dk: the dependent gets it');
SELECT is(pg_temp.publish(), 1, 'dk: and is published');
SELECT is((SELECT count(*) FROM taskq.start(:'dk_second', 1, 'w')), 1::bigint, 'dk: and runs');

-- ---------------------------------------------------------------------------
-- README "Flow control"
SELECT lives_ok($$SELECT taskq.create_queue('partner-api', rate_limit => 50, rate_period => '1 second')$$,
                'README: a rate limit');
SELECT lives_ok($$SELECT taskq.create_queue('exports', concurrency_limit => 2)$$, 'README: a concurrency limit');
SELECT lives_ok($$SELECT taskq.enqueue('exports', '{"report": "q3"}', concurrency_key => 'tenant-42')$$,
                'README: a job with a key');
SELECT lives_ok($$SELECT taskq.alter_queue('exports', concurrency_limit => 4)$$, 'README: raise');
SELECT lives_ok($$SELECT taskq.remove_queue_limit('partner-api', 'rate_limit')$$, 'README: remove');
SELECT results_eq($$SELECT queue_name, pending, running, held FROM taskq.queue_stats
                    WHERE queue_name IN ('exports', 'partner-api') ORDER BY queue_name$$,
                  $$VALUES ('exports', 1::bigint, 0::bigint, 0::bigint), ('partner-api', 0, 0, 0)$$, 'README: stats');

SELECT * FROM finish();

-- Periodic jobs: schedule() validation (every refusal with its SQLSTATE and
-- message, nothing written), replace semantics, unschedule, next_run_at in
-- UTC and in a zone with DST, and _fire_due_schedules() with next_run_at
-- moved into the past: one job per tick, headers, catch_up and its cap,
-- disabled schedules, paused queues, a broken schedule beside good ones.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS taskq CASCADE;
CREATE EXTENSION taskq;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT no_plan();

SELECT lives_ok($$SELECT taskq.create_queue('sq')$$, 'queue');

-- validation: nothing is written on any of these
SELECT throws_ok($$SELECT taskq.schedule('', '* * * * *', 'sq')$$, '22023', 'invalid schedule name ""', 'empty name');
SELECT throws_ok($$SELECT taskq.schedule(NULL, '* * * * *', 'sq')$$, '22004', 'schedule_name must not be null', 'NULL name');
SELECT throws_ok($$SELECT taskq.schedule(repeat('n', 101), '* * * * *', 'sq')$$, '22023', NULL, 'name too long');
SELECT lives_ok($$SELECT taskq.schedule(repeat('n', 100), '* * * * *', 'sq'); SELECT taskq.unschedule(repeat('n', 100))$$,
                'a name of 100 characters is fine');
SELECT throws_ok($$SELECT taskq.schedule('a b', '* * * * *', 'sq')$$, '22023', 'invalid schedule name "a b"', 'space in name');
SELECT throws_ok($$SELECT taskq.schedule('-x', '* * * * *', 'sq')$$, '22023', NULL, 'name must start with a letter or digit');
SELECT throws_ok($$SELECT taskq.schedule('s', NULL, 'sq')$$, '22004', 'cron must not be null', 'NULL cron');
SELECT throws_ok($$SELECT taskq.schedule('s', '61 * * * *', 'sq')$$, '22023',
                 'invalid cron expression "61 * * * *": minute field: 61 is out of range 0-59', 'minute out of range');
SELECT throws_ok($$SELECT taskq.schedule('s', '* * * *', 'sq')$$, '22023', NULL, 'four fields');
SELECT throws_ok($$SELECT taskq.schedule('s', '0 0 30 2 *', 'sq')$$, '22023', NULL, 'a day that never comes');
SELECT throws_ok($$SELECT taskq.schedule('s', '@every 0s', 'sq')$$, '22023', NULL, '@every needs at least a second');
SELECT throws_ok($$SELECT taskq.schedule('s', '* * * * *', 'sq', timezone => 'Mars/Olympus')$$, '22023',
                 'unknown time zone "Mars/Olympus"', 'unknown time zone');
SELECT throws_ok($$SELECT taskq.schedule('s', '* * * * *', 'sq', timezone => '../etc/passwd')$$, '22023',
                 'unknown time zone "../etc/passwd"', 'a path is no time zone');
SELECT throws_ok($$SELECT taskq.schedule('s', '* * * * *', 'sq', timezone => NULL)$$, '22004', 'timezone must not be null',
                 'NULL time zone');
SELECT throws_ok($$SELECT taskq.schedule('s', '* * * * *', 'nope')$$, '42704', 'queue "nope" does not exist', 'unknown queue');
SELECT throws_ok($$SELECT taskq.schedule('s', '* * * * *', 'bad queue')$$, '22023', 'invalid queue name "bad queue"',
                 'bad queue name');
SELECT throws_ok($$SELECT taskq.schedule('s', '* * * * *', 'sq', NULL)$$, '22004', 'payload must not be null', 'NULL payload');
SELECT throws_ok($$SELECT taskq.schedule('s', '* * * * *', 'sq', task => '')$$, '22023', 'invalid task name ""', 'empty task');
SELECT throws_ok($$SELECT taskq.schedule('s', '* * * * *', 'sq', priority => 10)$$, '22023',
                 'priority must be between 0 and 9, not 10', 'priority out of range');
SELECT throws_ok($$SELECT taskq.schedule('s', '* * * * *', 'sq', max_attempts => 0)$$, '22023',
                 'max_attempts must be between 1 and 1000, not 0', 'max_attempts out of range');
SELECT throws_ok($$SELECT taskq.schedule('s', '* * * * *', 'sq', headers => '["a"]')$$, '22023',
                 'headers must be a JSON object, not array', 'headers not an object');
SELECT throws_ok($$SELECT taskq.schedule('s', '* * * * *', 'sq', headers => '{"x-taskq-schedule": "s"}')$$, '22023',
                 'headers must map names to strings', 'x-taskq- headers are taskq''s own');
SELECT throws_ok($$SELECT taskq.schedule('s', '* * * * *', 'sq', callback_url => 'ftp://example.com/')$$, '22023',
                 'invalid callback_url "ftp://example.com/"', 'bad callback_url');
SELECT throws_ok($$SELECT taskq.schedule('s', '* * * * *', 'sq', catch_up => NULL)$$, '22004', 'catch_up must not be null',
                 'NULL catch_up');
SELECT throws_ok($$SELECT taskq.schedule('s', '* * * * *', 'sq', enabled => NULL)$$, '22004', 'enabled must not be null',
                 'NULL enabled');
SELECT is((SELECT count(*)::int FROM taskq.schedules), 0, 'no refused schedule was written');
SELECT throws_ok($$SELECT taskq.unschedule('a b')$$, '22023', 'invalid schedule name "a b"', 'unschedule checks the name');

-- next runs: the core's rules, through taskq._cron_next
SELECT is(taskq._cron_next('*/15 * * * *', 'UTC', '2025-01-01 10:07:30+00', '2025-01-01 00:00+00'),
          '2025-01-01 10:15:00+00'::timestamptz, 'every 15 minutes');
SELECT is(taskq._cron_next('0 9 * * mon', 'America/New_York', '2025-01-01 00:00+00', '2025-01-01 00:00+00'),
          '2025-01-06 14:00:00+00'::timestamptz, '9:00 on Mondays in New York is 14:00 UTC in winter');
SELECT is(taskq._cron_next('30 2 * * *', 'Europe/Berlin', '2025-03-29 12:00+00', '2025-01-01 00:00+00'),
          '2025-03-30 01:00:00+00'::timestamptz, 'a skipped 02:30 (spring forward) runs at 03:00 CEST');
SELECT is(taskq._cron_next('30 2 * * *', 'Europe/Berlin', '2025-10-25 12:00+00', '2025-01-01 00:00+00'),
          '2025-10-26 00:30:00+00'::timestamptz, 'a repeated 02:30 (fall back) runs at the first one, CEST');
SELECT is(taskq._cron_next('30 2 * * *', 'Europe/Berlin', '2025-10-26 00:30+00', '2025-01-01 00:00+00'),
          '2025-10-27 01:30:00+00'::timestamptz, '... and not again at 02:30 CET');
SELECT is(taskq._cron_next('30 * * * *', 'Europe/Berlin', '2025-10-26 00:30+00', '2025-01-01 00:00+00'),
          '2025-10-26 01:30:00+00'::timestamptz, 'an hourly schedule runs in the repeated hour too');
SELECT is(taskq._cron_next('@every 90s', 'UTC', '2025-01-01 00:10:00+00', '2025-01-01 00:00:00+00'),
          '2025-01-01 00:10:30+00'::timestamptz, '@every counts from the anchor');
SELECT is(taskq._cron_ticks('0 * * * *', 'UTC', '2025-01-01 00:00+00', '2025-01-01 05:00+00', '2025-01-01 00:00+00', 3),
          '{"2025-01-01 03:00+00","2025-01-01 04:00+00","2025-01-01 05:00+00"}'::timestamptz[],
          '_cron_ticks: the latest ticks of a window, both ends included');
SELECT is(cardinality(taskq._cron_ticks('@every 1s', 'UTC', '2025-01-01 00:00+00', '2025-01-02 00:00+00',
                                         '2025-01-01 00:00+00', 1000)), 1000, '_cron_ticks caps at max_ticks');
SELECT throws_ok($$SELECT taskq._cron_next('* * * * *', 'UTC', 'infinity', now())$$, '22023', 'after must be a finite time',
                 '_cron_next refuses infinity');
SELECT is(taskq._cron_next(NULL, 'UTC', now(), now()), NULL, '_cron_next is strict');

-- the README example
SELECT lives_ok($$SELECT taskq.create_queue('reports')$$, 'README: queue');
SELECT lives_ok($$SELECT taskq.schedule('nightly-report', '30 2 * * *', 'reports', '{"kind": "daily"}',
                                       timezone => 'Europe/Berlin')$$, 'README: schedule');
SELECT ok((SELECT (next_run_at AT TIME ZONE 'Europe/Berlin')::time IN ('02:30', '03:00')
                  AND next_run_at > now() AND next_run_at <= now() + interval '1 day'
           FROM taskq.schedules WHERE schedule_name = 'nightly-report'),
          'README: next_run_at is the next 02:30 in Berlin (03:00 on the day the clock skips it)');
SELECT is((SELECT next_run_at FROM taskq.schedules WHERE schedule_name = 'nightly-report'),
          (SELECT taskq._cron_next(cron, timezone, created_at, anchor_at) FROM taskq.schedules
           WHERE schedule_name = 'nightly-report'), 'README: next_run_at is _cron_next from the creation');
SELECT lives_ok($$SELECT schedule_name, cron, timezone, next_run_at FROM taskq.schedules$$, 'README: list');
SELECT ok(taskq.unschedule('nightly-report'), 'README: unschedule');

-- a new schedule's row
SELECT results_eq($$SELECT schedule_name, cron, timezone, queue_name, task, payload, enabled, priority, max_attempts,
                           headers, callback_url, catch_up, last_run_at, last_job_id
                    FROM taskq.schedule('hourly', '0 * * * *', 'sq', '{"n": 1}', task => 't', priority => 3,
                                        max_attempts => 2, headers => '{"tenant": "acme"}',
                                        callback_url => 'http://example.com/cb')$$,
                  $$VALUES ('hourly', '0 * * * *', 'UTC', 'sq', 't', '{"n": 1}'::jsonb, true, 3, 2,
                            '{"tenant": "acme"}'::jsonb, 'http://example.com/cb', false, NULL::timestamptz, NULL::uuid)$$,
                  'schedule returns the new row');
SELECT is(next_run_at, date_trunc('hour', created_at) + interval '1 hour', 'next_run_at: the next full hour')
FROM taskq.schedules WHERE schedule_name = 'hourly';
SELECT taskq.schedule('every90', '@every 90 seconds', 'sq') IS NOT NULL AS ok \gset
SELECT ok(anchor_at = date_trunc('second', created_at) AND next_run_at = anchor_at + interval '90 seconds',
          '@every: the first tick one interval after creation, on a whole second')
FROM taskq.schedules WHERE schedule_name = 'every90';

-- replace: same name, one row; same cron keeps its ticks, a new cron gets new ones
UPDATE taskq.schedules SET next_run_at = now() - interval '1 minute', created_at = now() - interval '1 day',
                           updated_at = now() - interval '1 day'
WHERE schedule_name = 'hourly';
SELECT results_eq($$SELECT queue_name, payload, task, priority, headers, next_run_at < now(), created_at < now() - interval '23 hours',
                           updated_at = now()
                    FROM taskq.schedule('hourly', '0 * * * *', 'sq', '{"n": 2}')$$,
                  $$VALUES ('sq', '{"n": 2}'::jsonb, NULL::text, 0, NULL::jsonb, true, true, true)$$,
                  'replacing keeps the row''s creation and a due tick, takes the new options (defaults where not given)');
SELECT is((SELECT count(*)::int FROM taskq.schedules WHERE schedule_name = 'hourly'), 1, 'still one schedule of that name');
SELECT is((SELECT next_run_at FROM taskq.schedule('hourly', '0 0 * * *', 'sq')),
          (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC',
          'a new cron: next_run_at from now');
SELECT is((SELECT next_run_at FROM taskq.schedule('hourly', '0 0 * * *', 'sq', timezone => 'Asia/Tokyo')),
          (SELECT taskq._cron_next('0 0 * * *', 'Asia/Tokyo', now(), now())), 'a new time zone: next_run_at from now');
UPDATE taskq.schedules SET next_run_at = now() - interval '1 minute' WHERE schedule_name = 'hourly';
SELECT taskq.schedule('hourly', '0 0 * * *', 'sq', timezone => 'Asia/Tokyo', enabled => false) IS NOT NULL AS ok \gset
SELECT ok((SELECT next_run_at > now() FROM taskq.schedule('hourly', '0 0 * * *', 'sq', timezone => 'Asia/Tokyo')),
          'enabling again: next_run_at from now, ticks missed while disabled are not owed');

-- unschedule
SELECT ok(taskq.unschedule('hourly'), 'unschedule: true');
SELECT ok(NOT taskq.unschedule('hourly'), 'unschedule again: false');
SELECT ok(NOT taskq.unschedule('never-was'), 'unschedule an unknown name: false');
SELECT ok(taskq.unschedule('every90'), 'unschedule every90');

-- firing: one job for a due tick, headers, next_run_at advanced
SELECT taskq.schedule('yearly', '0 0 1 1 *', 'sq', '{"report": true}', task => 'year', priority => 2,
                      headers => '{"tenant": "acme"}') IS NOT NULL AS ok \gset
BEGIN;
-- A minute ago: no other tick of the expression lies between then and now
-- (unless this runs in the first minute of a year).
UPDATE taskq.schedules SET next_run_at = date_trunc('second', now()) - interval '1 minute' WHERE schedule_name = 'yearly';
SELECT ok(taskq._fire_due_schedules() > now(), '_fire_due_schedules returns the next tick');
SELECT results_eq($$SELECT queue_name, task, payload, priority, status::text, headers FROM taskq.jobs$$,
                  $$SELECT 'sq'::text, 'year'::text, '{"report": true}'::jsonb, 2::smallint, 'pending'::text,
                           jsonb_build_object('tenant', 'acme', 'x-taskq-schedule', 'yearly', 'x-taskq-scheduled-for',
                                              to_char((date_trunc('second', now()) - interval '1 minute') AT TIME ZONE 'UTC',
                                                      'YYYY-MM-DD"T"HH24:MI:SS"Z"'))$$,
                  'exactly one job, with the schedule''s options and headers (the tick in RFC 3339, UTC)');
SELECT is((SELECT count(*)::int FROM taskq.outbox o JOIN taskq.jobs j ON j.id = o.job_id), 1, 'its outbox row');
SELECT results_eq($$SELECT next_run_at, last_run_at, last_job_id FROM taskq.schedules WHERE schedule_name = 'yearly'$$,
                  $$SELECT (date_trunc('year', now() AT TIME ZONE 'UTC') + interval '1 year') AT TIME ZONE 'UTC',
                           date_trunc('second', now()) - interval '1 minute', (SELECT id FROM taskq.jobs)$$,
                  'next_run_at advanced past now; last_run_at is the tick, last_job_id its job');
COMMIT;
SELECT ok(taskq._fire_due_schedules() > now(), 'firing again');
SELECT is((SELECT count(*)::int FROM taskq.jobs), 1, '... makes no second job');
SELECT ok(taskq.unschedule('yearly'), 'the jobs of a schedule outlive it');
SELECT is((SELECT count(*)::int FROM taskq.jobs), 1, '... still there');
DELETE FROM taskq.outbox; DELETE FROM taskq.jobs;

-- missed ticks: five hourly ticks missed
SELECT taskq.schedule('latest', '@every 1 hour', 'sq', '{"w": "latest"}') IS NOT NULL AS ok \gset
SELECT taskq.schedule('all', '@every 1 hour', 'sq', '{"w": "all"}', catch_up => true) IS NOT NULL AS ok \gset
BEGIN;
UPDATE taskq.schedules SET anchor_at = date_trunc('second', now()) - interval '5 hours 30 minutes',
                           next_run_at = date_trunc('second', now()) - interval '4 hours 30 minutes';
SELECT ok(taskq._fire_due_schedules() > now(), 'fire after missed ticks');
SELECT results_eq($$SELECT headers->>'x-taskq-scheduled-for' FROM taskq.jobs WHERE payload->>'w' = 'latest'$$,
                  $$SELECT (to_json((date_trunc('second', now()) - interval '30 minutes') AT TIME ZONE 'UTC') #>> '{}') || 'Z'$$,
                  'catch_up = false: one job, for the latest missed tick');
SELECT results_eq($$SELECT headers->>'x-taskq-scheduled-for' FROM taskq.jobs WHERE payload->>'w' = 'all' ORDER BY id$$,
                  $$SELECT (to_json((date_trunc('second', now()) - interval '30 minutes' - k * interval '1 hour') AT TIME ZONE 'UTC') #>> '{}') || 'Z'
                    FROM generate_series(4, 0, -1) k$$,
                  'catch_up = true: one job per missed tick, oldest first');
SELECT is(next_run_at, date_trunc('second', now()) + interval '30 minutes', 'both continue with the next tick')
FROM taskq.schedules WHERE schedule_name IN ('latest', 'all');
COMMIT;
SELECT ok(taskq.unschedule('latest') AND taskq.unschedule('all'), 'unschedule both');
DELETE FROM taskq.outbox; DELETE FROM taskq.jobs;

-- catch_up is capped at the latest 1000 ticks
SELECT taskq.schedule('flood', '@every 1 second', 'sq', catch_up => true) IS NOT NULL AS ok \gset
BEGIN;
UPDATE taskq.schedules SET anchor_at = date_trunc('second', now()) - interval '2 hours',
                           next_run_at = date_trunc('second', now()) - interval '2 hours' + interval '1 second';
SELECT ok(taskq._fire_due_schedules() > now(), 'fire 7200 missed ticks');
SELECT results_eq($$SELECT count(*)::int, min(headers->>'x-taskq-scheduled-for'), max(headers->>'x-taskq-scheduled-for')
                    FROM taskq.jobs$$,
                  $$SELECT 1000, (to_json((date_trunc('second', now()) - interval '999 seconds') AT TIME ZONE 'UTC') #>> '{}') || 'Z',
                           (to_json(date_trunc('second', now()) AT TIME ZONE 'UTC') #>> '{}') || 'Z'$$,
                  '1000 jobs: the latest 1000 ticks');
SELECT is((SELECT count(*)::int FROM taskq.outbox), 1000, 'each with its outbox row');
COMMIT;
SELECT ok(taskq.unschedule('flood'), 'unschedule flood');
DELETE FROM taskq.outbox; DELETE FROM taskq.jobs;

-- a disabled schedule fires nothing; a paused queue gets its job held
SELECT taskq.schedule('off', '* * * * *', 'sq', enabled => false) IS NOT NULL AS ok \gset
SELECT taskq.create_queue('paused') IS NOT NULL AS ok \gset
SELECT taskq.pause_queue('paused') IS NOT NULL AS ok \gset
SELECT taskq.schedule('to-paused', '* * * * *', 'paused') IS NOT NULL AS ok \gset
UPDATE taskq.schedules SET next_run_at = now() - interval '10 seconds';
SELECT ok(taskq._fire_due_schedules() > now(), 'fire');
SELECT is((SELECT count(*)::int FROM taskq.jobs WHERE queue_name = 'sq'), 0, 'a disabled schedule fires nothing');
SELECT is((SELECT next_run_at < now() FROM taskq.schedules WHERE schedule_name = 'off'), true, '... and is not advanced');
SELECT is((SELECT count(*)::int FROM taskq.jobs WHERE queue_name = 'paused' AND status = 'pending'), 1,
          'a paused queue receives its scheduled job');
SELECT is_empty($$SELECT * FROM taskq._outbox_claim(10)$$, '... which waits in the outbox');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE queue_name = 'paused' AND held), 1, '... held until resume_queue');

-- a broken schedule does not stop the others
SELECT taskq.create_queue('doomed') IS NOT NULL AS ok \gset
SELECT taskq.schedule('broken', '* * * * *', 'doomed') IS NOT NULL AS ok \gset
SELECT taskq.schedule('fine', '* * * * *', 'sq') IS NOT NULL AS ok \gset
DELETE FROM taskq.queues WHERE queue_name = 'doomed';  -- behind drop_queue's back
UPDATE taskq.schedules SET next_run_at = now() - interval '10 seconds' WHERE schedule_name IN ('broken', 'fine');
SELECT ok(taskq._fire_due_schedules() <= now() + interval '10 seconds', 'a failed schedule is tried again within 10 seconds');
SELECT is((SELECT count(*)::int FROM taskq.jobs WHERE queue_name = 'sq'), 1, 'the good schedule fired');
SELECT ok((SELECT next_run_at < now() FROM taskq.schedules WHERE schedule_name = 'broken'), 'the broken one stays due');
SELECT ok(taskq.unschedule('broken'), 'unschedule broken');

-- drop_queue and schedules
SELECT taskq.create_queue('target') IS NOT NULL AS ok \gset
SELECT taskq.schedule('to-target', '0 0 * * *', 'target') IS NOT NULL AS ok \gset
SELECT throws_ok($$SELECT taskq.drop_queue('target')$$, '55000', 'queue "target" is the target of 1 schedules',
                 'drop_queue refuses while schedules target the queue');
SELECT ok(taskq.unschedule('to-target'), 'unschedule to-target');
SELECT lives_ok($$SELECT taskq.drop_queue('target')$$, '... then drop_queue works');
SELECT throws_ok($$SELECT taskq.drop_queue('paused')$$, '55000', 'queue "paused" has 1 unfinished jobs',
                 'a paused queue with a scheduled job and a schedule');
SELECT lives_ok($$SELECT taskq.drop_queue('paused', force => true)$$, 'drop_queue with force');
SELECT is((SELECT count(*)::int FROM taskq.schedules WHERE queue_name = 'paused'), 0, '... drops its schedules');

-- privileges: producers read schedules, only the owner changes them
DROP ROLE IF EXISTS tq_sched_app;
CREATE ROLE tq_sched_app IN ROLE taskq_producer;
SET ROLE tq_sched_app;
SELECT is((SELECT count(*)::int FROM taskq.schedules WHERE schedule_name = 'fine'), 1, 'a producer reads taskq.schedules');
SELECT throws_ok($$SELECT taskq.schedule('mine', '* * * * *', 'sq')$$, '42501', NULL, 'a producer cannot schedule');
SELECT throws_ok($$SELECT taskq.unschedule('fine')$$, '42501', NULL, 'a producer cannot unschedule');
SELECT throws_ok($$SELECT taskq._fire_due_schedules()$$, '42501', NULL, 'a producer cannot fire schedules');
RESET ROLE;
DROP OWNED BY tq_sched_app;
DROP ROLE tq_sched_app;
SELECT * FROM finish();

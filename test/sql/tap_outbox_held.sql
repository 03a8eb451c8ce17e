-- The claim sets rows of paused queues aside (held) so that a paused
-- backlog is not read again by every claim; resume_queue and the
-- maintenance safety net release them. Dead rows are dropped on the way.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS taskq CASCADE;
CREATE EXTENSION taskq;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT no_plan();

SELECT taskq.create_queue('held_a') \g /dev/null
SELECT taskq.create_queue('live_b') \g /dev/null
SELECT taskq.pause_queue('held_a') \g /dev/null
-- The paused queue's rows come first in (due_at, id) order.
SELECT count(*) FROM taskq.enqueue_many('held_a', (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 30))) \g /dev/null
SELECT pg_sleep(0.01) \g /dev/null
SELECT count(*) FROM taskq.enqueue_many('live_b', (SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 8))) \g /dev/null

SELECT is((SELECT count(*)::int FROM taskq._outbox_claim(5) WHERE queue_name = 'live_b'), 5,
          'a full batch of the live queue although 30 paused rows come first');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE held), 30, 'the paused rows were set aside');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE held AND queue_name <> 'held_a'), 0, 'only those');
SELECT is((SELECT count(*)::int FROM taskq._outbox_claim(100)), 8, 'later claims read only the live rows');

-- Dead rows are dropped and the claim scans on for a full batch.
SELECT taskq.cancel(id) FROM (SELECT id FROM taskq.jobs WHERE queue_name = 'live_b' ORDER BY id LIMIT 6) c \g /dev/null
SELECT is((SELECT count(*)::int FROM taskq._outbox_claim(2)), 2, 'a full batch past 6 cancelled jobs');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE queue_name = 'live_b'), 2, 'their rows were dropped');

-- A short batch means nothing more is due.
SELECT is((SELECT count(*)::int FROM taskq._outbox_claim(10)), 2, 'short batch: all that is due');

-- Held rows do not wake the publisher.
UPDATE taskq.outbox SET due_at = now() + interval '1 hour' WHERE held;
SELECT is(taskq._outbox_next_due(), NULL, 'held rows are not waited for');
UPDATE taskq.outbox SET due_at = now() - interval '1 second' WHERE held;

-- resume_queue releases them.
SELECT is((taskq.resume_queue('held_a')).paused, false, 'resume');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE held), 0, 'resume released every held row');
SELECT is((SELECT count(*)::int FROM taskq._outbox_claim(100) WHERE queue_name = 'held_a'), 30, 'and they are published');

-- The maintenance safety net (a resume whose snapshot missed rows set aside
-- by a concurrent pass).
UPDATE taskq.outbox SET held = true WHERE queue_name = 'held_a';
SELECT taskq.pause_queue('live_b') \g /dev/null
SELECT taskq.enqueue('live_b', '{}') \g /dev/null
UPDATE taskq.outbox SET held = true WHERE queue_name = 'live_b';
SELECT is(taskq._release_held(), 30, 'rows of an unpaused queue released');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE held), (SELECT count(*)::int FROM taskq.outbox WHERE queue_name = 'live_b'),
          'a paused queue''s rows stay held');

SELECT * FROM finish();

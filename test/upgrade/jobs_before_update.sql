-- Fills a database that has an older taskq installed with jobs in every
-- state, through the SQL API of 0.1.0 only (what a user's database holds
-- when they update), and keeps a copy of every row of taskq's tables in
-- schema public, as jsonb (so that nothing there depends on taskq's types
-- and could stand in the way of the update). jobs_after_update.sql compares.
--
-- The ids of the interesting jobs are kept in public.fixture_jobs by name.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE TABLE public.fixture_jobs (name text PRIMARY KEY, id uuid NOT NULL);

SELECT taskq.create_queue('upgrade_main', max_attempts => 2, backoff_base => '0', backoff_max => '0') \gset
SELECT taskq.create_queue('upgrade_paused', queue_type => 'quorum') \gset

-- pending, and scheduled for later
INSERT INTO public.fixture_jobs VALUES ('pending', taskq.enqueue('upgrade_main', '{"n": 1}', task => 'send'));
INSERT INTO public.fixture_jobs VALUES ('scheduled', taskq.enqueue('upgrade_main', '{"n": 2}', delay => '1 day',
                                                                   priority => 5, headers => '{"tenant": "acme"}'));

-- running (attempt 1, under a lease)
INSERT INTO public.fixture_jobs VALUES ('running', taskq.enqueue('upgrade_main', '{"n": 3}'));
SELECT count(*) FROM taskq.start((SELECT id FROM public.fixture_jobs WHERE name = 'running'), 1, 'worker-1') \gset

-- completed, with a result and a callback (a pending callbacks row)
INSERT INTO public.fixture_jobs VALUES ('completed', taskq.enqueue('upgrade_main', '{"n": 4}',
                                                                   callback_url => 'http://127.0.0.1:9/hook'));
SELECT count(*) FROM taskq.start((SELECT id FROM public.fixture_jobs WHERE name = 'completed'), 1, 'worker-1') \gset
SELECT taskq.complete((SELECT id FROM public.fixture_jobs WHERE name = 'completed'), 1, '{"ok": true}') \gset

-- failed after max_attempts (2): a retry at once, then failed for good;
-- a dispatcher has delivered one of the two callbacks
INSERT INTO public.fixture_jobs VALUES ('failed', taskq.enqueue('upgrade_main', '{"n": 5}',
                                                                callback_url => 'https://example.com/done'));
SELECT count(*) FROM taskq.start((SELECT id FROM public.fixture_jobs WHERE name = 'failed'), 1, 'worker-1') \gset
SELECT taskq.fail((SELECT id FROM public.fixture_jobs WHERE name = 'failed'), 1, 'first try', retry_in => '0') \gset
SELECT count(*) FROM taskq.start((SELECT id FROM public.fixture_jobs WHERE name = 'failed'), 2, 'worker-2') \gset
SELECT taskq.fail((SELECT id FROM public.fixture_jobs WHERE name = 'failed'), 2, 'second try') \gset
SELECT id AS callback_id FROM taskq._callbacks_claim('dispatcher-1', 1, '1 minute') \gset
SELECT taskq._callback_delivered(:callback_id, 'dispatcher-1', 200) \gset

-- cancelled while pending
INSERT INTO public.fixture_jobs VALUES ('cancelled', taskq.enqueue('upgrade_main', '{"n": 6}'));
SELECT taskq.cancel((SELECT id FROM public.fixture_jobs WHERE name = 'cancelled')) \gset

-- retried: failed for good (permanent), then retried with a fresh budget
INSERT INTO public.fixture_jobs VALUES ('retried', taskq.enqueue('upgrade_main', '{"n": 7}'));
SELECT count(*) FROM taskq.start((SELECT id FROM public.fixture_jobs WHERE name = 'retried'), 1, 'worker-1') \gset
SELECT taskq.fail((SELECT id FROM public.fixture_jobs WHERE name = 'retried'), 1, 'bad input', permanent => true) \gset
SELECT taskq.retry((SELECT id FROM public.fixture_jobs WHERE name = 'retried')) \gset

-- unique_key: the second enqueue returns the first job
INSERT INTO public.fixture_jobs VALUES ('unique', taskq.enqueue('upgrade_main', '{"n": 8}', unique_key => 'order-42'));
INSERT INTO public.fixture_jobs VALUES ('unique_again', taskq.enqueue('upgrade_main', '{"n": 9}', unique_key => 'order-42'));

-- a paused queue whose outbox rows the publisher has set aside (held)
SELECT taskq.pause_queue('upgrade_paused') \gset
INSERT INTO public.fixture_jobs VALUES ('held', taskq.enqueue('upgrade_paused', '{"n": 10}'));
INSERT INTO public.fixture_jobs
SELECT 'held_' || n, id FROM taskq.enqueue_many('upgrade_paused', '[11, 12]') WITH ORDINALITY AS e(id, n);

-- one publisher pass, as the publisher makes it: claim (sets the paused
-- queue's rows aside, drops the rows of jobs no longer pending), the broker
-- confirms the pending job's message, its publish time is recorded
CREATE TABLE public.fixture_claimed AS SELECT * FROM taskq._outbox_claim(1000);
SELECT taskq._outbox_published(ARRAY(SELECT outbox_id FROM public.fixture_claimed c
                                     JOIN public.fixture_jobs f ON f.id = c.job_id WHERE f.name = 'pending')) \gset
SELECT taskq._jobs_published(ARRAY(SELECT id FROM public.fixture_jobs WHERE name = 'pending')) \gset

-- What the update must keep, row by row.
CREATE TABLE public.before_queues AS SELECT to_jsonb(q) AS r FROM taskq.queues q;
CREATE TABLE public.before_jobs AS SELECT to_jsonb(j) AS r FROM taskq.jobs j;
CREATE TABLE public.before_outbox AS SELECT to_jsonb(o) AS r FROM taskq.outbox o;
CREATE TABLE public.before_callbacks AS SELECT to_jsonb(c) AS r FROM taskq.callbacks c;
CREATE TABLE public.before_sequences AS
SELECT 'outbox_id_seq' AS name, last_value FROM taskq.outbox_id_seq
UNION ALL SELECT 'callbacks_id_seq', last_value FROM taskq.callbacks_id_seq;

-- The fixture itself, checked: every state is there (a fixture that made
-- fewer would let the comparison pass on less).
DO $$
DECLARE
  got text;
BEGIN
  SELECT string_agg(f.name || '=' || j.status::text || '/' || j.attempts, ' ' ORDER BY f.name) INTO got
  FROM public.fixture_jobs f JOIN taskq.jobs j ON j.id = f.id;
  IF got IS DISTINCT FROM 'cancelled=cancelled/0 completed=completed/1 failed=failed/2 held=pending/0 '
                          'held_1=pending/0 held_2=pending/0 pending=pending/0 retried=pending/1 '
                          'running=running/1 scheduled=pending/0 unique=pending/0 unique_again=pending/0' THEN
    RAISE EXCEPTION 'fixture: unexpected job states: %', got;
  END IF;
  IF (SELECT id FROM public.fixture_jobs WHERE name = 'unique') <> (SELECT id FROM public.fixture_jobs WHERE name = 'unique_again') THEN
    RAISE EXCEPTION 'fixture: unique_key made two jobs';
  END IF;
  IF (SELECT count(*) FROM taskq.outbox WHERE held) <> 3 THEN
    RAISE EXCEPTION 'fixture: expected 3 held outbox rows, not %', (SELECT count(*) FROM taskq.outbox WHERE held);
  END IF;
  IF (SELECT string_agg(state, ' ' ORDER BY id) FROM taskq.callbacks) IS DISTINCT FROM 'delivered pending' THEN
    RAISE EXCEPTION 'fixture: unexpected callbacks: %', (SELECT string_agg(state, ' ' ORDER BY id) FROM taskq.callbacks);
  END IF;
  IF (SELECT published_at FROM taskq.jobs WHERE id = (SELECT id FROM public.fixture_jobs WHERE name = 'pending')) IS NULL THEN
    RAISE EXCEPTION 'fixture: the published job has no published_at';
  END IF;
END;
$$;

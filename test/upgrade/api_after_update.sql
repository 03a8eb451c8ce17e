-- After ALTER EXTENSION taskq UPDATE: the SQL API carries on with the jobs
-- that were there before (jobs_before_update.sql), as the producer, the
-- worker and the publisher would. Fails with the first thing that does not.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

DO $$
DECLARE
  job uuid;
  other uuid;
  j taskq.jobs;
  held_left bigint;
  callback_id bigint;
  hint text;
BEGIN
  -- The running job: its worker heartbeats and completes it.
  job := (SELECT id FROM public.fixture_jobs WHERE name = 'running');
  ASSERT taskq.heartbeat(job, 1), 'heartbeat of the running job';
  ASSERT taskq.complete(job, 1, '{"after": "update"}'), 'complete of the running job';
  ASSERT (SELECT status FROM taskq.jobs WHERE id = job) = 'completed', 'the running job is completed';
  ASSERT taskq.complete(job, 1), 'a repeat of the complete gets true again';
  ASSERT NOT taskq.complete(job, 2), 'a complete of another attempt is stale';

  -- The failed job: retried with a fresh budget, started as attempt 3 and
  -- completed through the worker's batch functions.
  job := (SELECT id FROM public.fixture_jobs WHERE name = 'failed');
  j := taskq.retry(job);
  ASSERT j.status = 'pending' AND j.attempts = 2 AND j.max_attempts = 4, format('retry of the failed job: %s', j);
  ASSERT (SELECT count(*) FROM taskq.outbox o WHERE o.job_id = job AND o.attempt = 3) = 1, 'the retry wrote its outbox row';
  ASSERT (SELECT count(*) FROM taskq._start_batch(jsonb_build_array(jsonb_build_object('id', job, 'attempt', 3)), 'w-after')) = 1,
         '_start_batch of the retried job';
  ASSERT (SELECT count(*) FROM taskq._complete_batch(jsonb_build_array(jsonb_build_object('id', job, 'attempt', 3, 'result', 1)))) = 1,
         '_complete_batch of the retried job';

  -- The job retried before the update starts as attempt 2 and fails for good.
  job := (SELECT id FROM public.fixture_jobs WHERE name = 'retried');
  ASSERT (SELECT count(*) FROM taskq.start(job, 2, 'w-after')) = 1, 'start of the retried job';
  ASSERT taskq.fail(job, 2, 'still bad', permanent => true) = 'failed', 'fail of the retried job';

  -- The scheduled job is cancelled; the pending one is started by a stale
  -- and then by the right attempt.
  j := taskq.cancel((SELECT id FROM public.fixture_jobs WHERE name = 'scheduled'));
  ASSERT j.status = 'cancelled', 'cancel of the scheduled job';
  job := (SELECT id FROM public.fixture_jobs WHERE name = 'pending');
  ASSERT (SELECT count(*) FROM taskq.start(job, 2, 'w-after')) = 0, 'a stale start changes nothing';
  ASSERT (SELECT count(*) FROM taskq.start(job, 1, 'w-after')) = 1, 'start of the pending job';

  -- unique_key still finds the unfinished job of the key.
  ASSERT taskq.enqueue('upgrade_main', '{}', unique_key => 'order-42') = (SELECT id FROM public.fixture_jobs WHERE name = 'unique'),
         'enqueue with the key of an unfinished job returns that job';

  -- The paused queue: resuming it releases the rows set aside before.
  PERFORM taskq.resume_queue('upgrade_paused');
  SELECT count(*) INTO held_left FROM taskq.outbox WHERE held;
  ASSERT held_left = 0, format('resume_queue left %s rows held', held_left);
  ASSERT (SELECT count(*) FROM taskq._outbox_claim(1000) c WHERE c.queue_name = 'upgrade_paused') = 3,
         'the resumed queue''s jobs are claimed for publishing';

  -- New jobs go through the whole cycle; callbacks are written and delivered.
  other := taskq.enqueue('upgrade_main', '{"new": true}', callback_url => 'http://127.0.0.1:9/after');
  ASSERT (SELECT count(*) FROM taskq.start(other, 1, 'w-after')) = 1, 'start of a new job';
  ASSERT taskq.complete(other, 1, '{"done": 1}'), 'complete of a new job';
  ASSERT (SELECT count(*) FROM taskq.enqueue_many('upgrade_main', '[1, 2, 3]')) = 3, 'enqueue_many';
  FOR callback_id IN SELECT c.id FROM taskq._callbacks_claim('dispatcher-after', 100, '1 minute') c LOOP
    ASSERT taskq._callback_delivered(callback_id, 'dispatcher-after', 204), 'callback delivered';
  END LOOP;
  ASSERT (SELECT count(*) FROM taskq.callbacks WHERE state = 'pending') = 0, 'every callback delivered';

  -- The change 0.2.0 made: the limit in the hint comes from _max_document_bytes().
  BEGIN
    PERFORM taskq.enqueue('upgrade_main', jsonb_build_object('big', repeat(md5(random()::text), 70000)));
    RAISE EXCEPTION 'a payload over the limit was accepted';
  EXCEPTION WHEN invalid_parameter_value THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    ASSERT hint LIKE format('the limit is %s bytes%%', taskq._max_document_bytes()), format('hint: %s', hint);
  END;

  -- Maintenance and monitoring.
  PERFORM taskq.rescue_expired();
  PERFORM taskq.purge_finished();
  PERFORM * FROM taskq.queue_stats;
  PERFORM * FROM taskq.publisher;
END;
$$;

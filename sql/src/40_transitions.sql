-- The job state machine: what the worker calls (start, heartbeat, complete,
-- fail) and what the producer calls (retry, cancel, job).
--
-- Fencing: a message carries the attempt it may start (attempts + 1 when it
-- was written). start accepts only that attempt of a pending, due job;
-- heartbeat/complete/fail accept only the running attempt. Everything else
-- is stale and changes nothing, so a duplicate or late delivery can never
-- finish a job twice. Attempt numbers are never reused (see retry).
--
-- Repeats: a worker whose connection broke before the answer arrived cannot
-- know whether its call committed, so it calls again. The repeat of a call
-- that did commit gets that call's answer again and writes nothing more (no
-- second callback or outbox row): start with the same request_id (and
-- worker) gets the running row again, complete of an attempt that completed
-- gets true, fail and _give_back of an attempt whose failure they recorded
-- get the job's status. Anything else is as stale as before: another
-- attempt, another start (a duplicate delivery, even under the same worker
-- name), a lease rescued meanwhile, a job cancelled or retried since.

-- Writes the "tell this URL" row for a job that just ended, in the same
-- transaction as the transition, and wakes listening callback dispatchers at
-- commit (NOTIFY is transactional: a rolled-back transition wakes nobody).
CREATE FUNCTION taskq._write_callback(j taskq.jobs) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF j.callback_url IS NULL THEN
    RETURN;
  END IF;
  INSERT INTO taskq.callbacks (job_id, delivery_id, url, event, body, traceparent, tracestate)
  VALUES (j.id, taskq._uuid_v7(), j.callback_url, 'job.' || j.status::text,
          jsonb_build_object('id', j.id, 'queue', j.queue_name, 'task', j.task, 'status', j.status,
                             'result', j.result, 'error', j.last_error, 'attempts', j.attempts,
                             'created_at', j.created_at, 'started_at', j.started_at,
                             'finished_at', j.finished_at),
          j.headers->>'traceparent', j.headers->>'tracestate');
  -- One notification per transaction however many callbacks it wrote:
  -- PostgreSQL folds identical ones.
  PERFORM pg_catalog.pg_notify('taskq_callbacks', '');
END;
$$;

-- Retry delay after a failed attempt: backoff_base * 2^(attempts-1), capped
-- at backoff_max, with "equal jitter" (uniform in [d/2, d]) so that jobs
-- that failed together do not come back together.
CREATE FUNCTION taskq._backoff(attempts int, backoff_base interval, backoff_max interval) RETURNS interval
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
RETURN (SELECT d / 2 + d / 2 * random()
        FROM (SELECT least(backoff_max, backoff_base * power(2, least(greatest(attempts, 1) - 1, 30))) AS d) s);

-- Ends the running attempt of a locked job as failed: retry later, failed
-- for good, or cancelled when a cancel was requested. Used by fail(),
-- _give_back() and rescue_expired(); j.failed_attempt is stored as the
-- caller set it (the worker's calls set it, so that their repeats are
-- recognized; a rescue does not).
CREATE FUNCTION taskq._fail_attempt(j taskq.jobs, error text, retry_in interval, permanent boolean)
RETURNS taskq.job_status
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  q taskq.queues;
  due timestamptz;
BEGIN
  j.last_error := left(error, 65536);
  j.lease_expires_at := NULL;
  j.updated_at := now();
  IF j.cancel_requested THEN
    j.status := 'cancelled';
  ELSIF permanent OR j.attempts >= j.max_attempts THEN
    j.status := 'failed';
  ELSE
    j.status := 'pending';
  END IF;

  IF j.status = 'pending' THEN
    IF retry_in IS NULL THEN
      SELECT * INTO q FROM taskq.queues WHERE queue_name = j.queue_name;
      retry_in := taskq._backoff(j.attempts, coalesce(q.backoff_base, interval '1 second'),
                                 coalesce(q.backoff_max, interval '1 hour'));
    END IF;
    due := now() + retry_in;
    UPDATE taskq.jobs SET status = 'pending', run_at = due, lease_expires_at = NULL, last_error = j.last_error,
                          max_attempts = j.max_attempts, updated_at = j.updated_at, failed_attempt = j.failed_attempt
    WHERE id = j.id;
    INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at) VALUES (j.id, j.queue_name, j.attempts + 1, due);
    PERFORM taskq._wake_publisher_at_commit();
  ELSE
    j.finished_at := now();
    UPDATE taskq.jobs SET status = j.status, lease_expires_at = NULL, last_error = j.last_error,
                          finished_at = j.finished_at, updated_at = j.updated_at, failed_attempt = j.failed_attempt
    WHERE id = j.id;
    PERFORM taskq._write_callback(j);
    PERFORM taskq._wake_waiters_at_commit(ARRAY[j.id]);
    IF j.has_dependents THEN
      PERFORM taskq._cancel_dependents(j.id, CASE WHEN j.status = 'failed' THEN 'failed' ELSE 'was cancelled' END);
    END IF;
  END IF;
  IF j.concurrency_key IS NOT NULL THEN
    PERFORM taskq._release_slots(j.queue_name, j.concurrency_key);  -- its slot goes to a held job
  END IF;
  RETURN j.status;
END;
$$;

-- request_id names this start, so that a repeat of it can be told from a
-- duplicate delivery: only a caller that passes one may repeat the call. A
-- worker name alone would not do: two consumers may share one.
CREATE FUNCTION taskq.start(job_id uuid, attempt int, worker text, request_id uuid DEFAULT NULL)
RETURNS SETOF taskq.jobs
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  PERFORM taskq._require(attempt, 'attempt');
  IF worker IS NULL OR worker = '' OR octet_length(worker) > 255 THEN
    RAISE EXCEPTION 'worker must be a name of 1 to 255 bytes' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- A job a flow limit applies to starts through _start_limited
  -- (55_flow_control): looked for only while some queue has a limit.
  IF EXISTS (SELECT 1 FROM taskq.queues q WHERE q.rate_limit IS NOT NULL OR q.concurrency_limit IS NOT NULL)
     AND cardinality(taskq._lock_for_limited_start(ARRAY[job_id])) > 0 THEN
    RETURN QUERY SELECT (l.started).* FROM taskq._start_limited(job_id, attempt, worker, request_id) l
                 WHERE (l.started).id IS NOT NULL;
    RETURN;
  END IF;
  RETURN QUERY
  UPDATE taskq.jobs j
  SET status = 'running', attempts = start.attempt, worker = start.worker,
      started_at = CASE WHEN j.status = 'running' THEN j.started_at ELSE now() END,
      -- A repeat renews the lease as a heartbeat would (not after a cancel request).
      lease_expires_at = CASE WHEN j.cancel_requested THEN j.lease_expires_at ELSE now() + q.lease END,
      updated_at = now(), start_request_id = start.request_id
  FROM taskq.queues q
  WHERE j.id = start.job_id AND q.queue_name = j.queue_name
    -- In a CASE, so that the row is found by primary key whatever the
    -- statistics say, never by walking the pending jobs (see _start_batch).
    AND CASE WHEN j.status = 'pending' AND j.attempts + 1 = start.attempt AND j.run_at <= now() THEN true
             WHEN j.status = 'running' AND j.attempts = start.attempt AND j.start_request_id = start.request_id
                  AND j.worker = start.worker THEN true END
  RETURNING j.*;
END;
$$;
COMMENT ON FUNCTION taskq.start(uuid, int, text, uuid) IS
  'starts the given attempt of a job under a lease; one row: run it; zero rows: the delivery is stale or held back by a flow limit (ack and drop it); a repeat with the same request_id gets the row again';

CREATE FUNCTION taskq.heartbeat(job_id uuid, attempt int) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  extended boolean;
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  PERFORM taskq._require(attempt, 'attempt');
  UPDATE taskq.jobs j SET lease_expires_at = now() + q.lease, updated_at = now()
  FROM taskq.queues q
  WHERE j.id = heartbeat.job_id AND q.queue_name = j.queue_name
    AND j.status = 'running' AND j.attempts = heartbeat.attempt AND NOT j.cancel_requested
  RETURNING true INTO extended;
  RETURN coalesce(extended, false);
END;
$$;
COMMENT ON FUNCTION taskq.heartbeat(uuid, int) IS
  'extends the lease of a running attempt; false means stop: a cancel was requested or the lease was lost';

-- enqueue: follow-up jobs (35_workflows), enqueued only by the call that
-- completes the job: not by a stale call, not by a repeat.
CREATE FUNCTION taskq.complete(job_id uuid, attempt int, result jsonb DEFAULT NULL, enqueue jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  done taskq.jobs;
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  PERFORM taskq._require(attempt, 'attempt');
  PERFORM taskq._check_document(result, 'result');
  IF enqueue IS NOT NULL THEN
    PERFORM taskq._check_job_specs(enqueue, 'enqueue');
  END IF;
  -- A job whose cancel was requested but whose handler finished anyway is
  -- completed: the work is done, the cancel came too late.
  UPDATE taskq.jobs j SET status = 'completed', result = complete.result, finished_at = now(),
                          lease_expires_at = NULL, updated_at = now()
  WHERE j.id = complete.job_id AND j.status = 'running' AND j.attempts = complete.attempt
  RETURNING j.* INTO done;
  IF NOT FOUND THEN
    -- Only a complete of this attempt makes it completed, and only a new
    -- start changes attempts: so this is a repeat of the call that did.
    RETURN EXISTS (SELECT 1 FROM taskq.jobs j
                   WHERE j.id = complete.job_id AND j.status = 'completed' AND j.attempts = complete.attempt);
  END IF;
  PERFORM taskq._write_callback(done);
  PERFORM taskq._wake_waiters_at_commit(ARRAY[done.id]);
  IF done.has_dependents THEN
    PERFORM taskq._release_dependents(ARRAY[done.id]);
  END IF;
  IF enqueue IS NOT NULL THEN
    PERFORM taskq._enqueue_specs(enqueue, 'enqueue');
  END IF;
  IF done.concurrency_key IS NOT NULL THEN
    PERFORM taskq._release_slots(done.queue_name, done.concurrency_key);  -- its slot goes to a held job
  END IF;
  RETURN true;
END;
$$;
COMMENT ON FUNCTION taskq.complete(uuid, int, jsonb, jsonb) IS
  'completes the running attempt of a job with an optional JSON result and enqueues the follow-up jobs of enqueue; false when the call was stale; true again, writing nothing, when this attempt completed it already';

-- The answer to a repeat of fail or _give_back: the job's status if that
-- attempt's failure was recorded by one of them and nothing happened since
-- (a new start changes attempts; retry and cancel clear failed_attempt);
-- NULL (stale) otherwise, also when a lease rescue ended the attempt.
CREATE FUNCTION taskq._recorded_failure(job_id uuid, attempt int) RETURNS taskq.job_status
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN (SELECT j.status FROM taskq.jobs j
        WHERE j.id = _recorded_failure.job_id AND j.attempts = _recorded_failure.attempt
          AND j.failed_attempt = _recorded_failure.attempt AND j.status IN ('pending', 'failed', 'cancelled'));

CREATE FUNCTION taskq.fail(job_id uuid, attempt int, error text, retry_in interval DEFAULT NULL,
                           permanent boolean DEFAULT false) RETURNS taskq.job_status
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j taskq.jobs;
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  PERFORM taskq._require(attempt, 'attempt');
  PERFORM taskq._require(permanent, 'permanent');
  IF retry_in < interval '0' THEN
    RAISE EXCEPTION 'retry_in must not be negative, not %', retry_in USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO j FROM taskq.jobs WHERE id = fail.job_id AND status = 'running' AND attempts = fail.attempt FOR UPDATE;
  IF NOT FOUND THEN
    RETURN taskq._recorded_failure(job_id, attempt);
  END IF;
  j.failed_attempt := j.attempts;
  RETURN taskq._fail_attempt(j, error, retry_in, permanent);
END;
$$;
COMMENT ON FUNCTION taskq.fail(uuid, int, text, interval, boolean) IS
  'fails the running attempt: retried with exponential backoff and jitter (or after retry_in) until max_attempts, then failed; permanent fails it for good; returns the new status, NULL when the call was stale; the status again, writing nothing, when this attempt''s failure is recorded already';

-- A worker that stops a running attempt for its own reasons (shutdown past
-- its timeout) gives it back: the job runs again at once and the stopped
-- attempt does not count against max_attempts, so a job on its last attempt
-- is not failed by a deploy. Like retry(), it extends the budget rather than
-- reuse an attempt number: the stopped attempt's messages stay stale.
CREATE FUNCTION taskq._give_back(job_id uuid, attempt int, error text) RETURNS taskq.job_status
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j taskq.jobs;
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  PERFORM taskq._require(attempt, 'attempt');
  SELECT * INTO j FROM taskq.jobs WHERE id = _give_back.job_id AND status = 'running' AND attempts = _give_back.attempt
  FOR UPDATE;
  IF NOT FOUND THEN
    RETURN taskq._recorded_failure(job_id, attempt);
  END IF;
  IF NOT j.cancel_requested THEN
    j.max_attempts := j.max_attempts + 1;
  END IF;
  j.failed_attempt := j.attempts;
  RETURN taskq._fail_attempt(j, error, interval '0', false);
END;
$$;
COMMENT ON FUNCTION taskq._give_back(uuid, int, text) IS
  'internal (taskq-worker): gives back a running attempt the worker stopped (shutdown); runs again at once, the attempt not counted; NULL when stale; the status again when repeated';

-- A job with dependencies that have not all completed (a dependent that a
-- dependency's end cancelled, or that was cancelled while waiting) waits
-- again for them; refused while one of them is failed or cancelled. A job
-- whose failure or cancel cancelled its dependents brings them back too
-- (35_dependencies: _revive_dependents).
CREATE FUNCTION taskq.retry(job_id uuid, delay interval DEFAULT NULL) RETURNS taskq.jobs
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j taskq.jobs;
  due timestamptz;
  bad_job uuid;
  bad_status text;
  unfinished int := 0;
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  IF delay < interval '0' THEN
    RAISE EXCEPTION 'delay must not be negative, not %', delay USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- A cancelled job with dependencies (or a waiting one, which may be
  -- cancelled by the time it is locked): its unfinished dependencies are
  -- locked before the job itself, the order in which enqueue and the
  -- completions lock them. Jobs in other states have none unfinished.
  SELECT * INTO j FROM taskq.jobs WHERE id = retry.job_id;
  IF j.dependencies_left IS NOT NULL AND j.status IN ('waiting', 'cancelled') THEN
    SELECT l.bad_job, l.bad_status, l.unfinished INTO bad_job, bad_status, unfinished
    FROM taskq._lock_unfinished_dependencies(ARRAY[job_id]) l;
  END IF;
  SELECT * INTO j FROM taskq.jobs WHERE id = retry.job_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM taskq._raise_unknown_job(job_id);
  END IF;
  IF j.status IN ('waiting', 'pending', 'running') THEN
    RAISE EXCEPTION 'job % is %, only finished jobs can be retried', job_id, j.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  due := now() + coalesce(delay, interval '0');
  IF j.status = 'cancelled' AND unfinished > 0 THEN
    IF bad_job IS NOT NULL THEN
      RAISE EXCEPTION 'job % depends on job %, which is %', job_id, bad_job, bad_status
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'retry that job instead: its retry brings back the jobs its end cancelled';
    END IF;
    IF NOT taskq._rewait(j, due) THEN
      RAISE EXCEPTION 'another unfinished job of queue "%" has unique_key "%"', j.queue_name, j.unique_key
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF j.has_dependents THEN
      PERFORM taskq._revive_dependents(j.id);
    END IF;
    SELECT * INTO j FROM taskq.jobs WHERE id = j.id;
    RETURN j;
  END IF;
  -- Attempt numbers are never reused: keep attempts, grant a fresh budget.
  BEGIN
    UPDATE taskq.jobs SET status = 'pending', run_at = due, max_attempts = attempts + attempt_budget,
                          lease_expires_at = NULL, worker = NULL, result = NULL, finished_at = NULL,
                          cancel_requested = false, failed_attempt = NULL, updated_at = now()
    WHERE id = j.id
    RETURNING * INTO j;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'another unfinished job of queue "%" has unique_key "%"', j.queue_name, j.unique_key
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END;
  INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at) VALUES (j.id, j.queue_name, j.attempts + 1, due);
  PERFORM taskq._wake_publisher_at_commit();
  IF j.has_dependents THEN
    PERFORM taskq._revive_dependents(j.id);
  END IF;
  RETURN j;
END;
$$;
COMMENT ON FUNCTION taskq.retry(uuid, interval) IS
  'runs a completed, failed or cancelled job again (after delay) with a fresh attempt budget';

CREATE FUNCTION taskq.cancel(job_id uuid) RETURNS taskq.jobs
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j taskq.jobs;
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  SELECT * INTO j FROM taskq.jobs WHERE id = cancel.job_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM taskq._raise_unknown_job(job_id);
  END IF;
  IF j.status IN ('waiting', 'pending') THEN
    -- Its outbox row, if any, is dropped by the publisher's next claim.
    UPDATE taskq.jobs SET status = 'cancelled', finished_at = now(), failed_attempt = NULL, flow_state = NULL,
                          updated_at = now()
    WHERE id = j.id RETURNING * INTO j;
    PERFORM taskq._write_callback(j);
    PERFORM taskq._wake_waiters_at_commit(ARRAY[j.id]);
    IF j.has_dependents THEN
      PERFORM taskq._cancel_dependents(j.id, 'was cancelled');
    END IF;
    IF j.concurrency_key IS NOT NULL THEN
      PERFORM taskq._release_slots(j.queue_name, j.concurrency_key);  -- an admitted job held a slot
    END IF;
  ELSIF j.status = 'running' THEN
    -- The worker learns it from heartbeat() = false and ends it with fail().
    UPDATE taskq.jobs SET cancel_requested = true, updated_at = now() WHERE id = j.id RETURNING * INTO j;
  ELSE
    RAISE EXCEPTION 'job % is already %', job_id, j.status USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  RETURN j;
END;
$$;
COMMENT ON FUNCTION taskq.cancel(uuid) IS
  'cancels a waiting or pending job at once (and the jobs waiting for it); for a running job requests the cancel, which its worker carries out';

CREATE FUNCTION taskq.job(job_id uuid) RETURNS SETOF taskq.jobs
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  SELECT * FROM taskq.jobs WHERE id = job_id;
END;
COMMENT ON FUNCTION taskq.job(uuid) IS 'the job with this id; zero rows if there is none';

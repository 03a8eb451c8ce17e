-- taskq 0.1.0 -> 0.2.0, written by hand. ALTER EXTENSION taskq UPDATE runs it.
\echo Use "ALTER EXTENSION taskq UPDATE TO '0.2.0'" to load this file. \quit

-- How to add to this file (docs/upgrading.md has the whole procedure):
-- - Every schema change of 0.2.0 is made twice: in sql/src (what a fresh
--   CREATE EXTENSION runs) and here (what an existing 0.1.0 database runs).
--   This is the only upgrade script of 0.2.0; never edit sql/taskq--0.1.0.sql.
-- - One section per change, under a "-- ===" line saying what changed and in
--   which sql/src file; sections in the order of the sql/src files (a change
--   in 00_tables before one in 30_enqueue), so each finds what it needs.
-- - A changed function: CREATE OR REPLACE FUNCTION with the text of sql/src,
--   unchanged (it keeps its owner, grants and comment; repeat COMMENT ON only
--   if the comment changed). A changed signature or return type: DROP, then
--   CREATE, COMMENT and GRANT it again as sql/src does.
-- - A new function, table, view or sequence: REVOKE ALL ... FROM PUBLIC and
--   the GRANTs of 95_privileges (which here ran only for 0.1.0's objects);
--   pg_extension_config_dump for a new table or sequence holding data.
-- - A new column: ALTER TABLE ... ADD COLUMN, which appends; so in sql/src
--   it goes at the end of its CREATE TABLE (the test compares the order).
-- - A new enum value: ALTER TYPE ... ADD VALUE ... BEFORE/AFTER, so the order
--   matches sql/src; later statements here may use it only inside PL/pgSQL
--   bodies (this script is one transaction).
-- - Everything schema-qualified; search_path is pinned below, so an
--   unqualified name fails here instead of resolving to something else.
-- - test/upgrade/run (part of make test) compares a 0.1.0 database updated by
--   this file with a fresh 0.2.0 install, object by object, and fails on any
--   difference.

SET LOCAL search_path = pg_catalog, pg_temp;

-- =========================================================================
-- 00_tables: periodic jobs: the table taskq.schedules and its index; the C
-- functions taskq._schedules_changed_at_commit(), taskq._cron_next() and
-- taskq._cron_ticks().

CREATE TABLE taskq.schedules (
  schedule_name text PRIMARY KEY,
  cron          text NOT NULL,
  timezone      text NOT NULL,
  -- No foreign key, as for jobs: drop_queue refuses while schedules target
  -- the queue, or drops them with force.
  queue_name    text NOT NULL,
  task          text,
  payload       jsonb NOT NULL,
  enabled       boolean NOT NULL,
  -- The next tick to fire; NULL only if the expression has none in range.
  -- Not advanced while disabled: enabling recomputes it from now.
  next_run_at   timestamptz,
  last_run_at   timestamptz,  -- the tick of the last job fired
  last_job_id   uuid,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  priority      integer NOT NULL,
  max_attempts  integer,
  headers       jsonb,
  callback_url  text,
  catch_up      boolean NOT NULL,
  -- @every ticks are anchor_at + k * interval: set (to a whole second) when
  -- the expression or time zone is set, so ticks never drift.
  anchor_at     timestamptz NOT NULL,
  CONSTRAINT schedules_name_format CHECK (schedule_name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$'),
  CONSTRAINT schedules_priority CHECK (priority BETWEEN 0 AND 9)
);
-- What the publisher asks each time a tick may be due: min(next_run_at) and
-- the due rows, from enabled schedules only.
CREATE INDEX schedules_due ON taskq.schedules (next_run_at) WHERE enabled;
COMMENT ON TABLE taskq.schedules IS
  'periodic jobs: one row per schedule; the publisher enqueues a job into queue_name at each tick of cron in timezone';

SELECT pg_catalog.pg_extension_config_dump('taskq.schedules', '');
REVOKE ALL ON TABLE taskq.schedules FROM PUBLIC;

CREATE FUNCTION taskq._schedules_changed_at_commit() RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskq_schedules_changed_at_commit';
COMMENT ON FUNCTION taskq._schedules_changed_at_commit() IS
  'asks the publisher to look at taskq.schedules again when the current transaction commits';

-- IMMUTABLE like PostgreSQL's own time zone conversions: the zone rules are
-- read once per process.
CREATE FUNCTION taskq._cron_next(cron text, timezone text, after timestamptz, anchor timestamptz) RETURNS timestamptz
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskq_cron_next';
COMMENT ON FUNCTION taskq._cron_next(text, text, timestamptz, timestamptz) IS
  'the first tick of the schedule expression cron in timezone strictly after after (@every: anchor + k * interval); NULL if out of range; 22023 for a bad expression or zone';

CREATE FUNCTION taskq._cron_ticks(cron text, timezone text, from_time timestamptz, until_time timestamptz,
                                  anchor timestamptz, max_ticks int) RETURNS timestamptz[]
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskq_cron_ticks';
COMMENT ON FUNCTION taskq._cron_ticks(text, text, timestamptz, timestamptz, timestamptz, int) IS
  'the latest max_ticks ticks t of cron in timezone with from_time <= t <= until_time, ascending';
REVOKE EXECUTE ON FUNCTION
  taskq._schedules_changed_at_commit(),
  taskq._cron_next(text, text, timestamptz, timestamptz),
  taskq._cron_ticks(text, text, timestamptz, timestamptz, timestamptz, int)
FROM PUBLIC;

-- =========================================================================
-- 10_validation: _check_document's hint takes the limit from
-- taskq._max_document_bytes().

CREATE OR REPLACE FUNCTION taskq._check_document(doc jsonb, name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF pg_column_size(doc) > taskq._max_document_bytes() THEN
    RAISE EXCEPTION '% is too large (% bytes)', name, pg_column_size(doc)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = format('the limit is %s bytes; store large data elsewhere and pass a reference',
                          taskq._max_document_bytes());
  END IF;
END;
$$;

-- =========================================================================
-- 10_validation: taskq._check_schedule_name(), new.

CREATE FUNCTION taskq._check_schedule_name(schedule_name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM taskq._require(schedule_name, 'schedule_name');
  IF schedule_name !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$' THEN
    RAISE EXCEPTION 'invalid schedule name "%"', left(schedule_name, 120)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'use 1 to 100 characters from A-Z a-z 0-9 _ . - starting with a letter or digit';
  END IF;
END;
$$;

REVOKE EXECUTE ON FUNCTION taskq._check_schedule_name(text) FROM PUBLIC;

-- =========================================================================
-- 20_queues: drop_queue refuses while schedules target the queue, or drops
-- them with force.

CREATE OR REPLACE FUNCTION taskq.drop_queue(queue_name text, force boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  unfinished bigint;
  scheduled bigint;
BEGIN
  PERFORM taskq._check_queue_name(queue_name);
  PERFORM taskq._require(force, 'force');
  -- Conflicts with the ROW EXCLUSIVE lock every enqueue holds until it
  -- commits: in-flight enqueues finish first and their jobs are seen below,
  -- and no new job can slip in between the check and the delete.
  LOCK TABLE taskq.jobs IN SHARE ROW EXCLUSIVE MODE;
  PERFORM 1 FROM taskq.queues q WHERE q.queue_name = drop_queue.queue_name FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  SELECT count(*) INTO unfinished FROM taskq.jobs j
  WHERE j.queue_name = drop_queue.queue_name AND j.status IN ('pending', 'running');
  IF unfinished > 0 AND NOT force THEN
    RAISE EXCEPTION 'queue "%" has % unfinished jobs', queue_name, unfinished
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'wait for them, cancel them, or use taskq.drop_queue(queue_name, force => true) to delete them';
  END IF;
  -- schedule() holds the queue row FOR KEY SHARE until it commits, so the
  -- FOR UPDATE above waited for it and its schedule is seen here.
  SELECT count(*) INTO scheduled FROM taskq.schedules s WHERE s.queue_name = drop_queue.queue_name;
  IF scheduled > 0 AND NOT force THEN
    RAISE EXCEPTION 'queue "%" is the target of % schedules', queue_name, scheduled
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'remove them with taskq.unschedule(), or use taskq.drop_queue(queue_name, force => true) to drop them with the queue';
  END IF;
  IF scheduled > 0 THEN
    DELETE FROM taskq.schedules s WHERE s.queue_name = drop_queue.queue_name;
    PERFORM taskq._schedules_changed_at_commit();
  END IF;
  DELETE FROM taskq.outbox o WHERE o.queue_name = drop_queue.queue_name;
  DELETE FROM taskq.callbacks c USING taskq.jobs j
  WHERE c.job_id = j.id AND j.queue_name = drop_queue.queue_name AND c.state <> 'pending';
  DELETE FROM taskq.jobs j WHERE j.queue_name = drop_queue.queue_name;
  DELETE FROM taskq.queues q WHERE q.queue_name = drop_queue.queue_name;
END;
$$;
COMMENT ON FUNCTION taskq.drop_queue(text, boolean) IS
  'drops a queue and its finished jobs; refused (55000) while it has unfinished jobs or schedules unless force, which drops them too; the RabbitMQ queue is left for the operator';

-- =========================================================================
-- 30_enqueue: enqueue checks the payload against taskq._max_document_bytes()
-- instead of a copy of the limit; enqueue_many's hint takes the limit from it.

CREATE OR REPLACE FUNCTION taskq.enqueue(
  queue_name text,
  payload jsonb DEFAULT '{}',
  task text DEFAULT NULL,
  run_at timestamptz DEFAULT NULL,
  delay interval DEFAULT NULL,
  priority int DEFAULT 0,
  max_attempts int DEFAULT NULL,
  callback_url text DEFAULT NULL,
  unique_key text DEFAULT NULL,
  headers jsonb DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  q_max_attempts int;
  q_delivery_delay interval;
  q_paused boolean;
  due timestamptz;
  new_id uuid;
BEGIN
  SELECT q.max_attempts, q.delivery_delay, q.paused INTO q_max_attempts, q_delivery_delay, q_paused
  FROM taskq.queues q WHERE q.queue_name = enqueue.queue_name;
  IF NOT FOUND THEN
    PERFORM taskq._check_queue_name(queue_name);  -- a malformed name gets the more precise error
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  IF payload IS NULL THEN
    RAISE EXCEPTION 'payload must not be null' USING ERRCODE = 'null_value_not_allowed', HINT = 'use ''{}'' for no payload';
  END IF;
  -- The checks are called only when there is something to check: each call
  -- of a function with a pinned search_path saves and restores settings,
  -- which costs more than the whole insert on this path.
  IF pg_column_size(payload) > taskq._max_document_bytes() THEN
    PERFORM taskq._check_document(payload, 'payload');
  END IF;
  IF task IS NOT NULL OR run_at IS NOT NULL OR delay IS NOT NULL OR priority IS DISTINCT FROM 0
     OR max_attempts IS NOT NULL OR callback_url IS NOT NULL OR unique_key IS NOT NULL OR headers IS NOT NULL THEN
    PERFORM taskq._check_job_options(task, run_at, delay, priority, max_attempts, callback_url, unique_key, headers);
  END IF;

  due := greatest(coalesce(run_at, now() + coalesce(delay, interval '0')), now()) + q_delivery_delay;
  max_attempts := coalesce(max_attempts, q_max_attempts);

  IF unique_key IS NULL THEN
    new_id := taskq._uuid_v7();
    INSERT INTO taskq.jobs (id, queue_name, task, payload, priority, max_attempts, attempt_budget, run_at,
                            callback_url, headers)
    VALUES (new_id, queue_name, task, payload, priority, max_attempts, max_attempts, due, callback_url, headers);
  ELSE
    -- Dedup that holds under concurrency: the partial unique index decides;
    -- a concurrent enqueue of the same key waits for ours and then sees it.
    LOOP
      INSERT INTO taskq.jobs AS j (id, queue_name, task, payload, priority, max_attempts, attempt_budget, run_at,
                                   callback_url, unique_key, headers)
      VALUES (taskq._uuid_v7(), queue_name, task, payload, priority, max_attempts, max_attempts, due,
              callback_url, unique_key, headers)
      ON CONFLICT (queue_name, unique_key) WHERE unique_key IS NOT NULL AND status IN ('pending', 'running')
      DO NOTHING
      RETURNING j.id INTO new_id;
      EXIT WHEN new_id IS NOT NULL;
      SELECT j.id INTO new_id FROM taskq.jobs j
      WHERE j.queue_name = enqueue.queue_name AND j.unique_key = enqueue.unique_key
        AND j.status IN ('pending', 'running');
      IF FOUND THEN
        RETURN new_id;  -- the existing job; nothing new is created
      END IF;
      -- It finished between our insert and our look-up: try again.
    END LOOP;
  END IF;

  INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at) VALUES (new_id, queue_name, 1, due);
  IF NOT q_paused THEN
    PERFORM taskq._wake_publisher_at_commit();  -- a paused queue's jobs wait for resume_queue's wake-up
  END IF;
  RETURN new_id;
END;
$$;

CREATE OR REPLACE FUNCTION taskq.enqueue_many(
  queue_name text,
  payloads jsonb,
  task text DEFAULT NULL,
  run_at timestamptz DEFAULT NULL,
  delay interval DEFAULT NULL,
  priority int DEFAULT 0,
  max_attempts int DEFAULT NULL,
  callback_url text DEFAULT NULL,
  unique_key text DEFAULT NULL,
  headers jsonb DEFAULT NULL
) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  q_max_attempts int;
  q_delivery_delay interval;
  q_paused boolean;
  due timestamptz;
  element jsonb;
BEGIN
  SELECT q.max_attempts, q.delivery_delay, q.paused INTO q_max_attempts, q_delivery_delay, q_paused
  FROM taskq.queues q WHERE q.queue_name = enqueue_many.queue_name;
  IF NOT FOUND THEN
    PERFORM taskq._check_queue_name(queue_name);
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  IF payloads IS NULL THEN
    RAISE EXCEPTION 'payloads must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF jsonb_typeof(payloads) <> 'array' THEN
    RAISE EXCEPTION 'payloads must be a JSON array, not %', jsonb_typeof(payloads)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'one job is created per array element';
  END IF;
  IF jsonb_array_length(payloads) > 100000 THEN
    RAISE EXCEPTION 'payloads has % elements; at most 100000 per call', jsonb_array_length(payloads)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM taskq._check_job_options(task, run_at, delay, priority, max_attempts, callback_url, unique_key, headers);
  IF EXISTS (SELECT 1 FROM jsonb_array_elements(payloads) e(value) WHERE pg_column_size(e.value) > taskq._max_document_bytes()) THEN
    RAISE EXCEPTION 'a payload in payloads is too large'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = format('the limit is %s bytes per payload', taskq._max_document_bytes());
  END IF;

  IF unique_key IS NOT NULL THEN
    -- Every element shares the key: the first creates the job, the others
    -- get its id (the same rule as enqueue). Rare, so no set-wise path.
    FOR element IN SELECT e.value FROM jsonb_array_elements(payloads) e(value) LOOP
      RETURN NEXT taskq.enqueue(queue_name, element, task, run_at, delay, priority, max_attempts,
                                callback_url, unique_key, headers);
    END LOOP;
    RETURN;
  END IF;

  due := greatest(coalesce(run_at, now() + coalesce(delay, interval '0')), now()) + q_delivery_delay;
  max_attempts := coalesce(max_attempts, q_max_attempts);

  -- Set-wise: ids are generated in array order (the ordered subquery feeds
  -- the id generator), so sorting by id returns them in array order.
  RETURN QUERY
  WITH new_jobs AS (
    INSERT INTO taskq.jobs (id, queue_name, task, payload, priority, max_attempts, attempt_budget, run_at,
                            callback_url, headers)
    SELECT taskq._uuid_v7(), enqueue_many.queue_name, enqueue_many.task, ordered.value, enqueue_many.priority,
           enqueue_many.max_attempts, enqueue_many.max_attempts, due, enqueue_many.callback_url, enqueue_many.headers
    FROM (SELECT e.value FROM jsonb_array_elements(payloads) WITH ORDINALITY e(value, ord) ORDER BY e.ord) ordered
    RETURNING id
  ), new_outbox AS (
    INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
    SELECT new_jobs.id, enqueue_many.queue_name, 1, due FROM new_jobs
  )
  SELECT new_jobs.id FROM new_jobs ORDER BY new_jobs.id;
  IF NOT q_paused THEN
    PERFORM taskq._wake_publisher_at_commit();
  END IF;
END;
$$;

-- =========================================================================
-- 80_schedules (new file): taskq.schedule(), taskq.unschedule(),
-- taskq._fire_due_schedules().

CREATE FUNCTION taskq.schedule(
  schedule_name text,
  cron text,
  queue_name text,
  payload jsonb DEFAULT '{}',
  task text DEFAULT NULL,
  timezone text DEFAULT 'UTC',
  priority int DEFAULT 0,
  max_attempts int DEFAULT NULL,
  headers jsonb DEFAULT NULL,
  callback_url text DEFAULT NULL,
  catch_up boolean DEFAULT false,
  enabled boolean DEFAULT true
) RETURNS taskq.schedules
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  previous taskq.schedules;
  anchor timestamptz := date_trunc('second', now());  -- whole-second @every ticks
  next_run timestamptz;
  saved taskq.schedules;
BEGIN
  PERFORM taskq._check_schedule_name(schedule_name);
  PERFORM taskq._require(cron, 'cron');
  PERFORM taskq._require(timezone, 'timezone');
  PERFORM taskq._check_queue_name(queue_name);
  PERFORM taskq._require(payload, 'payload');
  PERFORM taskq._check_document(payload, 'payload');
  -- The options of each job, checked now as enqueue will check them then.
  PERFORM taskq._check_job_options(task, NULL, NULL, priority, max_attempts, callback_url, NULL, headers);
  PERFORM taskq._require(catch_up, 'catch_up');
  PERFORM taskq._require(enabled, 'enabled');
  -- Validates the expression and the zone (22023, saying where).
  next_run := taskq._cron_next(schedule.cron, schedule.timezone, now(), anchor);
  -- FOR KEY SHARE: drop_queue waits for this transaction and then sees the schedule.
  PERFORM 1 FROM taskq.queues q WHERE q.queue_name = schedule.queue_name FOR KEY SHARE;
  IF NOT FOUND THEN
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;

  SELECT * INTO previous FROM taskq.schedules s WHERE s.schedule_name = schedule.schedule_name FOR UPDATE;
  IF FOUND AND previous.cron = schedule.cron AND previous.timezone = schedule.timezone
     AND previous.enabled AND schedule.enabled THEN
    -- The same ticks: a tick that is due and not fired yet still fires.
    anchor := previous.anchor_at;
    next_run := previous.next_run_at;
  END IF;
  INSERT INTO taskq.schedules AS s (schedule_name, cron, timezone, queue_name, task, payload, enabled, next_run_at,
                                    priority, max_attempts, headers, callback_url, catch_up, anchor_at)
  VALUES (schedule.schedule_name, schedule.cron, schedule.timezone, schedule.queue_name, schedule.task,
          schedule.payload, schedule.enabled, next_run, schedule.priority, schedule.max_attempts, schedule.headers,
          schedule.callback_url, schedule.catch_up, anchor)
  ON CONFLICT ON CONSTRAINT schedules_pkey DO UPDATE SET
    cron = excluded.cron, timezone = excluded.timezone, queue_name = excluded.queue_name, task = excluded.task,
    payload = excluded.payload, enabled = excluded.enabled, next_run_at = excluded.next_run_at,
    priority = excluded.priority, max_attempts = excluded.max_attempts, headers = excluded.headers,
    callback_url = excluded.callback_url, catch_up = excluded.catch_up, anchor_at = excluded.anchor_at,
    updated_at = now()
  RETURNING s.* INTO saved;
  PERFORM taskq._schedules_changed_at_commit();  -- the publisher's next tick may now be earlier
  RETURN saved;
END;
$$;
COMMENT ON FUNCTION taskq.schedule(text, text, text, jsonb, text, text, int, int, jsonb, text, boolean, boolean) IS
  'creates the schedule schedule_name, or replaces it: at each tick of cron in timezone a job is enqueued into queue_name';

CREATE FUNCTION taskq.unschedule(schedule_name text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM taskq._check_schedule_name(schedule_name);
  DELETE FROM taskq.schedules s WHERE s.schedule_name = unschedule.schedule_name;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM taskq._schedules_changed_at_commit();
  RETURN true;
END;
$$;
COMMENT ON FUNCTION taskq.unschedule(text) IS
  'removes a schedule (jobs it made stay); false if there is none of that name';

-- One job per due tick, in the transaction that advances next_run_at, so a
-- tick makes exactly one job however often this runs or crashes. The
-- publisher calls it when the next tick it knows of is due or the schedules
-- changed; returns the next tick to wake up for (NULL: none).
CREATE FUNCTION taskq._fire_due_schedules() RETURNS timestamptz
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s taskq.schedules;
  wanted int;
  ticks timestamptz[];
  tick timestamptz;
  job uuid;
  failed text[] := '{}';
  next_tick timestamptz;
BEGIN
  -- SKIP LOCKED: a schedule being fired by another session is left to it.
  -- One it fired and committed since this statement's snapshot is
  -- re-checked on its new row (next_run_at later) and skipped too.
  FOR s IN SELECT * FROM taskq.schedules sc WHERE sc.enabled AND sc.next_run_at <= now()
           ORDER BY sc.next_run_at FOR UPDATE OF sc SKIP LOCKED LOOP
    BEGIN
      -- next_run_at is the first due tick; later ones are computed. Without
      -- catch_up only the latest tick fires, with it the latest 1000.
      wanted := CASE WHEN s.catch_up THEN 1000 ELSE 1 END;
      ticks := taskq._cron_ticks(s.cron, s.timezone, s.next_run_at + interval '1 microsecond', now(), s.anchor_at,
                                 wanted);
      IF cardinality(ticks) < wanted THEN
        ticks := s.next_run_at || ticks;
      END IF;
      job := NULL;
      FOREACH tick IN ARRAY ticks LOOP
        -- The normal enqueue (queue options, outbox, wake-up), then the
        -- schedule's headers, which enqueue refuses from callers (x-taskq-).
        job := taskq.enqueue(s.queue_name, s.payload, s.task, priority => s.priority,
                             max_attempts => s.max_attempts, callback_url => s.callback_url, headers => s.headers);
        UPDATE taskq.jobs j
        SET headers = coalesce(j.headers, '{}') || jsonb_build_object(
              'x-taskq-schedule', s.schedule_name,
              'x-taskq-scheduled-for', (to_json(tick AT TIME ZONE 'UTC') #>> '{}') || 'Z')
        WHERE j.id = job;
      END LOOP;
      UPDATE taskq.schedules sc
      SET next_run_at = taskq._cron_next(s.cron, s.timezone, now(), s.anchor_at),
          last_run_at = ticks[cardinality(ticks)], last_job_id = job
      WHERE sc.schedule_name = s.schedule_name;
    EXCEPTION WHEN OTHERS THEN
      -- One broken schedule must not stop the others (nor the publisher):
      -- it stays due and is tried again shortly.
      RAISE WARNING 'taskq: schedule "%" could not fire: %', s.schedule_name, SQLERRM;
      failed := failed || s.schedule_name;
    END;
  END LOOP;

  IF cardinality(failed) = 0 THEN
    SELECT min(sc.next_run_at) INTO next_tick FROM taskq.schedules sc WHERE sc.enabled;
  ELSE
    SELECT least(min(sc.next_run_at), now() + interval '10 seconds') INTO next_tick
    FROM taskq.schedules sc WHERE sc.enabled AND sc.schedule_name <> ALL (failed);
  END IF;
  -- Still due: another session is firing it; look again soon.
  IF next_tick <= now() THEN
    next_tick := now() + interval '1 second';
  END IF;
  RETURN next_tick;
END;
$$;
COMMENT ON FUNCTION taskq._fire_due_schedules() IS
  'internal (publisher): enqueues the jobs of every due tick of enabled schedules, advances next_run_at; returns the next tick';
REVOKE EXECUTE ON FUNCTION
  taskq.schedule(text, text, text, jsonb, text, text, int, int, jsonb, text, boolean, boolean),
  taskq.unschedule(text),
  taskq._fire_due_schedules()
FROM PUBLIC;

-- =========================================================================
-- 95_privileges: taskq_producer reads taskq.schedules.

GRANT SELECT ON taskq.schedules TO taskq_producer;

-- =========================================================================
-- Repeated worker calls (00_tables, 40_transitions, 45_worker_batches,
-- 95_privileges): a worker that lost its connection before the answer
-- arrived repeats its call, and a repeat of a call that committed gets the
-- same answer and writes nothing more. jobs gains start_request_id (the
-- request id of the start that began the running attempt) and
-- failed_attempt (the attempt whose failure fail or _give_back recorded);
-- start and _start_batch take a request_id (a new argument: dropped and
-- created again, with their grants); complete, fail, _give_back and
-- _complete_batch answer repeats (this _complete_batch also carries the
-- hint of the document-limit change); retry and cancel clear failed_attempt.
-- Nullable columns without a default: no table rewrite, only a short
-- exclusive lock.

ALTER TABLE taskq.jobs ADD COLUMN start_request_id uuid, ADD COLUMN failed_attempt integer;
-- taskq.job's body (BEGIN ATOMIC SELECT *) lists the columns it was created
-- with: made again, it returns the new ones too (as a fresh install does).
CREATE OR REPLACE FUNCTION taskq.job(job_id uuid) RETURNS SETOF taskq.jobs
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  SELECT * FROM taskq.jobs WHERE id = job_id;
END;

CREATE OR REPLACE FUNCTION taskq._fail_attempt(j taskq.jobs, error text, retry_in interval, permanent boolean)
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
  END IF;
  RETURN j.status;
END;
$$;

DROP FUNCTION taskq.start(uuid, int, text);
CREATE FUNCTION taskq.start(job_id uuid, attempt int, worker text, request_id uuid DEFAULT NULL)
RETURNS SETOF taskq.jobs
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  PERFORM taskq._require(attempt, 'attempt');
  IF worker IS NULL OR worker = '' OR octet_length(worker) > 255 THEN
    RAISE EXCEPTION 'worker must be a name of 1 to 255 bytes' USING ERRCODE = 'invalid_parameter_value';
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
  'starts the given attempt of a job under a lease; one row: run it; zero rows: the delivery is stale (ack and drop it); a repeat with the same request_id gets the row again';
REVOKE ALL ON FUNCTION taskq.start(uuid, int, text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION taskq.start(uuid, int, text, uuid) TO taskq_worker;

CREATE OR REPLACE FUNCTION taskq.complete(job_id uuid, attempt int, result jsonb DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  done taskq.jobs;
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  PERFORM taskq._require(attempt, 'attempt');
  PERFORM taskq._check_document(result, 'result');
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
  RETURN true;
END;
$$;
COMMENT ON FUNCTION taskq.complete(uuid, int, jsonb) IS
  'completes the running attempt of a job with an optional JSON result; false when the call was stale; true again, writing nothing, when this attempt completed it already';

CREATE FUNCTION taskq._recorded_failure(job_id uuid, attempt int) RETURNS taskq.job_status
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN (SELECT j.status FROM taskq.jobs j
        WHERE j.id = _recorded_failure.job_id AND j.attempts = _recorded_failure.attempt
          AND j.failed_attempt = _recorded_failure.attempt AND j.status IN ('pending', 'failed', 'cancelled'));
REVOKE ALL ON FUNCTION taskq._recorded_failure(uuid, int) FROM PUBLIC;

CREATE OR REPLACE FUNCTION taskq.fail(job_id uuid, attempt int, error text, retry_in interval DEFAULT NULL,
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

CREATE OR REPLACE FUNCTION taskq._give_back(job_id uuid, attempt int, error text) RETURNS taskq.job_status
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

CREATE OR REPLACE FUNCTION taskq.retry(job_id uuid, delay interval DEFAULT NULL) RETURNS taskq.jobs
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j taskq.jobs;
  due timestamptz;
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  IF delay < interval '0' THEN
    RAISE EXCEPTION 'delay must not be negative, not %', delay USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO j FROM taskq.jobs WHERE id = retry.job_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM taskq._raise_unknown_job(job_id);
  END IF;
  IF j.status IN ('pending', 'running') THEN
    RAISE EXCEPTION 'job % is %, only finished jobs can be retried', job_id, j.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  due := now() + coalesce(delay, interval '0');
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
  RETURN j;
END;
$$;

CREATE OR REPLACE FUNCTION taskq.cancel(job_id uuid) RETURNS taskq.jobs
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j taskq.jobs;
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  SELECT * INTO j FROM taskq.jobs WHERE id = cancel.job_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM taskq._raise_unknown_job(job_id);
  END IF;
  IF j.status = 'pending' THEN
    -- Its outbox row, if any, is dropped by the publisher's next claim.
    UPDATE taskq.jobs SET status = 'cancelled', finished_at = now(), failed_attempt = NULL, updated_at = now()
    WHERE id = j.id RETURNING * INTO j;
    PERFORM taskq._write_callback(j);
  ELSIF j.status = 'running' THEN
    -- The worker learns it from heartbeat() = false and ends it with fail().
    UPDATE taskq.jobs SET cancel_requested = true, updated_at = now() WHERE id = j.id RETURNING * INTO j;
  ELSE
    RAISE EXCEPTION 'job % is already %', job_id, j.status USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  RETURN j;
END;
$$;

DROP FUNCTION taskq._start_batch(jsonb, text);
CREATE FUNCTION taskq._start_batch(items jsonb, worker text, request_id uuid DEFAULT NULL)
RETURNS TABLE (job_id uuid, attempt int, max_attempts int, lease_ms bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  w record;
BEGIN
  PERFORM taskq._check_batch(items);
  IF worker IS NULL OR worker = '' OR octet_length(worker) > 255 THEN
    RAISE EXCEPTION 'worker must be a name of 1 to 255 bytes' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- One UPDATE per item, by primary key, rather than one joined UPDATE:
  -- when the statistics undercount pending jobs (a fresh table, or a burst
  -- that autoanalyze has not seen yet: exactly when a backlog builds), the
  -- join was planned as a hash over every pending job, read again for each
  -- batch (5 ms per batch of 16 with 20,000 pending, against 0.2 ms). The
  -- loop costs ~10 us per item more than the join at its best.
  -- The state checks sit in a CASE, where the planner cannot match them to
  -- the partial index jobs_pending: a generic plan made while the table was
  -- small walked that index (every pending job) to find one row.
  -- A job twice in one batch (a duplicate delivery) starts at most once.
  FOR w IN
    SELECT DISTINCT ON (i.id) i.id, i.attempt
    FROM jsonb_to_recordset(items) AS i(id uuid, attempt int)
    ORDER BY i.id, i.attempt
  LOOP
    UPDATE taskq.jobs j
    SET status = 'running', attempts = w.attempt, worker = _start_batch.worker,
        started_at = CASE WHEN j.status = 'running' THEN j.started_at ELSE now() END,
        lease_expires_at = CASE WHEN j.cancel_requested THEN j.lease_expires_at ELSE now() + q.lease END,
        updated_at = now(), start_request_id = _start_batch.request_id
    FROM taskq.queues q
    WHERE j.id = w.id AND q.queue_name = j.queue_name
      AND CASE WHEN j.status = 'pending' AND j.attempts + 1 = w.attempt AND j.run_at <= now() THEN true
               WHEN j.status = 'running' AND j.attempts = w.attempt AND j.start_request_id = _start_batch.request_id
                    AND j.worker = _start_batch.worker THEN true END
    RETURNING j.id, j.attempts, j.max_attempts, (extract(epoch FROM q.lease) * 1000)::bigint
    INTO job_id, attempt, max_attempts, lease_ms;
    IF FOUND THEN
      RETURN NEXT;
    END IF;
  END LOOP;
END;
$$;
COMMENT ON FUNCTION taskq._start_batch(jsonb, text, uuid) IS
  'internal (taskq-worker): taskq.start for many {"id", "attempt"} items; returns the jobs that started, with their lease in ms';
REVOKE ALL ON FUNCTION taskq._start_batch(jsonb, text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION taskq._start_batch(jsonb, text, uuid) TO taskq_worker;

CREATE OR REPLACE FUNCTION taskq._complete_batch(items jsonb) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  done taskq.jobs;
  completed uuid[] := '{}';
BEGIN
  PERFORM taskq._check_batch(items);
  -- The same limit as taskq.complete; the whole batch is refused, and the
  -- worker then records its items one by one to find the culprit.
  IF EXISTS (SELECT 1 FROM jsonb_to_recordset(items) AS i(result jsonb)
             WHERE pg_column_size(i.result) > taskq._max_document_bytes()) THEN
    RAISE EXCEPTION 'a result in the batch is too large'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = format('the limit is %s bytes per result', taskq._max_document_bytes());
  END IF;
  FOR done IN
    WITH wanted AS (
      SELECT DISTINCT ON (i.id) i.id, i.attempt, i.result
      FROM jsonb_to_recordset(items) AS i(id uuid, attempt int, result jsonb)
      ORDER BY i.id, i.attempt
    )
    UPDATE taskq.jobs j SET status = 'completed', result = w.result, finished_at = now(),
                            lease_expires_at = NULL, updated_at = now()
    FROM wanted w
    WHERE j.id = w.id AND j.status = 'running' AND j.attempts = w.attempt
    RETURNING j.*
  LOOP
    IF done.callback_url IS NOT NULL THEN
      PERFORM taskq._write_callback(done);
    END IF;
    completed := completed || done.id;
    RETURN NEXT done.id;
  END LOOP;
  -- Items that did not complete now may be repeats of a batch that
  -- completed them (as in taskq.complete): they count again, nothing is
  -- written. Looked up only when some item did not act, which is rare.
  IF cardinality(completed) < jsonb_array_length(items) THEN
    RETURN QUERY
    SELECT j.id
    FROM (SELECT DISTINCT i.id, i.attempt FROM jsonb_to_recordset(items) AS i(id uuid, attempt int)) w
    JOIN taskq.jobs j ON j.id = w.id
    WHERE j.status = 'completed' AND j.attempts = w.attempt AND j.id <> ALL (completed);
  END IF;
END;
$$;

-- =========================================================================
-- Dependencies and flow control, the shared part (00_tables, 10_validation,
-- 30_enqueue, 70_maintenance, 95_privileges): the status 'waiting'; enqueue
-- and enqueue_many take depends_on and concurrency_key (new arguments:
-- dropped and created again, with their grants); queue_stats counts
-- waiting jobs (a new column before pending: dropped and created again).
-- ADD VALUE cannot run in a transaction block before PostgreSQL 12 and the
-- new value cannot be named until this transaction commits: nothing below
-- names it.

ALTER TYPE taskq.job_status ADD VALUE 'waiting' BEFORE 'pending';
COMMENT ON TYPE taskq.job_status IS
  'life cycle of a job: [waiting ->] pending -> running -> completed | failed | cancelled; a retry puts it back to pending; waiting: dependencies not all completed';

-- Placeholder while dependencies (depends_on) and flow control
-- (concurrency_key) are being built: the arguments exist so that both can
-- land without changing enqueue's signature twice; until then, using them is
-- refused rather than ignored.
CREATE FUNCTION taskq._reject_unfinished_options(depends_on uuid[], concurrency_key text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION '% is not supported by this build of taskq yet',
    CASE WHEN depends_on IS NOT NULL THEN 'depends_on' ELSE 'concurrency_key' END
    USING ERRCODE = 'feature_not_supported';
END;
$$;

DROP FUNCTION taskq.enqueue(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb);
DROP FUNCTION taskq.enqueue_many(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb);

CREATE FUNCTION taskq.enqueue(
  queue_name text,
  payload jsonb DEFAULT '{}',
  task text DEFAULT NULL,
  run_at timestamptz DEFAULT NULL,
  delay interval DEFAULT NULL,
  priority int DEFAULT 0,
  max_attempts int DEFAULT NULL,
  callback_url text DEFAULT NULL,
  unique_key text DEFAULT NULL,
  headers jsonb DEFAULT NULL,
  depends_on uuid[] DEFAULT NULL,
  concurrency_key text DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  q_max_attempts int;
  q_delivery_delay interval;
  q_paused boolean;
  due timestamptz;
  new_id uuid;
BEGIN
  SELECT q.max_attempts, q.delivery_delay, q.paused INTO q_max_attempts, q_delivery_delay, q_paused
  FROM taskq.queues q WHERE q.queue_name = enqueue.queue_name;
  IF NOT FOUND THEN
    PERFORM taskq._check_queue_name(queue_name);  -- a malformed name gets the more precise error
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  IF payload IS NULL THEN
    RAISE EXCEPTION 'payload must not be null' USING ERRCODE = 'null_value_not_allowed', HINT = 'use ''{}'' for no payload';
  END IF;
  -- The checks are called only when there is something to check: each call
  -- of a function with a pinned search_path saves and restores settings,
  -- which costs more than the whole insert on this path.
  IF pg_column_size(payload) > taskq._max_document_bytes() THEN
    PERFORM taskq._check_document(payload, 'payload');
  END IF;
  IF task IS NOT NULL OR run_at IS NOT NULL OR delay IS NOT NULL OR priority IS DISTINCT FROM 0
     OR max_attempts IS NOT NULL OR callback_url IS NOT NULL OR unique_key IS NOT NULL OR headers IS NOT NULL THEN
    PERFORM taskq._check_job_options(task, run_at, delay, priority, max_attempts, callback_url, unique_key, headers);
  END IF;
  IF depends_on IS NOT NULL OR concurrency_key IS NOT NULL THEN
    PERFORM taskq._reject_unfinished_options(depends_on, concurrency_key);
  END IF;

  due := greatest(coalesce(run_at, now() + coalesce(delay, interval '0')), now()) + q_delivery_delay;
  max_attempts := coalesce(max_attempts, q_max_attempts);

  IF unique_key IS NULL THEN
    new_id := taskq._uuid_v7();
    INSERT INTO taskq.jobs (id, queue_name, task, payload, priority, max_attempts, attempt_budget, run_at,
                            callback_url, headers)
    VALUES (new_id, queue_name, task, payload, priority, max_attempts, max_attempts, due, callback_url, headers);
  ELSE
    -- Dedup that holds under concurrency: the partial unique index decides;
    -- a concurrent enqueue of the same key waits for ours and then sees it.
    LOOP
      INSERT INTO taskq.jobs AS j (id, queue_name, task, payload, priority, max_attempts, attempt_budget, run_at,
                                   callback_url, unique_key, headers)
      VALUES (taskq._uuid_v7(), queue_name, task, payload, priority, max_attempts, max_attempts, due,
              callback_url, unique_key, headers)
      ON CONFLICT (queue_name, unique_key) WHERE unique_key IS NOT NULL AND status IN ('pending', 'running')
      DO NOTHING
      RETURNING j.id INTO new_id;
      EXIT WHEN new_id IS NOT NULL;
      SELECT j.id INTO new_id FROM taskq.jobs j
      WHERE j.queue_name = enqueue.queue_name AND j.unique_key = enqueue.unique_key
        AND j.status IN ('pending', 'running');
      IF FOUND THEN
        RETURN new_id;  -- the existing job; nothing new is created
      END IF;
      -- It finished between our insert and our look-up: try again.
    END LOOP;
  END IF;

  INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at) VALUES (new_id, queue_name, 1, due);
  IF NOT q_paused THEN
    PERFORM taskq._wake_publisher_at_commit();  -- a paused queue's jobs wait for resume_queue's wake-up
  END IF;
  RETURN new_id;
END;
$$;
COMMENT ON FUNCTION taskq.enqueue(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb, uuid[], text) IS
  'adds a job to a queue in the caller''s transaction and returns its id; it is published to RabbitMQ once that transaction commits';

CREATE FUNCTION taskq.enqueue_many(
  queue_name text,
  payloads jsonb,
  task text DEFAULT NULL,
  run_at timestamptz DEFAULT NULL,
  delay interval DEFAULT NULL,
  priority int DEFAULT 0,
  max_attempts int DEFAULT NULL,
  callback_url text DEFAULT NULL,
  unique_key text DEFAULT NULL,
  headers jsonb DEFAULT NULL,
  depends_on uuid[] DEFAULT NULL,
  concurrency_key text DEFAULT NULL
) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  q_max_attempts int;
  q_delivery_delay interval;
  q_paused boolean;
  due timestamptz;
  element jsonb;
BEGIN
  SELECT q.max_attempts, q.delivery_delay, q.paused INTO q_max_attempts, q_delivery_delay, q_paused
  FROM taskq.queues q WHERE q.queue_name = enqueue_many.queue_name;
  IF NOT FOUND THEN
    PERFORM taskq._check_queue_name(queue_name);
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  IF payloads IS NULL THEN
    RAISE EXCEPTION 'payloads must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF jsonb_typeof(payloads) <> 'array' THEN
    RAISE EXCEPTION 'payloads must be a JSON array, not %', jsonb_typeof(payloads)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'one job is created per array element';
  END IF;
  IF jsonb_array_length(payloads) > 100000 THEN
    RAISE EXCEPTION 'payloads has % elements; at most 100000 per call', jsonb_array_length(payloads)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM taskq._check_job_options(task, run_at, delay, priority, max_attempts, callback_url, unique_key, headers);
  IF depends_on IS NOT NULL OR concurrency_key IS NOT NULL THEN
    PERFORM taskq._reject_unfinished_options(depends_on, concurrency_key);
  END IF;
  IF EXISTS (SELECT 1 FROM jsonb_array_elements(payloads) e(value) WHERE pg_column_size(e.value) > taskq._max_document_bytes()) THEN
    RAISE EXCEPTION 'a payload in payloads is too large'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = format('the limit is %s bytes per payload', taskq._max_document_bytes());
  END IF;

  IF unique_key IS NOT NULL THEN
    -- Every element shares the key: the first creates the job, the others
    -- get its id (the same rule as enqueue). Rare, so no set-wise path.
    FOR element IN SELECT e.value FROM jsonb_array_elements(payloads) e(value) LOOP
      RETURN NEXT taskq.enqueue(queue_name, element, task, run_at, delay, priority, max_attempts,
                                callback_url, unique_key, headers, depends_on, concurrency_key);
    END LOOP;
    RETURN;
  END IF;

  due := greatest(coalesce(run_at, now() + coalesce(delay, interval '0')), now()) + q_delivery_delay;
  max_attempts := coalesce(max_attempts, q_max_attempts);

  -- Set-wise: ids are generated in array order (the ordered subquery feeds
  -- the id generator), so sorting by id returns them in array order.
  RETURN QUERY
  WITH new_jobs AS (
    INSERT INTO taskq.jobs (id, queue_name, task, payload, priority, max_attempts, attempt_budget, run_at,
                            callback_url, headers)
    SELECT taskq._uuid_v7(), enqueue_many.queue_name, enqueue_many.task, ordered.value, enqueue_many.priority,
           enqueue_many.max_attempts, enqueue_many.max_attempts, due, enqueue_many.callback_url, enqueue_many.headers
    FROM (SELECT e.value FROM jsonb_array_elements(payloads) WITH ORDINALITY e(value, ord) ORDER BY e.ord) ordered
    RETURNING id
  ), new_outbox AS (
    INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
    SELECT new_jobs.id, enqueue_many.queue_name, 1, due FROM new_jobs
  )
  SELECT new_jobs.id FROM new_jobs ORDER BY new_jobs.id;
  IF NOT q_paused THEN
    PERFORM taskq._wake_publisher_at_commit();
  END IF;
END;
$$;
COMMENT ON FUNCTION taskq.enqueue_many(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb, uuid[], text) IS
  'adds one job per element of the JSON array payloads, set-wise; returns the ids in array order';

REVOKE ALL ON FUNCTION
  taskq._reject_unfinished_options(uuid[], text),
  taskq.enqueue(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb, uuid[], text),
  taskq.enqueue_many(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb, uuid[], text)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  taskq.enqueue(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb, uuid[], text),
  taskq.enqueue_many(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb, uuid[], text)
  TO taskq_producer;

DROP VIEW taskq.queue_stats;
CREATE VIEW taskq.queue_stats AS
SELECT q.queue_name,
       q.paused,
       -- 'waiting' is the only status that sorts before 'pending'. Written
       -- as a comparison because the 0.2.0 upgrade adds the enum value in
       -- the transaction that makes this view, and PostgreSQL refuses to
       -- name a value added in the same transaction.
       count(j.id) FILTER (WHERE j.status < 'pending')   AS waiting,
       count(j.id) FILTER (WHERE j.status = 'pending')   AS pending,
       count(j.id) FILTER (WHERE j.status = 'running')   AS running,
       count(j.id) FILTER (WHERE j.status = 'completed') AS completed,
       count(j.id) FILTER (WHERE j.status = 'failed')    AS failed,
       count(j.id) FILTER (WHERE j.status = 'cancelled') AS cancelled,
       count(j.id) FILTER (WHERE j.status = 'pending' AND j.run_at > now()) AS scheduled,
       now() - min(j.run_at) FILTER (WHERE j.status = 'pending' AND j.run_at <= now()) AS oldest_pending_age,
       (SELECT count(*) FROM taskq.outbox o WHERE o.queue_name = q.queue_name) AS outbox_backlog
FROM taskq.queues q
LEFT JOIN taskq.jobs j ON j.queue_name = q.queue_name
GROUP BY q.queue_name, q.paused;
COMMENT ON VIEW taskq.queue_stats IS
  'per queue: jobs per status (waiting: dependencies not all completed), jobs scheduled for later, age of the oldest due pending job, outbox rows not yet confirmed by RabbitMQ';
REVOKE ALL ON taskq.queue_stats FROM PUBLIC;
GRANT SELECT ON taskq.queue_stats TO taskq_producer;
-- == taskq-web dashboard: job lists and statistics from indexes ==
-- 00_tables: jobs_finished also carries status (per-minute counts of
-- finished jobs index-only); jobs_list for a queue's jobs of one status,
-- newest first, and for the counts of queue_stats. Building them reads the
-- whole table under a lock that holds up writes to it (seconds per million
-- jobs; docs/upgrading.md).
DROP INDEX taskq.jobs_finished;
CREATE INDEX jobs_finished ON taskq.jobs (queue_name, finished_at) INCLUDE (status)
  WHERE status IN ('completed', 'failed', 'cancelled');
CREATE INDEX jobs_list ON taskq.jobs (queue_name, status, id) WHERE status <> 'pending';

-- 70_maintenance: queue_stats counted from those indexes, queue by queue
-- (same columns, same order).
CREATE OR REPLACE VIEW taskq.queue_stats AS
SELECT q.queue_name,
       q.paused,
       f.waiting,
       p.pending,
       f.running,
       f.completed,
       f.failed,
       f.cancelled,
       p.scheduled,
       p.oldest_pending_age,
       (SELECT count(*) FROM taskq.outbox o WHERE o.queue_name = q.queue_name) AS outbox_backlog
FROM taskq.queues q
CROSS JOIN LATERAL (
  SELECT count(*) AS pending,
         count(*) FILTER (WHERE j.run_at > now()) AS scheduled,
         now() - min(j.run_at) FILTER (WHERE j.run_at <= now()) AS oldest_pending_age
  FROM taskq.jobs j
  WHERE j.queue_name = q.queue_name AND j.status = 'pending'
) p
CROSS JOIN LATERAL (
  -- 'waiting' is the only status that sorts before 'pending'. Written as
  -- a comparison because the 0.2.0 upgrade adds the enum value in the
  -- transaction that makes this view, and PostgreSQL refuses to name a
  -- value added in the same transaction.
  SELECT count(*) FILTER (WHERE j.status < 'pending')   AS waiting,
         count(*) FILTER (WHERE j.status = 'running')   AS running,
         count(*) FILTER (WHERE j.status = 'completed') AS completed,
         count(*) FILTER (WHERE j.status = 'failed')    AS failed,
         count(*) FILTER (WHERE j.status = 'cancelled') AS cancelled
  FROM taskq.jobs j
  WHERE j.queue_name = q.queue_name AND j.status <> 'pending'
) f;

-- 95_privileges: a job's callbacks and their delivery state.
GRANT SELECT ON taskq.callbacks TO taskq_producer;

-- == trace context ==
-- Trace context (00_tables, 10_validation, 30_enqueue, 40_transitions): a
-- job carries the W3C traceparent/tracestate of its producer in its headers,
-- from the headers argument or from the session settings taskq.traceparent
-- and taskq.tracestate (defined by taskq.so), checked by the core's parser
-- (taskq._traceparent_problem, _tracestate_problem; invalid values are
-- dropped with a warning by taskq._trace_headers). enqueue and enqueue_many
-- call it only when a trace context is there (their bodies as in sql/src,
-- same signature). taskq.callbacks gains the job's traceparent and
-- tracestate (nullable, no rewrite), written by _write_callback and sent as
-- headers of the POST.

ALTER TABLE taskq.callbacks ADD COLUMN traceparent text, ADD COLUMN tracestate text;

CREATE FUNCTION taskq._traceparent_problem(value text) RETURNS text
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskq_traceparent_problem';
COMMENT ON FUNCTION taskq._traceparent_problem(text) IS
  'why value is not a valid W3C traceparent, or NULL when it is one';

CREATE FUNCTION taskq._tracestate_problem(value text) RETURNS text
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskq_tracestate_problem';
COMMENT ON FUNCTION taskq._tracestate_problem(text) IS
  'why value is not a valid W3C tracestate, or NULL when it is one';

REVOKE ALL ON FUNCTION taskq._traceparent_problem(text), taskq._tracestate_problem(text) FROM PUBLIC;

CREATE FUNCTION taskq._trace_headers(headers jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  given_parent text := nullif(headers->>'traceparent', '');
  given_state text := nullif(headers->>'tracestate', '');
  setting_parent text := nullif(current_setting('taskq.traceparent', true), '');
  parent text;
  state text;
  problem text;
  traced jsonb := coalesce(headers, '{}') - 'traceparent' - 'tracestate';
BEGIN
  IF given_parent IS NOT NULL THEN
    problem := taskq._traceparent_problem(given_parent);
    IF problem IS NULL THEN
      parent := given_parent;
      state := given_state;
    ELSE
      RAISE WARNING 'traceparent header "%" dropped: %', left(given_parent, 80), problem
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'a W3C traceparent looks like 00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>, lowercase; the job is enqueued without it';
    END IF;
  ELSIF given_state IS NOT NULL THEN
    RAISE WARNING 'tracestate header dropped: it needs a traceparent header beside it'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF parent IS NULL AND setting_parent IS NOT NULL THEN
    problem := taskq._traceparent_problem(setting_parent);
    IF problem IS NULL THEN
      parent := setting_parent;
      state := nullif(current_setting('taskq.tracestate', true), '');
    ELSE
      RAISE WARNING 'taskq.traceparent "%" ignored: %', left(setting_parent, 80), problem
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'a W3C traceparent looks like 00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>, lowercase; the job is enqueued without it';
    END IF;
  END IF;
  IF state IS NOT NULL THEN
    problem := taskq._tracestate_problem(state);
    IF problem IS NOT NULL THEN
      RAISE WARNING 'tracestate dropped: %', problem
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'a W3C tracestate is up to 32 comma-separated key=value members; the traceparent is kept';
      state := NULL;
    END IF;
  END IF;
  IF parent IS NOT NULL THEN
    traced := traced || jsonb_build_object('traceparent', parent);
    IF state IS NOT NULL THEN
      traced := traced || jsonb_build_object('tracestate', state);
    END IF;
  END IF;
  IF headers IS NULL AND traced = '{}' THEN
    RETURN NULL;  -- nothing given, nothing valid: as if no headers were passed
  END IF;
  RETURN traced;
END;
$$;
COMMENT ON FUNCTION taskq._trace_headers(jsonb) IS
  'internal (enqueue): headers with the job''s trace context: traceparent/tracestate of headers, else of the taskq.traceparent/taskq.tracestate settings; invalid values dropped with a warning';

REVOKE ALL ON FUNCTION taskq._trace_headers(jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION taskq.enqueue(
  queue_name text,
  payload jsonb DEFAULT '{}',
  task text DEFAULT NULL,
  run_at timestamptz DEFAULT NULL,
  delay interval DEFAULT NULL,
  priority int DEFAULT 0,
  max_attempts int DEFAULT NULL,
  callback_url text DEFAULT NULL,
  unique_key text DEFAULT NULL,
  headers jsonb DEFAULT NULL,
  depends_on uuid[] DEFAULT NULL,
  concurrency_key text DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  q_max_attempts int;
  q_delivery_delay interval;
  q_paused boolean;
  due timestamptz;
  new_id uuid;
BEGIN
  SELECT q.max_attempts, q.delivery_delay, q.paused INTO q_max_attempts, q_delivery_delay, q_paused
  FROM taskq.queues q WHERE q.queue_name = enqueue.queue_name;
  IF NOT FOUND THEN
    PERFORM taskq._check_queue_name(queue_name);  -- a malformed name gets the more precise error
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  IF payload IS NULL THEN
    RAISE EXCEPTION 'payload must not be null' USING ERRCODE = 'null_value_not_allowed', HINT = 'use ''{}'' for no payload';
  END IF;
  -- The checks are called only when there is something to check: each call
  -- of a function with a pinned search_path saves and restores settings,
  -- which costs more than the whole insert on this path.
  IF pg_column_size(payload) > taskq._max_document_bytes() THEN
    PERFORM taskq._check_document(payload, 'payload');
  END IF;
  IF task IS NOT NULL OR run_at IS NOT NULL OR delay IS NOT NULL OR priority IS DISTINCT FROM 0
     OR max_attempts IS NOT NULL OR callback_url IS NOT NULL OR unique_key IS NOT NULL OR headers IS NOT NULL THEN
    PERFORM taskq._check_job_options(task, run_at, delay, priority, max_attempts, callback_url, unique_key, headers);
  END IF;
  IF depends_on IS NOT NULL OR concurrency_key IS NOT NULL THEN
    PERFORM taskq._reject_unfinished_options(depends_on, concurrency_key);
  END IF;
  -- The trace context: looked at only when there is one (a trace header or
  -- the session setting), so a job without pays one setting look-up.
  IF headers ?| ARRAY['traceparent', 'tracestate'] OR current_setting('taskq.traceparent', true) <> '' THEN
    headers := taskq._trace_headers(headers);
  END IF;

  due := greatest(coalesce(run_at, now() + coalesce(delay, interval '0')), now()) + q_delivery_delay;
  max_attempts := coalesce(max_attempts, q_max_attempts);

  IF unique_key IS NULL THEN
    new_id := taskq._uuid_v7();
    INSERT INTO taskq.jobs (id, queue_name, task, payload, priority, max_attempts, attempt_budget, run_at,
                            callback_url, headers)
    VALUES (new_id, queue_name, task, payload, priority, max_attempts, max_attempts, due, callback_url, headers);
  ELSE
    -- Dedup that holds under concurrency: the partial unique index decides;
    -- a concurrent enqueue of the same key waits for ours and then sees it.
    LOOP
      INSERT INTO taskq.jobs AS j (id, queue_name, task, payload, priority, max_attempts, attempt_budget, run_at,
                                   callback_url, unique_key, headers)
      VALUES (taskq._uuid_v7(), queue_name, task, payload, priority, max_attempts, max_attempts, due,
              callback_url, unique_key, headers)
      ON CONFLICT (queue_name, unique_key) WHERE unique_key IS NOT NULL AND status IN ('pending', 'running')
      DO NOTHING
      RETURNING j.id INTO new_id;
      EXIT WHEN new_id IS NOT NULL;
      SELECT j.id INTO new_id FROM taskq.jobs j
      WHERE j.queue_name = enqueue.queue_name AND j.unique_key = enqueue.unique_key
        AND j.status IN ('pending', 'running');
      IF FOUND THEN
        RETURN new_id;  -- the existing job; nothing new is created
      END IF;
      -- It finished between our insert and our look-up: try again.
    END LOOP;
  END IF;

  INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at) VALUES (new_id, queue_name, 1, due);
  IF NOT q_paused THEN
    PERFORM taskq._wake_publisher_at_commit();  -- a paused queue's jobs wait for resume_queue's wake-up
  END IF;
  RETURN new_id;
END;
$$;

CREATE OR REPLACE FUNCTION taskq.enqueue_many(
  queue_name text,
  payloads jsonb,
  task text DEFAULT NULL,
  run_at timestamptz DEFAULT NULL,
  delay interval DEFAULT NULL,
  priority int DEFAULT 0,
  max_attempts int DEFAULT NULL,
  callback_url text DEFAULT NULL,
  unique_key text DEFAULT NULL,
  headers jsonb DEFAULT NULL,
  depends_on uuid[] DEFAULT NULL,
  concurrency_key text DEFAULT NULL
) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  q_max_attempts int;
  q_delivery_delay interval;
  q_paused boolean;
  due timestamptz;
  element jsonb;
BEGIN
  SELECT q.max_attempts, q.delivery_delay, q.paused INTO q_max_attempts, q_delivery_delay, q_paused
  FROM taskq.queues q WHERE q.queue_name = enqueue_many.queue_name;
  IF NOT FOUND THEN
    PERFORM taskq._check_queue_name(queue_name);
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  IF payloads IS NULL THEN
    RAISE EXCEPTION 'payloads must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF jsonb_typeof(payloads) <> 'array' THEN
    RAISE EXCEPTION 'payloads must be a JSON array, not %', jsonb_typeof(payloads)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'one job is created per array element';
  END IF;
  IF jsonb_array_length(payloads) > 100000 THEN
    RAISE EXCEPTION 'payloads has % elements; at most 100000 per call', jsonb_array_length(payloads)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM taskq._check_job_options(task, run_at, delay, priority, max_attempts, callback_url, unique_key, headers);
  IF depends_on IS NOT NULL OR concurrency_key IS NOT NULL THEN
    PERFORM taskq._reject_unfinished_options(depends_on, concurrency_key);
  END IF;
  -- The trace context, as in enqueue: one for all the jobs of the call.
  IF headers ?| ARRAY['traceparent', 'tracestate'] OR current_setting('taskq.traceparent', true) <> '' THEN
    headers := taskq._trace_headers(headers);
  END IF;
  IF EXISTS (SELECT 1 FROM jsonb_array_elements(payloads) e(value) WHERE pg_column_size(e.value) > taskq._max_document_bytes()) THEN
    RAISE EXCEPTION 'a payload in payloads is too large'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = format('the limit is %s bytes per payload', taskq._max_document_bytes());
  END IF;

  IF unique_key IS NOT NULL THEN
    -- Every element shares the key: the first creates the job, the others
    -- get its id (the same rule as enqueue). Rare, so no set-wise path.
    FOR element IN SELECT e.value FROM jsonb_array_elements(payloads) e(value) LOOP
      RETURN NEXT taskq.enqueue(queue_name, element, task, run_at, delay, priority, max_attempts,
                                callback_url, unique_key, headers, depends_on, concurrency_key);
    END LOOP;
    RETURN;
  END IF;

  due := greatest(coalesce(run_at, now() + coalesce(delay, interval '0')), now()) + q_delivery_delay;
  max_attempts := coalesce(max_attempts, q_max_attempts);

  -- Set-wise: ids are generated in array order (the ordered subquery feeds
  -- the id generator), so sorting by id returns them in array order.
  RETURN QUERY
  WITH new_jobs AS (
    INSERT INTO taskq.jobs (id, queue_name, task, payload, priority, max_attempts, attempt_budget, run_at,
                            callback_url, headers)
    SELECT taskq._uuid_v7(), enqueue_many.queue_name, enqueue_many.task, ordered.value, enqueue_many.priority,
           enqueue_many.max_attempts, enqueue_many.max_attempts, due, enqueue_many.callback_url, enqueue_many.headers
    FROM (SELECT e.value FROM jsonb_array_elements(payloads) WITH ORDINALITY e(value, ord) ORDER BY e.ord) ordered
    RETURNING id
  ), new_outbox AS (
    INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
    SELECT new_jobs.id, enqueue_many.queue_name, 1, due FROM new_jobs
  )
  SELECT new_jobs.id FROM new_jobs ORDER BY new_jobs.id;
  IF NOT q_paused THEN
    PERFORM taskq._wake_publisher_at_commit();
  END IF;
END;
$$;

CREATE OR REPLACE FUNCTION taskq._write_callback(j taskq.jobs) RETURNS void
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

-- == Waiting for a result ==
-- 48_wait (new file): taskq.wait() and its C helpers; the signal
-- taskq._wake_waiters_at_commit(uuid[]). 40_transitions, 45_worker_batches:
-- every path that ends a job wakes its waiters at commit (complete,
-- _complete_batch, cancel of a pending job, _fail_attempt when it ends the
-- job: fail, _give_back, rescue_expired). 95_privileges: taskq_producer may
-- wait; the helpers are the owner's.

-- Every path that ends a job (completed, failed, cancelled) calls this in
-- the transaction that ends it, with the ids it ended: complete,
-- _complete_batch, _fail_attempt (fail, _give_back, rescue_expired), cancel.
-- It only marks slots in backend memory; the broadcast happens at commit,
-- and costs one atomic read when nobody waits.
CREATE FUNCTION taskq._wake_waiters_at_commit(job_ids uuid[]) RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskq_wake_waiters_at_commit';
COMMENT ON FUNCTION taskq._wake_waiters_at_commit(uuid[]) IS
  'wakes the backends in taskq.wait() for these jobs when the current transaction commits; every path that ends a job calls it';

CREATE FUNCTION taskq._wait_prepare(job_id uuid) RETURNS void
  LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'taskq_wait_prepare';
COMMENT ON FUNCTION taskq._wait_prepare(uuid) IS
  'internal (taskq.wait): counts this backend as a waiter and joins the wake-up list of the job''s slot, before it looks at the job';

CREATE FUNCTION taskq._wait_sleep(job_id uuid, deadline timestamptz) RETURNS void
  LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'taskq_wait_sleep';
COMMENT ON FUNCTION taskq._wait_sleep(uuid, timestamptz) IS
  'internal (taskq.wait): sleeps until a finish in the job''s slot commits, the deadline passes or the statement is interrupted';

CREATE FUNCTION taskq._wait_done() RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskq_wait_done';
COMMENT ON FUNCTION taskq._wait_done() IS
  'internal (taskq.wait): leaves the wake-up list and stops counting this backend as a waiter';

CREATE FUNCTION taskq._written_by_this_transaction(row_xmin xid) RETURNS boolean
  LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'taskq_written_by_this_transaction';
COMMENT ON FUNCTION taskq._written_by_this_transaction(xid) IS
  'internal (taskq.wait): whether a row version with this xmin was written by the current transaction or one of its subtransactions';

-- READ COMMITTED only: each look below takes a fresh snapshot, so it sees
-- a finish as soon as it commits. A REPEATABLE READ or SERIALIZABLE
-- transaction keeps one snapshot, which would never show the finish; such
-- a waiter gets the job at once if its snapshot shows it finished, and an
-- error otherwise rather than a sleep that could only time out. So does a
-- waiter whose own transaction wrote the job (enqueued it, say): nobody can
-- finish it before that transaction commits.
CREATE FUNCTION taskq.wait(job_id uuid, timeout interval DEFAULT '30 seconds') RETURNS taskq.jobs
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j taskq.jobs;
  -- A longer wait than 1000 years is the same as one of 1000 years (and
  -- would overflow timestamptz).
  deadline timestamptz := clock_timestamp() + least(timeout, interval '1000 years');
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  PERFORM taskq._require(timeout, 'timeout');
  IF timeout < interval '0' THEN
    RAISE EXCEPTION 'timeout must not be negative, not %', timeout USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO j FROM taskq.jobs t WHERE t.id = wait.job_id;
  IF NOT FOUND THEN
    PERFORM taskq._raise_unknown_job(job_id);
  END IF;
  IF j.status IN ('completed', 'failed', 'cancelled') OR timeout = interval '0' THEN
    RETURN j;
  END IF;
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'taskq.wait needs a READ COMMITTED transaction: the snapshot of this % transaction never shows the job finish',
                    upper(current_setting('transaction_isolation'))
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'call it outside a transaction block, or in a READ COMMITTED transaction';
  END IF;
  IF pg_catalog.pg_is_in_recovery() THEN
    RAISE EXCEPTION 'taskq.wait cannot wait on a standby: jobs finish on the primary, which wakes only its own waiters'
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'call it on the primary';
  END IF;
  IF (SELECT taskq._written_by_this_transaction(t.xmin) FROM taskq.jobs t WHERE t.id = wait.job_id) THEN
    RAISE EXCEPTION 'job % was enqueued or changed by this transaction, so it cannot finish before this transaction ends', job_id
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'commit first, then call taskq.wait (psql commits each statement on its own outside BEGIN ... COMMIT)';
  END IF;

  -- On the list before the first look: a finish that commits after the
  -- look's snapshot wakes the sleep that follows it.
  PERFORM taskq._wait_prepare(job_id);
  LOOP
    SELECT * INTO j FROM taskq.jobs t WHERE t.id = wait.job_id;
    IF NOT FOUND THEN  -- deleted meanwhile (drop_queue with force)
      PERFORM taskq._wait_done();
      PERFORM taskq._raise_unknown_job(job_id);
    END IF;
    EXIT WHEN j.status IN ('completed', 'failed', 'cancelled') OR clock_timestamp() >= deadline;
    PERFORM taskq._wait_sleep(job_id, deadline);
  END LOOP;
  PERFORM taskq._wait_done();
  RETURN j;
END;
$$;
COMMENT ON FUNCTION taskq.wait(uuid, interval) IS
  'waits until the job is completed, failed or cancelled and returns it; after timeout returns it as it is; READ COMMITTED only; the enqueue must have committed';
REVOKE ALL ON FUNCTION
  taskq._wake_waiters_at_commit(uuid[]),
  taskq._wait_prepare(uuid),
  taskq._wait_sleep(uuid, timestamptz),
  taskq._wait_done(),
  taskq._written_by_this_transaction(xid),
  taskq.wait(uuid, interval)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION taskq.wait(uuid, interval) TO taskq_producer;

CREATE OR REPLACE FUNCTION taskq._fail_attempt(j taskq.jobs, error text, retry_in interval, permanent boolean)
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
  END IF;
  RETURN j.status;
END;
$$;

CREATE OR REPLACE FUNCTION taskq.complete(job_id uuid, attempt int, result jsonb DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  done taskq.jobs;
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  PERFORM taskq._require(attempt, 'attempt');
  PERFORM taskq._check_document(result, 'result');
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
  RETURN true;
END;
$$;

CREATE OR REPLACE FUNCTION taskq.cancel(job_id uuid) RETURNS taskq.jobs
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j taskq.jobs;
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  SELECT * INTO j FROM taskq.jobs WHERE id = cancel.job_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM taskq._raise_unknown_job(job_id);
  END IF;
  IF j.status = 'pending' THEN
    -- Its outbox row, if any, is dropped by the publisher's next claim.
    UPDATE taskq.jobs SET status = 'cancelled', finished_at = now(), failed_attempt = NULL, updated_at = now()
    WHERE id = j.id RETURNING * INTO j;
    PERFORM taskq._write_callback(j);
    PERFORM taskq._wake_waiters_at_commit(ARRAY[j.id]);
  ELSIF j.status = 'running' THEN
    -- The worker learns it from heartbeat() = false and ends it with fail().
    UPDATE taskq.jobs SET cancel_requested = true, updated_at = now() WHERE id = j.id RETURNING * INTO j;
  ELSE
    RAISE EXCEPTION 'job % is already %', job_id, j.status USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  RETURN j;
END;
$$;

CREATE OR REPLACE FUNCTION taskq._complete_batch(items jsonb) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  done taskq.jobs;
  completed uuid[] := '{}';
BEGIN
  PERFORM taskq._check_batch(items);
  -- The same limit as taskq.complete; the whole batch is refused, and the
  -- worker then records its items one by one to find the culprit.
  IF EXISTS (SELECT 1 FROM jsonb_to_recordset(items) AS i(result jsonb)
             WHERE pg_column_size(i.result) > taskq._max_document_bytes()) THEN
    RAISE EXCEPTION 'a result in the batch is too large'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = format('the limit is %s bytes per result', taskq._max_document_bytes());
  END IF;
  FOR done IN
    WITH wanted AS (
      SELECT DISTINCT ON (i.id) i.id, i.attempt, i.result
      FROM jsonb_to_recordset(items) AS i(id uuid, attempt int, result jsonb)
      ORDER BY i.id, i.attempt
    )
    UPDATE taskq.jobs j SET status = 'completed', result = w.result, finished_at = now(),
                            lease_expires_at = NULL, updated_at = now()
    FROM wanted w
    WHERE j.id = w.id AND j.status = 'running' AND j.attempts = w.attempt
    RETURNING j.*
  LOOP
    IF done.callback_url IS NOT NULL THEN
      PERFORM taskq._write_callback(done);
    END IF;
    completed := completed || done.id;
    RETURN NEXT done.id;
  END LOOP;
  -- One call for the batch, not one per job: the complete path stays cheap.
  IF cardinality(completed) > 0 THEN
    PERFORM taskq._wake_waiters_at_commit(completed);
  END IF;
  -- Items that did not complete now may be repeats of a batch that
  -- completed them (as in taskq.complete): they count again, nothing is
  -- written. Looked up only when some item did not act, which is rare.
  IF cardinality(completed) < jsonb_array_length(items) THEN
    RETURN QUERY
    SELECT j.id
    FROM (SELECT DISTINCT i.id, i.attempt FROM jsonb_to_recordset(items) AS i(id uuid, attempt int)) w
    JOIN taskq.jobs j ON j.id = w.id
    WHERE j.status = 'completed' AND j.attempts = w.attempt AND j.id <> ALL (completed);
  END IF;
END;
$$;

-- =========================================================================
-- == Dependencies and workflows ==
-- (00_tables, 20_queues, 30_enqueue, 35_dependencies, 36_workflows,
-- 40_transitions, 45_worker_batches, 50_outbox, 70_maintenance,
-- 95_privileges) depends_on, the release of waiting jobs by their last
-- dependency's completion and the cascading cancel; enqueue_workflow;
-- complete's follow-up jobs (a new argument: dropped and created again,
-- with its grant); the message body's "depends_on". taskq.jobs gains two
-- internal columns (no rewrite: a NULL column and a constant default), so
-- taskq.job (SELECT *) is created again; jobs_unique_key counts waiting
-- jobs as unfinished (built again: it reads the jobs table once).
-- 'waiting' is named only inside PL/pgSQL bodies (see the section above).

ALTER TABLE taskq.jobs ADD COLUMN dependencies_left integer,
                       ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;

DROP INDEX taskq.jobs_unique_key;
CREATE UNIQUE INDEX jobs_unique_key ON taskq.jobs (queue_name, unique_key)
  WHERE unique_key IS NOT NULL AND status < 'completed';

CREATE TABLE taskq.job_dependencies (
  job_id            uuid NOT NULL,
  depends_on_job_id uuid NOT NULL,
  satisfied         boolean NOT NULL DEFAULT false,
  cancelled_job     boolean NOT NULL DEFAULT false,
  PRIMARY KEY (job_id, depends_on_job_id)
);
CREATE INDEX job_dependencies_dependents ON taskq.job_dependencies (depends_on_job_id, job_id);
COMMENT ON TABLE taskq.job_dependencies IS
  'dependency edges: job_id is not published before depends_on_job_id completed; satisfied once it did';
SELECT pg_catalog.pg_extension_config_dump('taskq.job_dependencies', '');
REVOKE ALL ON taskq.job_dependencies FROM PUBLIC;
GRANT SELECT ON taskq.job_dependencies TO taskq_producer, taskq_worker;

CREATE FUNCTION taskq._dependency_ids(job_id uuid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp SET enable_seqscan = off
RETURN (SELECT coalesce(json_agg(e.depends_on_job_id ORDER BY e.depends_on_job_id)::text, '[]')
        FROM taskq.job_dependencies e WHERE e.job_id = _dependency_ids.job_id);
COMMENT ON FUNCTION taskq._dependency_ids(uuid) IS
  'internal (publisher): the jobs a job depends on, as the JSON array of its message''s "depends_on"';

CREATE FUNCTION taskq._forget_dependencies(job_ids uuid[]) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off
BEGIN ATOMIC
  DELETE FROM taskq.job_dependencies e WHERE e.job_id = ANY (job_ids);
END;
COMMENT ON FUNCTION taskq._forget_dependencies(uuid[]) IS
  'internal (purge_finished): deletes the dependency edges of these (purged) jobs';

CREATE FUNCTION taskq._max_dependencies() RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN 100000;

CREATE FUNCTION taskq._lock_dependencies(depends_on uuid[], OUT unfinished uuid[], OUT completed uuid[])
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  read_committed boolean := current_setting('transaction_isolation') = 'read committed';
  dep uuid;
  dep_status taskq.job_status;
  flagged boolean;
BEGIN
  unfinished := '{}';
  completed := '{}';
  IF array_ndims(depends_on) > 1 THEN
    RAISE EXCEPTION 'depends_on must be a one-dimensional array of job ids' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF array_position(depends_on, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'depends_on must not contain nulls' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF cardinality(depends_on) > taskq._max_dependencies() THEN
    RAISE EXCEPTION 'depends_on has % elements; at most % per job', cardinality(depends_on), taskq._max_dependencies()
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- One job at a time, in id order: each lock is taken in the order every
  -- other path takes them (a set-wise lock would not keep the order between
  -- the rows it updates and the rows it only locks).
  FOR dep IN SELECT DISTINCT d.id FROM unnest(depends_on) d(id) ORDER BY d.id LOOP
    SELECT j.status, j.has_dependents INTO dep_status, flagged FROM taskq.jobs j WHERE j.id = dep;
    -- Completed is final for a dependency: a later retry does not undo it.
    IF FOUND AND dep_status <> 'completed' THEN
      IF NOT flagged THEN
        -- (At READ COMMITTED an UPDATE acts on the row's latest version.)
        UPDATE taskq.jobs j SET has_dependents = true WHERE j.id = dep RETURNING j.status INTO dep_status;
      ELSIF read_committed THEN
        -- A KEY SHARE lock is granted on the version the statement saw, even
        -- after waiting for a finish that changed it: read the status again,
        -- in a statement of its own, once the lock is held.
        PERFORM 1 FROM taskq.jobs j WHERE j.id = dep FOR KEY SHARE;
        SELECT j.status INTO dep_status FROM taskq.jobs j WHERE j.id = dep;
      ELSE
        -- Fails (40001) if the row changed after this transaction's snapshot.
        SELECT j.status INTO dep_status FROM taskq.jobs j WHERE j.id = dep FOR SHARE;
      END IF;
    END IF;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'dependency % does not exist', dep USING ERRCODE = 'undefined_object';
    END IF;
    IF dep_status = 'completed' THEN
      completed[cardinality(completed) + 1] := dep;
    ELSIF dep_status IN ('failed', 'cancelled') THEN
      RAISE EXCEPTION 'dependency % is %', dep, dep_status
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'a job cannot wait for a job that will not complete; retry that one first';
    ELSE
      unfinished[cardinality(unfinished) + 1] := dep;
    END IF;
  END LOOP;
END;
$$;
COMMENT ON FUNCTION taskq._lock_dependencies(uuid[]) IS
  'internal (enqueue): locks the unfinished jobs of depends_on against finishing unseen; returns them and the completed ones';

CREATE FUNCTION taskq._add_dependencies(job_ids uuid[], unfinished uuid[], completed uuid[]) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  INSERT INTO taskq.job_dependencies (job_id, depends_on_job_id, satisfied)
  SELECT j.id, d.id, d.satisfied
  FROM unnest(job_ids) j(id)
  CROSS JOIN (SELECT u.id, false AS satisfied FROM unnest(unfinished) u(id)
              UNION ALL
              SELECT c.id, true FROM unnest(completed) c(id)) d;
END;
COMMENT ON FUNCTION taskq._add_dependencies(uuid[], uuid[], uuid[]) IS
  'internal (enqueue): records that each of job_ids depends on the unfinished and the completed jobs';

CREATE FUNCTION taskq._check_read_committed() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'finishing a job that other jobs depend on needs read committed isolation, not %',
      current_setting('transaction_isolation')
      USING ERRCODE = 'feature_not_supported',
            HINT = 'call taskq.complete, fail and cancel outside REPEATABLE READ and SERIALIZABLE transactions';
  END IF;
END;
$$;

CREATE FUNCTION taskq._release_dependents(completed uuid[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  dependents uuid[];
  decrements int[];
BEGIN
  PERFORM taskq._check_read_committed();
  -- Waits for the transactions that are adding dependents to these jobs.
  PERFORM 1 FROM taskq.jobs j WHERE j.id = ANY (completed) ORDER BY j.id FOR UPDATE;
  -- Each edge is satisfied once: a dependency that completes again after a
  -- retry counts nothing more.
  WITH satisfied AS (
    UPDATE taskq.job_dependencies e SET satisfied = true
    WHERE e.depends_on_job_id = ANY (completed) AND NOT e.satisfied
    RETURNING e.job_id
  ), per_job AS (
    SELECT s.job_id, count(*)::int AS n FROM satisfied s GROUP BY s.job_id
  )
  SELECT array_agg(p.job_id ORDER BY p.job_id), array_agg(p.n ORDER BY p.job_id) INTO dependents, decrements
  FROM per_job p;
  IF dependents IS NULL THEN
    RETURN;
  END IF;
  PERFORM 1 FROM taskq.jobs j WHERE j.id = ANY (dependents) ORDER BY j.id FOR NO KEY UPDATE;
  -- A dependent that is not waiting (cancelled meanwhile) keeps its count;
  -- retry recounts its edges.
  WITH released AS (
    UPDATE taskq.jobs j
    SET dependencies_left = j.dependencies_left - d.n,
        status = CASE WHEN j.dependencies_left = d.n THEN 'pending'::taskq.job_status ELSE j.status END,
        -- Not before its dependencies completed, nor before the run_at asked for.
        run_at = CASE WHEN j.dependencies_left = d.n THEN greatest(j.run_at, now()) ELSE j.run_at END,
        updated_at = now()
    FROM unnest(dependents, decrements) d(id, n)
    WHERE j.id = d.id AND j.status = 'waiting'
    RETURNING j.id, j.queue_name, j.status, j.attempts, j.run_at
  )
  INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
  SELECT r.id, r.queue_name, r.attempts + 1, r.run_at FROM released r WHERE r.status = 'pending';
  IF FOUND THEN
    PERFORM taskq._wake_publisher_at_commit();
  END IF;
END;
$$;
COMMENT ON FUNCTION taskq._release_dependents(uuid[]) IS
  'internal (complete): counts the completion of these jobs for the jobs waiting for them; publishes those that wait for nothing more';

CREATE FUNCTION taskq._cancel_dependents(job_id uuid, what text) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  root_cause text := format('dependency %s %s', job_id, what);
  frontier uuid[] := ARRAY[job_id];
  doomed uuid[];
  causes uuid[];
  cancelled uuid[];
  c taskq.jobs;
  total int := 0;
BEGIN
  PERFORM taskq._check_read_committed();
  -- (Callers hold it already; this waits for enqueues adding dependents.)
  PERFORM 1 FROM taskq.jobs j WHERE j.id = _cancel_dependents.job_id FOR UPDATE;
  LOOP
    -- The waiting jobs that wait for the frontier, each with one job of the
    -- frontier it waits for.
    SELECT array_agg(w.job_id ORDER BY w.job_id), array_agg(w.cause ORDER BY w.job_id) INTO doomed, causes
    FROM (SELECT e.job_id, min(e.depends_on_job_id::text)::uuid AS cause
          FROM taskq.job_dependencies e
          WHERE e.depends_on_job_id = ANY (frontier) AND NOT e.satisfied
          GROUP BY e.job_id) w;
    EXIT WHEN doomed IS NULL;
    -- FOR UPDATE: also waits for enqueues adding dependents to them.
    PERFORM 1 FROM taskq.jobs j WHERE j.id = ANY (doomed) ORDER BY j.id FOR UPDATE;
    frontier := '{}';
    cancelled := '{}';
    FOR c IN
      UPDATE taskq.jobs j
      SET status = 'cancelled', finished_at = now(), updated_at = now(),
          last_error = CASE WHEN d.cause = _cancel_dependents.job_id THEN root_cause
                            ELSE format('dependency %s was cancelled (%s)', d.cause, root_cause) END
      FROM unnest(doomed, causes) d(id, cause)
      WHERE j.id = d.id AND j.status = 'waiting'
      RETURNING j.*
    LOOP
      -- The job is finished (cancelled): what every finish does.
      PERFORM taskq._write_callback(c);
      cancelled := cancelled || c.id;
      IF c.has_dependents THEN
        frontier := frontier || c.id;
      END IF;
    END LOOP;
    total := total + cardinality(cancelled);
    IF cardinality(cancelled) > 0 THEN
      PERFORM taskq._wake_waiters_at_commit(cancelled);
    END IF;
    UPDATE taskq.job_dependencies e SET cancelled_job = true
    FROM unnest(doomed, causes) d(id, cause)
    WHERE e.job_id = d.id AND e.depends_on_job_id = d.cause AND d.id = ANY (cancelled);
    EXIT WHEN cardinality(frontier) = 0;
  END LOOP;
  RETURN total;
END;
$$;
COMMENT ON FUNCTION taskq._cancel_dependents(uuid, text) IS
  'internal: cancels, transitively, the jobs waiting for a job that ended failed or cancelled; returns how many';

CREATE FUNCTION taskq._lock_unfinished_dependencies(job_ids uuid[], OUT bad_job uuid, OUT bad_status text,
                                                    OUT unfinished int)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  read_committed boolean := current_setting('transaction_isolation') = 'read committed';
  dep uuid;
  dep_status taskq.job_status;
BEGIN
  unfinished := 0;
  -- Edges only ever become satisfied: reading them before the locks finds
  -- at most a few more than needed.
  FOR dep IN SELECT DISTINCT e.depends_on_job_id FROM taskq.job_dependencies e
             WHERE e.job_id = ANY (job_ids) AND NOT e.satisfied ORDER BY 1 LOOP
    -- Every unfinished dependency has has_dependents set (by its first
    -- dependent). The status is read again once locked, as above.
    IF read_committed THEN
      PERFORM 1 FROM taskq.jobs j WHERE j.id = dep FOR KEY SHARE;
      SELECT j.status INTO dep_status FROM taskq.jobs j WHERE j.id = dep;
    ELSE
      SELECT j.status INTO dep_status FROM taskq.jobs j WHERE j.id = dep FOR SHARE;
    END IF;
    IF bad_job IS NULL AND (NOT FOUND OR dep_status IN ('failed', 'cancelled')) THEN
      bad_job := dep;
      bad_status := CASE WHEN FOUND THEN dep_status::text ELSE 'deleted' END;
    END IF;
    unfinished := unfinished + 1;
  END LOOP;
END;
$$;
COMMENT ON FUNCTION taskq._lock_unfinished_dependencies(uuid[]) IS
  'internal (retry): locks the unfinished dependencies of these jobs; returns one that failed, was cancelled or is gone, and how many';

CREATE FUNCTION taskq._rewait(j taskq.jobs, due timestamptz) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  left_count int;
BEGIN
  SELECT count(*)::int INTO left_count FROM taskq.job_dependencies e WHERE e.job_id = j.id AND NOT e.satisfied;
  BEGIN
    UPDATE taskq.jobs
    SET status = CASE WHEN left_count > 0 THEN 'waiting'::taskq.job_status ELSE 'pending' END,
        dependencies_left = left_count, run_at = due, max_attempts = attempts + attempt_budget,
        lease_expires_at = NULL, worker = NULL, result = NULL, finished_at = NULL, cancel_requested = false,
        failed_attempt = NULL, updated_at = now()
    WHERE id = j.id;
  EXCEPTION WHEN unique_violation THEN
    RETURN false;
  END;
  UPDATE taskq.job_dependencies e SET cancelled_job = false WHERE e.job_id = j.id AND e.cancelled_job;
  IF left_count = 0 THEN
    INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at) VALUES (j.id, j.queue_name, j.attempts + 1, due);
    PERFORM taskq._wake_publisher_at_commit();
  END IF;
  RETURN true;
END;
$$;
COMMENT ON FUNCTION taskq._rewait(taskq.jobs, timestamptz) IS
  'internal (retry): a cancelled job with dependencies waits again for those that have not completed';

CREATE FUNCTION taskq._revive_dependents(job_id uuid) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  frontier uuid[] := ARRAY[job_id];
  candidates uuid[];
  next_frontier uuid[];
  bad record;
  d taskq.jobs;
  total int := 0;
BEGIN
  LOOP
    SELECT array_agg(DISTINCT e.job_id) INTO candidates
    FROM taskq.job_dependencies e WHERE e.depends_on_job_id = ANY (frontier) AND e.cancelled_job;
    EXIT WHEN candidates IS NULL;
    -- Dependencies first, then the dependents: the order enqueue and the
    -- completions lock them in.
    PERFORM taskq._lock_unfinished_dependencies(candidates);
    next_frontier := '{}';
    FOR d IN SELECT * FROM taskq.jobs j WHERE j.id = ANY (candidates) ORDER BY j.id FOR UPDATE LOOP
      CONTINUE WHEN d.status <> 'cancelled';
      SELECT * INTO bad FROM taskq._lock_unfinished_dependencies(ARRAY[d.id]);
      IF bad.bad_job IS NOT NULL THEN
        UPDATE taskq.job_dependencies e SET cancelled_job = (e.depends_on_job_id = bad.bad_job)
        WHERE e.job_id = d.id AND (e.cancelled_job OR e.depends_on_job_id = bad.bad_job);
        UPDATE taskq.jobs j SET last_error = format('dependency %s %s', bad.bad_job,
                                                    CASE bad.bad_status WHEN 'failed' THEN 'failed'
                                                                        ELSE 'was ' || bad.bad_status END),
                                updated_at = now()
        WHERE j.id = d.id;
      ELSIF taskq._rewait(d, greatest(d.run_at, now())) THEN
        total := total + 1;
        IF d.has_dependents THEN
          next_frontier := next_frontier || d.id;
        END IF;
      END IF;
    END LOOP;
    frontier := next_frontier;
    EXIT WHEN cardinality(frontier) = 0;
  END LOOP;
  RETURN total;
END;
$$;
COMMENT ON FUNCTION taskq._revive_dependents(uuid) IS
  'internal (retry): the jobs cancelled because this job failed or was cancelled wait again, transitively; returns how many';

CREATE FUNCTION taskq._max_job_specs() RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN 10000;

CREATE FUNCTION taskq._check_job_specs(specs jsonb, what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF jsonb_typeof(specs) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION '% must be a JSON array of job specs, not %', what, coalesce(jsonb_typeof(specs), 'null')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'each element is an object with "queue" and taskq.enqueue''s arguments by name, e.g. [{"queue": "emails", "payload": {"to": "a@b.c"}}]';
  END IF;
  IF jsonb_array_length(specs) > taskq._max_job_specs() THEN
    RAISE EXCEPTION '% has % elements; at most % per call', what, jsonb_array_length(specs), taskq._max_job_specs()
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END;
$$;

CREATE FUNCTION taskq._spec_text(spec jsonb, key text, what text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF jsonb_typeof(spec -> key) IS NULL OR jsonb_typeof(spec -> key) = 'null' THEN
    RETURN NULL;
  END IF;
  IF jsonb_typeof(spec -> key) <> 'string' THEN
    RAISE EXCEPTION '%.% must be a string, not %', what, key, jsonb_typeof(spec -> key)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN spec ->> key;
END;
$$;

CREATE FUNCTION taskq._spec_int(spec jsonb, key text, what text) RETURNS int
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF jsonb_typeof(spec -> key) IS NULL OR jsonb_typeof(spec -> key) = 'null' THEN
    RETURN NULL;
  END IF;
  IF jsonb_typeof(spec -> key) <> 'number' OR (spec ->> key) !~ '^-?[0-9]{1,9}$' THEN
    RAISE EXCEPTION '%.% must be an integer, not %', what, key, left((spec -> key)::text, 40)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN (spec ->> key)::int;
END;
$$;

CREATE FUNCTION taskq._enqueue_spec(spec jsonb, what text, workflow_depends_on uuid[] DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  unknown text;
  queue text;
  spec_run_at timestamptz;
  spec_delay interval;
  spec_depends_on uuid[];
BEGIN
  IF jsonb_typeof(spec) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION '% must be a JSON object, not %', what, coalesce(jsonb_typeof(spec), 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT k INTO unknown FROM jsonb_object_keys(spec) k
  WHERE k <> ALL (ARRAY['queue', 'payload', 'task', 'run_at', 'delay', 'priority', 'max_attempts', 'callback_url',
                        'unique_key', 'headers', 'depends_on', 'concurrency_key'])
    AND NOT (k = 'name' AND workflow_depends_on IS NOT NULL)
  ORDER BY k LIMIT 1;
  IF unknown IS NOT NULL THEN
    RAISE EXCEPTION '% has an unknown member "%"', what, left(unknown, 100)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'a job spec has "queue" and any of taskq.enqueue''s arguments by name: payload, task, run_at, delay, priority, max_attempts, callback_url, unique_key, headers, depends_on, concurrency_key';
  END IF;
  queue := taskq._spec_text(spec, 'queue', what);
  IF queue IS NULL THEN
    RAISE EXCEPTION '% has no queue', what USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM taskq.queues q WHERE q.queue_name = queue) THEN
    RAISE EXCEPTION '%: queue "%" does not exist', what, left(queue, 120)
      USING ERRCODE = 'undefined_object', HINT = 'create it with taskq.create_queue()';
  END IF;
  -- Casts only of what is there: a bad value is 22023 naming the spec.
  IF spec ? 'run_at' AND jsonb_typeof(spec -> 'run_at') <> 'null' THEN
    BEGIN
      spec_run_at := taskq._spec_text(spec, 'run_at', what)::timestamptz;
    EXCEPTION WHEN data_exception THEN
      RAISE EXCEPTION '%.run_at: %', what, SQLERRM USING ERRCODE = 'invalid_parameter_value';
    END;
  END IF;
  IF spec ? 'delay' AND jsonb_typeof(spec -> 'delay') <> 'null' THEN
    BEGIN
      spec_delay := taskq._spec_text(spec, 'delay', what)::interval;
    EXCEPTION WHEN data_exception THEN
      RAISE EXCEPTION '%.delay: %', what, SQLERRM USING ERRCODE = 'invalid_parameter_value';
    END;
  END IF;
  IF workflow_depends_on IS NOT NULL THEN
    spec_depends_on := workflow_depends_on;
  ELSIF spec ? 'depends_on' AND jsonb_typeof(spec -> 'depends_on') <> 'null' THEN
    IF jsonb_typeof(spec -> 'depends_on') <> 'array'
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(spec -> 'depends_on') d
                  WHERE jsonb_typeof(d) <> 'string'
                     OR d #>> '{}' !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$') THEN
      RAISE EXCEPTION '%.depends_on must be an array of job ids', what USING ERRCODE = 'invalid_parameter_value';
    END IF;
    spec_depends_on := ARRAY(SELECT (d #>> '{}')::uuid FROM jsonb_array_elements(spec -> 'depends_on') d);
  END IF;
  RETURN taskq.enqueue(
    queue_name => queue,
    payload => coalesce(spec -> 'payload', '{}'),
    task => taskq._spec_text(spec, 'task', what),
    run_at => spec_run_at,
    delay => spec_delay,
    priority => coalesce(taskq._spec_int(spec, 'priority', what), 0),
    max_attempts => taskq._spec_int(spec, 'max_attempts', what),
    callback_url => taskq._spec_text(spec, 'callback_url', what),
    unique_key => taskq._spec_text(spec, 'unique_key', what),
    headers => CASE WHEN jsonb_typeof(spec -> 'headers') = 'null' THEN NULL ELSE spec -> 'headers' END,
    depends_on => spec_depends_on,
    concurrency_key => taskq._spec_text(spec, 'concurrency_key', what));
END;
$$;
COMMENT ON FUNCTION taskq._enqueue_spec(jsonb, text, uuid[]) IS
  'internal: enqueues the job of one job spec ({"queue": ..., enqueue arguments by name}); returns its id';

CREATE FUNCTION taskq._enqueue_specs(specs jsonb, what text) RETURNS uuid[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  ids uuid[] := '{}';
  i int;
BEGIN
  PERFORM taskq._check_job_specs(specs, what);
  FOR i IN 0 .. jsonb_array_length(specs) - 1 LOOP
    ids[i + 1] := taskq._enqueue_spec(specs -> i, format('%s[%s]', what, i));
  END LOOP;
  RETURN ids;
END;
$$;
COMMENT ON FUNCTION taskq._enqueue_specs(jsonb, text) IS
  'internal (complete): enqueues the jobs of a JSON array of job specs; returns their ids in array order';

CREATE FUNCTION taskq.enqueue_workflow(jobs jsonb) RETURNS TABLE (name text, job_id uuid)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n int;
  names text[];
  bad text;
  bad_at int;
  -- Edges "dependent waits for dependency", by position (1-based), twice:
  -- sorted by dependency with offsets (forward), and by dependent (backward).
  fwd_to int[];
  fwd_first int[];
  back_from int[];
  back_first int[];
  indegree int[];
  ready int[];
  head int := 1;
  topo int[] := '{}';
  u int;
  k int;
  ids uuid[];
  dep_ids uuid[];
  path int[];
  e_dependent int[];
  e_dependency int[];
BEGIN
  IF jsonb_typeof(jobs) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'jobs must be a JSON array of job specs with names, not %', coalesce(jsonb_typeof(jobs), 'null')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'e.g. [{"name": "fetch", "queue": "q"}, {"name": "report", "queue": "q", "depends_on": ["fetch"]}]';
  END IF;
  n := jsonb_array_length(jobs);
  IF n = 0 THEN
    RETURN;
  END IF;
  IF n > taskq._max_job_specs() THEN
    RAISE EXCEPTION 'jobs has % elements; at most % per workflow', n, taskq._max_job_specs()
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT e.ord INTO bad_at FROM jsonb_array_elements(jobs) WITH ORDINALITY e(value, ord)
  WHERE jsonb_typeof(e.value) <> 'object' OR jsonb_typeof(e.value -> 'name') IS DISTINCT FROM 'string'
     OR e.value ->> 'name' = '' OR octet_length(e.value ->> 'name') > 255
  ORDER BY e.ord LIMIT 1;
  IF bad_at IS NOT NULL THEN
    RAISE EXCEPTION 'jobs[%] has no name', bad_at - 1
      USING ERRCODE = 'invalid_parameter_value', HINT = 'each job needs a "name" of 1 to 255 bytes, unique in the workflow';
  END IF;
  names := ARRAY(SELECT e.value ->> 'name' FROM jsonb_array_elements(jobs) WITH ORDINALITY e(value, ord) ORDER BY e.ord);
  SELECT x.nm INTO bad FROM unnest(names) x(nm) GROUP BY x.nm HAVING count(*) > 1 ORDER BY x.nm LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'jobs has two jobs named "%"', left(bad, 100) USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT e.ord INTO bad_at FROM jsonb_array_elements(jobs) WITH ORDINALITY e(value, ord)
  WHERE jsonb_typeof(e.value -> 'depends_on') NOT IN ('array', 'null')
     OR EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(e.value -> 'depends_on') = 'array'
                                                        THEN e.value -> 'depends_on' ELSE '[]' END) d
                WHERE jsonb_typeof(d) <> 'string')
  ORDER BY e.ord LIMIT 1;
  IF bad_at IS NOT NULL THEN
    RAISE EXCEPTION 'jobs[%].depends_on must be an array of names of the workflow''s jobs', bad_at - 1
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  -- The edges, by position; an unknown name is an error, a repeated one counts once.
  SELECT d.dependent, d.dep_name INTO bad_at, bad
  FROM (SELECT e.ord::int AS dependent, dn.nm AS dep_name
        FROM jsonb_array_elements(jobs) WITH ORDINALITY e(value, ord),
             jsonb_array_elements_text(CASE WHEN jsonb_typeof(e.value -> 'depends_on') = 'array'
                                            THEN e.value -> 'depends_on' ELSE '[]' END) dn(nm)) d
  WHERE d.dep_name <> ALL (names)
  ORDER BY d.dependent LIMIT 1;
  IF bad_at IS NOT NULL THEN
    RAISE EXCEPTION 'jobs[%] depends on "%", which is not a job of the workflow', bad_at - 1, left(bad, 100)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT array_agg(x.dependent ORDER BY x.dependent, x.dependency), array_agg(x.dependency ORDER BY x.dependent, x.dependency)
  INTO e_dependent, e_dependency
  FROM (SELECT DISTINCT e.ord::int AS dependent, array_position(names, dn.nm) AS dependency
        FROM jsonb_array_elements(jobs) WITH ORDINALITY e(value, ord),
             jsonb_array_elements_text(CASE WHEN jsonb_typeof(e.value -> 'depends_on') = 'array'
                                            THEN e.value -> 'depends_on' ELSE '[]' END) dn(nm)) x;
  e_dependent := coalesce(e_dependent, '{}');
  e_dependency := coalesce(e_dependency, '{}');
  -- Forward (a job's dependents) and backward (its dependencies) adjacency:
  -- the edges sorted by one end, and where each job's run starts.
  fwd_to := ARRAY(SELECT x.t FROM unnest(e_dependency, e_dependent) x(f, t) ORDER BY x.f, x.t);
  back_from := ARRAY(SELECT x.f FROM unnest(e_dependency, e_dependent) x(f, t) ORDER BY x.t, x.f);
  fwd_first := ARRAY(
    SELECT 1 + coalesce(sum(c.cnt) OVER (ORDER BY c.u ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::int
    FROM (SELECT g.u, count(x.f) AS cnt FROM generate_series(1, n + 1) g(u)
          LEFT JOIN unnest(e_dependency) x(f) ON x.f = g.u GROUP BY g.u) c
    ORDER BY c.u);
  back_first := ARRAY(
    SELECT 1 + coalesce(sum(c.cnt) OVER (ORDER BY c.u ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::int
    FROM (SELECT g.u, count(x.t) AS cnt FROM generate_series(1, n + 1) g(u)
          LEFT JOIN unnest(e_dependent) x(t) ON x.t = g.u GROUP BY g.u) c
    ORDER BY c.u);

  -- Kahn's algorithm: a job is ready once every job it waits for is placed.
  indegree := array_fill(0, ARRAY[n]);
  ready := '{}';
  FOR u IN 1 .. n LOOP
    indegree[u] := back_first[u + 1] - back_first[u];
    IF indegree[u] = 0 THEN
      ready[cardinality(ready) + 1] := u;
    END IF;
  END LOOP;
  WHILE head <= cardinality(ready) LOOP
    u := ready[head];
    head := head + 1;
    topo[cardinality(topo) + 1] := u;
    FOR k IN fwd_first[u] .. fwd_first[u + 1] - 1 LOOP
      indegree[fwd_to[k]] := indegree[fwd_to[k]] - 1;
      IF indegree[fwd_to[k]] = 0 THEN
        ready[cardinality(ready) + 1] := fwd_to[k];
      END IF;
    END LOOP;
  END LOOP;
  IF cardinality(topo) < n THEN
    -- Every job left waits for another job left: walk from one of them
    -- along such dependencies until a job comes round again.
    path := '{}';
    u := array_position(ARRAY(SELECT indegree[g] > 0 FROM generate_series(1, n) g ORDER BY g), true);
    WHILE u <> ALL (path) LOOP
      path := path || u;
      FOR k IN back_first[u] .. back_first[u + 1] - 1 LOOP
        IF indegree[back_from[k]] > 0 THEN
          u := back_from[k];
          EXIT;
        END IF;
      END LOOP;
    END LOOP;
    path := path[array_position(path, u):] || u;
    RAISE EXCEPTION 'jobs form a cycle: %',
      (SELECT string_agg('"' || left(names[p.pos], 100) || '"', ' waits for ' ORDER BY p.i)
       FROM unnest(path) WITH ORDINALITY p(pos, i))
      USING ERRCODE = 'invalid_parameter_value', HINT = 'a workflow must be a directed acyclic graph';
  END IF;

  -- Dependencies first; each spec enqueued as taskq.enqueue would (an error
  -- there undoes the whole call).
  ids := array_fill(NULL::uuid, ARRAY[n]);
  FOREACH u IN ARRAY topo LOOP
    dep_ids := '{}';
    FOR k IN back_first[u] .. back_first[u + 1] - 1 LOOP
      dep_ids[cardinality(dep_ids) + 1] := ids[back_from[k]];
    END LOOP;
    ids[u] := taskq._enqueue_spec(jobs -> (u - 1), format('jobs[%s]', u - 1), dep_ids);
  END LOOP;
  RETURN QUERY SELECT names[g], ids[g] FROM generate_series(1, n) g ORDER BY g;
END;
$$;
COMMENT ON FUNCTION taskq.enqueue_workflow(jsonb) IS
  'enqueues a graph of jobs in one call: job specs with a name and depends_on (names of other elements); returns each name with its job id, in array order';

REVOKE EXECUTE ON FUNCTION
  taskq._dependency_ids(uuid), taskq._forget_dependencies(uuid[]), taskq._max_dependencies(), taskq._lock_dependencies(uuid[]), taskq._add_dependencies(uuid[], uuid[], uuid[]),
  taskq._check_read_committed(), taskq._release_dependents(uuid[]), taskq._cancel_dependents(uuid, text),
  taskq._lock_unfinished_dependencies(uuid[]), taskq._rewait(taskq.jobs, timestamptz), taskq._revive_dependents(uuid),
  taskq._max_job_specs(), taskq._check_job_specs(jsonb, text), taskq._spec_text(jsonb, text, text),
  taskq._spec_int(jsonb, text, text), taskq._enqueue_spec(jsonb, text, uuid[]), taskq._enqueue_specs(jsonb, text),
  taskq.enqueue_workflow(jsonb)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION taskq.enqueue_workflow(jsonb) TO taskq_producer;

CREATE OR REPLACE FUNCTION taskq.drop_queue(queue_name text, force boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  unfinished bigint;
  scheduled bigint;
  dependency uuid;
BEGIN
  PERFORM taskq._check_queue_name(queue_name);
  PERFORM taskq._require(force, 'force');
  -- Conflicts with the ROW EXCLUSIVE lock every enqueue holds until it
  -- commits: in-flight enqueues finish first and their jobs are seen below,
  -- and no new job can slip in between the check and the delete.
  LOCK TABLE taskq.jobs IN SHARE ROW EXCLUSIVE MODE;
  PERFORM 1 FROM taskq.queues q WHERE q.queue_name = drop_queue.queue_name FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  SELECT count(*) INTO unfinished FROM taskq.jobs j
  WHERE j.queue_name = drop_queue.queue_name AND j.status IN ('waiting', 'pending', 'running');
  IF unfinished > 0 AND NOT force THEN
    RAISE EXCEPTION 'queue "%" has % unfinished jobs', queue_name, unfinished
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'wait for them, cancel them, or use taskq.drop_queue(queue_name, force => true) to delete them';
  END IF;
  -- schedule() holds the queue row FOR KEY SHARE until it commits, so the
  -- FOR UPDATE above waited for it and its schedule is seen here.
  SELECT count(*) INTO scheduled FROM taskq.schedules s WHERE s.queue_name = drop_queue.queue_name;
  IF scheduled > 0 AND NOT force THEN
    RAISE EXCEPTION 'queue "%" is the target of % schedules', queue_name, scheduled
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'remove them with taskq.unschedule(), or use taskq.drop_queue(queue_name, force => true) to drop them with the queue';
  END IF;
  IF scheduled > 0 THEN
    DELETE FROM taskq.schedules s WHERE s.queue_name = drop_queue.queue_name;
    PERFORM taskq._schedules_changed_at_commit();
  END IF;
  -- Jobs of other queues waiting for unfinished jobs deleted here would
  -- wait forever: they are cancelled, as when a dependency is cancelled.
  FOR dependency IN SELECT j.id FROM taskq.jobs j
                    WHERE j.queue_name = drop_queue.queue_name AND j.has_dependents
                      AND j.status IN ('waiting', 'pending', 'running')
                    ORDER BY j.id LOOP
    PERFORM taskq._cancel_dependents(dependency, 'was deleted');
  END LOOP;
  DELETE FROM taskq.job_dependencies e USING taskq.jobs j
  WHERE e.job_id = j.id AND j.queue_name = drop_queue.queue_name AND j.dependencies_left IS NOT NULL;
  DELETE FROM taskq.outbox o WHERE o.queue_name = drop_queue.queue_name;
  DELETE FROM taskq.callbacks c USING taskq.jobs j
  WHERE c.job_id = j.id AND j.queue_name = drop_queue.queue_name AND c.state <> 'pending';
  DELETE FROM taskq.jobs j WHERE j.queue_name = drop_queue.queue_name;
  DELETE FROM taskq.queues q WHERE q.queue_name = drop_queue.queue_name;
END;
$$;
COMMENT ON FUNCTION taskq.drop_queue(text, boolean) IS
  'drops a queue and its finished jobs; refused (55000) while it has unfinished jobs or schedules unless force, which drops them too; the RabbitMQ queue is left for the operator';

CREATE OR REPLACE FUNCTION taskq.enqueue(
  queue_name text,
  payload jsonb DEFAULT '{}',
  task text DEFAULT NULL,
  run_at timestamptz DEFAULT NULL,
  delay interval DEFAULT NULL,
  priority int DEFAULT 0,
  max_attempts int DEFAULT NULL,
  callback_url text DEFAULT NULL,
  unique_key text DEFAULT NULL,
  headers jsonb DEFAULT NULL,
  depends_on uuid[] DEFAULT NULL,
  concurrency_key text DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  q_max_attempts int;
  q_delivery_delay interval;
  q_paused boolean;
  due timestamptz;
  new_id uuid;
  deps record;              -- depends_on sorted into unfinished and completed (35_dependencies)
  waiting_on int;           -- how many dependencies are unfinished; NULL: none given
BEGIN
  SELECT q.max_attempts, q.delivery_delay, q.paused INTO q_max_attempts, q_delivery_delay, q_paused
  FROM taskq.queues q WHERE q.queue_name = enqueue.queue_name;
  IF NOT FOUND THEN
    PERFORM taskq._check_queue_name(queue_name);  -- a malformed name gets the more precise error
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  IF payload IS NULL THEN
    RAISE EXCEPTION 'payload must not be null' USING ERRCODE = 'null_value_not_allowed', HINT = 'use ''{}'' for no payload';
  END IF;
  -- The checks are called only when there is something to check: each call
  -- of a function with a pinned search_path saves and restores settings,
  -- which costs more than the whole insert on this path.
  IF pg_column_size(payload) > taskq._max_document_bytes() THEN
    PERFORM taskq._check_document(payload, 'payload');
  END IF;
  IF task IS NOT NULL OR run_at IS NOT NULL OR delay IS NOT NULL OR priority IS DISTINCT FROM 0
     OR max_attempts IS NOT NULL OR callback_url IS NOT NULL OR unique_key IS NOT NULL OR headers IS NOT NULL THEN
    PERFORM taskq._check_job_options(task, run_at, delay, priority, max_attempts, callback_url, unique_key, headers);
  END IF;
  IF concurrency_key IS NOT NULL THEN
    PERFORM taskq._reject_unfinished_options(NULL, concurrency_key);
  END IF;
  IF cardinality(depends_on) > 0 THEN
    -- Locks the dependencies until this transaction ends, so that none can
    -- finish unseen: 42704 for an unknown one, 55000 for a failed or
    -- cancelled one; completed ones count as done.
    SELECT * INTO deps FROM taskq._lock_dependencies(depends_on);
    waiting_on := cardinality(deps.unfinished);
  END IF;
  -- The trace context: looked at only when there is one (a trace header or
  -- the session setting), so a job without pays one setting look-up.
  IF headers ?| ARRAY['traceparent', 'tracestate'] OR current_setting('taskq.traceparent', true) <> '' THEN
    headers := taskq._trace_headers(headers);
  END IF;

  due := greatest(coalesce(run_at, now() + coalesce(delay, interval '0')), now()) + q_delivery_delay;
  max_attempts := coalesce(max_attempts, q_max_attempts);

  IF unique_key IS NULL THEN
    new_id := taskq._uuid_v7();
    INSERT INTO taskq.jobs (id, queue_name, task, payload, status, priority, max_attempts, attempt_budget, run_at,
                            callback_url, headers, dependencies_left)
    VALUES (new_id, queue_name, task, payload,
            CASE WHEN waiting_on > 0 THEN 'waiting' ELSE 'pending' END::taskq.job_status, priority, max_attempts,
            max_attempts, due, callback_url, headers, waiting_on);
  ELSE
    -- Dedup that holds under concurrency: the partial unique index decides;
    -- a concurrent enqueue of the same key waits for ours and then sees it.
    LOOP
      INSERT INTO taskq.jobs AS j (id, queue_name, task, payload, status, priority, max_attempts, attempt_budget,
                                   run_at, callback_url, unique_key, headers, dependencies_left)
      VALUES (taskq._uuid_v7(), queue_name, task, payload,
              CASE WHEN waiting_on > 0 THEN 'waiting' ELSE 'pending' END::taskq.job_status, priority, max_attempts,
              max_attempts, due, callback_url, unique_key, headers, waiting_on)
      ON CONFLICT (queue_name, unique_key) WHERE unique_key IS NOT NULL AND status < 'completed'
      DO NOTHING
      RETURNING j.id INTO new_id;
      EXIT WHEN new_id IS NOT NULL;
      SELECT j.id INTO new_id FROM taskq.jobs j
      WHERE j.queue_name = enqueue.queue_name AND j.unique_key = enqueue.unique_key
        AND j.status < 'completed';
      IF FOUND THEN
        RETURN new_id;  -- the existing job; nothing new is created
      END IF;
      -- It finished between our insert and our look-up: try again.
    END LOOP;
  END IF;

  IF waiting_on IS NOT NULL THEN
    PERFORM taskq._add_dependencies(ARRAY[new_id], deps.unfinished, deps.completed);
    IF waiting_on > 0 THEN
      RETURN new_id;  -- published when its last dependency completes
    END IF;
  END IF;
  INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at) VALUES (new_id, queue_name, 1, due);
  IF NOT q_paused THEN
    PERFORM taskq._wake_publisher_at_commit();  -- a paused queue's jobs wait for resume_queue's wake-up
  END IF;
  RETURN new_id;
END;
$$;
COMMENT ON FUNCTION taskq.enqueue(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb, uuid[], text) IS
  'adds a job to a queue in the caller''s transaction and returns its id; it is published to RabbitMQ once that transaction commits';

CREATE OR REPLACE FUNCTION taskq.enqueue_many(
  queue_name text,
  payloads jsonb,
  task text DEFAULT NULL,
  run_at timestamptz DEFAULT NULL,
  delay interval DEFAULT NULL,
  priority int DEFAULT 0,
  max_attempts int DEFAULT NULL,
  callback_url text DEFAULT NULL,
  unique_key text DEFAULT NULL,
  headers jsonb DEFAULT NULL,
  depends_on uuid[] DEFAULT NULL,
  concurrency_key text DEFAULT NULL
) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  q_max_attempts int;
  q_delivery_delay interval;
  q_paused boolean;
  due timestamptz;
  element jsonb;
  deps record;
  waiting_on int;
  new_ids uuid[];
BEGIN
  SELECT q.max_attempts, q.delivery_delay, q.paused INTO q_max_attempts, q_delivery_delay, q_paused
  FROM taskq.queues q WHERE q.queue_name = enqueue_many.queue_name;
  IF NOT FOUND THEN
    PERFORM taskq._check_queue_name(queue_name);
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  IF payloads IS NULL THEN
    RAISE EXCEPTION 'payloads must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF jsonb_typeof(payloads) <> 'array' THEN
    RAISE EXCEPTION 'payloads must be a JSON array, not %', jsonb_typeof(payloads)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'one job is created per array element';
  END IF;
  IF jsonb_array_length(payloads) > 100000 THEN
    RAISE EXCEPTION 'payloads has % elements; at most 100000 per call', jsonb_array_length(payloads)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM taskq._check_job_options(task, run_at, delay, priority, max_attempts, callback_url, unique_key, headers);
  IF concurrency_key IS NOT NULL THEN
    PERFORM taskq._reject_unfinished_options(NULL, concurrency_key);
  END IF;
  -- The trace context, as in enqueue: one for all the jobs of the call.
  IF headers ?| ARRAY['traceparent', 'tracestate'] OR current_setting('taskq.traceparent', true) <> '' THEN
    headers := taskq._trace_headers(headers);
  END IF;
  IF EXISTS (SELECT 1 FROM jsonb_array_elements(payloads) e(value) WHERE pg_column_size(e.value) > taskq._max_document_bytes()) THEN
    RAISE EXCEPTION 'a payload in payloads is too large'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = format('the limit is %s bytes per payload', taskq._max_document_bytes());
  END IF;

  IF unique_key IS NOT NULL THEN
    -- Every element shares the key: the first creates the job, the others
    -- get its id (the same rule as enqueue). Rare, so no set-wise path.
    FOR element IN SELECT e.value FROM jsonb_array_elements(payloads) e(value) LOOP
      RETURN NEXT taskq.enqueue(queue_name, element, task, run_at, delay, priority, max_attempts,
                                callback_url, unique_key, headers, depends_on, concurrency_key);
    END LOOP;
    RETURN;
  END IF;

  due := greatest(coalesce(run_at, now() + coalesce(delay, interval '0')), now()) + q_delivery_delay;
  max_attempts := coalesce(max_attempts, q_max_attempts);

  IF cardinality(depends_on) > 0 THEN
    -- Every element waits for the same jobs: locked once, as in enqueue.
    SELECT * INTO deps FROM taskq._lock_dependencies(depends_on);
    waiting_on := cardinality(deps.unfinished);
    WITH new_jobs AS (
      INSERT INTO taskq.jobs (id, queue_name, task, payload, status, priority, max_attempts, attempt_budget, run_at,
                              callback_url, headers, dependencies_left)
      SELECT taskq._uuid_v7(), enqueue_many.queue_name, enqueue_many.task, ordered.value,
             CASE WHEN waiting_on > 0 THEN 'waiting' ELSE 'pending' END::taskq.job_status, enqueue_many.priority,
             enqueue_many.max_attempts, enqueue_many.max_attempts, due, enqueue_many.callback_url,
             enqueue_many.headers, waiting_on
      FROM (SELECT e.value FROM jsonb_array_elements(payloads) WITH ORDINALITY e(value, ord) ORDER BY e.ord) ordered
      RETURNING id
    )
    SELECT array_agg(new_jobs.id ORDER BY new_jobs.id) INTO new_ids FROM new_jobs;
    PERFORM taskq._add_dependencies(new_ids, deps.unfinished, deps.completed);
    IF waiting_on = 0 THEN
      INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
      SELECT n.id, enqueue_many.queue_name, 1, due FROM unnest(new_ids) n(id);
      IF NOT q_paused THEN
        PERFORM taskq._wake_publisher_at_commit();
      END IF;
    END IF;
    RETURN QUERY SELECT n.id FROM unnest(new_ids) n(id);
    RETURN;
  END IF;

  -- Set-wise: ids are generated in array order (the ordered subquery feeds
  -- the id generator), so sorting by id returns them in array order.
  RETURN QUERY
  WITH new_jobs AS (
    INSERT INTO taskq.jobs (id, queue_name, task, payload, priority, max_attempts, attempt_budget, run_at,
                            callback_url, headers)
    SELECT taskq._uuid_v7(), enqueue_many.queue_name, enqueue_many.task, ordered.value, enqueue_many.priority,
           enqueue_many.max_attempts, enqueue_many.max_attempts, due, enqueue_many.callback_url, enqueue_many.headers
    FROM (SELECT e.value FROM jsonb_array_elements(payloads) WITH ORDINALITY e(value, ord) ORDER BY e.ord) ordered
    RETURNING id
  ), new_outbox AS (
    INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
    SELECT new_jobs.id, enqueue_many.queue_name, 1, due FROM new_jobs
  )
  SELECT new_jobs.id FROM new_jobs ORDER BY new_jobs.id;
  IF NOT q_paused THEN
    PERFORM taskq._wake_publisher_at_commit();
  END IF;
END;
$$;
COMMENT ON FUNCTION taskq.enqueue_many(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb, uuid[], text) IS
  'adds one job per element of the JSON array payloads, set-wise; returns the ids in array order';

CREATE OR REPLACE FUNCTION taskq._fail_attempt(j taskq.jobs, error text, retry_in interval, permanent boolean)
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
  RETURN j.status;
END;
$$;

CREATE OR REPLACE FUNCTION taskq.retry(job_id uuid, delay interval DEFAULT NULL) RETURNS taskq.jobs
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

CREATE OR REPLACE FUNCTION taskq.cancel(job_id uuid) RETURNS taskq.jobs
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
    UPDATE taskq.jobs SET status = 'cancelled', finished_at = now(), failed_attempt = NULL, updated_at = now()
    WHERE id = j.id RETURNING * INTO j;
    PERFORM taskq._write_callback(j);
    PERFORM taskq._wake_waiters_at_commit(ARRAY[j.id]);
    IF j.has_dependents THEN
      PERFORM taskq._cancel_dependents(j.id, 'was cancelled');
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

CREATE OR REPLACE FUNCTION taskq.job(job_id uuid) RETURNS SETOF taskq.jobs
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  SELECT * FROM taskq.jobs WHERE id = job_id;
END;
COMMENT ON FUNCTION taskq.job(uuid) IS 'the job with this id; zero rows if there is none';

CREATE OR REPLACE FUNCTION taskq._complete_batch(items jsonb) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  done taskq.jobs;
  completed uuid[] := '{}';
  with_dependents uuid[] := '{}';
  follow_ups jsonb;
BEGIN
  PERFORM taskq._check_batch(items);
  -- The same limit as taskq.complete; the whole batch is refused, and the
  -- worker then records its items one by one to find the culprit.
  IF EXISTS (SELECT 1 FROM jsonb_to_recordset(items) AS i(result jsonb)
             WHERE pg_column_size(i.result) > taskq._max_document_bytes()) THEN
    RAISE EXCEPTION 'a result in the batch is too large'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = format('the limit is %s bytes per result', taskq._max_document_bytes());
  END IF;
  FOR done IN
    WITH wanted AS (
      SELECT DISTINCT ON (i.id) i.id, i.attempt, i.result
      FROM jsonb_to_recordset(items) AS i(id uuid, attempt int, result jsonb)
      ORDER BY i.id, i.attempt
    )
    UPDATE taskq.jobs j SET status = 'completed', result = w.result, finished_at = now(),
                            lease_expires_at = NULL, updated_at = now()
    FROM wanted w
    WHERE j.id = w.id AND j.status = 'running' AND j.attempts = w.attempt
    RETURNING j.*
  LOOP
    IF done.callback_url IS NOT NULL THEN
      PERFORM taskq._write_callback(done);
    END IF;
    IF done.has_dependents THEN
      with_dependents := with_dependents || done.id;
    END IF;
    completed := completed || done.id;
    RETURN NEXT done.id;
  END LOOP;
  -- One call for the batch, not one per job: the complete path stays cheap.
  IF cardinality(completed) > 0 THEN
    PERFORM taskq._wake_waiters_at_commit(completed);
  END IF;
  -- Follow-up jobs of the items that completed their job: the item the
  -- UPDATE above used (the same DISTINCT ON), so a duplicate in the batch
  -- enqueues nothing. Looked for only when some item has them.
  IF jsonb_path_exists(items, 'lax $[*].enqueue') THEN
    FOR follow_ups IN
      SELECT w.enqueue
      FROM (SELECT DISTINCT ON (i.id) i.id, i.enqueue
            FROM jsonb_to_recordset(items) AS i(id uuid, attempt int, enqueue jsonb)
            ORDER BY i.id, i.attempt) w
      WHERE w.enqueue IS NOT NULL AND w.id = ANY (completed)
      ORDER BY w.id
    LOOP
      PERFORM taskq._enqueue_specs(follow_ups, 'enqueue');
    END LOOP;
  END IF;
  -- All at once: each waiting dependent is locked and decremented once per
  -- batch, however many of its dependencies the batch completed.
  IF cardinality(with_dependents) > 0 THEN
    PERFORM taskq._release_dependents(with_dependents);
  END IF;
  -- Items that did not complete now may be repeats of a batch that
  -- completed them (as in taskq.complete): they count again, nothing is
  -- written. Looked up only when some item did not act, which is rare.
  IF cardinality(completed) < jsonb_array_length(items) THEN
    RETURN QUERY
    SELECT j.id
    FROM (SELECT DISTINCT i.id, i.attempt FROM jsonb_to_recordset(items) AS i(id uuid, attempt int)) w
    JOIN taskq.jobs j ON j.id = w.id
    WHERE j.status = 'completed' AND j.attempts = w.attempt AND j.id <> ALL (completed);
  END IF;
END;
$$;
COMMENT ON FUNCTION taskq._complete_batch(jsonb) IS
  'internal (taskq-worker): taskq.complete for many {"id", "attempt", "result", "enqueue"} items; returns the jobs that completed';

CREATE OR REPLACE FUNCTION taskq._outbox_claim(batch_size int, after_due timestamptz DEFAULT NULL, after_id bigint DEFAULT NULL)
RETURNS TABLE (outbox_id bigint, job_id uuid, queue_name text, queue_type text, task text, priority int,
               attempt int, headers jsonb, created_at timestamptz, body text, due_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  -- FOR SHARE: resume_queue waits for this transaction to end, and so sees
  -- (and releases) every row set aside below. A queue resumed meanwhile is
  -- seen unpaused here.
  paused text[] := ARRAY(SELECT q.queue_name FROM taskq.queues q WHERE q.paused ORDER BY q.queue_name FOR SHARE);
  cursor_due timestamptz := coalesce(after_due, '-infinity');
  cursor_id bigint := coalesce(after_id, 0);
  wanted int := batch_size;
  front taskq.outbox[];
  scanned int;
  returned int;
BEGIN
  -- Rows of paused queues are set aside (held) and dead ones dropped; when
  -- that leaves the batch short while more rows are due, scan on, so that a
  -- short batch still means "nothing more is due" to the publisher.
  LOOP
    -- Shaped for a cheap generic plan: lock rows from the outbox alone
    -- (partial index outbox_due), then fetch each row's job and queue by
    -- primary key (LATERAL), never a hash join over the whole jobs table.
    -- One row comparison (not "after_due IS NULL OR ..."): an index
    -- condition, so the scan starts at the cursor and stops after `wanted`
    -- rows. With the OR, the generic plan read and sorted the whole backlog
    -- for every batch.
    SELECT array_agg(s.o ORDER BY (s.o).due_at, (s.o).id) INTO front
    FROM (SELECT o FROM taskq.outbox o
          WHERE NOT o.held AND (o.due_at, o.id) > (cursor_due, cursor_id) AND o.due_at <= now()
          ORDER BY o.due_at, o.id
          LIMIT wanted
          FOR UPDATE OF o SKIP LOCKED) s;
    scanned := coalesce(cardinality(front), 0);
    EXIT WHEN scanned = 0;
    cursor_due := (front[scanned]).due_at;
    cursor_id := (front[scanned]).id;
    IF cardinality(paused) > 0 THEN
      UPDATE taskq.outbox o SET held = true
      WHERE o.id = ANY (ARRAY(SELECT f.id FROM unnest(front) f WHERE f.queue_name = ANY (paused)));
    END IF;

    RETURN QUERY
    WITH joined AS (
      SELECT c.id, c.attempt, c.due_at, jq.*
      FROM unnest(front) c
      LEFT JOIN LATERAL (
        SELECT j.id AS jid, j.queue_name AS jqueue, j.task AS jtask, j.payload AS jpayload, j.priority AS jpriority,
               j.max_attempts AS jmax, j.headers AS jheaders, j.created_at AS jcreated, q.queue_type AS jtype,
               j.dependencies_left IS NOT NULL AS jdeps,
               j.status = 'pending' AND j.attempts + 1 = c.attempt AS live
        FROM taskq.jobs j JOIN taskq.queues q ON q.queue_name = j.queue_name
        WHERE j.id = c.job_id
      ) jq ON true
      WHERE c.queue_name <> ALL (paused)
    ), dropped AS (
      -- The job was cancelled, finished, started or deleted since the row
      -- was written: nothing to publish.
      DELETE FROM taskq.outbox o WHERE o.id = ANY (ARRAY(SELECT c.id FROM joined c WHERE c.live IS NOT TRUE))
    )
    SELECT c.id, c.jid, c.jqueue, c.jtype, c.jtask, c.jpriority::int, c.attempt, c.jheaders, c.jcreated,
           -- Text concatenation rather than jsonb_build_object(...)::text:
           -- the same JSON at a third of the cost (no jsonb copy of the payload).
           '{"id":"' || c.jid::text || '","queue":' || to_json(c.jqueue)::text
             || ',"task":' || coalesce(to_json(c.jtask)::text, 'null') || ',"payload":' || c.jpayload::text
             || ',"attempt":' || c.attempt::text || ',"max_attempts":' || c.jmax::text
             || ',"enqueued_at":' || to_json(c.jcreated)::text
             || ',"headers":' || coalesce(c.jheaders::text, '{}')
             -- Looked up only for a job that has dependencies.
             || ',"depends_on":' || CASE WHEN c.jdeps THEN taskq._dependency_ids(c.jid) ELSE '[]' END || '}',
           c.due_at
    FROM joined c
    WHERE c.live
    ORDER BY c.due_at, c.id;
    GET DIAGNOSTICS returned = ROW_COUNT;
    EXIT WHEN returned >= wanted OR scanned < wanted;
    wanted := wanted - returned;
  END LOOP;
END;
$$;
COMMENT ON FUNCTION taskq._outbox_claim(int, timestamptz, bigint) IS
  'internal (publisher): locks up to batch_size due outbox rows of unpaused queues and returns the messages to publish';

CREATE OR REPLACE FUNCTION taskq.purge_finished() RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  purged int;
  purged_dependents uuid[];
BEGIN
  -- Batch-limited so it never holds many locks or a long transaction.
  WITH old AS (
    SELECT j.id FROM taskq.jobs j JOIN taskq.queues q ON q.queue_name = j.queue_name
    WHERE j.status IN ('completed', 'failed', 'cancelled') AND j.finished_at < now() - q.retention
    LIMIT 10000
    FOR UPDATE OF j SKIP LOCKED
  ), gone_callbacks AS (
    DELETE FROM taskq.callbacks c USING old WHERE c.job_id = old.id AND c.state <> 'pending'
  ), gone AS (
    DELETE FROM taskq.jobs j USING old WHERE j.id = old.id RETURNING j.id, j.dependencies_left IS NOT NULL AS had_dependencies
  )
  SELECT count(*), array_agg(gone.id) FILTER (WHERE gone.had_dependencies) INTO purged, purged_dependents FROM gone;
  -- The edges of a purged dependent; those of a purged dependency stay
  -- with their dependent (satisfied, or it was cancelled) until it goes.
  IF purged_dependents IS NOT NULL THEN
    PERFORM taskq._forget_dependencies(purged_dependents);
  END IF;
  RETURN purged;
END;
$$;
COMMENT ON FUNCTION taskq.purge_finished() IS
  'deletes finished jobs older than their queue''s retention (at most 10000 per call), their delivered or dead callbacks and their dependency edges';

DROP FUNCTION taskq.complete(uuid, int, jsonb);
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
  RETURN true;
END;
$$;
COMMENT ON FUNCTION taskq.complete(uuid, int, jsonb, jsonb) IS
  'completes the running attempt of a job with an optional JSON result and enqueues the follow-up jobs of enqueue; false when the call was stale; true again, writing nothing, when this attempt completed it already';
REVOKE EXECUTE ON FUNCTION taskq.complete(uuid, int, jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION taskq.complete(uuid, int, jsonb, jsonb) TO taskq_worker;

-- =========================================================================
-- == Flow control ==
-- (00_tables, 10_validation, 20_queues, 30_enqueue,
-- 40_transitions, 45_worker_batches, 50_outbox, 55_flow_control,
-- 70_maintenance, 95_privileges): rate_limit, rate_period and
-- concurrency_limit on taskq.queues, concurrency_key and flow_state on
-- taskq.jobs (nullable, no rewrite; three partial indexes, built here),
-- the table taskq.rate_windows; create_queue, alter_queue and
-- _start_batch take new arguments (dropped and created again);
-- remove_queue_limit and the internal flow functions are new; start,
-- complete, fail (_fail_attempt), cancel, rescue_expired, the claim and the
-- reconciler know the limits; queue_stats gains held (dropped and created
-- again). Nothing here names the enum value 'waiting'.

ALTER TABLE taskq.queues
  ADD COLUMN rate_limit integer,
  ADD COLUMN rate_period interval NOT NULL DEFAULT '1 second',
  ADD COLUMN concurrency_limit integer,
  ADD CONSTRAINT queues_rate_limit CHECK (rate_limit BETWEEN 1 AND 1000000),
  ADD CONSTRAINT queues_rate_period CHECK (rate_period BETWEEN interval '1 millisecond' AND interval '1 day'),
  ADD CONSTRAINT queues_concurrency_limit CHECK (concurrency_limit BETWEEN 1 AND 100000);

ALTER TABLE taskq.jobs
  ADD COLUMN concurrency_key text,
  ADD COLUMN flow_state text;
-- "Has any queue a flow limit?", asked by every start: an index probe, so
-- that it stays cheap under enable_seqscan = off (a seq scan there is
-- costed so high that the query would be JIT-compiled: 400 ms).
CREATE INDEX queues_limited ON taskq.queues (queue_name) WHERE rate_limit IS NOT NULL OR concurrency_limit IS NOT NULL;

-- Flow control. Jobs without a concurrency key and without a flow state
-- (every job of a queue without limits) are in none of these, and never
-- change their columns: their updates stay as HOT as before.
-- The slots of a key: its running jobs and the pending ones that hold one.
CREATE INDEX jobs_key_slots ON taskq.jobs (queue_name, concurrency_key)
  WHERE concurrency_key IS NOT NULL AND (status = 'running' OR (status = 'pending' AND flow_state IN ('admitted', 'rate_held')));
-- Who gets a slot that frees: higher priority first, then the oldest.
CREATE INDEX jobs_key_held ON taskq.jobs (queue_name, concurrency_key, priority DESC, id)
  WHERE status = 'pending' AND flow_state = 'key_held';
-- Who goes when the rate allows (the same order, over the whole queue), and
-- how many went and have not started yet (the pacing counts them).
CREATE INDEX jobs_rate_flow ON taskq.jobs (queue_name, flow_state, priority DESC, id)
  WHERE status = 'pending' AND flow_state IN ('admitted', 'rate_held');

-- Rate limits: side 'start' holds the starts of a rate-limited queue in
-- the last rate_period (the limit itself), as (time, count) entries in time
-- order; entries closer together than rate_period / 128 are merged into
-- the later one, so a row holds at most about 130 entries. Side 'publish'
-- holds the pacing's next slot (next_at). One row per side, so that starts
-- (workers) and pacing (the publisher) never wait for each other's row
-- lock. Made when first needed; not dumped (recent history, rebuilt as
-- jobs start).
CREATE TABLE taskq.rate_windows (
  queue_name text NOT NULL,
  side       text NOT NULL CHECK (side IN ('start', 'publish')),
  times      timestamptz[] NOT NULL DEFAULT '{}',
  counts     integer[] NOT NULL DEFAULT '{}',
  next_at    timestamptz,
  PRIMARY KEY (queue_name, side)
);
COMMENT ON TABLE taskq.rate_windows IS
  'internal: recent starts and publishes of rate-limited queues (flow control)';
REVOKE ALL ON taskq.rate_windows FROM PUBLIC;

CREATE FUNCTION taskq._flow_changed_at_commit() RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskq_flow_changed_at_commit';
COMMENT ON FUNCTION taskq._flow_changed_at_commit() IS
  'asks the publisher to run taskq._flow_step() when the current transaction commits';

CREATE FUNCTION taskq._check_flow_options(rate_limit int, rate_period interval, concurrency_limit int) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF rate_limit NOT BETWEEN 1 AND 1000000 THEN
    RAISE EXCEPTION 'rate_limit must be between 1 and 1000000, not %', rate_limit
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'it counts starts per rate_period; to remove the limit use taskq.remove_queue_limit(queue_name, ''rate_limit'')';
  END IF;
  IF rate_period NOT BETWEEN interval '1 millisecond' AND interval '1 day' THEN
    RAISE EXCEPTION 'rate_period must be between 1 millisecond and 1 day, not %', rate_period
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF concurrency_limit NOT BETWEEN 1 AND 100000 THEN
    RAISE EXCEPTION 'concurrency_limit must be between 1 and 100000, not %', concurrency_limit
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'it counts running jobs per concurrency_key; to remove the limit use taskq.remove_queue_limit(queue_name, ''concurrency_limit'')';
  END IF;
END;
$$;

CREATE FUNCTION taskq._check_concurrency_key(concurrency_key text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF concurrency_key = '' OR octet_length(concurrency_key) > 255 THEN
    RAISE EXCEPTION 'concurrency_key must be 1 to 255 bytes, not %', octet_length(concurrency_key)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END;
$$;

DROP FUNCTION taskq.create_queue(text, int, interval, interval, interval, interval, interval, text);
CREATE FUNCTION taskq.create_queue(
  queue_name text,
  max_attempts int DEFAULT 5,
  lease interval DEFAULT '5 minutes',
  backoff_base interval DEFAULT '1 second',
  backoff_max interval DEFAULT '1 hour',
  retention interval DEFAULT '7 days',
  delivery_delay interval DEFAULT '0',
  queue_type text DEFAULT 'classic',
  rate_limit int DEFAULT NULL,
  rate_period interval DEFAULT '1 second',
  concurrency_limit int DEFAULT NULL
) RETURNS taskq.queues
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  created taskq.queues;
BEGIN
  PERFORM taskq._check_queue_name(queue_name);
  PERFORM taskq._require(max_attempts, 'max_attempts');
  PERFORM taskq._require(lease, 'lease');
  PERFORM taskq._require(backoff_base, 'backoff_base');
  PERFORM taskq._require(backoff_max, 'backoff_max');
  PERFORM taskq._require(retention, 'retention');
  PERFORM taskq._require(delivery_delay, 'delivery_delay');
  PERFORM taskq._require(queue_type, 'queue_type');
  PERFORM taskq._check_queue_options(max_attempts, lease, backoff_base, backoff_max, retention, delivery_delay, queue_type);
  PERFORM taskq._require(rate_period, 'rate_period');
  PERFORM taskq._check_flow_options(rate_limit, rate_period, concurrency_limit);
  IF backoff_max < backoff_base THEN
    RAISE EXCEPTION 'backoff_max (%) must not be smaller than backoff_base (%)', backoff_max, backoff_base
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO taskq.queues AS q (queue_name, max_attempts, lease, backoff_base, backoff_max, retention, delivery_delay,
                                 queue_type, rate_limit, rate_period, concurrency_limit)
  VALUES (create_queue.queue_name, create_queue.max_attempts, create_queue.lease, create_queue.backoff_base,
          create_queue.backoff_max, create_queue.retention, create_queue.delivery_delay, create_queue.queue_type,
          create_queue.rate_limit, create_queue.rate_period, create_queue.concurrency_limit)
  ON CONFLICT DO NOTHING
  RETURNING q.* INTO created;
  IF created IS NULL THEN
    RAISE EXCEPTION 'queue "%" already exists', queue_name
      USING ERRCODE = 'duplicate_object', HINT = 'change it with taskq.alter_queue()';
  END IF;
  IF rate_limit IS NOT NULL THEN
    -- The rows the starts and the pacing lock (taskq._rate_take).
    INSERT INTO taskq.rate_windows (queue_name, side) VALUES (create_queue.queue_name, 'start'), (create_queue.queue_name, 'publish')
    ON CONFLICT DO NOTHING;
  END IF;
  RETURN created;
END;
$$;
COMMENT ON FUNCTION taskq.create_queue(text, int, interval, interval, interval, interval, interval, text, int, interval, int) IS
  'creates a queue; its jobs go to the RabbitMQ queue "taskq.<queue_name>" of type queue_type (classic or quorum); rate_limit: at most that many starts in any rate_period; concurrency_limit: at most that many running jobs per concurrency_key';

DROP FUNCTION taskq.alter_queue(text, int, interval, interval, interval, interval, interval, text);
CREATE FUNCTION taskq.alter_queue(
  queue_name text,
  max_attempts int DEFAULT NULL,
  lease interval DEFAULT NULL,
  backoff_base interval DEFAULT NULL,
  backoff_max interval DEFAULT NULL,
  retention interval DEFAULT NULL,
  delivery_delay interval DEFAULT NULL,
  queue_type text DEFAULT NULL,
  rate_limit int DEFAULT NULL,
  rate_period interval DEFAULT NULL,
  concurrency_limit int DEFAULT NULL
) RETURNS taskq.queues
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  current taskq.queues;
  changed taskq.queues;
BEGIN
  PERFORM taskq._check_queue_name(queue_name);
  PERFORM taskq._check_queue_options(max_attempts, lease, backoff_base, backoff_max, retention, delivery_delay, queue_type);
  PERFORM taskq._check_flow_options(rate_limit, rate_period, concurrency_limit);
  SELECT * INTO current FROM taskq.queues q WHERE q.queue_name = alter_queue.queue_name FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  IF queue_type IS NOT NULL AND queue_type <> current.queue_type THEN
    -- RabbitMQ cannot change the type of an existing queue.
    RAISE EXCEPTION 'queue_type of queue "%" cannot be changed', queue_name
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'create a new queue of the other type and move producers to it';
  END IF;
  IF coalesce(backoff_max, current.backoff_max) < coalesce(backoff_base, current.backoff_base) THEN
    RAISE EXCEPTION 'backoff_max (%) must not be smaller than backoff_base (%)',
      coalesce(backoff_max, current.backoff_max), coalesce(backoff_base, current.backoff_base)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE taskq.queues q SET
    max_attempts   = coalesce(alter_queue.max_attempts, q.max_attempts),
    lease          = coalesce(alter_queue.lease, q.lease),
    backoff_base   = coalesce(alter_queue.backoff_base, q.backoff_base),
    backoff_max    = coalesce(alter_queue.backoff_max, q.backoff_max),
    retention      = coalesce(alter_queue.retention, q.retention),
    delivery_delay = coalesce(alter_queue.delivery_delay, q.delivery_delay),
    rate_limit     = coalesce(alter_queue.rate_limit, q.rate_limit),
    rate_period    = coalesce(alter_queue.rate_period, q.rate_period),
    concurrency_limit = coalesce(alter_queue.concurrency_limit, q.concurrency_limit),
    updated_at     = now()
  WHERE q.queue_name = alter_queue.queue_name
  RETURNING q.* INTO changed;
  IF rate_limit IS NOT NULL OR rate_period IS NOT NULL OR concurrency_limit IS NOT NULL THEN
    PERFORM taskq._flow_limits_changed(queue_name);
  END IF;
  RETURN changed;
END;
$$;
COMMENT ON FUNCTION taskq.alter_queue(text, int, interval, interval, interval, interval, interval, text, int, interval, int) IS
  'changes queue options; NULL leaves an option unchanged (taskq.remove_queue_limit removes a limit); applies to jobs enqueued (max_attempts) or started (lease, limits) from now on';

CREATE FUNCTION taskq.remove_queue_limit(queue_name text, limit_name text) RETURNS taskq.queues
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  changed taskq.queues;
BEGIN
  PERFORM taskq._check_queue_name(queue_name);
  PERFORM taskq._require(limit_name, 'limit_name');
  IF limit_name NOT IN ('rate_limit', 'concurrency_limit') THEN
    RAISE EXCEPTION 'limit_name must be rate_limit or concurrency_limit, not "%"', left(limit_name, 40)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE taskq.queues q
  SET rate_limit = CASE WHEN limit_name = 'rate_limit' THEN NULL ELSE q.rate_limit END,
      concurrency_limit = CASE WHEN limit_name = 'concurrency_limit' THEN NULL ELSE q.concurrency_limit END,
      updated_at = now()
  WHERE q.queue_name = remove_queue_limit.queue_name
  RETURNING q.* INTO changed;
  IF NOT FOUND THEN
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  PERFORM taskq._flow_limits_changed(queue_name);
  RETURN changed;
END;
$$;
COMMENT ON FUNCTION taskq.remove_queue_limit(text, text) IS
  'removes the queue''s rate_limit or concurrency_limit; jobs held back by it go out at once';

CREATE OR REPLACE FUNCTION taskq._set_queue_paused(queue_name text, paused boolean) RETURNS taskq.queues
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  changed taskq.queues;
BEGIN
  PERFORM taskq._check_queue_name(queue_name);
  UPDATE taskq.queues q SET paused = _set_queue_paused.paused, updated_at = now()
  WHERE q.queue_name = _set_queue_paused.queue_name
  RETURNING q.* INTO changed;
  IF NOT FOUND THEN
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  IF NOT paused THEN
    -- The UPDATE above waited for any publisher pass that set rows of this
    -- queue aside (it locks paused queues FOR SHARE), so this statement sees
    -- them all. Unless this transaction's snapshot is older than that
    -- (REPEATABLE READ): then taskq._release_held() does it at the next
    -- maintenance.
    UPDATE taskq.outbox o SET held = false WHERE o.held AND o.queue_name = _set_queue_paused.queue_name;
    PERFORM taskq._wake_publisher_at_commit();  -- held jobs go out at once
    IF changed.rate_limit IS NOT NULL THEN
      PERFORM taskq._flow_changed_at_commit();  -- its rate-held jobs are paced out again
    END IF;
  END IF;
  RETURN changed;
END;
$$;

CREATE OR REPLACE FUNCTION taskq.drop_queue(queue_name text, force boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  unfinished bigint;
  scheduled bigint;
  dependency uuid;
BEGIN
  PERFORM taskq._check_queue_name(queue_name);
  PERFORM taskq._require(force, 'force');
  -- Conflicts with the ROW EXCLUSIVE lock every enqueue holds until it
  -- commits: in-flight enqueues finish first and their jobs are seen below,
  -- and no new job can slip in between the check and the delete.
  LOCK TABLE taskq.jobs IN SHARE ROW EXCLUSIVE MODE;
  PERFORM 1 FROM taskq.queues q WHERE q.queue_name = drop_queue.queue_name FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  SELECT count(*) INTO unfinished FROM taskq.jobs j
  WHERE j.queue_name = drop_queue.queue_name AND j.status IN ('waiting', 'pending', 'running');
  IF unfinished > 0 AND NOT force THEN
    RAISE EXCEPTION 'queue "%" has % unfinished jobs', queue_name, unfinished
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'wait for them, cancel them, or use taskq.drop_queue(queue_name, force => true) to delete them';
  END IF;
  -- schedule() holds the queue row FOR KEY SHARE until it commits, so the
  -- FOR UPDATE above waited for it and its schedule is seen here.
  SELECT count(*) INTO scheduled FROM taskq.schedules s WHERE s.queue_name = drop_queue.queue_name;
  IF scheduled > 0 AND NOT force THEN
    RAISE EXCEPTION 'queue "%" is the target of % schedules', queue_name, scheduled
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'remove them with taskq.unschedule(), or use taskq.drop_queue(queue_name, force => true) to drop them with the queue';
  END IF;
  IF scheduled > 0 THEN
    DELETE FROM taskq.schedules s WHERE s.queue_name = drop_queue.queue_name;
    PERFORM taskq._schedules_changed_at_commit();
  END IF;
  -- Jobs of other queues waiting for unfinished jobs deleted here would
  -- wait forever: they are cancelled, as when a dependency is cancelled.
  FOR dependency IN SELECT j.id FROM taskq.jobs j
                    WHERE j.queue_name = drop_queue.queue_name AND j.has_dependents
                      AND j.status IN ('waiting', 'pending', 'running')
                    ORDER BY j.id LOOP
    PERFORM taskq._cancel_dependents(dependency, 'was deleted');
  END LOOP;
  DELETE FROM taskq.job_dependencies e USING taskq.jobs j
  WHERE e.job_id = j.id AND j.queue_name = drop_queue.queue_name AND j.dependencies_left IS NOT NULL;
  DELETE FROM taskq.outbox o WHERE o.queue_name = drop_queue.queue_name;
  DELETE FROM taskq.rate_windows w WHERE w.queue_name = drop_queue.queue_name;
  DELETE FROM taskq.callbacks c USING taskq.jobs j
  WHERE c.job_id = j.id AND j.queue_name = drop_queue.queue_name AND c.state <> 'pending';
  DELETE FROM taskq.jobs j WHERE j.queue_name = drop_queue.queue_name;
  DELETE FROM taskq.queues q WHERE q.queue_name = drop_queue.queue_name;
END;
$$;
COMMENT ON FUNCTION taskq.drop_queue(text, boolean) IS
  'drops a queue and its finished jobs; refused (55000) while it has unfinished jobs or schedules unless force, which drops them too; the RabbitMQ queue is left for the operator';

CREATE OR REPLACE FUNCTION taskq.enqueue(
  queue_name text,
  payload jsonb DEFAULT '{}',
  task text DEFAULT NULL,
  run_at timestamptz DEFAULT NULL,
  delay interval DEFAULT NULL,
  priority int DEFAULT 0,
  max_attempts int DEFAULT NULL,
  callback_url text DEFAULT NULL,
  unique_key text DEFAULT NULL,
  headers jsonb DEFAULT NULL,
  depends_on uuid[] DEFAULT NULL,
  concurrency_key text DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  q_max_attempts int;
  q_delivery_delay interval;
  q_paused boolean;
  due timestamptz;
  new_id uuid;
  deps record;              -- depends_on sorted into unfinished and completed (35_dependencies)
  waiting_on int;           -- how many dependencies are unfinished; NULL: none given
BEGIN
  SELECT q.max_attempts, q.delivery_delay, q.paused INTO q_max_attempts, q_delivery_delay, q_paused
  FROM taskq.queues q WHERE q.queue_name = enqueue.queue_name;
  IF NOT FOUND THEN
    PERFORM taskq._check_queue_name(queue_name);  -- a malformed name gets the more precise error
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  IF payload IS NULL THEN
    RAISE EXCEPTION 'payload must not be null' USING ERRCODE = 'null_value_not_allowed', HINT = 'use ''{}'' for no payload';
  END IF;
  -- The checks are called only when there is something to check: each call
  -- of a function with a pinned search_path saves and restores settings,
  -- which costs more than the whole insert on this path.
  IF pg_column_size(payload) > taskq._max_document_bytes() THEN
    PERFORM taskq._check_document(payload, 'payload');
  END IF;
  IF task IS NOT NULL OR run_at IS NOT NULL OR delay IS NOT NULL OR priority IS DISTINCT FROM 0
     OR max_attempts IS NOT NULL OR callback_url IS NOT NULL OR unique_key IS NOT NULL OR headers IS NOT NULL THEN
    PERFORM taskq._check_job_options(task, run_at, delay, priority, max_attempts, callback_url, unique_key, headers);
  END IF;
  IF cardinality(depends_on) > 0 THEN
    -- Locks the dependencies until this transaction ends, so that none can
    -- finish unseen: 42704 for an unknown one, 55000 for a failed or
    -- cancelled one; completed ones count as done.
    SELECT * INTO deps FROM taskq._lock_dependencies(depends_on);
    waiting_on := cardinality(deps.unfinished);
  END IF;
  -- The trace context: looked at only when there is one (a trace header or
  -- the session setting), so a job without pays one setting look-up.
  IF headers ?| ARRAY['traceparent', 'tracestate'] OR current_setting('taskq.traceparent', true) <> '' THEN
    headers := taskq._trace_headers(headers);
  END IF;
  IF concurrency_key IS NOT NULL THEN
    PERFORM taskq._check_concurrency_key(concurrency_key);
  END IF;

  due := greatest(coalesce(run_at, now() + coalesce(delay, interval '0')), now()) + q_delivery_delay;
  max_attempts := coalesce(max_attempts, q_max_attempts);

  IF unique_key IS NULL THEN
    new_id := taskq._uuid_v7();
    INSERT INTO taskq.jobs (id, queue_name, task, payload, status, priority, max_attempts, attempt_budget, run_at,
                            callback_url, headers, dependencies_left, concurrency_key)
    VALUES (new_id, queue_name, task, payload,
            CASE WHEN waiting_on > 0 THEN 'waiting' ELSE 'pending' END::taskq.job_status, priority, max_attempts,
            max_attempts, due, callback_url, headers, waiting_on, concurrency_key);
  ELSE
    -- Dedup that holds under concurrency: the partial unique index decides;
    -- a concurrent enqueue of the same key waits for ours and then sees it.
    LOOP
      INSERT INTO taskq.jobs AS j (id, queue_name, task, payload, status, priority, max_attempts, attempt_budget,
                                   run_at, callback_url, unique_key, headers, dependencies_left,
                                   concurrency_key)
      VALUES (taskq._uuid_v7(), queue_name, task, payload,
              CASE WHEN waiting_on > 0 THEN 'waiting' ELSE 'pending' END::taskq.job_status, priority, max_attempts,
              max_attempts, due, callback_url, unique_key, headers, waiting_on, concurrency_key)
      ON CONFLICT (queue_name, unique_key) WHERE unique_key IS NOT NULL AND status < 'completed'
      DO NOTHING
      RETURNING j.id INTO new_id;
      EXIT WHEN new_id IS NOT NULL;
      SELECT j.id INTO new_id FROM taskq.jobs j
      WHERE j.queue_name = enqueue.queue_name AND j.unique_key = enqueue.unique_key
        AND j.status < 'completed';
      IF FOUND THEN
        RETURN new_id;  -- the existing job; nothing new is created
      END IF;
      -- It finished between our insert and our look-up: try again.
    END LOOP;
  END IF;

  IF waiting_on IS NOT NULL THEN
    PERFORM taskq._add_dependencies(ARRAY[new_id], deps.unfinished, deps.completed);
    IF waiting_on > 0 THEN
      RETURN new_id;  -- published when its last dependency completes
    END IF;
  END IF;
  INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at) VALUES (new_id, queue_name, 1, due);
  IF NOT q_paused THEN
    PERFORM taskq._wake_publisher_at_commit();  -- a paused queue's jobs wait for resume_queue's wake-up
  END IF;
  RETURN new_id;
END;
$$;
COMMENT ON FUNCTION taskq.enqueue(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb, uuid[], text) IS
  'adds a job to a queue in the caller''s transaction and returns its id; it is published to RabbitMQ once that transaction commits';

CREATE OR REPLACE FUNCTION taskq.enqueue_many(
  queue_name text,
  payloads jsonb,
  task text DEFAULT NULL,
  run_at timestamptz DEFAULT NULL,
  delay interval DEFAULT NULL,
  priority int DEFAULT 0,
  max_attempts int DEFAULT NULL,
  callback_url text DEFAULT NULL,
  unique_key text DEFAULT NULL,
  headers jsonb DEFAULT NULL,
  depends_on uuid[] DEFAULT NULL,
  concurrency_key text DEFAULT NULL
) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  q_max_attempts int;
  q_delivery_delay interval;
  q_paused boolean;
  due timestamptz;
  element jsonb;
  deps record;
  waiting_on int;
  new_ids uuid[];
BEGIN
  SELECT q.max_attempts, q.delivery_delay, q.paused INTO q_max_attempts, q_delivery_delay, q_paused
  FROM taskq.queues q WHERE q.queue_name = enqueue_many.queue_name;
  IF NOT FOUND THEN
    PERFORM taskq._check_queue_name(queue_name);
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  IF payloads IS NULL THEN
    RAISE EXCEPTION 'payloads must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF jsonb_typeof(payloads) <> 'array' THEN
    RAISE EXCEPTION 'payloads must be a JSON array, not %', jsonb_typeof(payloads)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'one job is created per array element';
  END IF;
  IF jsonb_array_length(payloads) > 100000 THEN
    RAISE EXCEPTION 'payloads has % elements; at most 100000 per call', jsonb_array_length(payloads)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM taskq._check_job_options(task, run_at, delay, priority, max_attempts, callback_url, unique_key, headers);
  -- The trace context, as in enqueue: one for all the jobs of the call.
  IF headers ?| ARRAY['traceparent', 'tracestate'] OR current_setting('taskq.traceparent', true) <> '' THEN
    headers := taskq._trace_headers(headers);
  END IF;
  IF concurrency_key IS NOT NULL THEN
    PERFORM taskq._check_concurrency_key(concurrency_key);
  END IF;
  IF EXISTS (SELECT 1 FROM jsonb_array_elements(payloads) e(value) WHERE pg_column_size(e.value) > taskq._max_document_bytes()) THEN
    RAISE EXCEPTION 'a payload in payloads is too large'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = format('the limit is %s bytes per payload', taskq._max_document_bytes());
  END IF;

  IF unique_key IS NOT NULL THEN
    -- Every element shares the key: the first creates the job, the others
    -- get its id (the same rule as enqueue). Rare, so no set-wise path.
    FOR element IN SELECT e.value FROM jsonb_array_elements(payloads) e(value) LOOP
      RETURN NEXT taskq.enqueue(queue_name, element, task, run_at, delay, priority, max_attempts,
                                callback_url, unique_key, headers, depends_on, concurrency_key);
    END LOOP;
    RETURN;
  END IF;

  due := greatest(coalesce(run_at, now() + coalesce(delay, interval '0')), now()) + q_delivery_delay;
  max_attempts := coalesce(max_attempts, q_max_attempts);

  IF cardinality(depends_on) > 0 THEN
    -- Every element waits for the same jobs: locked once, as in enqueue.
    SELECT * INTO deps FROM taskq._lock_dependencies(depends_on);
    waiting_on := cardinality(deps.unfinished);
    WITH new_jobs AS (
      INSERT INTO taskq.jobs (id, queue_name, task, payload, status, priority, max_attempts, attempt_budget, run_at,
                              callback_url, headers, dependencies_left, concurrency_key)
      SELECT taskq._uuid_v7(), enqueue_many.queue_name, enqueue_many.task, ordered.value,
             CASE WHEN waiting_on > 0 THEN 'waiting' ELSE 'pending' END::taskq.job_status, enqueue_many.priority,
             enqueue_many.max_attempts, enqueue_many.max_attempts, due, enqueue_many.callback_url,
             enqueue_many.headers, waiting_on, enqueue_many.concurrency_key
      FROM (SELECT e.value FROM jsonb_array_elements(payloads) WITH ORDINALITY e(value, ord) ORDER BY e.ord) ordered
      RETURNING id
    )
    SELECT array_agg(new_jobs.id ORDER BY new_jobs.id) INTO new_ids FROM new_jobs;
    PERFORM taskq._add_dependencies(new_ids, deps.unfinished, deps.completed);
    IF waiting_on = 0 THEN
      INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
      SELECT n.id, enqueue_many.queue_name, 1, due FROM unnest(new_ids) n(id);
      IF NOT q_paused THEN
        PERFORM taskq._wake_publisher_at_commit();
      END IF;
    END IF;
    RETURN QUERY SELECT n.id FROM unnest(new_ids) n(id);
    RETURN;
  END IF;

  -- Set-wise: ids are generated in array order (the ordered subquery feeds
  -- the id generator), so sorting by id returns them in array order.
  RETURN QUERY
  WITH new_jobs AS (
    INSERT INTO taskq.jobs (id, queue_name, task, payload, priority, max_attempts, attempt_budget, run_at,
                            callback_url, headers, concurrency_key)
    SELECT taskq._uuid_v7(), enqueue_many.queue_name, enqueue_many.task, ordered.value, enqueue_many.priority,
           enqueue_many.max_attempts, enqueue_many.max_attempts, due, enqueue_many.callback_url, enqueue_many.headers,
           enqueue_many.concurrency_key
    FROM (SELECT e.value FROM jsonb_array_elements(payloads) WITH ORDINALITY e(value, ord) ORDER BY e.ord) ordered
    RETURNING id
  ), new_outbox AS (
    INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
    SELECT new_jobs.id, enqueue_many.queue_name, 1, due FROM new_jobs
  )
  SELECT new_jobs.id FROM new_jobs ORDER BY new_jobs.id;
  IF NOT q_paused THEN
    PERFORM taskq._wake_publisher_at_commit();
  END IF;
END;
$$;
COMMENT ON FUNCTION taskq.enqueue_many(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb, uuid[], text) IS
  'adds one job per element of the JSON array payloads, set-wise; returns the ids in array order';

CREATE OR REPLACE FUNCTION taskq._fail_attempt(j taskq.jobs, error text, retry_in interval, permanent boolean)
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

CREATE OR REPLACE FUNCTION taskq.start(job_id uuid, attempt int, worker text, request_id uuid DEFAULT NULL)
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

CREATE OR REPLACE FUNCTION taskq.complete(job_id uuid, attempt int, result jsonb DEFAULT NULL, enqueue jsonb DEFAULT NULL)
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

CREATE OR REPLACE FUNCTION taskq.cancel(job_id uuid) RETURNS taskq.jobs
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

-- BEGIN ATOMIC: lists the columns of taskq.jobs it was created with.
CREATE OR REPLACE FUNCTION taskq.job(job_id uuid) RETURNS SETOF taskq.jobs
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  SELECT * FROM taskq.jobs WHERE id = job_id;
END;
COMMENT ON FUNCTION taskq.job(uuid) IS 'the job with this id; zero rows if there is none';

DROP FUNCTION taskq._start_batch(jsonb, text, uuid);
CREATE FUNCTION taskq._start_batch(items jsonb, worker text, request_id uuid DEFAULT NULL,
                                   report_held boolean DEFAULT false)
RETURNS TABLE (job_id uuid, attempt int, max_attempts int, lease_ms bigint, held boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  w record;
  limited uuid[];
  l record;
BEGIN
  PERFORM taskq._check_batch(items);
  IF worker IS NULL OR worker = '' OR octet_length(worker) > 255 THEN
    RAISE EXCEPTION 'worker must be a name of 1 to 255 bytes' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Jobs a flow limit applies to start through _start_limited
  -- (55_flow_control), which may hold them back: looked for only while
  -- some queue has a limit.
  IF EXISTS (SELECT 1 FROM taskq.queues q WHERE q.rate_limit IS NOT NULL OR q.concurrency_limit IS NOT NULL) THEN
    limited := taskq._lock_for_limited_start(ARRAY(SELECT i.id FROM jsonb_to_recordset(items) AS i(id uuid)));
  END IF;
  held := false;
  -- One UPDATE per item, by primary key, rather than one joined UPDATE:
  -- when the statistics undercount pending jobs (a fresh table, or a burst
  -- that autoanalyze has not seen yet: exactly when a backlog builds), the
  -- join was planned as a hash over every pending job, read again for each
  -- batch (5 ms per batch of 16 with 20,000 pending, against 0.2 ms). The
  -- loop costs ~10 us per item more than the join at its best.
  -- The state checks sit in a CASE, where the planner cannot match them to
  -- the partial index jobs_pending: a generic plan made while the table was
  -- small walked that index (every pending job) to find one row.
  -- A job twice in one batch (a duplicate delivery) starts at most once.
  FOR w IN
    SELECT DISTINCT ON (i.id) i.id, i.attempt
    FROM jsonb_to_recordset(items) AS i(id uuid, attempt int)
    ORDER BY i.id, i.attempt
  LOOP
    IF w.id = ANY (limited) THEN
      l := taskq._start_limited(w.id, w.attempt, worker, request_id);
      IF (l.started).id IS NOT NULL THEN
        job_id := (l.started).id;
        attempt := (l.started).attempts;
        max_attempts := (l.started).max_attempts;
        lease_ms := (extract(epoch FROM l.lease) * 1000)::bigint;
        RETURN NEXT;
      ELSIF l.held AND report_held THEN
        -- Held back: stale for this delivery; the job goes out again when
        -- its turn comes. Reported so that the worker can count it.
        job_id := w.id;
        attempt := w.attempt;
        max_attempts := NULL;
        lease_ms := NULL;
        held := true;
        RETURN NEXT;
        held := false;
      END IF;
      CONTINUE;
    END IF;
    UPDATE taskq.jobs j
    SET status = 'running', attempts = w.attempt, worker = _start_batch.worker,
        started_at = CASE WHEN j.status = 'running' THEN j.started_at ELSE now() END,
        lease_expires_at = CASE WHEN j.cancel_requested THEN j.lease_expires_at ELSE now() + q.lease END,
        updated_at = now(), start_request_id = _start_batch.request_id
    FROM taskq.queues q
    WHERE j.id = w.id AND q.queue_name = j.queue_name
      AND CASE WHEN j.status = 'pending' AND j.attempts + 1 = w.attempt AND j.run_at <= now() THEN true
               WHEN j.status = 'running' AND j.attempts = w.attempt AND j.start_request_id = _start_batch.request_id
                    AND j.worker = _start_batch.worker THEN true END
    RETURNING j.id, j.attempts, j.max_attempts, (extract(epoch FROM q.lease) * 1000)::bigint
    INTO job_id, attempt, max_attempts, lease_ms;
    IF FOUND THEN
      RETURN NEXT;
    END IF;
  END LOOP;
END;
$$;
COMMENT ON FUNCTION taskq._start_batch(jsonb, text, uuid, boolean) IS
  'internal (taskq-worker): taskq.start for many {"id", "attempt"} items; returns the jobs that started, with their lease in ms, and with report_held the items a flow limit held back (held = true)';

CREATE OR REPLACE FUNCTION taskq._complete_batch(items jsonb) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  done taskq.jobs;
  completed uuid[] := '{}';
  with_dependents uuid[] := '{}';
  follow_ups jsonb;
  freed_queues text[];
  freed_keys text[];
BEGIN
  PERFORM taskq._check_batch(items);
  -- The same limit as taskq.complete; the whole batch is refused, and the
  -- worker then records its items one by one to find the culprit.
  IF EXISTS (SELECT 1 FROM jsonb_to_recordset(items) AS i(result jsonb)
             WHERE pg_column_size(i.result) > taskq._max_document_bytes()) THEN
    RAISE EXCEPTION 'a result in the batch is too large'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = format('the limit is %s bytes per result', taskq._max_document_bytes());
  END IF;
  FOR done IN
    WITH wanted AS (
      SELECT DISTINCT ON (i.id) i.id, i.attempt, i.result
      FROM jsonb_to_recordset(items) AS i(id uuid, attempt int, result jsonb)
      ORDER BY i.id, i.attempt
    )
    UPDATE taskq.jobs j SET status = 'completed', result = w.result, finished_at = now(),
                            lease_expires_at = NULL, updated_at = now()
    FROM wanted w
    WHERE j.id = w.id AND j.status = 'running' AND j.attempts = w.attempt
    RETURNING j.*
  LOOP
    IF done.callback_url IS NOT NULL THEN
      PERFORM taskq._write_callback(done);
    END IF;
    IF done.has_dependents THEN
      with_dependents := with_dependents || done.id;
    END IF;
    IF done.concurrency_key IS NOT NULL THEN
      freed_queues := freed_queues || done.queue_name;
      freed_keys := freed_keys || done.concurrency_key;
    END IF;
    completed := completed || done.id;
    RETURN NEXT done.id;
  END LOOP;
  -- One call for the batch, not one per job: the complete path stays cheap.
  IF cardinality(completed) > 0 THEN
    PERFORM taskq._wake_waiters_at_commit(completed);
  END IF;
  -- Follow-up jobs of the items that completed their job: the item the
  -- UPDATE above used (the same DISTINCT ON), so a duplicate in the batch
  -- enqueues nothing. Looked for only when some item has them.
  IF jsonb_path_exists(items, 'lax $[*].enqueue') THEN
    FOR follow_ups IN
      SELECT w.enqueue
      FROM (SELECT DISTINCT ON (i.id) i.id, i.enqueue
            FROM jsonb_to_recordset(items) AS i(id uuid, attempt int, enqueue jsonb)
            ORDER BY i.id, i.attempt) w
      WHERE w.enqueue IS NOT NULL AND w.id = ANY (completed)
      ORDER BY w.id
    LOOP
      PERFORM taskq._enqueue_specs(follow_ups, 'enqueue');
    END LOOP;
  END IF;
  -- All at once: each waiting dependent is locked and decremented once per
  -- batch, however many of its dependencies the batch completed.
  IF cardinality(with_dependents) > 0 THEN
    PERFORM taskq._release_dependents(with_dependents);
  END IF;
  -- Their slots go to held jobs, the keys in lock order (55_flow_control).
  IF freed_keys IS NOT NULL THEN
    PERFORM taskq._release_slots_of(freed_queues, freed_keys);
  END IF;
  -- Items that did not complete now may be repeats of a batch that
  -- completed them (as in taskq.complete): they count again, nothing is
  -- written. Looked up only when some item did not act, which is rare.
  IF cardinality(completed) < jsonb_array_length(items) THEN
    RETURN QUERY
    SELECT j.id
    FROM (SELECT DISTINCT i.id, i.attempt FROM jsonb_to_recordset(items) AS i(id uuid, attempt int)) w
    JOIN taskq.jobs j ON j.id = w.id
    WHERE j.status = 'completed' AND j.attempts = w.attempt AND j.id <> ALL (completed);
  END IF;
END;
$$;
COMMENT ON FUNCTION taskq._complete_batch(jsonb) IS
  'internal (taskq-worker): taskq.complete for many {"id", "attempt", "result", "enqueue"} items; returns the jobs that completed';

CREATE OR REPLACE FUNCTION taskq._outbox_claim(batch_size int, after_due timestamptz DEFAULT NULL, after_id bigint DEFAULT NULL)
RETURNS TABLE (outbox_id bigint, job_id uuid, queue_name text, queue_type text, task text, priority int,
               attempt int, headers jsonb, created_at timestamptz, body text, due_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  -- FOR SHARE: resume_queue waits for this transaction to end, and so sees
  -- (and releases) every row set aside below. A queue resumed meanwhile is
  -- seen unpaused here.
  paused text[] := ARRAY(SELECT q.queue_name FROM taskq.queues q WHERE q.paused ORDER BY q.queue_name FOR SHARE);
  cursor_due timestamptz := coalesce(after_due, '-infinity');
  cursor_id bigint := coalesce(after_id, 0);
  wanted int := batch_size;
  front taskq.outbox[];
  scanned int;
  returned int;
BEGIN
  -- Rows of paused queues are set aside (held) and dead ones dropped; when
  -- that leaves the batch short while more rows are due, scan on, so that a
  -- short batch still means "nothing more is due" to the publisher.
  LOOP
    -- Shaped for a cheap generic plan: lock rows from the outbox alone
    -- (partial index outbox_due), then fetch each row's job and queue by
    -- primary key (LATERAL), never a hash join over the whole jobs table.
    -- One row comparison (not "after_due IS NULL OR ..."): an index
    -- condition, so the scan starts at the cursor and stops after `wanted`
    -- rows. With the OR, the generic plan read and sorted the whole backlog
    -- for every batch.
    SELECT array_agg(s.o ORDER BY (s.o).due_at, (s.o).id) INTO front
    FROM (SELECT o FROM taskq.outbox o
          WHERE NOT o.held AND (o.due_at, o.id) > (cursor_due, cursor_id) AND o.due_at <= now()
          ORDER BY o.due_at, o.id
          LIMIT wanted
          FOR UPDATE OF o SKIP LOCKED) s;
    scanned := coalesce(cardinality(front), 0);
    EXIT WHEN scanned = 0;
    cursor_due := (front[scanned]).due_at;
    cursor_id := (front[scanned]).id;
    IF cardinality(paused) > 0 THEN
      UPDATE taskq.outbox o SET held = true
      WHERE o.id = ANY (ARRAY(SELECT f.id FROM unnest(front) f WHERE f.queue_name = ANY (paused)));
    END IF;

    RETURN QUERY
    WITH joined AS (
      SELECT c.id, c.attempt, c.due_at, jq.*
      FROM unnest(front) c
      LEFT JOIN LATERAL (
        SELECT j.id AS jid, j.queue_name AS jqueue, j.task AS jtask, j.payload AS jpayload, j.priority AS jpriority,
               j.max_attempts AS jmax, j.headers AS jheaders, j.created_at AS jcreated, q.queue_type AS jtype,
               j.dependencies_left IS NOT NULL AS jdeps,
               j.status = 'pending' AND j.attempts + 1 = c.attempt AS live,
               -- A flow limit applies and the gate has not admitted it yet.
               (q.rate_limit IS NOT NULL OR (q.concurrency_limit IS NOT NULL AND j.concurrency_key IS NOT NULL))
                 AND j.flow_state IS DISTINCT FROM 'admitted' AS gated
        FROM taskq.jobs j JOIN taskq.queues q ON q.queue_name = j.queue_name
        WHERE j.id = c.job_id
      ) jq ON true
      WHERE c.queue_name <> ALL (paused)
    ), dropped AS (
      -- The job was cancelled, finished, started or deleted since the row
      -- was written: nothing to publish.
      DELETE FROM taskq.outbox o WHERE o.id = ANY (ARRAY(SELECT c.id FROM joined c WHERE c.live IS NOT TRUE))
    ), gated AS (
      -- Set aside for the publisher's flow step (55_flow_control), which
      -- admits or parks them in a short transaction of its own: the job
      -- rows are not touched here, so a worker starting an admitted job
      -- never waits for this pass's locks. A WITH statement that changes
      -- rows runs to the end whether or not its output is read, and its
      -- RETURNING asks for that step at commit (no row: no call).
      UPDATE taskq.outbox o SET held = true
      WHERE o.id = ANY (ARRAY(SELECT c.id FROM joined c WHERE c.live AND c.gated))
      RETURNING taskq._flow_changed_at_commit()
    )
    SELECT c.id, c.jid, c.jqueue, c.jtype, c.jtask, c.jpriority::int, c.attempt, c.jheaders, c.jcreated,
           -- Text concatenation rather than jsonb_build_object(...)::text:
           -- the same JSON at a third of the cost (no jsonb copy of the payload).
           '{"id":"' || c.jid::text || '","queue":' || to_json(c.jqueue)::text
             || ',"task":' || coalesce(to_json(c.jtask)::text, 'null') || ',"payload":' || c.jpayload::text
             || ',"attempt":' || c.attempt::text || ',"max_attempts":' || c.jmax::text
             || ',"enqueued_at":' || to_json(c.jcreated)::text
             || ',"headers":' || coalesce(c.jheaders::text, '{}')
             -- Looked up only for a job that has dependencies.
             || ',"depends_on":' || CASE WHEN c.jdeps THEN taskq._dependency_ids(c.jid) ELSE '[]' END || '}',
           c.due_at
    FROM joined c
    WHERE c.live AND NOT c.gated
    ORDER BY c.due_at, c.id;
    GET DIAGNOSTICS returned = ROW_COUNT;
    EXIT WHEN returned >= wanted OR scanned < wanted;
    wanted := wanted - returned;
  END LOOP;
END;
$$;
COMMENT ON FUNCTION taskq._outbox_claim(int, timestamptz, bigint) IS
  'internal (publisher): locks up to batch_size due outbox rows of unpaused queues and returns the messages to publish';

CREATE OR REPLACE FUNCTION taskq._reconcile_lost(queue_name text, older_than interval) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  republished int;
BEGIN
  -- PostgreSQL is the source of truth: a pending job that was published
  -- long ago and never started may have lost its message (purged queue,
  -- policy, deleted queue). Publishing it again is safe: start() fences the
  -- duplicate by attempt number.
  INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
  SELECT j.id, j.queue_name, j.attempts + 1, now()
  FROM taskq.jobs j
  WHERE j.queue_name = _reconcile_lost.queue_name AND j.status = 'pending'
    AND j.run_at < now() - older_than
    AND coalesce(j.published_at, j.created_at) < now() - older_than
    AND coalesce(j.flow_state, 'admitted') = 'admitted'  -- a held job has no message on purpose
    AND NOT EXISTS (SELECT 1 FROM taskq.outbox o WHERE o.job_id = j.id);
  GET DIAGNOSTICS republished = ROW_COUNT;
  -- Until the new row is confirmed, NOT EXISTS above keeps a second pass
  -- from adding another; the confirm then refreshes published_at.
  IF republished > 0 THEN
    PERFORM taskq._wake_publisher_at_commit();
  END IF;
  RETURN republished;
END;
$$;
COMMENT ON FUNCTION taskq._reconcile_lost(text, interval) IS
  'internal (publisher): publishes again pending jobs of a queue whose message was published more than older_than ago and never started';

CREATE FUNCTION taskq._key_lock_id(queue_name text, concurrency_key text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN hashtext(queue_name || E'\n' || concurrency_key);

CREATE FUNCTION taskq._lock_key(queue_name text, concurrency_key text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
RETURN pg_advisory_xact_lock(1952543595, taskq._key_lock_id(queue_name, concurrency_key));

CREATE FUNCTION taskq._key_slots_taken(queue_name text, concurrency_key text) RETURNS int
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN (SELECT count(*)::int FROM taskq.jobs j
        WHERE j.queue_name = _key_slots_taken.queue_name AND j.concurrency_key = _key_slots_taken.concurrency_key
          AND j.concurrency_key IS NOT NULL
          AND (j.status = 'running' OR (j.status = 'pending' AND j.flow_state IN ('admitted', 'rate_held'))));

CREATE FUNCTION taskq._rate_take(queue_name text, rate_limit int, rate_period interval, wanted int,
                                 dry_run boolean DEFAULT false, OUT granted int, OUT next_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  w taskq.rate_windows;
  t timestamptz;
  n int;
  first int := 1;
  used int;
BEGIN
  SELECT * INTO w FROM taskq.rate_windows r
  WHERE r.queue_name = _rate_take.queue_name AND r.side = 'start' FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO taskq.rate_windows (queue_name, side) VALUES (_rate_take.queue_name, 'start') ON CONFLICT DO NOTHING;
    SELECT * INTO w FROM taskq.rate_windows r
    WHERE r.queue_name = _rate_take.queue_name AND r.side = 'start' FOR UPDATE;
  END IF;
  n := coalesce(array_length(w.times, 1), 0);
  t := clock_timestamp();
  IF n > 0 AND w.times[n] > t THEN
    t := w.times[n];  -- the clock stepped back: stay in order
  END IF;
  WHILE first <= n AND w.times[first] < t - rate_period LOOP
    first := first + 1;
  END LOOP;
  IF first > 1 THEN
    w.times := w.times[first:n];
    w.counts := w.counts[first:n];
    n := n - first + 1;
  END IF;
  used := coalesce((SELECT sum(c)::int FROM unnest(w.counts) c), 0);
  granted := greatest(least(wanted, rate_limit - used), 0);
  IF used + granted < rate_limit OR n = 0 THEN
    next_at := t;
  ELSE
    next_at := w.times[1] + rate_period + interval '1 microsecond';  -- full until its oldest entry leaves
  END IF;
  IF dry_run THEN
    RETURN;
  END IF;
  IF granted > 0 THEN
    IF n > 0 AND w.times[n] > t - rate_period / 128 THEN
      w.times[n] := t;
      w.counts[n] := w.counts[n] + granted;
    ELSE
      w.times := w.times || t;
      w.counts := w.counts || granted;
    END IF;
  END IF;
  UPDATE taskq.rate_windows r SET times = w.times, counts = w.counts
  WHERE r.queue_name = _rate_take.queue_name AND r.side = 'start';
END;
$$;

CREATE FUNCTION taskq._rate_pace(queue_name text, rate_limit int, rate_period interval, in_flight int, wanted int,
                                 dry_run boolean DEFAULT false, OUT granted int, OUT next_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  pacing timestamptz;
  times timestamptz[];
  counts int[];
  now_t timestamptz := clock_timestamp();
  used int;
  pace interval := rate_period / rate_limit;
  -- Catching up after the publisher ran late (a busy machine), and jobs in
  -- flight: up to half a second's worth of slots or 5% of the limit,
  -- whichever is more (a smaller allowance lost a tenth of the rate on a
  -- machine loaded 15 times over its cores); the start window keeps every
  -- window's starts to the limit whatever the pacing does.
  burst int := least(rate_limit, greatest(1, ceil(rate_limit * 0.05),
                                          ceil(extract(epoch FROM interval '500 milliseconds')
                                               / greatest(extract(epoch FROM pace), 1e-6))))::int;
  credit int;
  window_next timestamptz;
BEGIN
  SELECT r.next_at INTO pacing FROM taskq.rate_windows r
  WHERE r.queue_name = _rate_pace.queue_name AND r.side = 'publish' FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO taskq.rate_windows (queue_name, side) VALUES (_rate_pace.queue_name, 'publish') ON CONFLICT DO NOTHING;
    PERFORM 1 FROM taskq.rate_windows r WHERE r.queue_name = _rate_pace.queue_name AND r.side = 'publish' FOR UPDATE;
  END IF;
  SELECT r.times, r.counts INTO times, counts FROM taskq.rate_windows r
  WHERE r.queue_name = _rate_pace.queue_name AND r.side = 'start';
  SELECT coalesce(sum(e.c), 0)::int, min(e.t) + rate_period + interval '1 microsecond' INTO used, window_next
  FROM unnest(times, counts) AS e(t, c) WHERE e.t >= now_t - rate_period;
  -- Late by less than the burst: the missed slots may go now. Idle for
  -- longer: start afresh, one now (a full burst after every pause would
  -- come back as a burst of starts leaving the window a period later, and
  -- again, each time a little of the rate lost).
  IF pacing IS NULL OR pacing < now_t - pace * burst THEN
    pacing := now_t;
  END IF;
  IF pacing > now_t THEN
    credit := 0;
  ELSIF pace = interval '0' THEN
    credit := burst;
  ELSE
    credit := least(burst, floor(extract(epoch FROM now_t - pacing) / extract(epoch FROM pace))::int + 1);
  END IF;
  -- And no more in flight than a burst: published jobs that no worker takes
  -- (none runs yet, all are busy) would otherwise pile up in RabbitMQ and
  -- start at once when one does.
  granted := greatest(least(wanted, credit, rate_limit - used - in_flight, burst - in_flight), 0);
  pacing := pacing + pace * granted;
  IF in_flight + granted >= burst THEN
    next_at := greatest(pacing, now_t + pace);  -- when some have started (the next call sees it)
  ELSIF used + in_flight + granted < rate_limit THEN
    next_at := greatest(pacing, now_t);
  ELSE
    -- Room comes back when the oldest start leaves the window (or when a
    -- published job does not start after all: the next call sees that).
    next_at := greatest(pacing, coalesce(window_next, now_t + pace));
  END IF;
  IF NOT dry_run THEN
    UPDATE taskq.rate_windows r SET next_at = pacing WHERE r.queue_name = _rate_pace.queue_name AND r.side = 'publish';
  END IF;
END;
$$;

CREATE FUNCTION taskq._release_slots(queue_name text, concurrency_key text) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  q_limit int;
  q_rate int;
  free int;
  released int := 0;
  j record;
BEGIN
  SELECT q.concurrency_limit, q.rate_limit INTO q_limit, q_rate
  FROM taskq.queues q WHERE q.queue_name = _release_slots.queue_name;
  IF q_limit IS NULL OR concurrency_key IS NULL THEN
    RETURN 0;
  END IF;
  PERFORM taskq._lock_key(queue_name, concurrency_key);
  free := q_limit - taskq._key_slots_taken(queue_name, concurrency_key);
  IF free <= 0 THEN
    RETURN 0;
  END IF;
  FOR j IN
    SELECT h.id, h.attempts FROM taskq.jobs h
    WHERE h.queue_name = _release_slots.queue_name AND h.concurrency_key = _release_slots.concurrency_key
      AND h.status = 'pending' AND h.flow_state = 'key_held'
    ORDER BY h.priority DESC, h.id
    LIMIT free
    FOR UPDATE SKIP LOCKED
  LOOP
    IF q_rate IS NULL THEN
      UPDATE taskq.jobs SET flow_state = 'admitted', updated_at = now() WHERE id = j.id;
      INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
      VALUES (j.id, _release_slots.queue_name, j.attempts + 1, now());
    ELSE
      UPDATE taskq.jobs SET flow_state = 'rate_held', updated_at = now() WHERE id = j.id;
    END IF;
    released := released + 1;
  END LOOP;
  IF released > 0 THEN
    IF q_rate IS NULL THEN
      PERFORM taskq._wake_publisher_at_commit();
    ELSE
      PERFORM taskq._flow_changed_at_commit();
    END IF;
  END IF;
  RETURN released;
END;
$$;

CREATE FUNCTION taskq._release_slots_of(queue_names text[], concurrency_keys text[]) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  k record;
  released int := 0;
BEGIN
  FOR k IN
    SELECT DISTINCT f.queue_name, f.concurrency_key, taskq._key_lock_id(f.queue_name, f.concurrency_key) AS lock_id
    FROM unnest(queue_names, concurrency_keys) AS f(queue_name, concurrency_key)
    WHERE f.concurrency_key IS NOT NULL
    ORDER BY lock_id
  LOOP
    released := released + taskq._release_slots(k.queue_name, k.concurrency_key);
  END LOOP;
  RETURN released;
END;
$$;

CREATE FUNCTION taskq._held_keys(queue_name text) RETURNS SETOF text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  WITH RECURSIVE k(concurrency_key) AS (
    (SELECT j.concurrency_key FROM taskq.jobs j
     WHERE j.queue_name = _held_keys.queue_name AND j.status = 'pending' AND j.flow_state = 'key_held'
     ORDER BY j.concurrency_key LIMIT 1)
    UNION ALL
    SELECT (SELECT j.concurrency_key FROM taskq.jobs j
            WHERE j.queue_name = _held_keys.queue_name AND j.status = 'pending' AND j.flow_state = 'key_held'
              AND j.concurrency_key > k.concurrency_key
            ORDER BY j.concurrency_key LIMIT 1)
    FROM k WHERE k.concurrency_key IS NOT NULL
  )
  SELECT k.concurrency_key FROM k WHERE k.concurrency_key IS NOT NULL;
END;

CREATE FUNCTION taskq._lock_for_limited_start(job_ids uuid[]) RETURNS uuid[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  limited uuid[];
  rated text[];
  k record;
BEGIN
  SELECT array_agg(j.id),
         array_agg(DISTINCT j.queue_name) FILTER (WHERE q.rate_limit IS NOT NULL)
  INTO limited, rated
  FROM taskq.jobs j JOIN taskq.queues q ON q.queue_name = j.queue_name
  WHERE j.id = ANY (job_ids)
    AND (q.rate_limit IS NOT NULL OR (q.concurrency_limit IS NOT NULL AND j.concurrency_key IS NOT NULL));
  IF limited IS NULL THEN
    RETURN '{}';
  END IF;
  -- A start counts the running jobs of a key, which this transaction's
  -- snapshot must show as they are after the key's lock is granted.
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'jobs of queues with flow limits start only in READ COMMITTED transactions'
      USING ERRCODE = 'feature_not_supported',
            HINT = 'call taskq.start outside an explicit REPEATABLE READ or SERIALIZABLE transaction';
  END IF;
  PERFORM 1 FROM taskq.jobs j WHERE j.id = ANY (job_ids) ORDER BY j.id FOR UPDATE;
  IF rated IS NOT NULL THEN
    PERFORM 1 FROM taskq.rate_windows r WHERE r.queue_name = ANY (rated) AND r.side = 'start'
    ORDER BY r.queue_name FOR UPDATE;
  END IF;
  FOR k IN
    SELECT DISTINCT j.queue_name, j.concurrency_key, taskq._key_lock_id(j.queue_name, j.concurrency_key) AS lock_id
    FROM taskq.jobs j JOIN taskq.queues q ON q.queue_name = j.queue_name
    WHERE j.id = ANY (limited) AND j.concurrency_key IS NOT NULL AND q.concurrency_limit IS NOT NULL
    ORDER BY lock_id
  LOOP
    PERFORM taskq._lock_key(k.queue_name, k.concurrency_key);
  END LOOP;
  RETURN limited;
END;
$$;

CREATE FUNCTION taskq._start_limited(job_id uuid, attempt int, worker text, request_id uuid,
                                     OUT started taskq.jobs, OUT held boolean, OUT lease interval)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  j taskq.jobs;
  q taskq.queues;
  parked text;
BEGIN
  held := false;
  SELECT * INTO j FROM taskq.jobs WHERE id = _start_limited.job_id;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  SELECT * INTO q FROM taskq.queues WHERE queue_name = j.queue_name;
  lease := q.lease;
  -- Only a start that would begin an attempt is limited; a stale one stays
  -- stale and a repeat gets its answer again (the UPDATE below decides).
  IF j.status = 'pending' AND j.attempts + 1 = attempt AND j.run_at <= now() THEN
    IF q.concurrency_limit IS NOT NULL AND j.concurrency_key IS NOT NULL
       AND (SELECT count(*) FROM taskq.jobs r
            WHERE r.queue_name = j.queue_name AND r.concurrency_key = j.concurrency_key
              AND r.status = 'running') >= q.concurrency_limit THEN
      parked := 'key_held';
    ELSIF q.rate_limit IS NOT NULL
          AND (taskq._rate_take(j.queue_name, q.rate_limit, q.rate_period, 1)).granted = 0 THEN
      parked := 'rate_held';
    END IF;
    IF parked IS NOT NULL THEN
      UPDATE taskq.jobs SET flow_state = parked, updated_at = now() WHERE id = j.id;
      PERFORM taskq._flow_changed_at_commit();
      held := true;
      RETURN;
    END IF;
  END IF;
  UPDATE taskq.jobs r
  SET status = 'running', attempts = _start_limited.attempt, worker = _start_limited.worker,
      started_at = CASE WHEN r.status = 'running' THEN r.started_at ELSE now() END,
      lease_expires_at = CASE WHEN r.cancel_requested THEN r.lease_expires_at ELSE now() + q.lease END,
      updated_at = now(), start_request_id = _start_limited.request_id, flow_state = NULL
  WHERE r.id = j.id
    AND CASE WHEN r.status = 'pending' AND r.attempts + 1 = _start_limited.attempt AND r.run_at <= now() THEN true
             WHEN r.status = 'running' AND r.attempts = _start_limited.attempt
                  AND r.start_request_id = _start_limited.request_id AND r.worker = _start_limited.worker THEN true END
  RETURNING r.* INTO started;
END;
$$;

CREATE FUNCTION taskq._flow_gate(sweep boolean, OUT next_at timestamptz, OUT sweep_again boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  limited text[] := ARRAY(SELECT q.queue_name FROM taskq.queues q
                          WHERE (q.rate_limit IS NOT NULL OR q.concurrency_limit IS NOT NULL) AND NOT q.paused
                          ORDER BY q.queue_name);
  next_run timestamptz;
  aside_ids bigint[];
  aside jsonb;
  keys_locked int := 0;
  free int;
  taken int;
  fk record;
  fj record;
  fq record;
  fr record;
  in_flight int;
  lease_due timestamptz;
BEGIN
  sweep_again := false;
  IF cardinality(limited) = 0 THEN
    RETURN;
  END IF;

  -- 1. Rows set aside by the claim.
  aside_ids := ARRAY(SELECT o.id FROM taskq.outbox o
                     WHERE o.held AND o.queue_name = ANY (limited)
                     ORDER BY o.id LIMIT 5000 FOR UPDATE SKIP LOCKED);
  IF cardinality(aside_ids) > 0 THEN
    IF cardinality(aside_ids) = 5000 THEN
      next_run := now();  -- more to do: go again at once
    END IF;
    -- Each row's job, locked without waiting: one locked elsewhere (a start
    -- of a duplicate delivery) keeps its row aside for the next call.
    SELECT jsonb_agg(jsonb_build_object(
             'o', o.id, 'j', o.job_id, 'q', j.queue_name, 'k', j.concurrency_key, 'p', j.priority,
             'v', CASE WHEN j.id IS NULL OR j.status <> 'pending' OR j.attempts + 1 <> o.attempt THEN 'dead'
                       WHEN j.flow_state = 'admitted' THEN 'publish'
                       WHEN j.flow_state IN ('key_held', 'rate_held') THEN 'parked'
                       WHEN qq.concurrency_limit IS NOT NULL AND j.concurrency_key IS NOT NULL THEN 'key'
                       WHEN qq.rate_limit IS NOT NULL THEN 'rate'
                       ELSE 'publish' END))
    INTO aside
    FROM taskq.outbox o
    LEFT JOIN LATERAL (SELECT l.* FROM taskq.jobs l WHERE l.id = o.job_id FOR UPDATE SKIP LOCKED) j ON true
    LEFT JOIN taskq.queues qq ON qq.queue_name = j.queue_name
    WHERE o.id = ANY (aside_ids)
      AND (j.id IS NOT NULL OR NOT EXISTS (SELECT 1 FROM taskq.jobs x WHERE x.id = o.job_id));
    IF coalesce(jsonb_array_length(aside), 0) < cardinality(aside_ids) THEN
      next_run := least(coalesce(next_run, 'infinity'), now() + interval '50 milliseconds');
    END IF;
    DELETE FROM taskq.outbox o
    WHERE o.id = ANY (ARRAY(SELECT f.o FROM jsonb_to_recordset(aside) AS f(o bigint, v text)
                            WHERE f.v IN ('dead', 'parked')));
    -- Not limited after all (a limit removed meanwhile, or admitted
    -- already): they go out as they are.
    UPDATE taskq.outbox o SET held = false
    WHERE o.id = ANY (ARRAY(SELECT f.o FROM jsonb_to_recordset(aside) AS f(o bigint, v text) WHERE f.v = 'publish'));
    IF FOUND THEN
      PERFORM taskq._wake_publisher_at_commit();
    END IF;
    -- Limited by the rate only: parked, and paced out in 2.
    WITH rated AS (
      UPDATE taskq.jobs SET flow_state = 'rate_held', updated_at = now()
      WHERE id = ANY (ARRAY(SELECT f.j FROM jsonb_to_recordset(aside) AS f(j uuid, v text) WHERE f.v = 'rate'))
      RETURNING id
    )
    DELETE FROM taskq.outbox o
    WHERE o.id = ANY (ARRAY(SELECT f.o FROM jsonb_to_recordset(aside) AS f(o bigint, v text) WHERE f.v = 'rate'));
    -- Limited by their key: key by key, in lock order.
    FOR fk IN
      SELECT f.q AS queue_name, f.k AS concurrency_key, min(qq.concurrency_limit) AS concurrency_limit,
             min(qq.rate_limit) AS rate_limit
      FROM jsonb_to_recordset(aside) AS f(q text, k text, v text)
      JOIN taskq.queues qq ON qq.queue_name = f.q
      WHERE f.v = 'key'
      GROUP BY f.q, f.k
      ORDER BY taskq._key_lock_id(f.q, f.k)
    LOOP
      IF keys_locked = 500 THEN
        EXIT;  -- the rows of the other keys stay aside for the next call
      END IF;
      keys_locked := keys_locked + 1;
      PERFORM taskq._lock_key(fk.queue_name, fk.concurrency_key);
      free := fk.concurrency_limit - taskq._key_slots_taken(fk.queue_name, fk.concurrency_key);
      IF EXISTS (SELECT 1 FROM taskq.jobs h
                 WHERE h.queue_name = fk.queue_name AND h.concurrency_key = fk.concurrency_key
                   AND h.status = 'pending' AND h.flow_state = 'key_held') THEN
        free := 0;  -- they go first: these queue up behind them
      END IF;
      FOR fj IN
        SELECT f.o, f.j, row_number() OVER (ORDER BY f.p DESC, f.j) AS n
        FROM jsonb_to_recordset(aside) AS f(o bigint, j uuid, q text, k text, p int, v text)
        WHERE f.v = 'key' AND f.q = fk.queue_name AND f.k = fk.concurrency_key
        ORDER BY n
      LOOP
        IF fj.n <= free AND fk.rate_limit IS NULL THEN
          UPDATE taskq.jobs SET flow_state = 'admitted', updated_at = now() WHERE id = fj.j;
          UPDATE taskq.outbox SET held = false WHERE id = fj.o;
          PERFORM taskq._wake_publisher_at_commit();
        ELSE
          -- Within the free slots of a rate-limited queue: the slot is
          -- taken, the rate decides when it goes.
          UPDATE taskq.jobs SET flow_state = CASE WHEN fj.n <= free THEN 'rate_held' ELSE 'key_held' END,
                                updated_at = now()
          WHERE id = fj.j;
          DELETE FROM taskq.outbox WHERE id = fj.o;
        END IF;
      END LOOP;
      PERFORM taskq._release_slots(fk.queue_name, fk.concurrency_key);
    END LOOP;
  END IF;

  IF keys_locked > 0 THEN
    next_run := now();  -- 3 and 4 in the next call
    sweep_again := sweep;
  ELSIF sweep THEN
    -- 4. The safety net: every key with held jobs and a free slot gets it.
    -- Only keys that look free (counted without their lock) are locked and
    -- counted again: normally none, since the slots of a key with held jobs
    -- are all taken.
    FOR fk IN
      SELECT s.queue_name, s.concurrency_key
      FROM (SELECT qq.queue_name, hk.concurrency_key, qq.concurrency_limit
            FROM taskq.queues qq, LATERAL taskq._held_keys(qq.queue_name) hk(concurrency_key)
            WHERE qq.queue_name = ANY (limited) AND qq.concurrency_limit IS NOT NULL) s
      WHERE taskq._key_slots_taken(s.queue_name, s.concurrency_key) < s.concurrency_limit
      ORDER BY taskq._key_lock_id(s.queue_name, s.concurrency_key)
      LIMIT 501
    LOOP
      IF keys_locked = 500 THEN
        sweep_again := true;  -- more in the next call
        EXIT;
      END IF;
      keys_locked := keys_locked + 1;
      PERFORM taskq._release_slots(fk.queue_name, fk.concurrency_key);
    END LOOP;
    next_run := now();  -- 3 in the next call
  ELSE
    -- 3. Running jobs whose leases hold slots that held jobs wait for.
    lease_due := (SELECT min(x.lease_expires_at) FROM taskq.jobs x
                  WHERE x.status = 'running' AND x.concurrency_key IS NOT NULL
                    AND x.queue_name = ANY (ARRAY(
                          SELECT qq.queue_name FROM taskq.queues qq
                          WHERE qq.queue_name = ANY (limited) AND qq.concurrency_limit IS NOT NULL
                            AND EXISTS (SELECT 1 FROM taskq.jobs h WHERE h.queue_name = qq.queue_name
                                          AND h.status = 'pending' AND h.flow_state = 'key_held'))));
    IF lease_due < now() THEN
      PERFORM taskq.rescue_expired();  -- frees their slots, which releases held jobs
      next_run := now();
    ELSIF lease_due IS NOT NULL THEN
      next_run := least(coalesce(next_run, 'infinity'), lease_due + interval '1 millisecond');
    END IF;
  END IF;

  -- 2. Pacing: as many rate_held jobs as the rate allows now, highest
  -- priority first, then the oldest. No key locks: they hold their slots.
  FOR fq IN
    SELECT qq.queue_name, qq.rate_limit, qq.rate_period FROM taskq.queues qq
    WHERE qq.queue_name = ANY (limited) AND qq.rate_limit IS NOT NULL
      AND EXISTS (SELECT 1 FROM taskq.jobs h WHERE h.queue_name = qq.queue_name
                    AND h.status = 'pending' AND h.flow_state = 'rate_held')
    ORDER BY qq.queue_name
  LOOP
    in_flight := (SELECT count(*) FROM taskq.jobs a
                  WHERE a.queue_name = fq.queue_name AND a.status = 'pending' AND a.flow_state = 'admitted');
    fr := taskq._rate_pace(fq.queue_name, fq.rate_limit, fq.rate_period, in_flight, 1000000, dry_run => true);
    taken := 0;
    IF fr.granted > 0 THEN
      FOR fj IN
        SELECT h.id, h.attempts FROM taskq.jobs h
        WHERE h.queue_name = fq.queue_name AND h.status = 'pending' AND h.flow_state = 'rate_held'
        ORDER BY h.priority DESC, h.id
        LIMIT least(fr.granted, 10000)
        FOR UPDATE SKIP LOCKED
      LOOP
        UPDATE taskq.jobs SET flow_state = 'admitted', updated_at = now() WHERE id = fj.id;
        INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
        VALUES (fj.id, fq.queue_name, fj.attempts + 1, now());
        taken := taken + 1;
      END LOOP;
      IF taken > 0 THEN
        fr := taskq._rate_pace(fq.queue_name, fq.rate_limit, fq.rate_period, in_flight, taken);
        PERFORM taskq._wake_publisher_at_commit();
      END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM taskq.jobs h WHERE h.queue_name = fq.queue_name
                 AND h.status = 'pending' AND h.flow_state = 'rate_held') THEN
      next_run := least(coalesce(next_run, 'infinity'), fr.next_at);
    END IF;
  END LOOP;
  next_at := next_run;
END;
$$;

CREATE FUNCTION taskq._flow_step(sweep boolean DEFAULT false, OUT next_at timestamptz, OUT sweep_again boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  SELECT g.next_at, g.sweep_again INTO next_at, sweep_again FROM taskq._flow_gate(sweep) g;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'taskq: the flow control step failed (trying again in a second): % (SQLSTATE %)', SQLERRM, SQLSTATE;
  next_at := now() + interval '1 second';
  sweep_again := sweep;
END;
$$;
COMMENT ON FUNCTION taskq._flow_step(boolean) IS
  'internal (publisher): admits or parks jobs set aside for flow limits, paces out rate-held jobs, rescues expired leases holding slots; returns when to run again and whether the sweep has more to do';

CREATE FUNCTION taskq._flow_limits_changed(queue_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  q taskq.queues;
  k record;
BEGIN
  SELECT * INTO q FROM taskq.queues qq WHERE qq.queue_name = _flow_limits_changed.queue_name;
  IF q.rate_limit IS NULL THEN
    -- Rate-held jobs go out now (keeping a slot they hold).
    WITH released AS (
      UPDATE taskq.jobs j
      SET flow_state = CASE WHEN q.concurrency_limit IS NOT NULL AND j.concurrency_key IS NOT NULL THEN 'admitted' END,
          updated_at = now()
      WHERE j.id = ANY (ARRAY(SELECT h.id FROM taskq.jobs h
                              WHERE h.queue_name = q.queue_name AND h.status = 'pending' AND h.flow_state = 'rate_held'
                              ORDER BY h.id FOR UPDATE))
      RETURNING j.id, j.attempts
    )
    INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
    SELECT r.id, q.queue_name, r.attempts + 1, now() FROM released r;
    DELETE FROM taskq.rate_windows w WHERE w.queue_name = q.queue_name;
  ELSE
    INSERT INTO taskq.rate_windows (queue_name, side) VALUES (q.queue_name, 'start'), (q.queue_name, 'publish')
    ON CONFLICT DO NOTHING;
  END IF;
  IF q.concurrency_limit IS NULL THEN
    -- No slots any more: key-held jobs wait only for the rate, if any;
    -- admitted ones hold nothing.
    WITH released AS (
      UPDATE taskq.jobs j
      SET flow_state = CASE WHEN q.rate_limit IS NOT NULL AND j.flow_state = 'key_held' THEN 'rate_held'
                            WHEN j.flow_state = 'key_held' THEN NULL
                            ELSE j.flow_state END,
          updated_at = now()
      WHERE j.id = ANY (ARRAY(SELECT h.id FROM taskq.jobs h
                              WHERE h.queue_name = q.queue_name AND h.status = 'pending' AND h.flow_state = 'key_held'
                              ORDER BY h.id FOR UPDATE))
      RETURNING j.id, j.attempts, j.flow_state
    )
    INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
    SELECT r.id, q.queue_name, r.attempts + 1, now() FROM released r WHERE r.flow_state IS NULL;
    UPDATE taskq.jobs j SET flow_state = NULL
    WHERE j.queue_name = q.queue_name AND j.concurrency_key IS NOT NULL
      AND (j.status = 'running' OR (j.status = 'pending' AND j.flow_state IN ('admitted', 'rate_held')))
      AND j.flow_state = 'admitted';
  ELSE
    -- At most 1,000 keys here (each one's lock is held until commit);
    -- the maintenance sweep fills the new slots of any more.
    FOR k IN
      SELECT h.concurrency_key FROM taskq._held_keys(q.queue_name) h(concurrency_key)
      WHERE taskq._key_slots_taken(q.queue_name, h.concurrency_key) < q.concurrency_limit
      ORDER BY taskq._key_lock_id(q.queue_name, h.concurrency_key)
      LIMIT 1000
    LOOP
      PERFORM taskq._release_slots(q.queue_name, k.concurrency_key);
    END LOOP;
  END IF;
  IF q.rate_limit IS NULL AND q.concurrency_limit IS NULL AND NOT q.paused THEN
    -- Rows the claim set aside for limits that are gone.
    UPDATE taskq.outbox o SET held = false WHERE o.held AND o.queue_name = q.queue_name;
  END IF;
  PERFORM taskq._wake_publisher_at_commit();
  PERFORM taskq._flow_changed_at_commit();
END;
$$;

CREATE OR REPLACE FUNCTION taskq.rescue_expired() RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j taskq.jobs;
  rescued int := 0;
BEGIN
  -- A running job whose lease ran out lost its worker (crash, kill -9,
  -- partition): count the attempt as failed, which retries it through the
  -- outbox or ends it. SKIP LOCKED: a worker finishing it right now wins.
  -- Handled in the order of their keys' locks (55_flow_control): each
  -- attempt ended frees a slot of its concurrency key, if it has one.
  FOR j IN
    SELECT e.* FROM (SELECT * FROM taskq.jobs
                     WHERE status = 'running' AND lease_expires_at < now()
                     ORDER BY lease_expires_at
                     LIMIT 1000
                     FOR UPDATE SKIP LOCKED) e
    ORDER BY taskq._key_lock_id(e.queue_name, e.concurrency_key) NULLS FIRST
  LOOP
    PERFORM taskq._fail_attempt(j, format('lease expired: worker %s stopped heartbeating', coalesce(j.worker, '?')),
                                NULL, false);
    rescued := rescued + 1;
  END LOOP;
  RETURN rescued;
END;
$$;
COMMENT ON FUNCTION taskq.rescue_expired() IS
  'treats running jobs whose lease expired as failed attempts (retried or failed); returns how many (at most 1000 per call)';

DROP VIEW taskq.queue_stats;
CREATE VIEW taskq.queue_stats AS
SELECT q.queue_name,
       q.paused,
       f.waiting,
       p.pending,
       f.running,
       f.completed,
       f.failed,
       f.cancelled,
       p.scheduled,
       p.oldest_pending_age,
       (SELECT count(*) FROM taskq.outbox o WHERE o.queue_name = q.queue_name) AS outbox_backlog,
       -- From the partial indexes of flow control: nothing to read for a
       -- queue without limits.
       (SELECT count(*) FROM taskq.jobs h
        WHERE h.queue_name = q.queue_name AND h.status = 'pending' AND h.flow_state = 'key_held')
       + (SELECT count(*) FROM taskq.jobs h
          WHERE h.queue_name = q.queue_name AND h.status = 'pending' AND h.flow_state = 'rate_held') AS held
FROM taskq.queues q
CROSS JOIN LATERAL (
  SELECT count(*) AS pending,
         count(*) FILTER (WHERE j.run_at > now()) AS scheduled,
         now() - min(j.run_at) FILTER (WHERE j.run_at <= now()) AS oldest_pending_age
  FROM taskq.jobs j
  WHERE j.queue_name = q.queue_name AND j.status = 'pending'
) p
CROSS JOIN LATERAL (
  -- 'waiting' is the only status that sorts before 'pending'. Written as
  -- a comparison because the 0.2.0 upgrade adds the enum value in the
  -- transaction that makes this view, and PostgreSQL refuses to name a
  -- value added in the same transaction.
  SELECT count(*) FILTER (WHERE j.status < 'pending')   AS waiting,
         count(*) FILTER (WHERE j.status = 'running')   AS running,
         count(*) FILTER (WHERE j.status = 'completed') AS completed,
         count(*) FILTER (WHERE j.status = 'failed')    AS failed,
         count(*) FILTER (WHERE j.status = 'cancelled') AS cancelled
  FROM taskq.jobs j
  WHERE j.queue_name = q.queue_name AND j.status <> 'pending'
) f;
COMMENT ON VIEW taskq.queue_stats IS
  'per queue: jobs per status (waiting: dependencies not all completed), jobs scheduled for later, age of the oldest due pending job, outbox rows not yet confirmed by RabbitMQ, pending jobs held back by a flow limit (held)';

REVOKE ALL ON FUNCTION
  taskq._flow_changed_at_commit(),
  taskq._check_flow_options(int, interval, int),
  taskq._check_concurrency_key(text),
  taskq.create_queue(text, int, interval, interval, interval, interval, interval, text, int, interval, int),
  taskq.alter_queue(text, int, interval, interval, interval, interval, interval, text, int, interval, int),
  taskq.remove_queue_limit(text, text),
  taskq._start_batch(jsonb, text, uuid, boolean),
  taskq._key_lock_id(text, text),
  taskq._lock_key(text, text),
  taskq._key_slots_taken(text, text),
  taskq._rate_take(text, int, interval, int, boolean),
  taskq._rate_pace(text, int, interval, int, int, boolean),
  taskq._release_slots(text, text),
  taskq._release_slots_of(text[], text[]),
  taskq._held_keys(text),
  taskq._lock_for_limited_start(uuid[]),
  taskq._start_limited(uuid, int, text, uuid),
  taskq._flow_gate(boolean),
  taskq._flow_step(boolean),
  taskq._flow_limits_changed(text)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION taskq._start_batch(jsonb, text, uuid, boolean) TO taskq_worker;
REVOKE ALL ON taskq.queue_stats FROM PUBLIC;
GRANT SELECT ON taskq.queue_stats TO taskq_producer;

-- With dependencies and flow control both here, the placeholder that
-- refused depends_on and concurrency_key is gone.
DROP FUNCTION taskq._reject_unfinished_options(uuid[], text);

-- =========================================================================
-- == Several jobs per message ==
-- (00_tables, 10_validation, 20_queues, 50_outbox) The queue option
-- jobs_per_message: the column, its check, create_queue and alter_queue
-- with the new argument, and what the publisher asks per pass.

ALTER TABLE taskq.queues ADD COLUMN jobs_per_message integer NOT NULL DEFAULT 1,
  ADD CONSTRAINT queues_jobs_per_message CHECK (jobs_per_message BETWEEN 1 AND 100);

CREATE FUNCTION taskq._check_jobs_per_message(jobs_per_message int) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF jobs_per_message NOT BETWEEN 1 AND 100 THEN
    RAISE EXCEPTION 'jobs_per_message must be between 1 and 100, not %', jobs_per_message
      USING ERRCODE = 'invalid_parameter_value',
            HINT = '1 publishes one message per job; more packs up to that many jobs of the queue into one message';
  END IF;
END;
$$;

DROP FUNCTION taskq.create_queue(text, int, interval, interval, interval, interval, interval, text, int, interval, int);
CREATE FUNCTION taskq.create_queue(
  queue_name text,
  max_attempts int DEFAULT 5,
  lease interval DEFAULT '5 minutes',
  backoff_base interval DEFAULT '1 second',
  backoff_max interval DEFAULT '1 hour',
  retention interval DEFAULT '7 days',
  delivery_delay interval DEFAULT '0',
  queue_type text DEFAULT 'classic',
  rate_limit int DEFAULT NULL,
  rate_period interval DEFAULT '1 second',
  concurrency_limit int DEFAULT NULL,
  jobs_per_message int DEFAULT 1
) RETURNS taskq.queues
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  created taskq.queues;
BEGIN
  PERFORM taskq._check_queue_name(queue_name);
  PERFORM taskq._require(max_attempts, 'max_attempts');
  PERFORM taskq._require(lease, 'lease');
  PERFORM taskq._require(backoff_base, 'backoff_base');
  PERFORM taskq._require(backoff_max, 'backoff_max');
  PERFORM taskq._require(retention, 'retention');
  PERFORM taskq._require(delivery_delay, 'delivery_delay');
  PERFORM taskq._require(queue_type, 'queue_type');
  PERFORM taskq._check_queue_options(max_attempts, lease, backoff_base, backoff_max, retention, delivery_delay, queue_type);
  PERFORM taskq._require(rate_period, 'rate_period');
  PERFORM taskq._check_flow_options(rate_limit, rate_period, concurrency_limit);
  PERFORM taskq._require(jobs_per_message, 'jobs_per_message');
  PERFORM taskq._check_jobs_per_message(jobs_per_message);
  IF backoff_max < backoff_base THEN
    RAISE EXCEPTION 'backoff_max (%) must not be smaller than backoff_base (%)', backoff_max, backoff_base
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO taskq.queues AS q (queue_name, max_attempts, lease, backoff_base, backoff_max, retention, delivery_delay,
                                 queue_type, rate_limit, rate_period, concurrency_limit, jobs_per_message)
  VALUES (create_queue.queue_name, create_queue.max_attempts, create_queue.lease, create_queue.backoff_base,
          create_queue.backoff_max, create_queue.retention, create_queue.delivery_delay, create_queue.queue_type,
          create_queue.rate_limit, create_queue.rate_period, create_queue.concurrency_limit,
          create_queue.jobs_per_message)
  ON CONFLICT DO NOTHING
  RETURNING q.* INTO created;
  IF created IS NULL THEN
    RAISE EXCEPTION 'queue "%" already exists', queue_name
      USING ERRCODE = 'duplicate_object', HINT = 'change it with taskq.alter_queue()';
  END IF;
  IF rate_limit IS NOT NULL THEN
    -- The rows the starts and the pacing lock (taskq._rate_take).
    INSERT INTO taskq.rate_windows (queue_name, side) VALUES (create_queue.queue_name, 'start'), (create_queue.queue_name, 'publish')
    ON CONFLICT DO NOTHING;
  END IF;
  RETURN created;
END;
$$;
COMMENT ON FUNCTION taskq.create_queue(text, int, interval, interval, interval, interval, interval, text, int, interval, int, int) IS
  'creates a queue; its jobs go to the RabbitMQ queue "taskq.<queue_name>" of type queue_type (classic or quorum); rate_limit: at most that many starts in any rate_period; concurrency_limit: at most that many running jobs per concurrency_key; jobs_per_message: up to that many jobs per RabbitMQ message';

DROP FUNCTION taskq.alter_queue(text, int, interval, interval, interval, interval, interval, text, int, interval, int);
CREATE FUNCTION taskq.alter_queue(
  queue_name text,
  max_attempts int DEFAULT NULL,
  lease interval DEFAULT NULL,
  backoff_base interval DEFAULT NULL,
  backoff_max interval DEFAULT NULL,
  retention interval DEFAULT NULL,
  delivery_delay interval DEFAULT NULL,
  queue_type text DEFAULT NULL,
  rate_limit int DEFAULT NULL,
  rate_period interval DEFAULT NULL,
  concurrency_limit int DEFAULT NULL,
  jobs_per_message int DEFAULT NULL
) RETURNS taskq.queues
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  current taskq.queues;
  changed taskq.queues;
BEGIN
  PERFORM taskq._check_queue_name(queue_name);
  PERFORM taskq._check_queue_options(max_attempts, lease, backoff_base, backoff_max, retention, delivery_delay, queue_type);
  PERFORM taskq._check_flow_options(rate_limit, rate_period, concurrency_limit);
  PERFORM taskq._check_jobs_per_message(jobs_per_message);
  SELECT * INTO current FROM taskq.queues q WHERE q.queue_name = alter_queue.queue_name FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM taskq._raise_unknown_queue(queue_name);
  END IF;
  IF queue_type IS NOT NULL AND queue_type <> current.queue_type THEN
    -- RabbitMQ cannot change the type of an existing queue.
    RAISE EXCEPTION 'queue_type of queue "%" cannot be changed', queue_name
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'create a new queue of the other type and move producers to it';
  END IF;
  IF coalesce(backoff_max, current.backoff_max) < coalesce(backoff_base, current.backoff_base) THEN
    RAISE EXCEPTION 'backoff_max (%) must not be smaller than backoff_base (%)',
      coalesce(backoff_max, current.backoff_max), coalesce(backoff_base, current.backoff_base)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE taskq.queues q SET
    max_attempts   = coalesce(alter_queue.max_attempts, q.max_attempts),
    lease          = coalesce(alter_queue.lease, q.lease),
    backoff_base   = coalesce(alter_queue.backoff_base, q.backoff_base),
    backoff_max    = coalesce(alter_queue.backoff_max, q.backoff_max),
    retention      = coalesce(alter_queue.retention, q.retention),
    delivery_delay = coalesce(alter_queue.delivery_delay, q.delivery_delay),
    rate_limit     = coalesce(alter_queue.rate_limit, q.rate_limit),
    rate_period    = coalesce(alter_queue.rate_period, q.rate_period),
    concurrency_limit = coalesce(alter_queue.concurrency_limit, q.concurrency_limit),
    jobs_per_message = coalesce(alter_queue.jobs_per_message, q.jobs_per_message),
    updated_at     = now()
  WHERE q.queue_name = alter_queue.queue_name
  RETURNING q.* INTO changed;
  IF rate_limit IS NOT NULL OR rate_period IS NOT NULL OR concurrency_limit IS NOT NULL THEN
    PERFORM taskq._flow_limits_changed(queue_name);
  END IF;
  RETURN changed;
END;
$$;
COMMENT ON FUNCTION taskq.alter_queue(text, int, interval, interval, interval, interval, interval, text, int, interval, int, int) IS
  'changes queue options; NULL leaves an option unchanged (taskq.remove_queue_limit removes a limit); applies to jobs enqueued (max_attempts), started (lease, limits) or published (jobs_per_message) from now on';

CREATE FUNCTION taskq._batched_queues(OUT queue_name text, OUT jobs_per_message int) RETURNS SETOF record
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  SELECT q.queue_name, q.jobs_per_message FROM taskq.queues q WHERE q.jobs_per_message > 1;
END;
COMMENT ON FUNCTION taskq._batched_queues() IS
  'internal (publisher): the queues with jobs_per_message above 1, whose jobs it packs several to a message';

REVOKE ALL ON FUNCTION
  taskq._check_jobs_per_message(int),
  taskq.create_queue(text, int, interval, interval, interval, interval, interval, text, int, interval, int, int),
  taskq.alter_queue(text, int, interval, interval, interval, interval, interval, text, int, interval, int, int),
  taskq._batched_queues()
  FROM PUBLIC;

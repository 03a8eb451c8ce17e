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
-- 45_worker_batches: _complete_batch's hint takes the limit from
-- taskq._max_document_bytes().

CREATE OR REPLACE FUNCTION taskq._complete_batch(items jsonb) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  done taskq.jobs;
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
    RETURN NEXT done.id;
  END LOOP;
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

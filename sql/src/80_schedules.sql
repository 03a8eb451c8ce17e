-- Periodic jobs: schedule, unschedule, and the firing the publisher runs.
-- The cron syntax and its DST rules are in docs/sql-api.md ("Periodic jobs").

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

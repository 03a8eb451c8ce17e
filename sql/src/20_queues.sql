-- Queue administration: create, alter, pause, resume, drop.

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

CREATE FUNCTION taskq._set_queue_paused(queue_name text, paused boolean) RETURNS taskq.queues
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

CREATE FUNCTION taskq.pause_queue(queue_name text) RETURNS taskq.queues
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN taskq._set_queue_paused(queue_name, true);
COMMENT ON FUNCTION taskq.pause_queue(text) IS
  'stops publishing the queue''s jobs (enqueue still works; messages already in RabbitMQ still run)';

CREATE FUNCTION taskq.resume_queue(queue_name text) RETURNS taskq.queues
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN taskq._set_queue_paused(queue_name, false);
COMMENT ON FUNCTION taskq.resume_queue(text) IS 'publishes the queue''s held jobs again';

CREATE FUNCTION taskq.drop_queue(queue_name text, force boolean DEFAULT false) RETURNS void
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

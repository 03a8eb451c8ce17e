-- Queue administration: create, alter, pause, resume, drop.

CREATE FUNCTION taskq.create_queue(
  queue_name text,
  max_attempts int DEFAULT 5,
  lease interval DEFAULT '5 minutes',
  backoff_base interval DEFAULT '1 second',
  backoff_max interval DEFAULT '1 hour',
  retention interval DEFAULT '7 days',
  delivery_delay interval DEFAULT '0',
  queue_type text DEFAULT 'classic'
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
  IF backoff_max < backoff_base THEN
    RAISE EXCEPTION 'backoff_max (%) must not be smaller than backoff_base (%)', backoff_max, backoff_base
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO taskq.queues AS q (queue_name, max_attempts, lease, backoff_base, backoff_max, retention, delivery_delay, queue_type)
  VALUES (create_queue.queue_name, create_queue.max_attempts, create_queue.lease, create_queue.backoff_base,
          create_queue.backoff_max, create_queue.retention, create_queue.delivery_delay, create_queue.queue_type)
  ON CONFLICT DO NOTHING
  RETURNING q.* INTO created;
  IF created IS NULL THEN
    RAISE EXCEPTION 'queue "%" already exists', queue_name
      USING ERRCODE = 'duplicate_object', HINT = 'change it with taskq.alter_queue()';
  END IF;
  RETURN created;
END;
$$;
COMMENT ON FUNCTION taskq.create_queue(text, int, interval, interval, interval, interval, interval, text) IS
  'creates a queue; its jobs go to the RabbitMQ queue "taskq.<queue_name>" of type queue_type (classic or quorum)';

CREATE FUNCTION taskq.alter_queue(
  queue_name text,
  max_attempts int DEFAULT NULL,
  lease interval DEFAULT NULL,
  backoff_base interval DEFAULT NULL,
  backoff_max interval DEFAULT NULL,
  retention interval DEFAULT NULL,
  delivery_delay interval DEFAULT NULL,
  queue_type text DEFAULT NULL
) RETURNS taskq.queues
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  current taskq.queues;
  changed taskq.queues;
BEGIN
  PERFORM taskq._check_queue_name(queue_name);
  PERFORM taskq._check_queue_options(max_attempts, lease, backoff_base, backoff_max, retention, delivery_delay, queue_type);
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
    updated_at     = now()
  WHERE q.queue_name = alter_queue.queue_name
  RETURNING q.* INTO changed;
  RETURN changed;
END;
$$;
COMMENT ON FUNCTION taskq.alter_queue(text, int, interval, interval, interval, interval, interval, text) IS
  'changes queue options; NULL leaves an option unchanged; applies to jobs enqueued (max_attempts) or started (lease) from now on';

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
  DELETE FROM taskq.callbacks c USING taskq.jobs j
  WHERE c.job_id = j.id AND j.queue_name = drop_queue.queue_name AND c.state <> 'pending';
  DELETE FROM taskq.jobs j WHERE j.queue_name = drop_queue.queue_name;
  DELETE FROM taskq.queues q WHERE q.queue_name = drop_queue.queue_name;
END;
$$;
COMMENT ON FUNCTION taskq.drop_queue(text, boolean) IS
  'drops a queue and its finished jobs; refused (55000) while it has unfinished jobs or schedules unless force, which drops them too; the RabbitMQ queue is left for the operator';

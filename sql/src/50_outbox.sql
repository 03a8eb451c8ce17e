-- What the publisher (background worker) calls, one pass per transaction:
-- claim due rows, publish them, then record the broker's answers.

CREATE FUNCTION taskq._outbox_claim(batch_size int)
RETURNS TABLE (outbox_id bigint, job_id uuid, queue_name text, queue_type text, task text, priority int,
               attempt int, headers jsonb, created_at timestamptz, body text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN QUERY
  WITH claimed AS (
    SELECT o.id, o.job_id, o.attempt, j.id IS NOT NULL AND j.status = 'pending' AND j.attempts + 1 = o.attempt AS live
    FROM taskq.outbox o
    LEFT JOIN taskq.jobs j ON j.id = o.job_id
    LEFT JOIN taskq.queues q ON q.queue_name = j.queue_name
    WHERE o.due_at <= now() AND q.paused IS NOT TRUE
    ORDER BY o.due_at, o.id
    LIMIT batch_size
    FOR UPDATE OF o SKIP LOCKED
  ), dropped AS (
    -- The job was cancelled, finished, started or deleted since the row was
    -- written: nothing to publish.
    DELETE FROM taskq.outbox o USING claimed c WHERE o.id = c.id AND NOT c.live
  )
  SELECT c.id, j.id, j.queue_name, q.queue_type, j.task, j.priority::int, c.attempt, j.headers, j.created_at,
         jsonb_build_object('id', j.id, 'queue', j.queue_name, 'task', j.task, 'payload', j.payload,
                            'attempt', c.attempt, 'max_attempts', j.max_attempts, 'enqueued_at', j.created_at,
                            'headers', coalesce(j.headers, '{}'::jsonb))::text
  FROM claimed c
  JOIN taskq.jobs j ON j.id = c.job_id
  JOIN taskq.queues q ON q.queue_name = j.queue_name
  WHERE c.live
  ORDER BY c.id;
END;
$$;
COMMENT ON FUNCTION taskq._outbox_claim(int) IS
  'internal (publisher): locks up to batch_size due outbox rows of unpaused queues and returns the messages to publish';

CREATE FUNCTION taskq._outbox_published(outbox_ids bigint[]) RETURNS int
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  WITH done AS (
    DELETE FROM taskq.outbox WHERE id = ANY (outbox_ids) RETURNING job_id
  ), marked AS (
    UPDATE taskq.jobs SET published_at = now() WHERE id IN (SELECT done.job_id FROM done) RETURNING 1
  )
  SELECT count(*)::int FROM done;
END;
COMMENT ON FUNCTION taskq._outbox_published(bigint[]) IS
  'internal (publisher): the broker confirmed these rows: delete them and record the publish time on their jobs';

CREATE FUNCTION taskq._outbox_failed(outbox_ids bigint[], error text) RETURNS int
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  WITH retried AS (
    UPDATE taskq.outbox
    SET publish_attempts = publish_attempts + 1,
        last_error = left(error, 1000),
        due_at = now() + least(interval '5 minutes', interval '1 second' * power(2, least(publish_attempts, 20)))
    WHERE id = ANY (outbox_ids)
    RETURNING 1
  )
  SELECT count(*)::int FROM retried;
END;
COMMENT ON FUNCTION taskq._outbox_failed(bigint[], text) IS
  'internal (publisher): nacked, returned or unconfirmed rows are tried again later with capped exponential backoff';

CREATE FUNCTION taskq._outbox_next_due() RETURNS timestamptz
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  SELECT min(due_at) FROM taskq.outbox WHERE due_at > now();
END;
COMMENT ON FUNCTION taskq._outbox_next_due() IS
  'internal (publisher): when the next not-yet-due outbox row becomes due, so the publisher can sleep until then';

CREATE FUNCTION taskq._reconcile_lost(queue_name text, older_than interval) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  republished int;
BEGIN
  -- PostgreSQL is the source of truth: a pending job that was published
  -- long ago and never started may have lost its message (purged queue,
  -- policy, deleted queue). Publishing it again is safe: start() fences the
  -- duplicate by attempt number.
  INSERT INTO taskq.outbox (job_id, attempt, due_at)
  SELECT j.id, j.attempts + 1, now()
  FROM taskq.jobs j
  WHERE j.queue_name = _reconcile_lost.queue_name AND j.status = 'pending'
    AND j.run_at < now() - older_than
    AND coalesce(j.published_at, j.created_at) < now() - older_than
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

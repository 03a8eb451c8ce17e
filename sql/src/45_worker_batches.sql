-- Batched forms of start, heartbeat and complete, for taskq-worker. They
-- apply exactly the rules of taskq.start/heartbeat/complete (40_transitions)
-- to many jobs in one round trip and one commit, which is what lets one
-- worker process keep up with thousands of short jobs per second. Items come
-- as one JSON array ([{"id": ..., "attempt": ..., "result": ...}, ...]) so
-- that clients need no array-literal quoting.
--
-- Each function changes only the rows whose attempt is current and returns
-- exactly those, and answers a repeat of a call that committed as that call
-- did (see "Repeats" in 40_transitions); every other item is stale for the
-- caller, as with the single-job functions. Items are applied in job id order so that two
-- batches touching the same jobs lock them in the same order.
--
-- enable_seqscan = off: a worker's connection lives long, and plpgsql keeps
-- the generic plans it made while the jobs table was small. A plan made
-- then scans the table, and stays cached while the table grows (until an
-- ANALYZE); measured: a batch of 16 read 80,000 rows with 5,000 pending.

CREATE FUNCTION taskq._check_batch(items jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF items IS NULL OR jsonb_typeof(items) <> 'array' THEN
    RAISE EXCEPTION 'items must be a JSON array of {"id": ..., "attempt": ...} objects'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jsonb_array_length(items) > 10000 THEN
    RAISE EXCEPTION 'at most 10000 items per batch, not %', jsonb_array_length(items)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END;
$$;

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

CREATE FUNCTION taskq._heartbeat_batch(items jsonb) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
BEGIN
  PERFORM taskq._check_batch(items);
  RETURN QUERY
  WITH wanted AS (
    SELECT DISTINCT ON (i.id) i.id, i.attempt
    FROM jsonb_to_recordset(items) AS i(id uuid, attempt int)
    ORDER BY i.id, i.attempt
  )
  UPDATE taskq.jobs j SET lease_expires_at = now() + q.lease, updated_at = now()
  FROM wanted w, taskq.queues q
  WHERE j.id = w.id AND q.queue_name = j.queue_name
    AND j.status = 'running' AND j.attempts = w.attempt AND NOT j.cancel_requested
  RETURNING j.id;
END;
$$;
COMMENT ON FUNCTION taskq._heartbeat_batch(jsonb) IS
  'internal (taskq-worker): taskq.heartbeat for many {"id", "attempt"} items; returns the jobs whose lease was extended (the others must stop)';

-- An item's "enqueue" (optional) is taskq.complete's: follow-up jobs,
-- enqueued only by the item that completes its job.
CREATE FUNCTION taskq._complete_batch(items jsonb) RETURNS SETOF uuid
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

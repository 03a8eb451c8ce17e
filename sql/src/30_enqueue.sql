-- Enqueue: the hottest path. One read of the queue row, one job row, one
-- outbox row, one flag for the commit-time wake-up. No triggers, no foreign
-- keys, nothing looked up that the plan cache can keep. A job with
-- dependencies (depends_on) also locks them and writes its edges
-- (35_dependencies); a job without pays one test for it.

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

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

-- taskq 0.1.0: generated from sql/src/*.sql by make; edit those.
\echo Use "CREATE EXTENSION taskq" to load this file. \quit
-- taskq: types, tables and indexes.
--
-- Hardening (for this file and every other one): the schema is created by
-- CREATE EXTENSION (relocatable = false), every object is schema-qualified,
-- and every function pins search_path to pg_catalog, pg_temp.

CREATE TYPE taskq.job_status AS ENUM ('pending', 'running', 'completed', 'failed', 'cancelled');
COMMENT ON TYPE taskq.job_status IS
  'life cycle of a job: pending -> running -> completed | failed | cancelled; a retry puts it back to pending';

CREATE TABLE taskq.queues (
  queue_name     text PRIMARY KEY,
  max_attempts   integer NOT NULL,
  lease          interval NOT NULL,
  backoff_base   interval NOT NULL,
  backoff_max    interval NOT NULL,
  retention      interval NOT NULL,
  delivery_delay interval NOT NULL,
  queue_type     text NOT NULL,
  paused         boolean NOT NULL DEFAULT false,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  -- Backstops: the functions validate first, with readable errors.
  CONSTRAINT queues_name_format CHECK (queue_name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$'),
  CONSTRAINT queues_max_attempts CHECK (max_attempts BETWEEN 1 AND 1000),
  CONSTRAINT queues_lease CHECK (lease > interval '0'),
  CONSTRAINT queues_backoff CHECK (backoff_base >= interval '0' AND backoff_max >= backoff_base),
  CONSTRAINT queues_retention CHECK (retention >= interval '0'),
  CONSTRAINT queues_delivery_delay CHECK (delivery_delay >= interval '0'),
  CONSTRAINT queues_type CHECK (queue_type IN ('classic', 'quorum'))
);
COMMENT ON TABLE taskq.queues IS 'one row per taskq queue; each maps to the RabbitMQ queue "taskq.<queue_name>"';

CREATE TABLE taskq.jobs (
  id               uuid PRIMARY KEY,
  -- No foreign key to taskq.queues: it would make every enqueue take a
  -- FOR KEY SHARE lock on one hot queue row. drop_queue keeps them consistent.
  queue_name       text NOT NULL,
  task             text,
  payload          jsonb NOT NULL,
  status           taskq.job_status NOT NULL DEFAULT 'pending',
  priority         smallint NOT NULL DEFAULT 0,
  attempts         integer NOT NULL DEFAULT 0,
  max_attempts     integer NOT NULL,
  run_at           timestamptz NOT NULL,
  lease_expires_at timestamptz,
  worker           text,
  result           jsonb,
  last_error       text,
  callback_url     text,
  unique_key       text,
  headers          jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  finished_at      timestamptz,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  -- Internal columns (docs/internals.md).
  cancel_requested boolean NOT NULL DEFAULT false,
  published_at     timestamptz,
  attempt_budget   integer NOT NULL
) WITH (fillfactor = 90);  -- room for HOT updates (published_at, heartbeats)
COMMENT ON TABLE taskq.jobs IS 'every job and its state; the source of truth';

-- unique_key dedup: at most one unfinished job per (queue, key). Enqueue
-- relies on this index (ON CONFLICT), which makes it hold under concurrency.
CREATE UNIQUE INDEX jobs_unique_key ON taskq.jobs (queue_name, unique_key)
  WHERE unique_key IS NOT NULL AND status IN ('pending', 'running');
-- rescue_expired scans only running jobs by lease end.
CREATE INDEX jobs_running_lease ON taskq.jobs (lease_expires_at) WHERE status = 'running';
-- purge_finished and the reconciler.
CREATE INDEX jobs_finished ON taskq.jobs (queue_name, finished_at) WHERE status IN ('completed', 'failed', 'cancelled');
CREATE INDEX jobs_pending ON taskq.jobs (queue_name, run_at) WHERE status = 'pending';

-- Explicit sequences rather than identity columns: pg_extension_config_dump
-- keeps their values in pg_dump.
CREATE SEQUENCE taskq.outbox_id_seq;
CREATE TABLE taskq.outbox (
  id               bigint PRIMARY KEY DEFAULT nextval('taskq.outbox_id_seq'),
  job_id           uuid NOT NULL,
  queue_name       text NOT NULL,  -- copied from the job: the claim filters paused queues without a join
  attempt          integer NOT NULL,
  due_at           timestamptz NOT NULL,
  publish_attempts integer NOT NULL DEFAULT 0,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  -- Set aside by the claim because its queue is paused; resume_queue clears
  -- it. Held rows leave outbox_due, so a paused queue's backlog costs the
  -- claims of other queues nothing.
  held             boolean NOT NULL DEFAULT false
);
ALTER SEQUENCE taskq.outbox_id_seq OWNED BY taskq.outbox.id;
CREATE INDEX outbox_due ON taskq.outbox (due_at, id) WHERE NOT held;
CREATE INDEX outbox_held ON taskq.outbox (queue_name) WHERE held;
COMMENT ON TABLE taskq.outbox IS
  '"publish this job" rows, written in the transaction that made the job runnable; deleted once RabbitMQ confirmed the message';

CREATE SEQUENCE taskq.callbacks_id_seq;
CREATE TABLE taskq.callbacks (
  id               bigint PRIMARY KEY DEFAULT nextval('taskq.callbacks_id_seq'),
  job_id           uuid NOT NULL,
  delivery_id      uuid NOT NULL,
  url              text NOT NULL,
  event            text NOT NULL CHECK (event IN ('job.completed', 'job.failed', 'job.cancelled')),
  body             jsonb NOT NULL,
  state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  lease_expires_at timestamptz,
  leased_by        text,
  last_status      integer,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  delivered_at     timestamptz
);
ALTER SEQUENCE taskq.callbacks_id_seq OWNED BY taskq.callbacks.id;
CREATE INDEX callbacks_due ON taskq.callbacks (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX callbacks_job ON taskq.callbacks (job_id);
COMMENT ON TABLE taskq.callbacks IS
  '"tell this URL" rows, written in the transaction that finished the job; delivered by taskq-worker';

-- pg_dump keeps the contents of these tables (they are application data).
SELECT pg_catalog.pg_extension_config_dump('taskq.queues', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.callbacks', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.callbacks_id_seq', '');

-- C functions of taskq.so.
CREATE FUNCTION taskq._uuid_v7() RETURNS uuid
  LANGUAGE c VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskq_uuid_v7';
COMMENT ON FUNCTION taskq._uuid_v7() IS 'next time-ordered job id (UUIDv7), strictly increasing within a session';

CREATE FUNCTION taskq._wake_publisher_at_commit() RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskq_wake_publisher_at_commit';
COMMENT ON FUNCTION taskq._wake_publisher_at_commit() IS
  'asks for the publisher to be woken when the current transaction commits';
-- Input validation shared by the API functions. Each check raises one
-- lower-case error with a fitting SQLSTATE (22004 for a NULL that is not
-- allowed, 22023 for a bad value) and a hint where it helps.

CREATE FUNCTION taskq._require(value anyelement, name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF value IS NULL THEN
    RAISE EXCEPTION '% must not be null', name USING ERRCODE = 'null_value_not_allowed';
  END IF;
END;
$$;

CREATE FUNCTION taskq._check_queue_name(queue_name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM taskq._require(queue_name, 'queue_name');
  IF queue_name !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$' THEN
    RAISE EXCEPTION 'invalid queue name "%"', left(queue_name, 120)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'use 1 to 100 characters from A-Z a-z 0-9 _ . - starting with a letter or digit; the name becomes part of the RabbitMQ queue name';
  END IF;
END;
$$;

-- Queue options: NULL means "not given" here; create_queue fills defaults.
CREATE FUNCTION taskq._check_queue_options(
  max_attempts int, lease interval, backoff_base interval, backoff_max interval,
  retention interval, delivery_delay interval, queue_type text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF max_attempts IS NOT NULL AND max_attempts NOT BETWEEN 1 AND 1000 THEN
    RAISE EXCEPTION 'max_attempts must be between 1 and 1000, not %', max_attempts USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF lease IS NOT NULL AND lease <= interval '0' THEN
    RAISE EXCEPTION 'lease must be positive, not %', lease USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF backoff_base < interval '0' THEN
    RAISE EXCEPTION 'backoff_base must not be negative, not %', backoff_base USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF backoff_max < interval '0' THEN
    RAISE EXCEPTION 'backoff_max must not be negative, not %', backoff_max USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF retention < interval '0' THEN
    RAISE EXCEPTION 'retention must not be negative, not %', retention USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF delivery_delay < interval '0' THEN
    RAISE EXCEPTION 'delivery_delay must not be negative, not %', delivery_delay USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF queue_type IS NOT NULL AND queue_type NOT IN ('classic', 'quorum') THEN
    RAISE EXCEPTION 'queue_type must be classic or quorum, not "%"', left(queue_type, 40) USING ERRCODE = 'invalid_parameter_value';
  END IF;
END;
$$;

-- Largest payload or result accepted, in bytes of jsonb storage
-- (pg_column_size: no text conversion needed on the enqueue path).
CREATE FUNCTION taskq._max_document_bytes() RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN 1048576;

CREATE FUNCTION taskq._check_document(doc jsonb, name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF pg_column_size(doc) > taskq._max_document_bytes() THEN
    RAISE EXCEPTION '% is too large (% bytes)', name, pg_column_size(doc)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'the limit is 1 MiB; store large data elsewhere and pass a reference';
  END IF;
END;
$$;

-- Job options shared by enqueue and enqueue_many.
CREATE FUNCTION taskq._check_job_options(
  task text, run_at timestamptz, delay interval, priority int, max_attempts int,
  callback_url text, unique_key text, headers jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF task IS NOT NULL AND (task = '' OR octet_length(task) > 255 OR task ~ '[[:cntrl:]]') THEN
    RAISE EXCEPTION 'invalid task name "%"', left(task, 120)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'use 1 to 255 bytes without control characters';
  END IF;
  IF run_at IS NOT NULL AND delay IS NOT NULL THEN
    RAISE EXCEPTION 'run_at and delay cannot both be given' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF run_at IN ('infinity', '-infinity') THEN
    RAISE EXCEPTION 'run_at must be a finite time' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF delay < interval '0' THEN
    RAISE EXCEPTION 'delay must not be negative, not %', delay USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF priority IS NULL OR priority NOT BETWEEN 0 AND 9 THEN
    RAISE EXCEPTION 'priority must be between 0 and 9, not %', coalesce(priority::text, 'null')
      USING ERRCODE = 'invalid_parameter_value', HINT = 'higher runs first; quorum queues ignore priorities';
  END IF;
  IF max_attempts IS NOT NULL AND max_attempts NOT BETWEEN 1 AND 1000 THEN
    RAISE EXCEPTION 'max_attempts must be between 1 and 1000, not %', max_attempts USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF callback_url IS NOT NULL
     AND (octet_length(callback_url) > 2048 OR callback_url !~* '^https?://[^/?#@[:space:]]+([/?#][^[:space:]]*)?$') THEN
    RAISE EXCEPTION 'invalid callback_url "%"', left(callback_url, 120)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'only http:// and https:// URLs with a host are accepted (at most 2048 bytes)';
  END IF;
  IF unique_key IS NOT NULL AND (unique_key = '' OR octet_length(unique_key) > 512) THEN
    RAISE EXCEPTION 'unique_key must be 1 to 512 bytes' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF headers IS NOT NULL THEN
    IF jsonb_typeof(headers) <> 'object' THEN
      RAISE EXCEPTION 'headers must be a JSON object, not %', jsonb_typeof(headers) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_each(headers) h
               WHERE jsonb_typeof(h.value) <> 'string' OR h.key = '' OR octet_length(h.key) > 128
                  OR lower(h.key) LIKE 'x-taskq-%') THEN
      RAISE EXCEPTION 'headers must map names to strings'
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'a flat object like {"tenant": "acme"}; names are 1 to 128 bytes and must not start with x-taskq-';
    END IF;
    PERFORM taskq._check_document(headers, 'headers');
  END IF;
END;
$$;

CREATE FUNCTION taskq._raise_unknown_queue(queue_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'queue "%" does not exist', left(queue_name, 120)
    USING ERRCODE = 'undefined_object', HINT = 'create it with taskq.create_queue()';
END;
$$;

CREATE FUNCTION taskq._raise_unknown_job(job_id uuid) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'job % does not exist', job_id USING ERRCODE = 'undefined_object';
END;
$$;
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
  DELETE FROM taskq.outbox o WHERE o.queue_name = drop_queue.queue_name;
  DELETE FROM taskq.callbacks c USING taskq.jobs j
  WHERE c.job_id = j.id AND j.queue_name = drop_queue.queue_name AND c.state <> 'pending';
  DELETE FROM taskq.jobs j WHERE j.queue_name = drop_queue.queue_name;
  DELETE FROM taskq.queues q WHERE q.queue_name = drop_queue.queue_name;
END;
$$;
COMMENT ON FUNCTION taskq.drop_queue(text, boolean) IS
  'drops a queue and its finished jobs; refused (55000) while it has unfinished jobs unless force; the RabbitMQ queue is left for the operator';
-- Enqueue: the hottest path. One read of the queue row, one job row, one
-- outbox row, one flag for the commit-time wake-up. No triggers, no foreign
-- keys, nothing looked up that the plan cache can keep.

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
  IF pg_column_size(payload) > 1048576 THEN
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
COMMENT ON FUNCTION taskq.enqueue(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb) IS
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
      USING ERRCODE = 'invalid_parameter_value', HINT = 'the limit is 1 MiB per payload';
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
COMMENT ON FUNCTION taskq.enqueue_many(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb) IS
  'adds one job per element of the JSON array payloads, set-wise; returns the ids in array order';
-- The job state machine: what the worker calls (start, heartbeat, complete,
-- fail) and what the producer calls (retry, cancel, job).
--
-- Fencing: a message carries the attempt it may start (attempts + 1 when it
-- was written). start accepts only that attempt of a pending, due job;
-- heartbeat/complete/fail accept only the running attempt. Everything else
-- is stale and changes nothing, so a duplicate or late delivery can never
-- finish a job twice. Attempt numbers are never reused (see retry).

-- Writes the "tell this URL" row for a job that just ended, in the same
-- transaction as the transition, and wakes listening callback dispatchers at
-- commit (NOTIFY is transactional: a rolled-back transition wakes nobody).
CREATE FUNCTION taskq._write_callback(j taskq.jobs) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF j.callback_url IS NULL THEN
    RETURN;
  END IF;
  INSERT INTO taskq.callbacks (job_id, delivery_id, url, event, body)
  VALUES (j.id, taskq._uuid_v7(), j.callback_url, 'job.' || j.status::text,
          jsonb_build_object('id', j.id, 'queue', j.queue_name, 'task', j.task, 'status', j.status,
                             'result', j.result, 'error', j.last_error, 'attempts', j.attempts,
                             'created_at', j.created_at, 'started_at', j.started_at,
                             'finished_at', j.finished_at));
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
-- for good, or cancelled when a cancel was requested. Used by fail() and
-- rescue_expired().
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
                          max_attempts = j.max_attempts, updated_at = j.updated_at
    WHERE id = j.id;
    INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at) VALUES (j.id, j.queue_name, j.attempts + 1, due);
    PERFORM taskq._wake_publisher_at_commit();
  ELSE
    j.finished_at := now();
    UPDATE taskq.jobs SET status = j.status, lease_expires_at = NULL, last_error = j.last_error,
                          finished_at = j.finished_at, updated_at = j.updated_at
    WHERE id = j.id;
    PERFORM taskq._write_callback(j);
  END IF;
  RETURN j.status;
END;
$$;

CREATE FUNCTION taskq.start(job_id uuid, attempt int, worker text) RETURNS SETOF taskq.jobs
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  PERFORM taskq._require(attempt, 'attempt');
  IF worker IS NULL OR worker = '' OR octet_length(worker) > 255 THEN
    RAISE EXCEPTION 'worker must be a name of 1 to 255 bytes' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN QUERY
  UPDATE taskq.jobs j
  SET status = 'running', attempts = start.attempt, worker = start.worker, started_at = now(),
      lease_expires_at = now() + q.lease, updated_at = now()
  FROM taskq.queues q
  WHERE j.id = start.job_id AND q.queue_name = j.queue_name
    -- In a CASE, so that the row is found by primary key whatever the
    -- statistics say, never by walking the pending jobs (see _start_batch).
    AND CASE WHEN j.status = 'pending' AND j.attempts + 1 = start.attempt AND j.run_at <= now() THEN true END
  RETURNING j.*;
END;
$$;
COMMENT ON FUNCTION taskq.start(uuid, int, text) IS
  'starts the given attempt of a job under a lease; one row: run it; zero rows: the delivery is stale (ack and drop it)';

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

CREATE FUNCTION taskq.complete(job_id uuid, attempt int, result jsonb DEFAULT NULL) RETURNS boolean
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
    RETURN false;
  END IF;
  PERFORM taskq._write_callback(done);
  RETURN true;
END;
$$;
COMMENT ON FUNCTION taskq.complete(uuid, int, jsonb) IS
  'completes the running attempt of a job with an optional JSON result; false when the call was stale';

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
    RETURN NULL;
  END IF;
  RETURN taskq._fail_attempt(j, error, retry_in, permanent);
END;
$$;
COMMENT ON FUNCTION taskq.fail(uuid, int, text, interval, boolean) IS
  'fails the running attempt: retried with exponential backoff and jitter (or after retry_in) until max_attempts, then failed; permanent fails it for good; returns the new status, NULL when the call was stale';

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
    RETURN NULL;
  END IF;
  IF NOT j.cancel_requested THEN
    j.max_attempts := j.max_attempts + 1;
  END IF;
  RETURN taskq._fail_attempt(j, error, interval '0', false);
END;
$$;
COMMENT ON FUNCTION taskq._give_back(uuid, int, text) IS
  'internal (taskq-worker): gives back a running attempt the worker stopped (shutdown); runs again at once, the attempt not counted; NULL when stale';

CREATE FUNCTION taskq.retry(job_id uuid, delay interval DEFAULT NULL) RETURNS taskq.jobs
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
                          cancel_requested = false, updated_at = now()
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
  IF j.status = 'pending' THEN
    -- Its outbox row, if any, is dropped by the publisher's next claim.
    UPDATE taskq.jobs SET status = 'cancelled', finished_at = now(), updated_at = now()
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
COMMENT ON FUNCTION taskq.cancel(uuid) IS
  'cancels a pending job at once; for a running job requests the cancel, which its worker carries out';

CREATE FUNCTION taskq.job(job_id uuid) RETURNS SETOF taskq.jobs
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  SELECT * FROM taskq.jobs WHERE id = job_id;
END;
COMMENT ON FUNCTION taskq.job(uuid) IS 'the job with this id; zero rows if there is none';
-- Batched forms of start, heartbeat and complete, for taskq-worker. They
-- apply exactly the rules of taskq.start/heartbeat/complete (40_transitions)
-- to many jobs in one round trip and one commit, which is what lets one
-- worker process keep up with thousands of short jobs per second. Items come
-- as one JSON array ([{"id": ..., "attempt": ..., "result": ...}, ...]) so
-- that clients need no array-literal quoting.
--
-- Each function changes only the rows whose attempt is current and returns
-- exactly those; every other item is stale for the caller, as with the
-- single-job functions. Items are applied in job id order so that two
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

CREATE FUNCTION taskq._start_batch(items jsonb, worker text)
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
    SET status = 'running', attempts = w.attempt, worker = _start_batch.worker, started_at = now(),
        lease_expires_at = now() + q.lease, updated_at = now()
    FROM taskq.queues q
    WHERE j.id = w.id AND q.queue_name = j.queue_name
      AND CASE WHEN j.status = 'pending' AND j.attempts + 1 = w.attempt AND j.run_at <= now() THEN true END
    RETURNING j.id, j.attempts, j.max_attempts, (extract(epoch FROM q.lease) * 1000)::bigint
    INTO job_id, attempt, max_attempts, lease_ms;
    IF FOUND THEN
      RETURN NEXT;
    END IF;
  END LOOP;
END;
$$;
COMMENT ON FUNCTION taskq._start_batch(jsonb, text) IS
  'internal (taskq-worker): taskq.start for many {"id", "attempt"} items; returns the jobs that started, with their lease in ms';

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

CREATE FUNCTION taskq._complete_batch(items jsonb) RETURNS SETOF uuid
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
      USING ERRCODE = 'invalid_parameter_value', HINT = 'the limit is 1 MiB per result';
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
COMMENT ON FUNCTION taskq._complete_batch(jsonb) IS
  'internal (taskq-worker): taskq.complete for many {"id", "attempt", "result"} items; returns the jobs that completed';
-- What the publisher (background worker) calls, one pass per transaction:
-- claim due rows, publish them, then record the broker's answers.

-- after_due/after_id: a keyset cursor. SKIP LOCKED skips only other
-- transactions' locks, so a publisher claiming several batches in one
-- transaction continues after the last row of its previous batch.
CREATE FUNCTION taskq._outbox_claim(batch_size int, after_due timestamptz DEFAULT NULL, after_id bigint DEFAULT NULL)
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
             || ',"headers":' || coalesce(c.jheaders::text, '{}') || '}',
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

-- Every row here is found by primary key. With a few thousand rows in a
-- table the planner prefers reading all of outbox or jobs for each batch of
-- ids (its cost model assumes uncached random reads); that work grows with
-- the table, the index probes do not (auto_explain while draining a
-- 20,000-row backlog: 13-36 ms against 1-9 ms per batch of 500). Hence
-- "= ANY" conditions and enable_seqscan = off.
CREATE FUNCTION taskq._outbox_published(outbox_ids bigint[]) RETURNS uuid[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  jobs uuid[];
BEGIN
  WITH done AS (
    DELETE FROM taskq.outbox o WHERE o.id = ANY (outbox_ids) RETURNING o.job_id
  )
  SELECT coalesce(array_agg(job_id), '{}') INTO jobs FROM done;
  RETURN jobs;
END;
$$;
COMMENT ON FUNCTION taskq._outbox_published(bigint[]) IS
  'internal (publisher): the broker confirmed these rows: delete them; returns their jobs (for _jobs_published)';

-- Called in a transaction of its own after the pass that published these
-- jobs committed. Inside the pass, these row locks would be held until its
-- commit (after the broker's confirms), and workers starting the same jobs
-- (taskq._start_batch) would wait for them: the message is out by then.
CREATE FUNCTION taskq._jobs_published(job_ids uuid[]) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  recorded int;
BEGIN
  -- "= ANY (ARRAY(subquery))": probes the primary key; a join against the
  -- ids was planned as a merge join that walks jobs_pkey from its start.
  -- SKIP LOCKED: a job locked right now is being started by a worker and
  -- needs no publish time once running. Waiting instead could deadlock with
  -- a worker's batch start, which locks its rows in another order.
  UPDATE taskq.jobs j SET published_at = now()
  WHERE j.id = ANY (ARRAY(SELECT l.id FROM taskq.jobs l WHERE l.id = ANY (job_ids) FOR UPDATE OF l SKIP LOCKED));
  GET DIAGNOSTICS recorded = ROW_COUNT;
  RETURN recorded;
END;
$$;
COMMENT ON FUNCTION taskq._jobs_published(uuid[]) IS
  'internal (publisher): records the publish time of jobs whose messages the broker confirmed (the reconciler''s "published long ago")';

CREATE FUNCTION taskq._outbox_failed(outbox_ids bigint[], error text) RETURNS int
LANGUAGE sql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off
BEGIN ATOMIC
  WITH retried AS (
    UPDATE taskq.outbox
    SET publish_attempts = publish_attempts + 1,
        last_error = left(error, 1000),
        due_at = now() + least(interval '5 minutes', interval '1 second' * power(2, least(publish_attempts, 20)))
    WHERE taskq.outbox.id = ANY (outbox_ids)
    RETURNING 1
  )
  SELECT count(*)::int FROM retried;
END;
COMMENT ON FUNCTION taskq._outbox_failed(bigint[], text) IS
  'internal (publisher): nacked, returned or unconfirmed rows are tried again later with capped exponential backoff';

CREATE FUNCTION taskq._release_held() RETURNS int
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  -- One probe of outbox_held per unpaused queue; a paused backlog is not read.
  WITH released AS (
    UPDATE taskq.outbox o SET held = false
    WHERE o.held AND o.queue_name = ANY (ARRAY(SELECT q.queue_name FROM taskq.queues q WHERE NOT q.paused))
    RETURNING 1
  )
  SELECT count(*)::int FROM released;
END;
COMMENT ON FUNCTION taskq._release_held() IS
  'internal (publisher maintenance): outbox rows set aside for a queue that is no longer paused become publishable (a safety net behind resume_queue)';

CREATE FUNCTION taskq._outbox_next_due() RETURNS timestamptz
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  SELECT min(due_at) FROM taskq.outbox WHERE NOT held AND due_at > now();
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
  INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
  SELECT j.id, j.queue_name, j.attempts + 1, now()
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
-- What taskq-worker's callback dispatcher calls. Rows are leased, so a
-- dispatcher that dies mid-delivery loses nothing: the lease runs out and
-- another one sends it again (same delivery_id, for the receiver's dedup).
-- Dispatchers LISTEN on "taskq_callbacks" (notified by _write_callback at
-- commit) and otherwise sleep until _callbacks_next_due().

CREATE FUNCTION taskq._callbacks_claim(worker text, max_rows int, lease interval) RETURNS SETOF taskq.callbacks
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF worker IS NULL OR worker = '' THEN
    RAISE EXCEPTION 'worker must not be empty' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF max_rows IS NULL OR max_rows < 1 THEN
    RAISE EXCEPTION 'max_rows must be at least 1' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF lease IS NULL OR lease <= interval '0' THEN
    RAISE EXCEPTION 'lease must be positive' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN QUERY
  WITH due AS (
    SELECT c.id FROM taskq.callbacks c
    WHERE c.state = 'pending' AND c.next_attempt_at <= now()
      AND (c.lease_expires_at IS NULL OR c.lease_expires_at < now())
    ORDER BY c.next_attempt_at, c.id
    LIMIT max_rows
    FOR UPDATE SKIP LOCKED
  )
  UPDATE taskq.callbacks c
  SET leased_by = _callbacks_claim.worker, lease_expires_at = now() + _callbacks_claim.lease, attempts = c.attempts + 1
  FROM due WHERE c.id = due.id
  RETURNING c.*;
END;
$$;
COMMENT ON FUNCTION taskq._callbacks_claim(text, int, interval) IS
  'internal (taskq-worker): leases up to max_rows due callbacks to worker for lease; counts the attempt';

CREATE FUNCTION taskq._callback_delivered(callback_id bigint, worker text, status int) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE taskq.callbacks c
  SET state = 'delivered', delivered_at = now(), last_status = status, last_error = NULL,
      lease_expires_at = NULL, leased_by = NULL
  WHERE c.id = callback_id AND c.leased_by = _callback_delivered.worker AND c.state = 'pending';
  RETURN FOUND;
END;
$$;
COMMENT ON FUNCTION taskq._callback_delivered(bigint, text, int) IS
  'internal (taskq-worker): the receiver answered 2xx; false if the lease had been lost';

CREATE FUNCTION taskq._callback_failed(callback_id bigint, worker text, status int, error text,
                                       retry_in interval, give_up boolean) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE taskq.callbacks c
  SET state = CASE WHEN give_up THEN 'dead' ELSE 'pending' END,
      next_attempt_at = now() + greatest(coalesce(retry_in, interval '0'), interval '0'),
      last_status = status, last_error = left(error, 2000),
      lease_expires_at = NULL, leased_by = NULL
  WHERE c.id = callback_id AND c.leased_by = _callback_failed.worker AND c.state = 'pending';
  RETURN FOUND;
END;
$$;
COMMENT ON FUNCTION taskq._callback_failed(bigint, text, int, text, interval, boolean) IS
  'internal (taskq-worker): records a failed delivery; dead when give_up, else due again after retry_in';

CREATE FUNCTION taskq._callbacks_next_due() RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  -- A leased row becomes claimable again when its lease runs out: that is
  -- how a crashed dispatcher's callbacks get delivered without a poll.
  SELECT min(greatest(c.next_attempt_at, coalesce(c.lease_expires_at, c.next_attempt_at)))
  FROM taskq.callbacks c WHERE c.state = 'pending';
END;
COMMENT ON FUNCTION taskq._callbacks_next_due() IS
  'internal (taskq-worker): earliest time a pending callback can be claimed (retry due or lease run out; may be past), NULL if none';
-- Periodic maintenance, run by the background worker every
-- taskq.maintenance_interval; callable by hand too.

CREATE FUNCTION taskq.rescue_expired() RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j taskq.jobs;
  rescued int := 0;
BEGIN
  -- A running job whose lease ran out lost its worker (crash, kill -9,
  -- partition): count the attempt as failed, which retries it through the
  -- outbox or ends it. SKIP LOCKED: a worker finishing it right now wins.
  FOR j IN
    SELECT * FROM taskq.jobs
    WHERE status = 'running' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
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

CREATE FUNCTION taskq.purge_finished() RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  purged int;
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
    DELETE FROM taskq.jobs j USING old WHERE j.id = old.id RETURNING 1
  )
  SELECT count(*) INTO purged FROM gone;
  RETURN purged;
END;
$$;
COMMENT ON FUNCTION taskq.purge_finished() IS
  'deletes finished jobs older than their queue''s retention (at most 10000 per call) and their delivered or dead callbacks';

CREATE VIEW taskq.queue_stats AS
SELECT q.queue_name,
       q.paused,
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
  'per queue: jobs per status, jobs scheduled for later, age of the oldest due pending job, outbox rows not yet confirmed by RabbitMQ';
-- Observability of the publisher (the "taskq publisher" background worker).

CREATE FUNCTION taskq.publisher_status(
  OUT pid int, OUT state text, OUT connected boolean, OUT blocked boolean, OUT broker text,
  OUT connected_since timestamptz, OUT last_error text, OUT last_error_at timestamptz,
  OUT last_publish_at timestamptz, OUT published bigint, OUT confirmed bigint, OUT failed bigint,
  OUT reconnects bigint, OUT rescued bigint, OUT reconciled bigint)
RETURNS record
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskq_publisher_status';
COMMENT ON FUNCTION taskq.publisher_status() IS
  'state of the publisher background worker (from shared memory): connection, last error, counters since it started';

CREATE VIEW taskq.publisher AS
SELECT s.*,
       (SELECT count(*) FROM taskq.outbox) AS backlog,
       (SELECT count(*) FROM taskq.outbox WHERE due_at <= now()) AS due_backlog
FROM taskq.publisher_status() s;
COMMENT ON VIEW taskq.publisher IS
  'the publisher''s state, counters since it started, and the outbox backlog (all rows, and rows due now)';
-- Privileges. Nothing is granted to PUBLIC. Two NOLOGIN roles carry the
-- grants; give them to your application's roles:
--   GRANT taskq_producer TO app;      -- enqueue, retry, cancel, read jobs
--   GRANT taskq_worker TO worker;     -- start/heartbeat/complete/fail, callbacks
-- Queue administration stays with the extension owner (grant EXECUTE on
-- create_queue etc. explicitly if another role should have it).
-- The roles are cluster-wide and outlive DROP EXTENSION.

DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'taskq_producer') THEN
    CREATE ROLE taskq_producer NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'taskq_worker') THEN
    CREATE ROLE taskq_worker NOLOGIN;
  END IF;
END;
$roles$;

REVOKE ALL ON ALL TABLES IN SCHEMA taskq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA taskq FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA taskq FROM PUBLIC;
REVOKE ALL ON SCHEMA taskq FROM PUBLIC;

GRANT USAGE ON SCHEMA taskq TO taskq_producer, taskq_worker;
GRANT USAGE ON TYPE taskq.job_status TO taskq_producer, taskq_worker;

GRANT EXECUTE ON FUNCTION
  taskq.enqueue(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb),
  taskq.enqueue_many(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb),
  taskq.retry(uuid, interval),
  taskq.cancel(uuid),
  taskq.job(uuid)
TO taskq_producer;
GRANT SELECT ON taskq.jobs, taskq.queues, taskq.queue_stats TO taskq_producer;
-- Monitoring: the publisher's state (no password in it).
GRANT EXECUTE ON FUNCTION taskq.publisher_status() TO taskq_producer, taskq_worker;
GRANT SELECT ON taskq.publisher TO taskq_producer, taskq_worker;

GRANT EXECUTE ON FUNCTION
  taskq.start(uuid, int, text),
  taskq.heartbeat(uuid, int),
  taskq.complete(uuid, int, jsonb),
  taskq.fail(uuid, int, text, interval, boolean),
  taskq._give_back(uuid, int, text),
  taskq.job(uuid),
  taskq._start_batch(jsonb, text),
  taskq._heartbeat_batch(jsonb),
  taskq._complete_batch(jsonb),
  taskq._callbacks_claim(text, int, interval),
  taskq._callback_delivered(bigint, text, int),
  taskq._callback_failed(bigint, text, int, text, interval, boolean),
  taskq._callbacks_next_due()
TO taskq_worker;
GRANT SELECT ON taskq.jobs, taskq.queues TO taskq_worker;

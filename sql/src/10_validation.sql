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
-- (pg_column_size: no text conversion needed on the enqueue path). The one
-- place the limit is written: checks and hints call this. It is immutable,
-- so the planner folds a call into a constant of the cached plan, and the
-- hot paths pay nothing for the call.
CREATE FUNCTION taskq._max_document_bytes() RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN 1048576;

CREATE FUNCTION taskq._check_document(doc jsonb, name text) RETURNS void
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

-- The trace context of a new job (W3C traceparent and tracestate; see
-- docs/sql-api.md#trace-context): the traceparent of the headers argument,
-- or else the session's taskq.traceparent setting, each with the tracestate
-- of the same place. It ends up in the job's headers, and so in every
-- message of the job (retries too) and in its callbacks. A value that is not
-- valid Trace Context is dropped with a WARNING: a tracing mistake must
-- never cost the caller its job. enqueue calls this only when a trace
-- header or the setting is there, so other jobs pay one setting look-up.
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
-- Flow control options of create_queue and alter_queue; NULL: not given.
-- The bounds keep the arithmetic of the limits exact and their state small
-- (taskq.rate_windows); the limit arguments take no 0 or negative value, so
-- "no limit" is NULL (taskq.remove_queue_limit removes one).
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

-- jobs_per_message of create_queue and alter_queue; NULL: not given. The
-- bound keeps a message of small jobs small; the publisher also never packs
-- more than 1 MiB of bodies into one message.
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

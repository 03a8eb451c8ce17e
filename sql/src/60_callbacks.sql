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

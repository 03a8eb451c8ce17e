-- Waiting for a result: taskq.wait() sleeps until the job finishes, and
-- taskq._wake_waiters_at_commit() is what every finishing path calls.
-- The shared memory, the commit-time broadcast and the race between a
-- waiter's look and its sleep: extension/job_waiters.cpp.

-- Every path that ends a job (completed, failed, cancelled) calls this in
-- the transaction that ends it, with the ids it ended: complete,
-- _complete_batch, _fail_attempt (fail, _give_back, rescue_expired), cancel.
-- It only marks slots in backend memory; the broadcast happens at commit,
-- and costs one atomic read when nobody waits.
CREATE FUNCTION taskq._wake_waiters_at_commit(job_ids uuid[]) RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskq_wake_waiters_at_commit';
COMMENT ON FUNCTION taskq._wake_waiters_at_commit(uuid[]) IS
  'wakes the backends in taskq.wait() for these jobs when the current transaction commits; every path that ends a job calls it';

CREATE FUNCTION taskq._wait_prepare(job_id uuid) RETURNS void
  LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'taskq_wait_prepare';
COMMENT ON FUNCTION taskq._wait_prepare(uuid) IS
  'internal (taskq.wait): counts this backend as a waiter and joins the wake-up list of the job''s slot, before it looks at the job';

CREATE FUNCTION taskq._wait_sleep(job_id uuid, deadline timestamptz) RETURNS void
  LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'taskq_wait_sleep';
COMMENT ON FUNCTION taskq._wait_sleep(uuid, timestamptz) IS
  'internal (taskq.wait): sleeps until a finish in the job''s slot commits, the deadline passes or the statement is interrupted';

CREATE FUNCTION taskq._wait_done() RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskq_wait_done';
COMMENT ON FUNCTION taskq._wait_done() IS
  'internal (taskq.wait): leaves the wake-up list and stops counting this backend as a waiter';

CREATE FUNCTION taskq._written_by_this_transaction(row_xmin xid) RETURNS boolean
  LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'taskq_written_by_this_transaction';
COMMENT ON FUNCTION taskq._written_by_this_transaction(xid) IS
  'internal (taskq.wait): whether a row version with this xmin was written by the current transaction or one of its subtransactions';

-- READ COMMITTED only: each look below takes a fresh snapshot, so it sees
-- a finish as soon as it commits. A REPEATABLE READ or SERIALIZABLE
-- transaction keeps one snapshot, which would never show the finish; such
-- a waiter gets the job at once if its snapshot shows it finished, and an
-- error otherwise rather than a sleep that could only time out. So does a
-- waiter whose own transaction wrote the job (enqueued it, say): nobody can
-- finish it before that transaction commits.
CREATE FUNCTION taskq.wait(job_id uuid, timeout interval DEFAULT '30 seconds') RETURNS taskq.jobs
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j taskq.jobs;
  -- A longer wait than 1000 years is the same as one of 1000 years (and
  -- would overflow timestamptz).
  deadline timestamptz := clock_timestamp() + least(timeout, interval '1000 years');
BEGIN
  PERFORM taskq._require(job_id, 'job_id');
  PERFORM taskq._require(timeout, 'timeout');
  IF timeout < interval '0' THEN
    RAISE EXCEPTION 'timeout must not be negative, not %', timeout USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO j FROM taskq.jobs t WHERE t.id = wait.job_id;
  IF NOT FOUND THEN
    PERFORM taskq._raise_unknown_job(job_id);
  END IF;
  IF j.status IN ('completed', 'failed', 'cancelled') OR timeout = interval '0' THEN
    RETURN j;
  END IF;
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'taskq.wait needs a READ COMMITTED transaction: the snapshot of this % transaction never shows the job finish',
                    upper(current_setting('transaction_isolation'))
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'call it outside a transaction block, or in a READ COMMITTED transaction';
  END IF;
  IF pg_catalog.pg_is_in_recovery() THEN
    RAISE EXCEPTION 'taskq.wait cannot wait on a standby: jobs finish on the primary, which wakes only its own waiters'
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'call it on the primary';
  END IF;
  IF (SELECT taskq._written_by_this_transaction(t.xmin) FROM taskq.jobs t WHERE t.id = wait.job_id) THEN
    RAISE EXCEPTION 'job % was enqueued or changed by this transaction, so it cannot finish before this transaction ends', job_id
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'commit first, then call taskq.wait (psql commits each statement on its own outside BEGIN ... COMMIT)';
  END IF;

  -- On the list before the first look: a finish that commits after the
  -- look's snapshot wakes the sleep that follows it.
  PERFORM taskq._wait_prepare(job_id);
  LOOP
    SELECT * INTO j FROM taskq.jobs t WHERE t.id = wait.job_id;
    IF NOT FOUND THEN  -- deleted meanwhile (drop_queue with force)
      PERFORM taskq._wait_done();
      PERFORM taskq._raise_unknown_job(job_id);
    END IF;
    EXIT WHEN j.status IN ('completed', 'failed', 'cancelled') OR clock_timestamp() >= deadline;
    PERFORM taskq._wait_sleep(job_id, deadline);
  END LOOP;
  PERFORM taskq._wait_done();
  RETURN j;
END;
$$;
COMMENT ON FUNCTION taskq.wait(uuid, interval) IS
  'waits until the job is completed, failed or cancelled and returns it; after timeout returns it as it is; READ COMMITTED only; the enqueue must have committed';

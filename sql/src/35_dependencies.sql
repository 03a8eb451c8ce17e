-- Dependencies: a job enqueued with depends_on is created 'waiting' and is
-- not published until every job it depends on has completed; the last
-- completion makes it 'pending' and writes its outbox row, in that
-- completion's transaction. A dependency that ends failed or cancelled
-- cancels its waiting dependents, transitively. docs/sql-api.md
-- ("Dependencies and workflows") has the rules users see.
--
-- Data: one taskq.job_dependencies row per edge (both directions indexed);
-- on the waiting job, dependencies_left counts the edges not yet
-- satisfied, so a completion decrements a counter instead of counting: a
-- job waiting for 10,000 others costs each of their completions one edge
-- and one counter update, and is released exactly once, by the decrement
-- that reaches zero. On the dependency, has_dependents tells the finishing
-- paths (complete, fail, cancel, rescue) whether to look for dependents at
-- all: a job nobody depends on finishes as it did before.
--
-- Concurrency. A dependency must not finish unseen while a transaction is
-- adding a dependent to it (the dependent would wait forever), and a
-- dependent must not be released twice or lose a decrement:
-- - enqueue (and retry) lock each dependency that has not completed, in id
--   order, until their transaction ends: FOR KEY SHARE, which start,
--   heartbeat and complete's own UPDATE do not wait for. Only the first
--   dependent of a job sets has_dependents, with an UPDATE (which those do
--   wait for, as they wait for a cancel in progress).
-- - every path that finishes a job with has_dependents holds its row FOR
--   UPDATE before it looks for dependents (fail, cancel, rescue, retry
--   lock FOR UPDATE anyway; complete upgrades its lock here), which waits
--   for those transactions; its next statement then sees their edges. A
--   dependent enqueued after that waits for the finish to commit and then
--   sees the dependency completed (done) or failed (55000).
-- - dependents are locked in id order, which is also the order in which
--   they were created (dependencies before dependents), so two completions
--   never wait for each other; the decrement runs on the locked row's
--   latest version, so concurrent completions of one dependent's
--   dependencies serialize on that row and each counts once.
-- - a transaction that does not run at READ COMMITTED would look for
--   dependents with a snapshot taken before it waited: the finishing paths
--   refuse to (0A000), and enqueue uses FOR SHARE there, which fails with
--   40001 instead of reading a stale status.
--
-- Every job the cascade cancels is finished in _cancel_dependents, the one
-- place to hook anything that must happen when a job finishes.
--
-- The functions that read edges run with enable_seqscan = off (as the
-- worker's batch functions do): connections live long, and a plan cached
-- while the edge table was small would read all of it for every finish.

-- The ids of a job's dependencies as a JSON array, for its message.
CREATE FUNCTION taskq._dependency_ids(job_id uuid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp SET enable_seqscan = off
RETURN (SELECT coalesce(json_agg(e.depends_on_job_id ORDER BY e.depends_on_job_id)::text, '[]')
        FROM taskq.job_dependencies e WHERE e.job_id = _dependency_ids.job_id);
COMMENT ON FUNCTION taskq._dependency_ids(uuid) IS
  'internal (publisher): the jobs a job depends on, as the JSON array of its message''s "depends_on"';

-- purge_finished's: the edges of purged dependents.
CREATE FUNCTION taskq._forget_dependencies(job_ids uuid[]) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off
BEGIN ATOMIC
  DELETE FROM taskq.job_dependencies e WHERE e.job_id = ANY (job_ids);
END;
COMMENT ON FUNCTION taskq._forget_dependencies(uuid[]) IS
  'internal (purge_finished): deletes the dependency edges of these (purged) jobs';

-- Most dependencies one job may have (its message lists them all).
CREATE FUNCTION taskq._max_dependencies() RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN 100000;

-- Sorts depends_on into the jobs that completed already and those that
-- have not, locking the latter until the transaction ends (see above).
-- 42704 for an unknown job, 55000 for a failed or cancelled one.
CREATE FUNCTION taskq._lock_dependencies(depends_on uuid[], OUT unfinished uuid[], OUT completed uuid[])
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  read_committed boolean := current_setting('transaction_isolation') = 'read committed';
  dep uuid;
  dep_status taskq.job_status;
  flagged boolean;
BEGIN
  unfinished := '{}';
  completed := '{}';
  IF array_ndims(depends_on) > 1 THEN
    RAISE EXCEPTION 'depends_on must be a one-dimensional array of job ids' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF array_position(depends_on, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'depends_on must not contain nulls' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF cardinality(depends_on) > taskq._max_dependencies() THEN
    RAISE EXCEPTION 'depends_on has % elements; at most % per job', cardinality(depends_on), taskq._max_dependencies()
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- One job at a time, in id order: each lock is taken in the order every
  -- other path takes them (a set-wise lock would not keep the order between
  -- the rows it updates and the rows it only locks).
  FOR dep IN SELECT DISTINCT d.id FROM unnest(depends_on) d(id) ORDER BY d.id LOOP
    SELECT j.status, j.has_dependents INTO dep_status, flagged FROM taskq.jobs j WHERE j.id = dep;
    -- Completed is final for a dependency: a later retry does not undo it.
    IF FOUND AND dep_status <> 'completed' THEN
      IF NOT flagged THEN
        -- (At READ COMMITTED an UPDATE acts on the row's latest version.)
        UPDATE taskq.jobs j SET has_dependents = true WHERE j.id = dep RETURNING j.status INTO dep_status;
      ELSIF read_committed THEN
        -- A KEY SHARE lock is granted on the version the statement saw, even
        -- after waiting for a finish that changed it: read the status again,
        -- in a statement of its own, once the lock is held.
        PERFORM 1 FROM taskq.jobs j WHERE j.id = dep FOR KEY SHARE;
        SELECT j.status INTO dep_status FROM taskq.jobs j WHERE j.id = dep;
      ELSE
        -- Fails (40001) if the row changed after this transaction's snapshot.
        SELECT j.status INTO dep_status FROM taskq.jobs j WHERE j.id = dep FOR SHARE;
      END IF;
    END IF;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'dependency % does not exist', dep USING ERRCODE = 'undefined_object';
    END IF;
    IF dep_status = 'completed' THEN
      completed[cardinality(completed) + 1] := dep;
    ELSIF dep_status IN ('failed', 'cancelled') THEN
      RAISE EXCEPTION 'dependency % is %', dep, dep_status
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'a job cannot wait for a job that will not complete; retry that one first';
    ELSE
      unfinished[cardinality(unfinished) + 1] := dep;
    END IF;
  END LOOP;
END;
$$;
COMMENT ON FUNCTION taskq._lock_dependencies(uuid[]) IS
  'internal (enqueue): locks the unfinished jobs of depends_on against finishing unseen; returns them and the completed ones';

-- The edges of new jobs (all with the same dependencies).
CREATE FUNCTION taskq._add_dependencies(job_ids uuid[], unfinished uuid[], completed uuid[]) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  INSERT INTO taskq.job_dependencies (job_id, depends_on_job_id, satisfied)
  SELECT j.id, d.id, d.satisfied
  FROM unnest(job_ids) j(id)
  CROSS JOIN (SELECT u.id, false AS satisfied FROM unnest(unfinished) u(id)
              UNION ALL
              SELECT c.id, true FROM unnest(completed) c(id)) d;
END;
COMMENT ON FUNCTION taskq._add_dependencies(uuid[], uuid[], uuid[]) IS
  'internal (enqueue): records that each of job_ids depends on the unfinished and the completed jobs';

-- Looking for dependents with a stale snapshot could miss one (see above).
CREATE FUNCTION taskq._check_read_committed() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'finishing a job that other jobs depend on needs read committed isolation, not %',
      current_setting('transaction_isolation')
      USING ERRCODE = 'feature_not_supported',
            HINT = 'call taskq.complete, fail and cancel outside REPEATABLE READ and SERIALIZABLE transactions';
  END IF;
END;
$$;

-- Called by complete and _complete_batch for the jobs they just completed
-- (all with has_dependents): satisfies their edges, decrements the waiting
-- dependents' counters, and publishes the dependents that reached zero.
CREATE FUNCTION taskq._release_dependents(completed uuid[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  dependents uuid[];
  decrements int[];
BEGIN
  PERFORM taskq._check_read_committed();
  -- Waits for the transactions that are adding dependents to these jobs.
  PERFORM 1 FROM taskq.jobs j WHERE j.id = ANY (completed) ORDER BY j.id FOR UPDATE;
  -- Each edge is satisfied once: a dependency that completes again after a
  -- retry counts nothing more.
  WITH satisfied AS (
    UPDATE taskq.job_dependencies e SET satisfied = true
    WHERE e.depends_on_job_id = ANY (completed) AND NOT e.satisfied
    RETURNING e.job_id
  ), per_job AS (
    SELECT s.job_id, count(*)::int AS n FROM satisfied s GROUP BY s.job_id
  )
  SELECT array_agg(p.job_id ORDER BY p.job_id), array_agg(p.n ORDER BY p.job_id) INTO dependents, decrements
  FROM per_job p;
  IF dependents IS NULL THEN
    RETURN;
  END IF;
  PERFORM 1 FROM taskq.jobs j WHERE j.id = ANY (dependents) ORDER BY j.id FOR NO KEY UPDATE;
  -- A dependent that is not waiting (cancelled meanwhile) keeps its count;
  -- retry recounts its edges.
  WITH released AS (
    UPDATE taskq.jobs j
    SET dependencies_left = j.dependencies_left - d.n,
        status = CASE WHEN j.dependencies_left = d.n THEN 'pending'::taskq.job_status ELSE j.status END,
        -- Not before its dependencies completed, nor before the run_at asked for.
        run_at = CASE WHEN j.dependencies_left = d.n THEN greatest(j.run_at, now()) ELSE j.run_at END,
        updated_at = now()
    FROM unnest(dependents, decrements) d(id, n)
    WHERE j.id = d.id AND j.status = 'waiting'
    RETURNING j.id, j.queue_name, j.status, j.attempts, j.run_at
  )
  INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
  SELECT r.id, r.queue_name, r.attempts + 1, r.run_at FROM released r WHERE r.status = 'pending';
  IF FOUND THEN
    PERFORM taskq._wake_publisher_at_commit();
  END IF;
END;
$$;
COMMENT ON FUNCTION taskq._release_dependents(uuid[]) IS
  'internal (complete): counts the completion of these jobs for the jobs waiting for them; publishes those that wait for nothing more';

-- Called when a job with has_dependents ends failed or cancelled (what:
-- 'failed', 'was cancelled', 'was deleted'): cancels the jobs waiting for
-- it, then those waiting for them, and so on. last_error names the
-- dependency that ended and, further down, the job whose cancel cascaded.
-- Marks the edge it cancelled each job through, so that retrying the
-- dependency brings them back (_revive_dependents). Returns how many.
-- Every job it cancels finishes here.
CREATE FUNCTION taskq._cancel_dependents(job_id uuid, what text) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  root_cause text := format('dependency %s %s', job_id, what);
  frontier uuid[] := ARRAY[job_id];
  doomed uuid[];
  causes uuid[];
  cancelled uuid[];
  c taskq.jobs;
  total int := 0;
BEGIN
  PERFORM taskq._check_read_committed();
  -- (Callers hold it already; this waits for enqueues adding dependents.)
  PERFORM 1 FROM taskq.jobs j WHERE j.id = _cancel_dependents.job_id FOR UPDATE;
  LOOP
    -- The waiting jobs that wait for the frontier, each with one job of the
    -- frontier it waits for.
    SELECT array_agg(w.job_id ORDER BY w.job_id), array_agg(w.cause ORDER BY w.job_id) INTO doomed, causes
    FROM (SELECT e.job_id, min(e.depends_on_job_id::text)::uuid AS cause
          FROM taskq.job_dependencies e
          WHERE e.depends_on_job_id = ANY (frontier) AND NOT e.satisfied
          GROUP BY e.job_id) w;
    EXIT WHEN doomed IS NULL;
    -- FOR UPDATE: also waits for enqueues adding dependents to them.
    PERFORM 1 FROM taskq.jobs j WHERE j.id = ANY (doomed) ORDER BY j.id FOR UPDATE;
    frontier := '{}';
    cancelled := '{}';
    FOR c IN
      UPDATE taskq.jobs j
      SET status = 'cancelled', finished_at = now(), updated_at = now(),
          last_error = CASE WHEN d.cause = _cancel_dependents.job_id THEN root_cause
                            ELSE format('dependency %s was cancelled (%s)', d.cause, root_cause) END
      FROM unnest(doomed, causes) d(id, cause)
      WHERE j.id = d.id AND j.status = 'waiting'
      RETURNING j.*
    LOOP
      -- The job is finished (cancelled): what every finish does.
      PERFORM taskq._write_callback(c);
      cancelled := cancelled || c.id;
      IF c.has_dependents THEN
        frontier := frontier || c.id;
      END IF;
    END LOOP;
    total := total + cardinality(cancelled);
    IF cardinality(cancelled) > 0 THEN
      PERFORM taskq._wake_waiters_at_commit(cancelled);
    END IF;
    UPDATE taskq.job_dependencies e SET cancelled_job = true
    FROM unnest(doomed, causes) d(id, cause)
    WHERE e.job_id = d.id AND e.depends_on_job_id = d.cause AND d.id = ANY (cancelled);
    EXIT WHEN cardinality(frontier) = 0;
  END LOOP;
  RETURN total;
END;
$$;
COMMENT ON FUNCTION taskq._cancel_dependents(uuid, text) IS
  'internal: cancels, transitively, the jobs waiting for a job that ended failed or cancelled; returns how many';

-- Locks the unfinished dependencies of jobs that go back to waiting (retry),
-- as enqueue locks a new job's; returns the first one that failed or was
-- cancelled (or no longer exists), if any, and how many there are.
CREATE FUNCTION taskq._lock_unfinished_dependencies(job_ids uuid[], OUT bad_job uuid, OUT bad_status text,
                                                    OUT unfinished int)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  read_committed boolean := current_setting('transaction_isolation') = 'read committed';
  dep uuid;
  dep_status taskq.job_status;
BEGIN
  unfinished := 0;
  -- Edges only ever become satisfied: reading them before the locks finds
  -- at most a few more than needed.
  FOR dep IN SELECT DISTINCT e.depends_on_job_id FROM taskq.job_dependencies e
             WHERE e.job_id = ANY (job_ids) AND NOT e.satisfied ORDER BY 1 LOOP
    -- Every unfinished dependency has has_dependents set (by its first
    -- dependent). The status is read again once locked, as above.
    IF read_committed THEN
      PERFORM 1 FROM taskq.jobs j WHERE j.id = dep FOR KEY SHARE;
      SELECT j.status INTO dep_status FROM taskq.jobs j WHERE j.id = dep;
    ELSE
      SELECT j.status INTO dep_status FROM taskq.jobs j WHERE j.id = dep FOR SHARE;
    END IF;
    IF bad_job IS NULL AND (NOT FOUND OR dep_status IN ('failed', 'cancelled')) THEN
      bad_job := dep;
      bad_status := CASE WHEN FOUND THEN dep_status::text ELSE 'deleted' END;
    END IF;
    unfinished := unfinished + 1;
  END LOOP;
END;
$$;
COMMENT ON FUNCTION taskq._lock_unfinished_dependencies(uuid[]) IS
  'internal (retry): locks the unfinished dependencies of these jobs; returns one that failed, was cancelled or is gone, and how many';

-- Puts a cancelled job with dependencies back to waiting (or pending when
-- they all completed meanwhile): its count is recounted from its edges.
-- The caller holds the job FOR UPDATE and its dependencies locked
-- (_lock_unfinished_dependencies). false when its unique_key is taken.
CREATE FUNCTION taskq._rewait(j taskq.jobs, due timestamptz) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  left_count int;
BEGIN
  SELECT count(*)::int INTO left_count FROM taskq.job_dependencies e WHERE e.job_id = j.id AND NOT e.satisfied;
  BEGIN
    UPDATE taskq.jobs
    SET status = CASE WHEN left_count > 0 THEN 'waiting'::taskq.job_status ELSE 'pending' END,
        dependencies_left = left_count, run_at = due, max_attempts = attempts + attempt_budget,
        lease_expires_at = NULL, worker = NULL, result = NULL, finished_at = NULL, cancel_requested = false,
        failed_attempt = NULL, updated_at = now()
    WHERE id = j.id;
  EXCEPTION WHEN unique_violation THEN
    RETURN false;
  END;
  UPDATE taskq.job_dependencies e SET cancelled_job = false WHERE e.job_id = j.id AND e.cancelled_job;
  IF left_count = 0 THEN
    INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at) VALUES (j.id, j.queue_name, j.attempts + 1, due);
    PERFORM taskq._wake_publisher_at_commit();
  END IF;
  RETURN true;
END;
$$;
COMMENT ON FUNCTION taskq._rewait(taskq.jobs, timestamptz) IS
  'internal (retry): a cancelled job with dependencies waits again for those that have not completed';

-- retry of a job that failed or was cancelled: the jobs its end cancelled
-- (through edges marked cancelled_job) wait again, and so on down. A job
-- that also waits for another failed or cancelled job stays cancelled,
-- marked as cancelled by that one, so that retrying it brings the job back.
-- Returns how many jobs wait again.
CREATE FUNCTION taskq._revive_dependents(job_id uuid) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  frontier uuid[] := ARRAY[job_id];
  candidates uuid[];
  next_frontier uuid[];
  bad record;
  d taskq.jobs;
  total int := 0;
BEGIN
  LOOP
    SELECT array_agg(DISTINCT e.job_id) INTO candidates
    FROM taskq.job_dependencies e WHERE e.depends_on_job_id = ANY (frontier) AND e.cancelled_job;
    EXIT WHEN candidates IS NULL;
    -- Dependencies first, then the dependents: the order enqueue and the
    -- completions lock them in.
    PERFORM taskq._lock_unfinished_dependencies(candidates);
    next_frontier := '{}';
    FOR d IN SELECT * FROM taskq.jobs j WHERE j.id = ANY (candidates) ORDER BY j.id FOR UPDATE LOOP
      CONTINUE WHEN d.status <> 'cancelled';
      SELECT * INTO bad FROM taskq._lock_unfinished_dependencies(ARRAY[d.id]);
      IF bad.bad_job IS NOT NULL THEN
        UPDATE taskq.job_dependencies e SET cancelled_job = (e.depends_on_job_id = bad.bad_job)
        WHERE e.job_id = d.id AND (e.cancelled_job OR e.depends_on_job_id = bad.bad_job);
        UPDATE taskq.jobs j SET last_error = format('dependency %s %s', bad.bad_job,
                                                    CASE bad.bad_status WHEN 'failed' THEN 'failed'
                                                                        ELSE 'was ' || bad.bad_status END),
                                updated_at = now()
        WHERE j.id = d.id;
      ELSIF taskq._rewait(d, greatest(d.run_at, now())) THEN
        total := total + 1;
        IF d.has_dependents THEN
          next_frontier := next_frontier || d.id;
        END IF;
      END IF;
    END LOOP;
    frontier := next_frontier;
    EXIT WHEN cardinality(frontier) = 0;
  END LOOP;
  RETURN total;
END;
$$;
COMMENT ON FUNCTION taskq._revive_dependents(uuid) IS
  'internal (retry): the jobs cancelled because this job failed or was cancelled wait again, transitively; returns how many';

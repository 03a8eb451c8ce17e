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
               j.dependencies_left IS NOT NULL AS jdeps,
               j.status = 'pending' AND j.attempts + 1 = c.attempt AS live,
               -- A flow limit applies and the gate has not admitted it yet.
               (q.rate_limit IS NOT NULL OR (q.concurrency_limit IS NOT NULL AND j.concurrency_key IS NOT NULL))
                 AND j.flow_state IS DISTINCT FROM 'admitted' AS gated
        FROM taskq.jobs j JOIN taskq.queues q ON q.queue_name = j.queue_name
        WHERE j.id = c.job_id
      ) jq ON true
      WHERE c.queue_name <> ALL (paused)
    ), dropped AS (
      -- The job was cancelled, finished, started or deleted since the row
      -- was written: nothing to publish.
      DELETE FROM taskq.outbox o WHERE o.id = ANY (ARRAY(SELECT c.id FROM joined c WHERE c.live IS NOT TRUE))
    ), gated AS (
      -- Set aside for the publisher's flow step (55_flow_control), which
      -- admits or parks them in a short transaction of its own: the job
      -- rows are not touched here, so a worker starting an admitted job
      -- never waits for this pass's locks. A WITH statement that changes
      -- rows runs to the end whether or not its output is read, and its
      -- RETURNING asks for that step at commit (no row: no call).
      UPDATE taskq.outbox o SET held = true
      WHERE o.id = ANY (ARRAY(SELECT c.id FROM joined c WHERE c.live AND c.gated))
      RETURNING taskq._flow_changed_at_commit()
    )
    SELECT c.id, c.jid, c.jqueue, c.jtype, c.jtask, c.jpriority::int, c.attempt, c.jheaders, c.jcreated,
           -- Text concatenation rather than jsonb_build_object(...)::text:
           -- the same JSON at a third of the cost (no jsonb copy of the payload).
           '{"id":"' || c.jid::text || '","queue":' || to_json(c.jqueue)::text
             || ',"task":' || coalesce(to_json(c.jtask)::text, 'null') || ',"payload":' || c.jpayload::text
             || ',"attempt":' || c.attempt::text || ',"max_attempts":' || c.jmax::text
             || ',"enqueued_at":' || to_json(c.jcreated)::text
             || ',"headers":' || coalesce(c.jheaders::text, '{}')
             -- Looked up only for a job that has dependencies.
             || ',"depends_on":' || CASE WHEN c.jdeps THEN taskq._dependency_ids(c.jid) ELSE '[]' END || '}',
           c.due_at
    FROM joined c
    WHERE c.live AND NOT c.gated
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

-- The queues whose jobs travel several to a message, asked once per
-- publishing pass (usually no row: a scan of the small queues table).
CREATE FUNCTION taskq._batched_queues(OUT queue_name text, OUT jobs_per_message int) RETURNS SETOF record
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  SELECT q.queue_name, q.jobs_per_message FROM taskq.queues q WHERE q.jobs_per_message > 1;
END;
COMMENT ON FUNCTION taskq._batched_queues() IS
  'internal (publisher): the queues with jobs_per_message above 1, whose jobs it packs several to a message';

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
    AND coalesce(j.flow_state, 'admitted') = 'admitted'  -- a held job has no message on purpose
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

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
  -- Handled in the order of their keys' locks (55_flow_control): each
  -- attempt ended frees a slot of its concurrency key, if it has one.
  FOR j IN
    SELECT e.* FROM (SELECT * FROM taskq.jobs
                     WHERE status = 'running' AND lease_expires_at < now()
                     ORDER BY lease_expires_at
                     LIMIT 1000
                     FOR UPDATE SKIP LOCKED) e
    ORDER BY taskq._key_lock_id(e.queue_name, e.concurrency_key) NULLS FIRST
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
  purged_dependents uuid[];
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
    DELETE FROM taskq.jobs j USING old WHERE j.id = old.id RETURNING j.id, j.dependencies_left IS NOT NULL AS had_dependencies
  )
  SELECT count(*), array_agg(gone.id) FILTER (WHERE gone.had_dependencies) INTO purged, purged_dependents FROM gone;
  -- The edges of a purged dependent; those of a purged dependency stay
  -- with their dependent (satisfied, or it was cancelled) until it goes.
  IF purged_dependents IS NOT NULL THEN
    PERFORM taskq._forget_dependencies(purged_dependents);
  END IF;
  RETURN purged;
END;
$$;
COMMENT ON FUNCTION taskq.purge_finished() IS
  'deletes finished jobs older than their queue''s retention (at most 10000 per call), their delivered or dead callbacks and their dependency edges';

-- Counted from indexes, queue by queue, never from the table's rows: the
-- pending side from jobs_pending, every other status from jobs_list (both
-- index-only once autovacuum has marked the pages all-visible).
CREATE VIEW taskq.queue_stats AS
SELECT q.queue_name,
       q.paused,
       f.waiting,
       p.pending,
       f.running,
       f.completed,
       f.failed,
       f.cancelled,
       p.scheduled,
       p.oldest_pending_age,
       (SELECT count(*) FROM taskq.outbox o WHERE o.queue_name = q.queue_name) AS outbox_backlog,
       -- From the partial indexes of flow control: nothing to read for a
       -- queue without limits.
       (SELECT count(*) FROM taskq.jobs h
        WHERE h.queue_name = q.queue_name AND h.status = 'pending' AND h.flow_state = 'key_held')
       + (SELECT count(*) FROM taskq.jobs h
          WHERE h.queue_name = q.queue_name AND h.status = 'pending' AND h.flow_state = 'rate_held') AS held
FROM taskq.queues q
CROSS JOIN LATERAL (
  SELECT count(*) AS pending,
         count(*) FILTER (WHERE j.run_at > now()) AS scheduled,
         now() - min(j.run_at) FILTER (WHERE j.run_at <= now()) AS oldest_pending_age
  FROM taskq.jobs j
  WHERE j.queue_name = q.queue_name AND j.status = 'pending'
) p
CROSS JOIN LATERAL (
  -- 'waiting' is the only status that sorts before 'pending'. Written as
  -- a comparison because the 0.2.0 upgrade adds the enum value in the
  -- transaction that makes this view, and PostgreSQL refuses to name a
  -- value added in the same transaction.
  SELECT count(*) FILTER (WHERE j.status < 'pending')   AS waiting,
         count(*) FILTER (WHERE j.status = 'running')   AS running,
         count(*) FILTER (WHERE j.status = 'completed') AS completed,
         count(*) FILTER (WHERE j.status = 'failed')    AS failed,
         count(*) FILTER (WHERE j.status = 'cancelled') AS cancelled
  FROM taskq.jobs j
  WHERE j.queue_name = q.queue_name AND j.status <> 'pending'
) f;
COMMENT ON VIEW taskq.queue_stats IS
  'per queue: jobs per status (waiting: dependencies not all completed), jobs scheduled for later, age of the oldest due pending job, outbox rows not yet confirmed by RabbitMQ, pending jobs held back by a flow limit (held)';

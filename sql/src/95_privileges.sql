-- Privileges. Nothing is granted to PUBLIC. Two NOLOGIN roles carry the
-- grants; give them to your application's roles:
--   GRANT taskq_producer TO app;      -- enqueue, retry, cancel, wait, read jobs
--   GRANT taskq_worker TO worker;     -- start/heartbeat/complete/fail, callbacks
-- Queue administration and schedules stay with the extension owner (grant
-- EXECUTE on create_queue, schedule etc. explicitly if another role should
-- have it): a schedule makes jobs for as long as it exists.
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
  taskq.enqueue(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb, uuid[], text),
  taskq.enqueue_many(text, jsonb, text, timestamptz, interval, int, int, text, text, jsonb, uuid[], text),
  taskq.retry(uuid, interval),
  taskq.cancel(uuid),
  taskq.job(uuid),
  taskq.wait(uuid, interval)
TO taskq_producer;
GRANT EXECUTE ON FUNCTION taskq.enqueue_workflow(jsonb) TO taskq_producer;
GRANT SELECT ON taskq.jobs, taskq.queues, taskq.queue_stats, taskq.schedules, taskq.job_dependencies TO taskq_producer;
-- A job's callbacks and their delivery state (taskq-web's job page).
GRANT SELECT ON taskq.callbacks TO taskq_producer;
-- Monitoring: the publisher's state (no password in it).
GRANT EXECUTE ON FUNCTION taskq.publisher_status() TO taskq_producer, taskq_worker;
GRANT SELECT ON taskq.publisher TO taskq_producer, taskq_worker;

GRANT EXECUTE ON FUNCTION
  taskq.start(uuid, int, text, uuid),
  taskq.heartbeat(uuid, int),
  taskq.complete(uuid, int, jsonb, jsonb),
  taskq.fail(uuid, int, text, interval, boolean),
  taskq._give_back(uuid, int, text),
  taskq.job(uuid),
  taskq._start_batch(jsonb, text, uuid, boolean),
  taskq._heartbeat_batch(jsonb),
  taskq._complete_batch(jsonb),
  taskq._callbacks_claim(text, int, interval),
  taskq._callback_delivered(bigint, text, int),
  taskq._callback_failed(bigint, text, int, text, interval, boolean),
  taskq._callbacks_next_due()
TO taskq_worker;
GRANT SELECT ON taskq.jobs, taskq.queues, taskq.job_dependencies TO taskq_worker;

-- taskq: types, tables and indexes.
--
-- Hardening (for this file and every other one): the schema is created by
-- CREATE EXTENSION (relocatable = false), every object is schema-qualified,
-- and every function pins search_path to pg_catalog, pg_temp.

CREATE TYPE taskq.job_status AS ENUM ('waiting', 'pending', 'running', 'completed', 'failed', 'cancelled');
COMMENT ON TYPE taskq.job_status IS
  'life cycle of a job: [waiting ->] pending -> running -> completed | failed | cancelled; a retry puts it back to pending; waiting: dependencies not all completed';

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
  CONSTRAINT queues_type CHECK (queue_type IN ('classic', 'quorum')),
  -- Flow control (docs/sql-api.md#flow-control); NULL: no limit.
  rate_limit        integer,
  rate_period       interval NOT NULL DEFAULT '1 second',
  concurrency_limit integer,
  CONSTRAINT queues_rate_limit CHECK (rate_limit BETWEEN 1 AND 1000000),
  CONSTRAINT queues_rate_period CHECK (rate_period BETWEEN interval '1 millisecond' AND interval '1 day'),
  CONSTRAINT queues_concurrency_limit CHECK (concurrency_limit BETWEEN 1 AND 100000),
  -- Jobs per RabbitMQ message (docs/message-format.md#several-jobs-per-message);
  -- 1, the default: one message per job.
  jobs_per_message  integer NOT NULL DEFAULT 1,
  CONSTRAINT queues_jobs_per_message CHECK (jobs_per_message BETWEEN 1 AND 100)
);
COMMENT ON TABLE taskq.queues IS 'one row per taskq queue; each maps to the RabbitMQ queue "taskq.<queue_name>"';
-- "Has any queue a flow limit?", asked by every start: an index probe, so
-- that it stays cheap under enable_seqscan = off (a seq scan there is
-- costed so high that the query would be JIT-compiled: 400 ms).
CREATE INDEX queues_limited ON taskq.queues (queue_name) WHERE rate_limit IS NOT NULL OR concurrency_limit IS NOT NULL;

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
  attempt_budget   integer NOT NULL,
  -- What lets a worker call be repeated after its answer was lost
  -- (40_transitions): the request id of the start that began the running
  -- attempt, and the attempt whose failure fail or _give_back recorded
  -- (NULL again after retry and cancel).
  start_request_id uuid,
  failed_attempt   integer,
  -- Dependencies (35_dependencies): how many of the jobs this one depends on
  -- have not completed yet (NULL: it has no dependencies; 0: released), so
  -- that each completion decrements it instead of counting; and whether
  -- jobs may wait for this one, so that finishing a job nobody depends on
  -- looks at nothing more.
  dependencies_left integer,
  has_dependents   boolean NOT NULL DEFAULT false,
  -- Flow control: the key whose running jobs the queue's concurrency_limit
  -- counts, and where a pending job stands with the queue's limits (NULL
  -- for every job of a queue without limits): 'admitted' (published for its
  -- next attempt; holds a slot of its key), 'key_held' (waits for a slot),
  -- 'rate_held' (holds a slot if it needs one, waits for the rate). Only
  -- pending jobs have one; start, cancel and the end of an attempt clear it.
  concurrency_key  text,
  flow_state       text
) WITH (fillfactor = 90);  -- room for HOT updates (published_at, heartbeats)
COMMENT ON TABLE taskq.jobs IS 'every job and its state; the source of truth';

-- unique_key dedup: at most one unfinished job per (queue, key). Enqueue
-- relies on this index (ON CONFLICT), which makes it hold under concurrency.
-- Unfinished: waiting, pending or running, the statuses that sort before
-- 'completed' (a comparison: the 0.2.0 upgrade cannot name 'waiting').
CREATE UNIQUE INDEX jobs_unique_key ON taskq.jobs (queue_name, unique_key)
  WHERE unique_key IS NOT NULL AND status < 'completed';
-- rescue_expired scans only running jobs by lease end.
CREATE INDEX jobs_running_lease ON taskq.jobs (lease_expires_at) WHERE status = 'running';
-- purge_finished, the reconciler, and per-minute counts of finished jobs
-- (taskq-web's chart): status is included so those are index-only.
CREATE INDEX jobs_finished ON taskq.jobs (queue_name, finished_at) INCLUDE (status)
  WHERE status IN ('completed', 'failed', 'cancelled');
CREATE INDEX jobs_pending ON taskq.jobs (queue_name, run_at) WHERE status = 'pending';
-- A queue's jobs of one status, newest first (job lists), and the counts
-- per status of taskq.queue_stats, index-only. Pending jobs are left out
-- so that enqueue writes no entry here (jobs_pending has them); a job
-- enters it when it starts.
CREATE INDEX jobs_list ON taskq.jobs (queue_name, status, id) WHERE status <> 'pending';
-- Flow control. Jobs without a concurrency key and without a flow state
-- (every job of a queue without limits) are in none of these, and never
-- change their columns: their updates stay as HOT as before.
-- The slots of a key: its running jobs and the pending ones that hold one.
CREATE INDEX jobs_key_slots ON taskq.jobs (queue_name, concurrency_key)
  WHERE concurrency_key IS NOT NULL AND (status = 'running' OR (status = 'pending' AND flow_state IN ('admitted', 'rate_held')));
-- Who gets a slot that frees: higher priority first, then the oldest.
CREATE INDEX jobs_key_held ON taskq.jobs (queue_name, concurrency_key, priority DESC, id)
  WHERE status = 'pending' AND flow_state = 'key_held';
-- Who goes when the rate allows (the same order, over the whole queue), and
-- how many went and have not started yet (the pacing counts them).
CREATE INDEX jobs_rate_flow ON taskq.jobs (queue_name, flow_state, priority DESC, id)
  WHERE status = 'pending' AND flow_state IN ('admitted', 'rate_held');

-- Dependencies: one row per edge "job_id waits for depends_on_job_id",
-- written by enqueue in the transaction that creates job_id. The primary
-- key answers "what does this job wait for", the second index "what waits
-- for this job" (the completion's look-up). No foreign keys, as for jobs.
CREATE TABLE taskq.job_dependencies (
  job_id            uuid NOT NULL,
  depends_on_job_id uuid NOT NULL,
  -- The dependency completed (before job_id was enqueued, or since):
  -- counted once, even if it is retried and completes again later.
  satisfied         boolean NOT NULL DEFAULT false,
  -- The dependency's failure or cancel cancelled job_id through this edge:
  -- retrying the dependency brings job_id back (35_dependencies).
  cancelled_job     boolean NOT NULL DEFAULT false,
  PRIMARY KEY (job_id, depends_on_job_id)
);
CREATE INDEX job_dependencies_dependents ON taskq.job_dependencies (depends_on_job_id, job_id);
COMMENT ON TABLE taskq.job_dependencies IS
  'dependency edges: job_id is not published before depends_on_job_id completed; satisfied once it did';

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
  delivered_at     timestamptz,
  -- The job's trace context (its traceparent and tracestate headers), sent
  -- as the POST's headers of the same names.
  traceparent      text,
  tracestate       text
);
ALTER SEQUENCE taskq.callbacks_id_seq OWNED BY taskq.callbacks.id;
CREATE INDEX callbacks_due ON taskq.callbacks (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX callbacks_job ON taskq.callbacks (job_id);
COMMENT ON TABLE taskq.callbacks IS
  '"tell this URL" rows, written in the transaction that finished the job; delivered by taskq-worker';

CREATE TABLE taskq.schedules (
  schedule_name text PRIMARY KEY,
  cron          text NOT NULL,
  timezone      text NOT NULL,
  -- No foreign key, as for jobs: drop_queue refuses while schedules target
  -- the queue, or drops them with force.
  queue_name    text NOT NULL,
  task          text,
  payload       jsonb NOT NULL,
  enabled       boolean NOT NULL,
  -- The next tick to fire; NULL only if the expression has none in range.
  -- Not advanced while disabled: enabling recomputes it from now.
  next_run_at   timestamptz,
  last_run_at   timestamptz,  -- the tick of the last job fired
  last_job_id   uuid,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  priority      integer NOT NULL,
  max_attempts  integer,
  headers       jsonb,
  callback_url  text,
  catch_up      boolean NOT NULL,
  -- @every ticks are anchor_at + k * interval: set (to a whole second) when
  -- the expression or time zone is set, so ticks never drift.
  anchor_at     timestamptz NOT NULL,
  CONSTRAINT schedules_name_format CHECK (schedule_name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$'),
  CONSTRAINT schedules_priority CHECK (priority BETWEEN 0 AND 9)
);
-- What the publisher asks each time a tick may be due: min(next_run_at) and
-- the due rows, from enabled schedules only.
CREATE INDEX schedules_due ON taskq.schedules (next_run_at) WHERE enabled;
COMMENT ON TABLE taskq.schedules IS
  'periodic jobs: one row per schedule; the publisher enqueues a job into queue_name at each tick of cron in timezone';

-- Rate limits: side 'start' holds the starts of a rate-limited queue in
-- the last rate_period (the limit itself), as (time, count) entries in time
-- order; entries closer together than rate_period / 128 are merged into
-- the later one, so a row holds at most about 130 entries. Side 'publish'
-- holds the pacing's next slot (next_at). One row per side, so that starts
-- (workers) and pacing (the publisher) never wait for each other's row
-- lock. Made when first needed; not dumped (recent history, rebuilt as
-- jobs start).
CREATE TABLE taskq.rate_windows (
  queue_name text NOT NULL,
  side       text NOT NULL CHECK (side IN ('start', 'publish')),
  times      timestamptz[] NOT NULL DEFAULT '{}',
  counts     integer[] NOT NULL DEFAULT '{}',
  next_at    timestamptz,
  PRIMARY KEY (queue_name, side)
);
COMMENT ON TABLE taskq.rate_windows IS
  'internal: recent starts and publishes of rate-limited queues (flow control)';

-- pg_dump keeps the contents of these tables (they are application data).
SELECT pg_catalog.pg_extension_config_dump('taskq.queues', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.callbacks', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.schedules', '');
SELECT pg_catalog.pg_extension_config_dump('taskq.job_dependencies', '');
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

CREATE FUNCTION taskq._flow_changed_at_commit() RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskq_flow_changed_at_commit';
COMMENT ON FUNCTION taskq._flow_changed_at_commit() IS
  'asks the publisher to run taskq._flow_step() when the current transaction commits';

CREATE FUNCTION taskq._schedules_changed_at_commit() RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskq_schedules_changed_at_commit';
COMMENT ON FUNCTION taskq._schedules_changed_at_commit() IS
  'asks the publisher to look at taskq.schedules again when the current transaction commits';

-- IMMUTABLE like PostgreSQL's own time zone conversions: the zone rules are
-- read once per process.
CREATE FUNCTION taskq._cron_next(cron text, timezone text, after timestamptz, anchor timestamptz) RETURNS timestamptz
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskq_cron_next';
COMMENT ON FUNCTION taskq._cron_next(text, text, timestamptz, timestamptz) IS
  'the first tick of the schedule expression cron in timezone strictly after after (@every: anchor + k * interval); NULL if out of range; 22023 for a bad expression or zone';

CREATE FUNCTION taskq._cron_ticks(cron text, timezone text, from_time timestamptz, until_time timestamptz,
                                  anchor timestamptz, max_ticks int) RETURNS timestamptz[]
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskq_cron_ticks';
COMMENT ON FUNCTION taskq._cron_ticks(text, text, timestamptz, timestamptz, timestamptz, int) IS
  'the latest max_ticks ticks t of cron in timezone with from_time <= t <= until_time, ascending';

-- W3C Trace Context checks of the core (core/trace_context.hpp), shared with
-- taskq-worker.
CREATE FUNCTION taskq._traceparent_problem(value text) RETURNS text
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskq_traceparent_problem';
COMMENT ON FUNCTION taskq._traceparent_problem(text) IS
  'why value is not a valid W3C traceparent, or NULL when it is one';

CREATE FUNCTION taskq._tracestate_problem(value text) RETURNS text
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskq_tracestate_problem';
COMMENT ON FUNCTION taskq._tracestate_problem(text) IS
  'why value is not a valid W3C tracestate, or NULL when it is one';

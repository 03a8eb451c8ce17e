-- Flow control: a queue's rate_limit (starts per rate_period) and
-- concurrency_limit (running jobs per concurrency_key), held exactly across
-- every worker and host because every start goes through here
-- (docs/sql-api.md#flow-control has the user's side).
--
-- Where each limit is enforced:
-- - At start (taskq.start, taskq._start_batch -> _start_limited): the
--   guarantee. A start the limits do not allow changes nothing but the
--   job's flow_state: the job stays pending with its attempt unspent, the
--   caller sees a stale start (zero rows: ack and drop the delivery), and
--   the job waits, parked, until its turn. So duplicate deliveries and
--   consumers that call taskq.start themselves cannot exceed a limit.
-- - Before publishing (the claim and taskq._flow_step): so that held jobs do
--   not bounce between RabbitMQ and the workers. The claim sets the outbox
--   rows of limited jobs aside; the publisher's flow step, in a short
--   transaction of its own, admits what the limits allow now and parks the
--   rest (flow_state key_held or rate_held, outbox row deleted). A parked
--   job has no message anywhere: nothing spins while it waits.
-- - Releasing: a job whose slot frees goes out from the transaction that
--   frees it (complete, fail, cancel, lease rescue: _release_slots writes
--   its outbox row and wakes the publisher at commit); rate-held jobs go out
--   at the paced rate from the flow step, which the publisher runs when it
--   is due (the time _flow_step returned) or when a commit asks for it
--   (_flow_changed_at_commit).
--
-- States of a pending job of a limited queue (jobs.flow_state):
--   NULL       not seen by the gate yet (it has an outbox row)
--   admitted   published for its next attempt; holds a slot of its key
--   key_held   parked until a slot of its key frees
--   rate_held  parked until the rate allows it; holds a slot if it needs one
-- The slots of a key are its running jobs plus its pending admitted and
-- rate_held ones (index jobs_key_slots); a start counts the running ones.
--
-- Locks: job rows first (by id), then taskq.rate_windows rows (by queue),
-- then the keys' advisory locks (by lock id), in every transaction that
-- takes more than one; a transaction that ends a job holds the job's row
-- when it takes the key. Job rows locked after a key are taken with SKIP
-- LOCKED. So no two of them wait for each other in a circle.

-- The advisory lock of a key: pg_advisory_xact_lock(int, int) with the
-- class 1952543595 ('task' in ASCII). Applications that use two-int
-- advisory locks should keep clear of that class.
CREATE FUNCTION taskq._key_lock_id(queue_name text, concurrency_key text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN hashtext(queue_name || E'\n' || concurrency_key);

CREATE FUNCTION taskq._lock_key(queue_name text, concurrency_key text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
RETURN pg_advisory_xact_lock(1952543595, taskq._key_lock_id(queue_name, concurrency_key));

-- Slots of a key in use: running jobs and pending ones holding a slot.
CREATE FUNCTION taskq._key_slots_taken(queue_name text, concurrency_key text) RETURNS int
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN (SELECT count(*)::int FROM taskq.jobs j
        WHERE j.queue_name = _key_slots_taken.queue_name AND j.concurrency_key = _key_slots_taken.concurrency_key
          AND j.concurrency_key IS NOT NULL
          AND (j.status = 'running' OR (j.status = 'pending' AND j.flow_state IN ('admitted', 'rate_held'))));

-- The rate limit: a sliding window over the last rate_period of the
-- queue's starts, as (time, count) entries in its taskq.rate_windows row of
-- side 'start' (locked here until commit). Grants up to `wanted` starts of
-- what the window has room for now and records the grant; returns how many
-- it granted and the earliest time more could be granted. An entry counts
-- while its time is within rate_period of now, so in any window of length
-- rate_period at most rate_limit are granted. Exact while grants are at
-- least rate_period / 128 apart; closer ones are merged into the later
-- entry, which keeps the older ones counted slightly longer than needed
-- (never shorter): at most about 1% of the rate is lost that way. Time is
-- clock_timestamp() taken under the row lock and never goes back, so grants
-- are recorded in the order they were made. dry_run only reports.
CREATE FUNCTION taskq._rate_take(queue_name text, rate_limit int, rate_period interval, wanted int,
                                 dry_run boolean DEFAULT false, OUT granted int, OUT next_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  w taskq.rate_windows;
  t timestamptz;
  n int;
  first int := 1;
  used int;
BEGIN
  SELECT * INTO w FROM taskq.rate_windows r
  WHERE r.queue_name = _rate_take.queue_name AND r.side = 'start' FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO taskq.rate_windows (queue_name, side) VALUES (_rate_take.queue_name, 'start') ON CONFLICT DO NOTHING;
    SELECT * INTO w FROM taskq.rate_windows r
    WHERE r.queue_name = _rate_take.queue_name AND r.side = 'start' FOR UPDATE;
  END IF;
  n := coalesce(array_length(w.times, 1), 0);
  t := clock_timestamp();
  IF n > 0 AND w.times[n] > t THEN
    t := w.times[n];  -- the clock stepped back: stay in order
  END IF;
  WHILE first <= n AND w.times[first] < t - rate_period LOOP
    first := first + 1;
  END LOOP;
  IF first > 1 THEN
    w.times := w.times[first:n];
    w.counts := w.counts[first:n];
    n := n - first + 1;
  END IF;
  used := coalesce((SELECT sum(c)::int FROM unnest(w.counts) c), 0);
  granted := greatest(least(wanted, rate_limit - used), 0);
  IF used + granted < rate_limit OR n = 0 THEN
    next_at := t;
  ELSE
    next_at := w.times[1] + rate_period + interval '1 microsecond';  -- full until its oldest entry leaves
  END IF;
  IF dry_run THEN
    RETURN;
  END IF;
  IF granted > 0 THEN
    IF n > 0 AND w.times[n] > t - rate_period / 128 THEN
      w.times[n] := t;
      w.counts[n] := w.counts[n] + granted;
    ELSE
      w.times := w.times || t;
      w.counts := w.counts || granted;
    END IF;
  END IF;
  UPDATE taskq.rate_windows r SET times = w.times, counts = w.counts
  WHERE r.queue_name = _rate_take.queue_name AND r.side = 'start';
END;
$$;

-- The pacing before publishing (the flow step): how many rate_held jobs of
-- the queue may be published now, of `wanted`. Room: what the start window
-- (read, not locked: workers keep starting meanwhile) has left once the
-- jobs published and not started yet (`in_flight`) have started, so that
-- published jobs never find the window full when they arrive (a held start
-- would be a bounce). Spread: one every rate_period / rate_limit; slots
-- missed because the publisher woke late go at once, up to a burst (500 ms
-- worth, or 5% of the limit if more); and no more in flight than a burst,
-- so that jobs no worker takes yet (none runs, all are busy) do not pile up
-- in RabbitMQ to start all at once later. The next slot is kept in the
-- 'publish' row (locked here). Returns the grant and when more could go.
-- dry_run only reports.
CREATE FUNCTION taskq._rate_pace(queue_name text, rate_limit int, rate_period interval, in_flight int, wanted int,
                                 dry_run boolean DEFAULT false, OUT granted int, OUT next_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  pacing timestamptz;
  times timestamptz[];
  counts int[];
  now_t timestamptz := clock_timestamp();
  used int;
  pace interval := rate_period / rate_limit;
  -- Catching up after the publisher ran late (a busy machine), and jobs in
  -- flight: up to half a second's worth of slots or 5% of the limit,
  -- whichever is more (a smaller allowance lost a tenth of the rate on a
  -- machine loaded 15 times over its cores); the start window keeps every
  -- window's starts to the limit whatever the pacing does.
  burst int := least(rate_limit, greatest(1, ceil(rate_limit * 0.05),
                                          ceil(extract(epoch FROM interval '500 milliseconds')
                                               / greatest(extract(epoch FROM pace), 1e-6))))::int;
  credit int;
  window_next timestamptz;
BEGIN
  SELECT r.next_at INTO pacing FROM taskq.rate_windows r
  WHERE r.queue_name = _rate_pace.queue_name AND r.side = 'publish' FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO taskq.rate_windows (queue_name, side) VALUES (_rate_pace.queue_name, 'publish') ON CONFLICT DO NOTHING;
    PERFORM 1 FROM taskq.rate_windows r WHERE r.queue_name = _rate_pace.queue_name AND r.side = 'publish' FOR UPDATE;
  END IF;
  SELECT r.times, r.counts INTO times, counts FROM taskq.rate_windows r
  WHERE r.queue_name = _rate_pace.queue_name AND r.side = 'start';
  SELECT coalesce(sum(e.c), 0)::int, min(e.t) + rate_period + interval '1 microsecond' INTO used, window_next
  FROM unnest(times, counts) AS e(t, c) WHERE e.t >= now_t - rate_period;
  -- Late by less than the burst: the missed slots may go now. Idle for
  -- longer: start afresh, one now (a full burst after every pause would
  -- come back as a burst of starts leaving the window a period later, and
  -- again, each time a little of the rate lost).
  IF pacing IS NULL OR pacing < now_t - pace * burst THEN
    pacing := now_t;
  END IF;
  IF pacing > now_t THEN
    credit := 0;
  ELSIF pace = interval '0' THEN
    credit := burst;
  ELSE
    credit := least(burst, floor(extract(epoch FROM now_t - pacing) / extract(epoch FROM pace))::int + 1);
  END IF;
  -- And no more in flight than a burst: published jobs that no worker takes
  -- (none runs yet, all are busy) would otherwise pile up in RabbitMQ and
  -- start at once when one does.
  granted := greatest(least(wanted, credit, rate_limit - used - in_flight, burst - in_flight), 0);
  pacing := pacing + pace * granted;
  IF in_flight + granted >= burst THEN
    next_at := greatest(pacing, now_t + pace);  -- when some have started (the next call sees it)
  ELSIF used + in_flight + granted < rate_limit THEN
    next_at := greatest(pacing, now_t);
  ELSE
    -- Room comes back when the oldest start leaves the window (or when a
    -- published job does not start after all: the next call sees that).
    next_at := greatest(pacing, coalesce(window_next, now_t + pace));
  END IF;
  IF NOT dry_run THEN
    UPDATE taskq.rate_windows r SET next_at = pacing WHERE r.queue_name = _rate_pace.queue_name AND r.side = 'publish';
  END IF;
END;
$$;

-- Fills the free slots of a key with its held jobs, higher priority first,
-- then the oldest; called by every transaction that frees a slot (and by
-- the flow step and alter_queue). An admitted job gets its outbox row now
-- (the publisher is woken at commit); in a rate-limited queue it becomes
-- rate_held instead, keeping the slot, and the flow step paces it out.
-- Under the key's lock, so a start being refused for this key right now is
-- seen once it commits. Held jobs locked by someone else (a cancel) are
-- skipped: that transaction frees its own slot or ends the job.
CREATE FUNCTION taskq._release_slots(queue_name text, concurrency_key text) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  q_limit int;
  q_rate int;
  free int;
  released int := 0;
  j record;
BEGIN
  SELECT q.concurrency_limit, q.rate_limit INTO q_limit, q_rate
  FROM taskq.queues q WHERE q.queue_name = _release_slots.queue_name;
  IF q_limit IS NULL OR concurrency_key IS NULL THEN
    RETURN 0;
  END IF;
  PERFORM taskq._lock_key(queue_name, concurrency_key);
  free := q_limit - taskq._key_slots_taken(queue_name, concurrency_key);
  IF free <= 0 THEN
    RETURN 0;
  END IF;
  FOR j IN
    SELECT h.id, h.attempts FROM taskq.jobs h
    WHERE h.queue_name = _release_slots.queue_name AND h.concurrency_key = _release_slots.concurrency_key
      AND h.status = 'pending' AND h.flow_state = 'key_held'
    ORDER BY h.priority DESC, h.id
    LIMIT free
    FOR UPDATE SKIP LOCKED
  LOOP
    IF q_rate IS NULL THEN
      UPDATE taskq.jobs SET flow_state = 'admitted', updated_at = now() WHERE id = j.id;
      INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
      VALUES (j.id, _release_slots.queue_name, j.attempts + 1, now());
    ELSE
      UPDATE taskq.jobs SET flow_state = 'rate_held', updated_at = now() WHERE id = j.id;
    END IF;
    released := released + 1;
  END LOOP;
  IF released > 0 THEN
    IF q_rate IS NULL THEN
      PERFORM taskq._wake_publisher_at_commit();
    ELSE
      PERFORM taskq._flow_changed_at_commit();
    END IF;
  END IF;
  RETURN released;
END;
$$;

-- _release_slots for each (queue, key) pair, in lock order (a batch that
-- completed jobs of several keys, a lease rescue).
CREATE FUNCTION taskq._release_slots_of(queue_names text[], concurrency_keys text[]) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  k record;
  released int := 0;
BEGIN
  FOR k IN
    SELECT DISTINCT f.queue_name, f.concurrency_key, taskq._key_lock_id(f.queue_name, f.concurrency_key) AS lock_id
    FROM unnest(queue_names, concurrency_keys) AS f(queue_name, concurrency_key)
    WHERE f.concurrency_key IS NOT NULL
    ORDER BY lock_id
  LOOP
    released := released + taskq._release_slots(k.queue_name, k.concurrency_key);
  END LOOP;
  RETURN released;
END;
$$;

-- The keys of a queue that have held jobs (a skip scan of jobs_key_held:
-- one probe per key, not one row per held job).
CREATE FUNCTION taskq._held_keys(queue_name text) RETURNS SETOF text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  WITH RECURSIVE k(concurrency_key) AS (
    (SELECT j.concurrency_key FROM taskq.jobs j
     WHERE j.queue_name = _held_keys.queue_name AND j.status = 'pending' AND j.flow_state = 'key_held'
     ORDER BY j.concurrency_key LIMIT 1)
    UNION ALL
    SELECT (SELECT j.concurrency_key FROM taskq.jobs j
            WHERE j.queue_name = _held_keys.queue_name AND j.status = 'pending' AND j.flow_state = 'key_held'
              AND j.concurrency_key > k.concurrency_key
            ORDER BY j.concurrency_key LIMIT 1)
    FROM k WHERE k.concurrency_key IS NOT NULL
  )
  SELECT k.concurrency_key FROM k WHERE k.concurrency_key IS NOT NULL;
END;

-- Called by taskq.start and _start_batch (only when some queue has a
-- limit) with the jobs they are about to start: returns those a limit
-- applies to, after taking the locks their starts need, in the order of the
-- header: every job row of the call, the rate windows, the keys.
CREATE FUNCTION taskq._lock_for_limited_start(job_ids uuid[]) RETURNS uuid[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  limited uuid[];
  rated text[];
  k record;
BEGIN
  SELECT array_agg(j.id),
         array_agg(DISTINCT j.queue_name) FILTER (WHERE q.rate_limit IS NOT NULL)
  INTO limited, rated
  FROM taskq.jobs j JOIN taskq.queues q ON q.queue_name = j.queue_name
  WHERE j.id = ANY (job_ids)
    AND (q.rate_limit IS NOT NULL OR (q.concurrency_limit IS NOT NULL AND j.concurrency_key IS NOT NULL));
  IF limited IS NULL THEN
    RETURN '{}';
  END IF;
  -- A start counts the running jobs of a key, which this transaction's
  -- snapshot must show as they are after the key's lock is granted.
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'jobs of queues with flow limits start only in READ COMMITTED transactions'
      USING ERRCODE = 'feature_not_supported',
            HINT = 'call taskq.start outside an explicit REPEATABLE READ or SERIALIZABLE transaction';
  END IF;
  PERFORM 1 FROM taskq.jobs j WHERE j.id = ANY (job_ids) ORDER BY j.id FOR UPDATE;
  IF rated IS NOT NULL THEN
    PERFORM 1 FROM taskq.rate_windows r WHERE r.queue_name = ANY (rated) AND r.side = 'start'
    ORDER BY r.queue_name FOR UPDATE;
  END IF;
  FOR k IN
    SELECT DISTINCT j.queue_name, j.concurrency_key, taskq._key_lock_id(j.queue_name, j.concurrency_key) AS lock_id
    FROM taskq.jobs j JOIN taskq.queues q ON q.queue_name = j.queue_name
    WHERE j.id = ANY (limited) AND j.concurrency_key IS NOT NULL AND q.concurrency_limit IS NOT NULL
    ORDER BY lock_id
  LOOP
    PERFORM taskq._lock_key(k.queue_name, k.concurrency_key);
  END LOOP;
  RETURN limited;
END;
$$;

-- taskq.start for one job of a limited queue, its locks taken by
-- _lock_for_limited_start. The concurrency limit counts running jobs only:
-- the slot an admitted job holds is for this start. When a limit refuses
-- the start, the job stays pending (nothing spent) and is parked: key_held
-- waits for a slot of its key (one is running, so its end releases this
-- one), rate_held for the rate (the flow step paces it out). Returns the
-- started row (NULL when not started), whether a limit held it back, and
-- the queue's lease.
CREATE FUNCTION taskq._start_limited(job_id uuid, attempt int, worker text, request_id uuid,
                                     OUT started taskq.jobs, OUT held boolean, OUT lease interval)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  j taskq.jobs;
  q taskq.queues;
  parked text;
BEGIN
  held := false;
  SELECT * INTO j FROM taskq.jobs WHERE id = _start_limited.job_id;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  SELECT * INTO q FROM taskq.queues WHERE queue_name = j.queue_name;
  lease := q.lease;
  -- Only a start that would begin an attempt is limited; a stale one stays
  -- stale and a repeat gets its answer again (the UPDATE below decides).
  IF j.status = 'pending' AND j.attempts + 1 = attempt AND j.run_at <= now() THEN
    IF q.concurrency_limit IS NOT NULL AND j.concurrency_key IS NOT NULL
       AND (SELECT count(*) FROM taskq.jobs r
            WHERE r.queue_name = j.queue_name AND r.concurrency_key = j.concurrency_key
              AND r.status = 'running') >= q.concurrency_limit THEN
      parked := 'key_held';
    ELSIF q.rate_limit IS NOT NULL
          AND (taskq._rate_take(j.queue_name, q.rate_limit, q.rate_period, 1)).granted = 0 THEN
      parked := 'rate_held';
    END IF;
    IF parked IS NOT NULL THEN
      UPDATE taskq.jobs SET flow_state = parked, updated_at = now() WHERE id = j.id;
      PERFORM taskq._flow_changed_at_commit();
      held := true;
      RETURN;
    END IF;
  END IF;
  UPDATE taskq.jobs r
  SET status = 'running', attempts = _start_limited.attempt, worker = _start_limited.worker,
      started_at = CASE WHEN r.status = 'running' THEN r.started_at ELSE now() END,
      lease_expires_at = CASE WHEN r.cancel_requested THEN r.lease_expires_at ELSE now() + q.lease END,
      updated_at = now(), start_request_id = _start_limited.request_id, flow_state = NULL
  WHERE r.id = j.id
    AND CASE WHEN r.status = 'pending' AND r.attempts + 1 = _start_limited.attempt AND r.run_at <= now() THEN true
             WHEN r.status = 'running' AND r.attempts = _start_limited.attempt
                  AND r.start_request_id = _start_limited.request_id AND r.worker = _start_limited.worker THEN true END
  RETURNING r.* INTO started;
END;
$$;

-- The gate before publishing, run by the publisher in a transaction of its
-- own (never in a publishing pass, whose locks last until the broker's
-- confirms: workers starting an admitted job would wait for them). It
-- 1. takes the outbox rows the claim set aside for limits and admits or
--    parks their jobs, key by key: while a key has no held job and free
--    slots, its jobs are admitted in priority order (their rows go back to
--    the claim); the rest are parked and the key's free slots filled from
--    its held jobs in priority order;
-- 2. paces out rate_held jobs of each rate-limited queue;
-- 3. rescues expired leases that occupy slots of keys with held jobs, so a
--    dead worker's slot comes back when its lease expires rather than at
--    the next maintenance;
-- 4. with sweep (maintenance), fills free slots of every key with held
--    jobs: a safety net behind the releases above.
-- Keys are locked in lock order within each of 1, 3 and 4, and a call does
-- only one of them (the next call, at once, does the rest), so that it
-- never takes a key after a higher one; and at most 500 keys, so that the
-- advisory locks it holds until commit stay well inside PostgreSQL's lock
-- table. Returns when it should run again (NULL: only when asked) and
-- whether the sweep has more to do (the publisher then sweeps again).
CREATE FUNCTION taskq._flow_gate(sweep boolean, OUT next_at timestamptz, OUT sweep_again boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  limited text[] := ARRAY(SELECT q.queue_name FROM taskq.queues q
                          WHERE (q.rate_limit IS NOT NULL OR q.concurrency_limit IS NOT NULL) AND NOT q.paused
                          ORDER BY q.queue_name);
  next_run timestamptz;
  aside_ids bigint[];
  aside jsonb;
  keys_locked int := 0;
  free int;
  taken int;
  fk record;
  fj record;
  fq record;
  fr record;
  in_flight int;
  lease_due timestamptz;
BEGIN
  sweep_again := false;
  IF cardinality(limited) = 0 THEN
    RETURN;
  END IF;

  -- 1. Rows set aside by the claim.
  aside_ids := ARRAY(SELECT o.id FROM taskq.outbox o
                     WHERE o.held AND o.queue_name = ANY (limited)
                     ORDER BY o.id LIMIT 5000 FOR UPDATE SKIP LOCKED);
  IF cardinality(aside_ids) > 0 THEN
    IF cardinality(aside_ids) = 5000 THEN
      next_run := now();  -- more to do: go again at once
    END IF;
    -- Each row's job, locked without waiting: one locked elsewhere (a start
    -- of a duplicate delivery) keeps its row aside for the next call.
    SELECT jsonb_agg(jsonb_build_object(
             'o', o.id, 'j', o.job_id, 'q', j.queue_name, 'k', j.concurrency_key, 'p', j.priority,
             'v', CASE WHEN j.id IS NULL OR j.status <> 'pending' OR j.attempts + 1 <> o.attempt THEN 'dead'
                       WHEN j.flow_state = 'admitted' THEN 'publish'
                       WHEN j.flow_state IN ('key_held', 'rate_held') THEN 'parked'
                       WHEN qq.concurrency_limit IS NOT NULL AND j.concurrency_key IS NOT NULL THEN 'key'
                       WHEN qq.rate_limit IS NOT NULL THEN 'rate'
                       ELSE 'publish' END))
    INTO aside
    FROM taskq.outbox o
    LEFT JOIN LATERAL (SELECT l.* FROM taskq.jobs l WHERE l.id = o.job_id FOR UPDATE SKIP LOCKED) j ON true
    LEFT JOIN taskq.queues qq ON qq.queue_name = j.queue_name
    WHERE o.id = ANY (aside_ids)
      AND (j.id IS NOT NULL OR NOT EXISTS (SELECT 1 FROM taskq.jobs x WHERE x.id = o.job_id));
    IF coalesce(jsonb_array_length(aside), 0) < cardinality(aside_ids) THEN
      next_run := least(coalesce(next_run, 'infinity'), now() + interval '50 milliseconds');
    END IF;
    DELETE FROM taskq.outbox o
    WHERE o.id = ANY (ARRAY(SELECT f.o FROM jsonb_to_recordset(aside) AS f(o bigint, v text)
                            WHERE f.v IN ('dead', 'parked')));
    -- Not limited after all (a limit removed meanwhile, or admitted
    -- already): they go out as they are.
    UPDATE taskq.outbox o SET held = false
    WHERE o.id = ANY (ARRAY(SELECT f.o FROM jsonb_to_recordset(aside) AS f(o bigint, v text) WHERE f.v = 'publish'));
    IF FOUND THEN
      PERFORM taskq._wake_publisher_at_commit();
    END IF;
    -- Limited by the rate only: parked, and paced out in 2.
    WITH rated AS (
      UPDATE taskq.jobs SET flow_state = 'rate_held', updated_at = now()
      WHERE id = ANY (ARRAY(SELECT f.j FROM jsonb_to_recordset(aside) AS f(j uuid, v text) WHERE f.v = 'rate'))
      RETURNING id
    )
    DELETE FROM taskq.outbox o
    WHERE o.id = ANY (ARRAY(SELECT f.o FROM jsonb_to_recordset(aside) AS f(o bigint, v text) WHERE f.v = 'rate'));
    -- Limited by their key: key by key, in lock order.
    FOR fk IN
      SELECT f.q AS queue_name, f.k AS concurrency_key, min(qq.concurrency_limit) AS concurrency_limit,
             min(qq.rate_limit) AS rate_limit
      FROM jsonb_to_recordset(aside) AS f(q text, k text, v text)
      JOIN taskq.queues qq ON qq.queue_name = f.q
      WHERE f.v = 'key'
      GROUP BY f.q, f.k
      ORDER BY taskq._key_lock_id(f.q, f.k)
    LOOP
      IF keys_locked = 500 THEN
        EXIT;  -- the rows of the other keys stay aside for the next call
      END IF;
      keys_locked := keys_locked + 1;
      PERFORM taskq._lock_key(fk.queue_name, fk.concurrency_key);
      free := fk.concurrency_limit - taskq._key_slots_taken(fk.queue_name, fk.concurrency_key);
      IF EXISTS (SELECT 1 FROM taskq.jobs h
                 WHERE h.queue_name = fk.queue_name AND h.concurrency_key = fk.concurrency_key
                   AND h.status = 'pending' AND h.flow_state = 'key_held') THEN
        free := 0;  -- they go first: these queue up behind them
      END IF;
      FOR fj IN
        SELECT f.o, f.j, row_number() OVER (ORDER BY f.p DESC, f.j) AS n
        FROM jsonb_to_recordset(aside) AS f(o bigint, j uuid, q text, k text, p int, v text)
        WHERE f.v = 'key' AND f.q = fk.queue_name AND f.k = fk.concurrency_key
        ORDER BY n
      LOOP
        IF fj.n <= free AND fk.rate_limit IS NULL THEN
          UPDATE taskq.jobs SET flow_state = 'admitted', updated_at = now() WHERE id = fj.j;
          UPDATE taskq.outbox SET held = false WHERE id = fj.o;
          PERFORM taskq._wake_publisher_at_commit();
        ELSE
          -- Within the free slots of a rate-limited queue: the slot is
          -- taken, the rate decides when it goes.
          UPDATE taskq.jobs SET flow_state = CASE WHEN fj.n <= free THEN 'rate_held' ELSE 'key_held' END,
                                updated_at = now()
          WHERE id = fj.j;
          DELETE FROM taskq.outbox WHERE id = fj.o;
        END IF;
      END LOOP;
      PERFORM taskq._release_slots(fk.queue_name, fk.concurrency_key);
    END LOOP;
  END IF;

  IF keys_locked > 0 THEN
    next_run := now();  -- 3 and 4 in the next call
    sweep_again := sweep;
  ELSIF sweep THEN
    -- 4. The safety net: every key with held jobs and a free slot gets it.
    -- Only keys that look free (counted without their lock) are locked and
    -- counted again: normally none, since the slots of a key with held jobs
    -- are all taken.
    FOR fk IN
      SELECT s.queue_name, s.concurrency_key
      FROM (SELECT qq.queue_name, hk.concurrency_key, qq.concurrency_limit
            FROM taskq.queues qq, LATERAL taskq._held_keys(qq.queue_name) hk(concurrency_key)
            WHERE qq.queue_name = ANY (limited) AND qq.concurrency_limit IS NOT NULL) s
      WHERE taskq._key_slots_taken(s.queue_name, s.concurrency_key) < s.concurrency_limit
      ORDER BY taskq._key_lock_id(s.queue_name, s.concurrency_key)
      LIMIT 501
    LOOP
      IF keys_locked = 500 THEN
        sweep_again := true;  -- more in the next call
        EXIT;
      END IF;
      keys_locked := keys_locked + 1;
      PERFORM taskq._release_slots(fk.queue_name, fk.concurrency_key);
    END LOOP;
    next_run := now();  -- 3 in the next call
  ELSE
    -- 3. Running jobs whose leases hold slots that held jobs wait for.
    lease_due := (SELECT min(x.lease_expires_at) FROM taskq.jobs x
                  WHERE x.status = 'running' AND x.concurrency_key IS NOT NULL
                    AND x.queue_name = ANY (ARRAY(
                          SELECT qq.queue_name FROM taskq.queues qq
                          WHERE qq.queue_name = ANY (limited) AND qq.concurrency_limit IS NOT NULL
                            AND EXISTS (SELECT 1 FROM taskq.jobs h WHERE h.queue_name = qq.queue_name
                                          AND h.status = 'pending' AND h.flow_state = 'key_held'))));
    IF lease_due < now() THEN
      PERFORM taskq.rescue_expired();  -- frees their slots, which releases held jobs
      next_run := now();
    ELSIF lease_due IS NOT NULL THEN
      next_run := least(coalesce(next_run, 'infinity'), lease_due + interval '1 millisecond');
    END IF;
  END IF;

  -- 2. Pacing: as many rate_held jobs as the rate allows now, highest
  -- priority first, then the oldest. No key locks: they hold their slots.
  FOR fq IN
    SELECT qq.queue_name, qq.rate_limit, qq.rate_period FROM taskq.queues qq
    WHERE qq.queue_name = ANY (limited) AND qq.rate_limit IS NOT NULL
      AND EXISTS (SELECT 1 FROM taskq.jobs h WHERE h.queue_name = qq.queue_name
                    AND h.status = 'pending' AND h.flow_state = 'rate_held')
    ORDER BY qq.queue_name
  LOOP
    in_flight := (SELECT count(*) FROM taskq.jobs a
                  WHERE a.queue_name = fq.queue_name AND a.status = 'pending' AND a.flow_state = 'admitted');
    fr := taskq._rate_pace(fq.queue_name, fq.rate_limit, fq.rate_period, in_flight, 1000000, dry_run => true);
    taken := 0;
    IF fr.granted > 0 THEN
      FOR fj IN
        SELECT h.id, h.attempts FROM taskq.jobs h
        WHERE h.queue_name = fq.queue_name AND h.status = 'pending' AND h.flow_state = 'rate_held'
        ORDER BY h.priority DESC, h.id
        LIMIT least(fr.granted, 10000)
        FOR UPDATE SKIP LOCKED
      LOOP
        UPDATE taskq.jobs SET flow_state = 'admitted', updated_at = now() WHERE id = fj.id;
        INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
        VALUES (fj.id, fq.queue_name, fj.attempts + 1, now());
        taken := taken + 1;
      END LOOP;
      IF taken > 0 THEN
        fr := taskq._rate_pace(fq.queue_name, fq.rate_limit, fq.rate_period, in_flight, taken);
        PERFORM taskq._wake_publisher_at_commit();
      END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM taskq.jobs h WHERE h.queue_name = fq.queue_name
                 AND h.status = 'pending' AND h.flow_state = 'rate_held') THEN
      next_run := least(coalesce(next_run, 'infinity'), fr.next_at);
    END IF;
  END LOOP;
  next_at := next_run;
END;
$$;

-- What the publisher calls: _flow_gate, whose failure (a bug, a deadlock
-- with a worker's transaction) must not stop the publishing of every other
-- queue: it is rolled back alone, logged, and tried again a second later.
CREATE FUNCTION taskq._flow_step(sweep boolean DEFAULT false, OUT next_at timestamptz, OUT sweep_again boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  SELECT g.next_at, g.sweep_again INTO next_at, sweep_again FROM taskq._flow_gate(sweep) g;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'taskq: the flow control step failed (trying again in a second): % (SQLSTATE %)', SQLERRM, SQLSTATE;
  next_at := now() + interval '1 second';
  sweep_again := sweep;
END;
$$;
COMMENT ON FUNCTION taskq._flow_step(boolean) IS
  'internal (publisher): admits or parks jobs set aside for flow limits, paces out rate-held jobs, rescues expired leases holding slots; returns when to run again and whether the sweep has more to do';

-- After alter_queue or remove_queue_limit changed a queue's limits: what
-- the new limits allow goes now. Held jobs of a limit that is gone are
-- released (all of them: the update of a big backlog takes its time);
-- with a higher concurrency_limit every key with held jobs fills its new
-- slots; a rate change reaches the publisher's pacing at commit.
CREATE FUNCTION taskq._flow_limits_changed(queue_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE
  q taskq.queues;
  k record;
BEGIN
  SELECT * INTO q FROM taskq.queues qq WHERE qq.queue_name = _flow_limits_changed.queue_name;
  IF q.rate_limit IS NULL THEN
    -- Rate-held jobs go out now (keeping a slot they hold).
    WITH released AS (
      UPDATE taskq.jobs j
      SET flow_state = CASE WHEN q.concurrency_limit IS NOT NULL AND j.concurrency_key IS NOT NULL THEN 'admitted' END,
          updated_at = now()
      WHERE j.id = ANY (ARRAY(SELECT h.id FROM taskq.jobs h
                              WHERE h.queue_name = q.queue_name AND h.status = 'pending' AND h.flow_state = 'rate_held'
                              ORDER BY h.id FOR UPDATE))
      RETURNING j.id, j.attempts
    )
    INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
    SELECT r.id, q.queue_name, r.attempts + 1, now() FROM released r;
    DELETE FROM taskq.rate_windows w WHERE w.queue_name = q.queue_name;
  ELSE
    INSERT INTO taskq.rate_windows (queue_name, side) VALUES (q.queue_name, 'start'), (q.queue_name, 'publish')
    ON CONFLICT DO NOTHING;
  END IF;
  IF q.concurrency_limit IS NULL THEN
    -- No slots any more: key-held jobs wait only for the rate, if any;
    -- admitted ones hold nothing.
    WITH released AS (
      UPDATE taskq.jobs j
      SET flow_state = CASE WHEN q.rate_limit IS NOT NULL AND j.flow_state = 'key_held' THEN 'rate_held'
                            WHEN j.flow_state = 'key_held' THEN NULL
                            ELSE j.flow_state END,
          updated_at = now()
      WHERE j.id = ANY (ARRAY(SELECT h.id FROM taskq.jobs h
                              WHERE h.queue_name = q.queue_name AND h.status = 'pending' AND h.flow_state = 'key_held'
                              ORDER BY h.id FOR UPDATE))
      RETURNING j.id, j.attempts, j.flow_state
    )
    INSERT INTO taskq.outbox (job_id, queue_name, attempt, due_at)
    SELECT r.id, q.queue_name, r.attempts + 1, now() FROM released r WHERE r.flow_state IS NULL;
    UPDATE taskq.jobs j SET flow_state = NULL
    WHERE j.queue_name = q.queue_name AND j.concurrency_key IS NOT NULL
      AND (j.status = 'running' OR (j.status = 'pending' AND j.flow_state IN ('admitted', 'rate_held')))
      AND j.flow_state = 'admitted';
  ELSE
    -- At most 1,000 keys here (each one's lock is held until commit);
    -- the maintenance sweep fills the new slots of any more.
    FOR k IN
      SELECT h.concurrency_key FROM taskq._held_keys(q.queue_name) h(concurrency_key)
      WHERE taskq._key_slots_taken(q.queue_name, h.concurrency_key) < q.concurrency_limit
      ORDER BY taskq._key_lock_id(q.queue_name, h.concurrency_key)
      LIMIT 1000
    LOOP
      PERFORM taskq._release_slots(q.queue_name, k.concurrency_key);
    END LOOP;
  END IF;
  IF q.rate_limit IS NULL AND q.concurrency_limit IS NULL AND NOT q.paused THEN
    -- Rows the claim set aside for limits that are gone.
    UPDATE taskq.outbox o SET held = false WHERE o.held AND o.queue_name = q.queue_name;
  END IF;
  PERFORM taskq._wake_publisher_at_commit();
  PERFORM taskq._flow_changed_at_commit();
END;
$$;

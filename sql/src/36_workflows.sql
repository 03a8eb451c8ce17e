-- Job specs and workflows. A job spec is a JSON object with "queue" and any
-- argument of taskq.enqueue by its name ({"queue": "emails", "payload":
-- {...}, "delay": "5 minutes"}): what taskq.complete's enqueue (follow-up
-- jobs) and taskq.enqueue_workflow (a graph of jobs) take. Both enqueue
-- through taskq.enqueue, so a spec means exactly what the same arguments
-- mean there.

-- Most job specs in one call.
CREATE FUNCTION taskq._max_job_specs() RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN 10000;

CREATE FUNCTION taskq._check_job_specs(specs jsonb, what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF jsonb_typeof(specs) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION '% must be a JSON array of job specs, not %', what, coalesce(jsonb_typeof(specs), 'null')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'each element is an object with "queue" and taskq.enqueue''s arguments by name, e.g. [{"queue": "emails", "payload": {"to": "a@b.c"}}]';
  END IF;
  IF jsonb_array_length(specs) > taskq._max_job_specs() THEN
    RAISE EXCEPTION '% has % elements; at most % per call', what, jsonb_array_length(specs), taskq._max_job_specs()
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END;
$$;

-- A string member of a spec; NULL when absent or JSON null.
CREATE FUNCTION taskq._spec_text(spec jsonb, key text, what text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF jsonb_typeof(spec -> key) IS NULL OR jsonb_typeof(spec -> key) = 'null' THEN
    RETURN NULL;
  END IF;
  IF jsonb_typeof(spec -> key) <> 'string' THEN
    RAISE EXCEPTION '%.% must be a string, not %', what, key, jsonb_typeof(spec -> key)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN spec ->> key;
END;
$$;

-- An integer member of a spec; NULL when absent or JSON null.
CREATE FUNCTION taskq._spec_int(spec jsonb, key text, what text) RETURNS int
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF jsonb_typeof(spec -> key) IS NULL OR jsonb_typeof(spec -> key) = 'null' THEN
    RETURN NULL;
  END IF;
  IF jsonb_typeof(spec -> key) <> 'number' OR (spec ->> key) !~ '^-?[0-9]{1,9}$' THEN
    RAISE EXCEPTION '%.% must be an integer, not %', what, key, left((spec -> key)::text, 40)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN (spec ->> key)::int;
END;
$$;

-- Enqueues one spec (what: where it is, for error messages). For a
-- workflow, depends_on is given here (the names resolved to ids) and the
-- spec may have a "name"; otherwise the spec's own depends_on is an array
-- of job ids.
CREATE FUNCTION taskq._enqueue_spec(spec jsonb, what text, workflow_depends_on uuid[] DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  unknown text;
  queue text;
  spec_run_at timestamptz;
  spec_delay interval;
  spec_depends_on uuid[];
BEGIN
  IF jsonb_typeof(spec) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION '% must be a JSON object, not %', what, coalesce(jsonb_typeof(spec), 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT k INTO unknown FROM jsonb_object_keys(spec) k
  WHERE k <> ALL (ARRAY['queue', 'payload', 'task', 'run_at', 'delay', 'priority', 'max_attempts', 'callback_url',
                        'unique_key', 'headers', 'depends_on', 'concurrency_key'])
    AND NOT (k = 'name' AND workflow_depends_on IS NOT NULL)
  ORDER BY k LIMIT 1;
  IF unknown IS NOT NULL THEN
    RAISE EXCEPTION '% has an unknown member "%"', what, left(unknown, 100)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'a job spec has "queue" and any of taskq.enqueue''s arguments by name: payload, task, run_at, delay, priority, max_attempts, callback_url, unique_key, headers, depends_on, concurrency_key';
  END IF;
  queue := taskq._spec_text(spec, 'queue', what);
  IF queue IS NULL THEN
    RAISE EXCEPTION '% has no queue', what USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM taskq.queues q WHERE q.queue_name = queue) THEN
    RAISE EXCEPTION '%: queue "%" does not exist', what, left(queue, 120)
      USING ERRCODE = 'undefined_object', HINT = 'create it with taskq.create_queue()';
  END IF;
  -- Casts only of what is there: a bad value is 22023 naming the spec.
  IF spec ? 'run_at' AND jsonb_typeof(spec -> 'run_at') <> 'null' THEN
    BEGIN
      spec_run_at := taskq._spec_text(spec, 'run_at', what)::timestamptz;
    EXCEPTION WHEN data_exception THEN
      RAISE EXCEPTION '%.run_at: %', what, SQLERRM USING ERRCODE = 'invalid_parameter_value';
    END;
  END IF;
  IF spec ? 'delay' AND jsonb_typeof(spec -> 'delay') <> 'null' THEN
    BEGIN
      spec_delay := taskq._spec_text(spec, 'delay', what)::interval;
    EXCEPTION WHEN data_exception THEN
      RAISE EXCEPTION '%.delay: %', what, SQLERRM USING ERRCODE = 'invalid_parameter_value';
    END;
  END IF;
  IF workflow_depends_on IS NOT NULL THEN
    spec_depends_on := workflow_depends_on;
  ELSIF spec ? 'depends_on' AND jsonb_typeof(spec -> 'depends_on') <> 'null' THEN
    IF jsonb_typeof(spec -> 'depends_on') <> 'array'
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(spec -> 'depends_on') d
                  WHERE jsonb_typeof(d) <> 'string'
                     OR d #>> '{}' !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$') THEN
      RAISE EXCEPTION '%.depends_on must be an array of job ids', what USING ERRCODE = 'invalid_parameter_value';
    END IF;
    spec_depends_on := ARRAY(SELECT (d #>> '{}')::uuid FROM jsonb_array_elements(spec -> 'depends_on') d);
  END IF;
  RETURN taskq.enqueue(
    queue_name => queue,
    payload => coalesce(spec -> 'payload', '{}'),
    task => taskq._spec_text(spec, 'task', what),
    run_at => spec_run_at,
    delay => spec_delay,
    priority => coalesce(taskq._spec_int(spec, 'priority', what), 0),
    max_attempts => taskq._spec_int(spec, 'max_attempts', what),
    callback_url => taskq._spec_text(spec, 'callback_url', what),
    unique_key => taskq._spec_text(spec, 'unique_key', what),
    headers => CASE WHEN jsonb_typeof(spec -> 'headers') = 'null' THEN NULL ELSE spec -> 'headers' END,
    depends_on => spec_depends_on,
    concurrency_key => taskq._spec_text(spec, 'concurrency_key', what));
END;
$$;
COMMENT ON FUNCTION taskq._enqueue_spec(jsonb, text, uuid[]) IS
  'internal: enqueues the job of one job spec ({"queue": ..., enqueue arguments by name}); returns its id';

-- The follow-up jobs of taskq.complete (and _complete_batch), in array order.
CREATE FUNCTION taskq._enqueue_specs(specs jsonb, what text) RETURNS uuid[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  ids uuid[] := '{}';
  i int;
BEGIN
  PERFORM taskq._check_job_specs(specs, what);
  FOR i IN 0 .. jsonb_array_length(specs) - 1 LOOP
    ids[i + 1] := taskq._enqueue_spec(specs -> i, format('%s[%s]', what, i));
  END LOOP;
  RETURN ids;
END;
$$;
COMMENT ON FUNCTION taskq._enqueue_specs(jsonb, text) IS
  'internal (complete): enqueues the jobs of a JSON array of job specs; returns their ids in array order';

-- A graph in one call: each element a job spec with a "name" and
-- "depends_on" as names of other elements. Checked whole before anything is
-- enqueued; then the jobs are enqueued dependencies first (a topological
-- order), so that each one's depends_on names jobs that exist.
CREATE FUNCTION taskq.enqueue_workflow(jobs jsonb) RETURNS TABLE (name text, job_id uuid)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n int;
  names text[];
  bad text;
  bad_at int;
  -- Edges "dependent waits for dependency", by position (1-based), twice:
  -- sorted by dependency with offsets (forward), and by dependent (backward).
  fwd_to int[];
  fwd_first int[];
  back_from int[];
  back_first int[];
  indegree int[];
  ready int[];
  head int := 1;
  topo int[] := '{}';
  u int;
  k int;
  ids uuid[];
  dep_ids uuid[];
  path int[];
  e_dependent int[];
  e_dependency int[];
BEGIN
  IF jsonb_typeof(jobs) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'jobs must be a JSON array of job specs with names, not %', coalesce(jsonb_typeof(jobs), 'null')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'e.g. [{"name": "fetch", "queue": "q"}, {"name": "report", "queue": "q", "depends_on": ["fetch"]}]';
  END IF;
  n := jsonb_array_length(jobs);
  IF n = 0 THEN
    RETURN;
  END IF;
  IF n > taskq._max_job_specs() THEN
    RAISE EXCEPTION 'jobs has % elements; at most % per workflow', n, taskq._max_job_specs()
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT e.ord INTO bad_at FROM jsonb_array_elements(jobs) WITH ORDINALITY e(value, ord)
  WHERE jsonb_typeof(e.value) <> 'object' OR jsonb_typeof(e.value -> 'name') IS DISTINCT FROM 'string'
     OR e.value ->> 'name' = '' OR octet_length(e.value ->> 'name') > 255
  ORDER BY e.ord LIMIT 1;
  IF bad_at IS NOT NULL THEN
    RAISE EXCEPTION 'jobs[%] has no name', bad_at - 1
      USING ERRCODE = 'invalid_parameter_value', HINT = 'each job needs a "name" of 1 to 255 bytes, unique in the workflow';
  END IF;
  names := ARRAY(SELECT e.value ->> 'name' FROM jsonb_array_elements(jobs) WITH ORDINALITY e(value, ord) ORDER BY e.ord);
  SELECT x.nm INTO bad FROM unnest(names) x(nm) GROUP BY x.nm HAVING count(*) > 1 ORDER BY x.nm LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'jobs has two jobs named "%"', left(bad, 100) USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT e.ord INTO bad_at FROM jsonb_array_elements(jobs) WITH ORDINALITY e(value, ord)
  WHERE jsonb_typeof(e.value -> 'depends_on') NOT IN ('array', 'null')
     OR EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(e.value -> 'depends_on') = 'array'
                                                        THEN e.value -> 'depends_on' ELSE '[]' END) d
                WHERE jsonb_typeof(d) <> 'string')
  ORDER BY e.ord LIMIT 1;
  IF bad_at IS NOT NULL THEN
    RAISE EXCEPTION 'jobs[%].depends_on must be an array of names of the workflow''s jobs', bad_at - 1
      USING ERRCODE = 'invalid_parameter_value';
  END IF;

  -- The edges, by position; an unknown name is an error, a repeated one counts once.
  SELECT d.dependent, d.dep_name INTO bad_at, bad
  FROM (SELECT e.ord::int AS dependent, dn.nm AS dep_name
        FROM jsonb_array_elements(jobs) WITH ORDINALITY e(value, ord),
             jsonb_array_elements_text(CASE WHEN jsonb_typeof(e.value -> 'depends_on') = 'array'
                                            THEN e.value -> 'depends_on' ELSE '[]' END) dn(nm)) d
  WHERE d.dep_name <> ALL (names)
  ORDER BY d.dependent LIMIT 1;
  IF bad_at IS NOT NULL THEN
    RAISE EXCEPTION 'jobs[%] depends on "%", which is not a job of the workflow', bad_at - 1, left(bad, 100)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT array_agg(x.dependent ORDER BY x.dependent, x.dependency), array_agg(x.dependency ORDER BY x.dependent, x.dependency)
  INTO e_dependent, e_dependency
  FROM (SELECT DISTINCT e.ord::int AS dependent, array_position(names, dn.nm) AS dependency
        FROM jsonb_array_elements(jobs) WITH ORDINALITY e(value, ord),
             jsonb_array_elements_text(CASE WHEN jsonb_typeof(e.value -> 'depends_on') = 'array'
                                            THEN e.value -> 'depends_on' ELSE '[]' END) dn(nm)) x;
  e_dependent := coalesce(e_dependent, '{}');
  e_dependency := coalesce(e_dependency, '{}');
  -- Forward (a job's dependents) and backward (its dependencies) adjacency:
  -- the edges sorted by one end, and where each job's run starts.
  fwd_to := ARRAY(SELECT x.t FROM unnest(e_dependency, e_dependent) x(f, t) ORDER BY x.f, x.t);
  back_from := ARRAY(SELECT x.f FROM unnest(e_dependency, e_dependent) x(f, t) ORDER BY x.t, x.f);
  fwd_first := ARRAY(
    SELECT 1 + coalesce(sum(c.cnt) OVER (ORDER BY c.u ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::int
    FROM (SELECT g.u, count(x.f) AS cnt FROM generate_series(1, n + 1) g(u)
          LEFT JOIN unnest(e_dependency) x(f) ON x.f = g.u GROUP BY g.u) c
    ORDER BY c.u);
  back_first := ARRAY(
    SELECT 1 + coalesce(sum(c.cnt) OVER (ORDER BY c.u ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::int
    FROM (SELECT g.u, count(x.t) AS cnt FROM generate_series(1, n + 1) g(u)
          LEFT JOIN unnest(e_dependent) x(t) ON x.t = g.u GROUP BY g.u) c
    ORDER BY c.u);

  -- Kahn's algorithm: a job is ready once every job it waits for is placed.
  indegree := array_fill(0, ARRAY[n]);
  ready := '{}';
  FOR u IN 1 .. n LOOP
    indegree[u] := back_first[u + 1] - back_first[u];
    IF indegree[u] = 0 THEN
      ready[cardinality(ready) + 1] := u;
    END IF;
  END LOOP;
  WHILE head <= cardinality(ready) LOOP
    u := ready[head];
    head := head + 1;
    topo[cardinality(topo) + 1] := u;
    FOR k IN fwd_first[u] .. fwd_first[u + 1] - 1 LOOP
      indegree[fwd_to[k]] := indegree[fwd_to[k]] - 1;
      IF indegree[fwd_to[k]] = 0 THEN
        ready[cardinality(ready) + 1] := fwd_to[k];
      END IF;
    END LOOP;
  END LOOP;
  IF cardinality(topo) < n THEN
    -- Every job left waits for another job left: walk from one of them
    -- along such dependencies until a job comes round again.
    path := '{}';
    u := array_position(ARRAY(SELECT indegree[g] > 0 FROM generate_series(1, n) g ORDER BY g), true);
    WHILE u <> ALL (path) LOOP
      path := path || u;
      FOR k IN back_first[u] .. back_first[u + 1] - 1 LOOP
        IF indegree[back_from[k]] > 0 THEN
          u := back_from[k];
          EXIT;
        END IF;
      END LOOP;
    END LOOP;
    path := path[array_position(path, u):] || u;
    RAISE EXCEPTION 'jobs form a cycle: %',
      (SELECT string_agg('"' || left(names[p.pos], 100) || '"', ' waits for ' ORDER BY p.i)
       FROM unnest(path) WITH ORDINALITY p(pos, i))
      USING ERRCODE = 'invalid_parameter_value', HINT = 'a workflow must be a directed acyclic graph';
  END IF;

  -- Dependencies first; each spec enqueued as taskq.enqueue would (an error
  -- there undoes the whole call).
  ids := array_fill(NULL::uuid, ARRAY[n]);
  FOREACH u IN ARRAY topo LOOP
    dep_ids := '{}';
    FOR k IN back_first[u] .. back_first[u + 1] - 1 LOOP
      dep_ids[cardinality(dep_ids) + 1] := ids[back_from[k]];
    END LOOP;
    ids[u] := taskq._enqueue_spec(jobs -> (u - 1), format('jobs[%s]', u - 1), dep_ids);
  END LOOP;
  RETURN QUERY SELECT names[g], ids[g] FROM generate_series(1, n) g ORDER BY g;
END;
$$;
COMMENT ON FUNCTION taskq.enqueue_workflow(jsonb) IS
  'enqueues a graph of jobs in one call: job specs with a name and depends_on (names of other elements); returns each name with its job id, in array order';

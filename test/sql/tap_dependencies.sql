-- Dependencies: depends_on makes a job wait (status waiting, nothing
-- published) until its dependencies completed; the last completion
-- publishes it in its own transaction; a failed or cancelled dependency
-- cancels its dependents transitively; retry brings them back; edges are
-- queryable both ways; bad input changes nothing.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS taskq CASCADE;
CREATE EXTENSION taskq;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT no_plan();

SELECT taskq.create_queue('dq', max_attempts => 2) \g /dev/null
SELECT taskq.create_queue('other') \g /dev/null
CREATE FUNCTION pg_temp.run(job uuid, outcome text DEFAULT 'complete') RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  a int;
BEGIN
  SELECT attempts + 1 INTO a FROM taskq.jobs WHERE id = job;
  PERFORM taskq.start(job, a, 'w');
  IF outcome = 'complete' THEN
    PERFORM taskq.complete(job, a, '{"done": true}');
  ELSE
    PERFORM taskq.fail(job, a, 'broken', permanent => true);
  END IF;
END;
$$;

-- a job with no dependencies is as before
SELECT taskq.enqueue('dq') AS plain \gset
SELECT results_eq(format($$SELECT status::text, dependencies_left, has_dependents FROM taskq.jobs WHERE id = %L$$, :'plain'),
                  $$VALUES ('pending', NULL::int, false)$$, 'no depends_on: pending, no counter, no flag');
SELECT taskq.enqueue('dq', depends_on => '{}') AS empty_deps \gset
SELECT is(status, 'pending'::taskq.job_status, 'depends_on => {} means none') FROM taskq.jobs WHERE id = :'empty_deps';
SELECT is((SELECT body::jsonb -> 'depends_on' FROM taskq._outbox_claim(100) WHERE job_id = :'plain'), '[]'::jsonb,
          'its message has "depends_on": []');

-- waiting until the dependency completes
SELECT taskq.enqueue('dq', '{"step": 1}') AS a \gset
SELECT taskq.enqueue('dq', '{"step": 2}', depends_on => ARRAY[:'a', :'a']::uuid[], callback_url => 'https://example.com/hook') AS b \gset
SELECT results_eq(format($$SELECT status::text, dependencies_left FROM taskq.jobs WHERE id = %L$$, :'b'),
                  $$VALUES ('waiting', 1)$$, 'a dependent is waiting; a repeated id counts once');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE job_id = :'b'), 0, 'and not published');
SELECT ok(has_dependents, 'the dependency is marked') FROM taskq.jobs WHERE id = :'a';
SELECT results_eq(format($$SELECT depends_on_job_id, satisfied FROM taskq.job_dependencies WHERE job_id = %L$$, :'b'),
                  format($$VALUES (%L::uuid, false)$$, :'a'), 'the edge: what b waits for');
SELECT results_eq(format($$SELECT job_id FROM taskq.job_dependencies WHERE depends_on_job_id = %L$$, :'a'),
                  format($$VALUES (%L::uuid)$$, :'b'), 'the edge: what waits for a');
SELECT is((SELECT waiting FROM taskq.queue_stats WHERE queue_name = 'dq'), 1::bigint, 'queue_stats counts it waiting');
SELECT is_empty(format($$SELECT * FROM taskq.start(%L, 1, 'w')$$, :'b'), 'a waiting job cannot start');
SELECT throws_ok(format($$SELECT taskq.retry(%L)$$, :'b'), '55000', NULL, 'nor be retried');

-- the release happens in the completion's transaction
SELECT is((SELECT count(*)::int FROM taskq.start(:'a', 1, 'w')), 1, 'the dependency starts');
BEGIN;
SELECT ok(taskq.complete(:'a', 1), 'and completes');
SELECT results_eq(format($$SELECT status::text, dependencies_left FROM taskq.jobs WHERE id = %L$$, :'b'),
                  $$VALUES ('pending', 0)$$, 'inside the completing transaction the dependent is pending');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE job_id = :'b' AND attempt = 1), 1, 'with its outbox row');
ROLLBACK;
SELECT is(status, 'waiting'::taskq.job_status, 'a rolled back completion releases nothing') FROM taskq.jobs WHERE id = :'b';
SELECT ok(taskq.complete(:'a', 1), 'complete for real');
SELECT is(status, 'pending'::taskq.job_status, 'released') FROM taskq.jobs WHERE id = :'b';
SELECT ok(satisfied, 'the edge is satisfied') FROM taskq.job_dependencies WHERE job_id = :'b';
SELECT is((SELECT body::jsonb -> 'depends_on' FROM taskq._outbox_claim(100) WHERE job_id = :'b'),
          jsonb_build_array(:'a'), 'its message lists its dependencies');
SELECT ok(taskq.complete(:'a', 1), 'a repeat of the completion');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE job_id = :'b'), 1, 'releases nothing more');

-- several dependencies, in other queues too: the last completion releases
SELECT taskq.enqueue('dq') AS c1 \gset
SELECT taskq.enqueue('other') AS c2 \gset
SELECT taskq.enqueue('dq') AS c3 \gset
SELECT pg_temp.run(:'c3');
SELECT taskq.enqueue('other', depends_on => ARRAY[:'c1', :'c2', :'c3']::uuid[], delay => '1 hour') AS fan_in \gset
SELECT results_eq(format($$SELECT status::text, dependencies_left FROM taskq.jobs WHERE id = %L$$, :'fan_in'),
                  $$VALUES ('waiting', 2)$$, 'a completed dependency counts as done already');
SELECT is((SELECT count(*)::int FROM taskq.job_dependencies WHERE job_id = :'fan_in' AND satisfied), 1, 'its edge is satisfied');
SELECT pg_temp.run(:'c1');
SELECT results_eq(format($$SELECT status::text, dependencies_left FROM taskq.jobs WHERE id = %L$$, :'fan_in'),
                  $$VALUES ('waiting', 1)$$, 'one completion: one less');
-- a completed dependency retried and completed again counts once
SELECT taskq.retry(:'c1') \g /dev/null
SELECT pg_temp.run(:'c1');
SELECT is(dependencies_left, 1, 'a dependency completing again after a retry counts nothing more')
FROM taskq.jobs WHERE id = :'fan_in';
SELECT pg_temp.run(:'c2');
SELECT is(status, 'pending'::taskq.job_status, 'the last completion releases') FROM taskq.jobs WHERE id = :'fan_in';
SELECT ok(run_at > now() + interval '50 minutes', 'and the delay it was enqueued with still holds') FROM taskq.jobs WHERE id = :'fan_in';
SELECT ok((SELECT due_at FROM taskq.outbox WHERE job_id = :'fan_in') = (SELECT run_at FROM taskq.jobs WHERE id = :'fan_in'),
          'its outbox row is due then');

-- bad input: nothing written
SELECT throws_ok($$SELECT taskq.enqueue('dq', depends_on => ARRAY['01a20000-0000-7000-8000-000000000000']::uuid[])$$,
                 '42704', 'dependency 01a20000-0000-7000-8000-000000000000 does not exist', 'an unknown dependency');
SELECT throws_ok(format($$SELECT taskq.enqueue('dq', depends_on => ARRAY[%L, NULL]::uuid[])$$, :'a'), '22004',
                 'depends_on must not contain nulls', 'a NULL dependency');
SELECT throws_ok(format($$SELECT taskq.enqueue('dq', depends_on => ARRAY[[%L::uuid]])$$, :'a'), '22023', NULL,
                 'a two-dimensional array');
SELECT throws_ok($$SELECT taskq.enqueue('dq', depends_on => array_fill('01a20000-0000-7000-8000-000000000000'::uuid, ARRAY[100001]))$$,
                 '22023', NULL, 'more than 100000 dependencies');
SELECT taskq.enqueue('dq') AS doomed \gset
SELECT pg_temp.run(:'doomed', 'fail');
SELECT throws_ok(format($$SELECT taskq.enqueue('dq', depends_on => ARRAY[%L]::uuid[])$$, :'doomed'), '55000',
                 format('dependency %s is failed', :'doomed'), 'a failed dependency');
SELECT taskq.enqueue('dq') AS gone \gset
SELECT taskq.cancel(:'gone') \g /dev/null
SELECT count(*) AS jobs_before FROM taskq.jobs \gset
SELECT throws_ok(format($$SELECT taskq.enqueue_many('dq', '[1, 2]', depends_on => ARRAY[%L, %L]::uuid[])$$, :'a', :'gone'),
                 '55000', format('dependency %s is cancelled', :'gone'), 'a cancelled dependency (enqueue_many)');
SELECT is((SELECT count(*) FROM taskq.jobs), :'jobs_before'::bigint, 'nothing was created');

-- enqueue_many: every element waits for the same jobs
SELECT taskq.enqueue('dq') AS m \gset
SELECT array_agg(id ORDER BY id) AS many FROM taskq.enqueue_many('dq', '[{"n": 1}, {"n": 2}, {"n": 3}]', depends_on => ARRAY[:'m']::uuid[]) id \gset
SELECT is((SELECT count(*)::int FROM taskq.jobs WHERE id = ANY (:'many'::uuid[]) AND status = 'waiting' AND dependencies_left = 1), 3,
          'enqueue_many: all waiting');
SELECT is((SELECT count(*)::int FROM taskq.job_dependencies WHERE depends_on_job_id = :'m'), 3, 'three edges');
SELECT pg_temp.run(:'m');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE job_id = ANY (:'many'::uuid[])), 3, 'one completion releases all three');

-- unique_key: a waiting job is unfinished
SELECT taskq.enqueue('dq') AS u_dep \gset
SELECT taskq.enqueue('dq', unique_key => 'nightly', depends_on => ARRAY[:'u_dep']::uuid[]) AS u1 \gset
SELECT is(taskq.enqueue('dq', unique_key => 'nightly'), :'u1'::uuid, 'a waiting job holds its unique_key');

-- the batch completion: several dependencies of one job in one batch
SELECT taskq.enqueue('dq') AS x1 \gset
SELECT taskq.enqueue('dq') AS x2 \gset
SELECT taskq.enqueue('dq') AS x3 \gset
SELECT taskq.enqueue('dq', depends_on => ARRAY[:'x1', :'x2', :'x3']::uuid[]) AS xs \gset
SELECT count(*) FROM taskq._start_batch(jsonb_build_array(jsonb_build_object('id', :'x1', 'attempt', 1),
                                                          jsonb_build_object('id', :'x2', 'attempt', 1),
                                                          jsonb_build_object('id', :'x3', 'attempt', 1)), 'w') \g /dev/null
SELECT is((SELECT count(*)::int FROM taskq._complete_batch(jsonb_build_array(jsonb_build_object('id', :'x1', 'attempt', 1),
                                                                             jsonb_build_object('id', :'x2', 'attempt', 1)))),
          2, 'a batch completes two of three dependencies');
SELECT results_eq(format($$SELECT status::text, dependencies_left FROM taskq.jobs WHERE id = %L$$, :'xs'),
                  $$VALUES ('waiting', 1)$$, 'counted by two at once');
SELECT is((SELECT count(*)::int FROM taskq._complete_batch(jsonb_build_array(jsonb_build_object('id', :'x3', 'attempt', 1),
                                                                             jsonb_build_object('id', :'x3', 'attempt', 1)))),
          1, 'the last one, twice in its batch');
SELECT results_eq(format($$SELECT status::text, dependencies_left FROM taskq.jobs WHERE id = %L$$, :'xs'),
                  $$VALUES ('pending', 0)$$, 'released once');

-- a failed dependency cancels its dependents, transitively
SELECT taskq.enqueue('dq') AS f \gset
SELECT taskq.enqueue('dq') AS ok_dep \gset
SELECT taskq.enqueue('dq', depends_on => ARRAY[:'f', :'ok_dep']::uuid[], callback_url => 'https://example.com/hook') AS g1 \gset
SELECT taskq.enqueue('other', depends_on => ARRAY[:'g1']::uuid[]) AS g2 \gset
SELECT taskq.enqueue('dq', depends_on => ARRAY[:'g2', :'ok_dep']::uuid[]) AS g3 \gset
SELECT taskq.enqueue('dq', depends_on => ARRAY[:'ok_dep']::uuid[]) AS bystander \gset
SELECT pg_temp.run(:'f', 'fail');
SELECT results_eq(format($$SELECT id, status::text, last_error FROM taskq.jobs WHERE id IN (%L, %L, %L) ORDER BY id$$, :'g1', :'g2', :'g3'),
                  format($$VALUES (%L::uuid, 'cancelled', %L), (%L::uuid, 'cancelled', %L), (%L::uuid, 'cancelled', %L)$$,
                         :'g1', format('dependency %s failed', :'f'),
                         :'g2', format('dependency %s was cancelled (dependency %s failed)', :'g1', :'f'),
                         :'g3', format('dependency %s was cancelled (dependency %s failed)', :'g2', :'f')),
                  'a failed dependency cancels its dependents, transitively, naming it');
SELECT ok(finished_at IS NOT NULL, 'a cancelled dependent is finished') FROM taskq.jobs WHERE id = :'g1';
SELECT is((SELECT event FROM taskq.callbacks WHERE job_id = :'g1'), 'job.cancelled', 'and its callback is written');
SELECT is(status, 'waiting'::taskq.job_status, 'a job that does not wait for it is left alone') FROM taskq.jobs WHERE id = :'bystander';
SELECT is((SELECT count(*)::int FROM taskq.job_dependencies WHERE cancelled_job), 3, 'the edges it cancelled through are marked');

-- retry of the failed dependency brings them back
SELECT throws_ok(format($$SELECT taskq.retry(%L)$$, :'g2'), '55000',
                 format('job %s depends on job %s, which is cancelled', :'g2', :'g1'), 'is refused, naming the job');
SELECT throws_ok(format($$SELECT taskq.retry(%L)$$, :'g1'), '55000',
                 format('job %s depends on job %s, which is failed', :'g1', :'f'), 'also one level up');
SELECT is((SELECT status FROM taskq.retry(:'f')), 'pending'::taskq.job_status, 'retry the failed dependency');
SELECT results_eq(format($$SELECT status::text, dependencies_left, finished_at IS NULL FROM taskq.jobs WHERE id IN (%L, %L, %L) ORDER BY id$$,
                         :'g1', :'g2', :'g3'),
                  $$VALUES ('waiting', 2, true), ('waiting', 1, true), ('waiting', 2, true)$$,
                  'its dependents wait again, transitively, recounted');
SELECT is((SELECT count(*)::int FROM taskq.job_dependencies WHERE cancelled_job), 0, 'the marks are cleared');
SELECT pg_temp.run(:'f');
SELECT pg_temp.run(:'ok_dep');
SELECT is(status, 'pending'::taskq.job_status, 'and run once their dependencies completed') FROM taskq.jobs WHERE id = :'g1';
SELECT is(status, 'pending'::taskq.job_status, 'the bystander too') FROM taskq.jobs WHERE id = :'bystander';

-- a dependent cancelled by two failed dependencies comes back with the second retry
SELECT taskq.enqueue('dq') AS p1 \gset
SELECT taskq.enqueue('dq') AS p2 \gset
SELECT taskq.enqueue('dq', depends_on => ARRAY[:'p1', :'p2']::uuid[]) AS two \gset
SELECT pg_temp.run(:'p1', 'fail');
SELECT pg_temp.run(:'p2', 'fail');
SELECT taskq.retry(:'p1') \g /dev/null
SELECT results_eq(format($$SELECT status::text, last_error FROM taskq.jobs WHERE id = %L$$, :'two'),
                  format($$VALUES ('cancelled', %L)$$, format('dependency %s failed', :'p2')),
                  'retrying one of two failed dependencies: it stays cancelled, now by the other');
SELECT taskq.retry(:'p2') \g /dev/null
SELECT results_eq(format($$SELECT status::text, dependencies_left FROM taskq.jobs WHERE id = %L$$, :'two'),
                  $$VALUES ('waiting', 2)$$, 'retrying the other brings it back');

-- cancel: of a waiting job (and its dependents), of a pending dependency
SELECT taskq.enqueue('dq') AS h \gset
SELECT taskq.enqueue('dq', depends_on => ARRAY[:'h']::uuid[]) AS h1 \gset
SELECT taskq.enqueue('dq', depends_on => ARRAY[:'h1']::uuid[]) AS h2 \gset
SELECT is((SELECT status FROM taskq.cancel(:'h1')), 'cancelled'::taskq.job_status, 'cancel of a waiting job');
SELECT results_eq(format($$SELECT status::text, last_error FROM taskq.jobs WHERE id = %L$$, :'h2'),
                  format($$VALUES ('cancelled', %L)$$, format('dependency %s was cancelled', :'h1')),
                  'cancels what waits for it');
SELECT pg_temp.run(:'h', 'fail');
SELECT taskq.retry(:'h') \g /dev/null
SELECT is(status, 'cancelled'::taskq.job_status, 'a job cancelled by hand is not brought back by its dependency''s retry')
FROM taskq.jobs WHERE id = :'h1';
SELECT is((SELECT status FROM taskq.retry(:'h1')), 'waiting'::taskq.job_status,
          'retry of a cancelled dependent whose dependency is unfinished: waiting again');
SELECT is(dependencies_left, 1, 'for that one') FROM taskq.jobs WHERE id = :'h1';
SELECT results_eq(format($$SELECT status::text, dependencies_left FROM taskq.jobs WHERE id = %L$$, :'h2'),
                  $$VALUES ('waiting', 1)$$, 'and brings back what its cancel cancelled');
SELECT pg_temp.run(:'h');
SELECT pg_temp.run(:'h1');
SELECT is(status, 'pending'::taskq.job_status, 'the chain runs again') FROM taskq.jobs WHERE id = :'h2';
SELECT taskq.enqueue('dq') AS k \gset
SELECT taskq.enqueue('dq', depends_on => ARRAY[:'k']::uuid[]) AS k1 \gset
SELECT taskq.cancel(:'k') \g /dev/null
SELECT is(last_error, format('dependency %s was cancelled', :'k'), 'cancel of a pending dependency cascades') FROM taskq.jobs WHERE id = :'k1';
SELECT taskq.enqueue('dq') AS done_dep \gset
SELECT taskq.enqueue('dq') AS other_dep \gset
SELECT taskq.enqueue('dq', depends_on => ARRAY[:'done_dep', :'other_dep']::uuid[]) AS pend \gset
SELECT taskq.cancel(:'pend') \g /dev/null
SELECT pg_temp.run(:'done_dep');
SELECT pg_temp.run(:'other_dep');
SELECT is((SELECT status FROM taskq.retry(:'pend')), 'pending'::taskq.job_status,
          'a cancelled dependent whose dependencies completed meanwhile is pending at once');
SELECT is((SELECT count(*)::int FROM taskq.outbox WHERE job_id = :'pend'), 1, 'and published');

-- a rescued last attempt cascades too
SELECT taskq.enqueue('dq', max_attempts => 1) AS r \gset
SELECT taskq.enqueue('dq', depends_on => ARRAY[:'r']::uuid[]) AS r1 \gset
SELECT count(*) FROM taskq.start(:'r', 1, 'w') \g /dev/null
UPDATE taskq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :'r';
SELECT ok(taskq.rescue_expired() >= 1, 'rescue of the last attempt');
SELECT is(last_error, format('dependency %s failed', :'r'), 'cancels the dependents') FROM taskq.jobs WHERE id = :'r1';

-- finishing a job others depend on needs READ COMMITTED
SELECT taskq.enqueue('dq') AS iso \gset
SELECT taskq.enqueue('dq', depends_on => ARRAY[:'iso']::uuid[]) AS iso1 \gset
SELECT count(*) FROM taskq.start(:'iso', 1, 'w') \g /dev/null
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT throws_ok(format($$SELECT taskq.complete(%L, 1)$$, :'iso'), '0A000', NULL, 'complete at REPEATABLE READ is refused');
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT lives_ok(format($$SELECT taskq.enqueue('dq', depends_on => ARRAY[%L]::uuid[])$$, :'iso'),
                'enqueue with depends_on works at REPEATABLE READ');
ROLLBACK;
SELECT taskq.enqueue('dq') AS lonely \gset
SELECT count(*) FROM taskq.start(:'lonely', 1, 'w') \g /dev/null
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT ok(taskq.complete(:'lonely', 1), 'a job nobody depends on completes at any level');
COMMIT;
SELECT ok(taskq.complete(:'iso', 1), 'and at READ COMMITTED');

-- drop_queue: waiting jobs are unfinished; force cancels dependents elsewhere
SELECT taskq.create_queue('dropme') \g /dev/null
SELECT taskq.enqueue('dropme') AS dd \gset
SELECT taskq.enqueue('dropme', depends_on => ARRAY[:'dd']::uuid[]) AS dd1 \gset
SELECT taskq.enqueue('other', depends_on => ARRAY[:'dd']::uuid[]) AS elsewhere \gset
SELECT throws_ok($$SELECT taskq.drop_queue('dropme')$$, '55000', 'queue "dropme" has 2 unfinished jobs',
                 'a waiting job counts as unfinished');
SELECT lives_ok($$SELECT taskq.drop_queue('dropme', force => true)$$, 'drop_queue with force');
SELECT results_eq(format($$SELECT status::text, last_error FROM taskq.jobs WHERE id = %L$$, :'elsewhere'),
                  format($$VALUES ('cancelled', %L)$$, format('dependency %s was deleted', :'dd')),
                  'cancels what waits for its jobs in other queues');
SELECT is((SELECT count(*)::int FROM taskq.job_dependencies WHERE job_id = :'dd1'), 0, 'and deletes the edges of its jobs');

-- purge_finished deletes a purged dependent's edges
UPDATE taskq.queues SET retention = '0' WHERE queue_name = 'other';
UPDATE taskq.jobs SET finished_at = now() - interval '1 minute' WHERE id = :'elsewhere';
SELECT ok(taskq.purge_finished() >= 1, 'purge');
SELECT is((SELECT count(*)::int FROM taskq.job_dependencies WHERE job_id = :'elsewhere'), 0, 'its edges are gone');

SELECT * FROM finish();

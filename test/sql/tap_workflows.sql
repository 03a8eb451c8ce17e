-- Workflows and follow-up jobs: taskq.enqueue_workflow (a graph by names,
-- checked whole: cycles, duplicate or unknown names are 22023 and nothing
-- is created) and taskq.complete(..., enqueue) (follow-ups enqueued only by
-- the call that completes the job, also through _complete_batch).
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS taskq CASCADE;
CREATE EXTENSION taskq;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT no_plan();

SELECT taskq.create_queue('etl') \g /dev/null
SELECT taskq.create_queue('mail') \g /dev/null

-- the example of docs/sql-api.md
CREATE TEMP TABLE wf AS
SELECT * FROM taskq.enqueue_workflow('[
  {"name": "fetch",  "queue": "etl", "payload": {"url": "https://example.com/data.csv"}},
  {"name": "parse",  "queue": "etl", "task": "parse",  "depends_on": ["fetch"]},
  {"name": "report", "queue": "etl", "task": "report", "depends_on": ["parse"], "delay": "1 minute"},
  {"name": "notify", "queue": "etl", "task": "notify", "depends_on": ["fetch", "report"]}
]');
SELECT results_eq($$SELECT name FROM wf$$, $$VALUES ('fetch'), ('parse'), ('report'), ('notify')$$,
                  'names come back in array order');
SELECT results_eq($$SELECT w.name, j.status::text, j.task, j.dependencies_left FROM wf w JOIN taskq.jobs j ON j.id = w.job_id ORDER BY j.id$$,
                  $$VALUES ('fetch', 'pending', NULL, NULL::int), ('parse', 'waiting', 'parse', 1),
                           ('report', 'waiting', 'report', 1), ('notify', 'waiting', 'notify', 2)$$,
                  'the first job is pending, the others wait; ids in dependency order');
SELECT results_eq($$SELECT d.name, w.name FROM taskq.job_dependencies e JOIN wf d ON d.job_id = e.job_id
                    JOIN wf w ON w.job_id = e.depends_on_job_id ORDER BY 1, 2$$,
                  $$VALUES ('notify', 'fetch'), ('notify', 'report'), ('parse', 'fetch'), ('report', 'parse')$$,
                  'the edges');
SELECT is(j.payload, '{"url": "https://example.com/data.csv"}'::jsonb, 'options by argument name: payload')
FROM wf w JOIN taskq.jobs j ON j.id = w.job_id WHERE w.name = 'fetch';
SELECT ok(j.run_at > now() + interval '50 seconds', 'options by argument name: delay')
FROM wf w JOIN taskq.jobs j ON j.id = w.job_id WHERE w.name = 'report';
SELECT job_id AS fetch FROM wf WHERE name = 'fetch' \gset
SELECT count(*) FROM taskq.start(:'fetch', 1, 'w') \g /dev/null
SELECT ok(taskq.complete(:'fetch', 1), 'the first step completes');
SELECT results_eq($$SELECT w.name, j.status::text FROM wf w JOIN taskq.jobs j ON j.id = w.job_id ORDER BY j.id$$,
                  $$VALUES ('fetch', 'completed'), ('parse', 'pending'), ('report', 'waiting'), ('notify', 'waiting')$$,
                  'and releases the second');

-- declared out of order, every option
SELECT results_eq($$SELECT name FROM taskq.enqueue_workflow('[
    {"name": "last", "queue": "mail", "depends_on": ["first"], "priority": 7, "max_attempts": 9, "task": "t",
     "callback_url": "https://example.com/cb", "unique_key": "k1", "headers": {"tenant": "acme"},
     "run_at": "2030-01-01T00:00:00Z", "payload": [1, 2]},
    {"name": "first", "queue": "mail", "depends_on": null, "payload": null}]')$$,
                  $$VALUES ('last'), ('first')$$, 'dependents may come first in the array');
SELECT results_eq($$SELECT priority::int, max_attempts, task, callback_url, unique_key, headers, run_at, payload, status::text
                    FROM taskq.jobs WHERE unique_key = 'k1'$$,
                  $$VALUES (7, 9, 't', 'https://example.com/cb', 'k1', '{"tenant": "acme"}'::jsonb,
                            '2030-01-01T00:00:00Z'::timestamptz, '[1, 2]'::jsonb, 'waiting')$$,
                  'every option is the enqueue argument of its name');
SELECT is(payload, 'null'::jsonb, 'a JSON null payload is a JSON null payload')
FROM taskq.jobs WHERE queue_name = 'mail' AND status = 'pending';
SELECT is_empty($$SELECT * FROM taskq.enqueue_workflow('[]')$$, 'an empty workflow makes nothing');

-- errors: 22023 and nothing created
SELECT count(*) AS jobs_before FROM taskq.jobs \gset
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"name": "a", "queue": "etl", "depends_on": ["b"]},
                                                           {"name": "b", "queue": "etl", "depends_on": ["c"]},
                                                           {"name": "c", "queue": "etl", "depends_on": ["b"]}]')$$,
                 '22023', 'jobs form a cycle: "b" waits for "c" waits for "b"', 'a cycle, shown');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"name": "a", "queue": "etl", "depends_on": ["a"]}]')$$,
                 '22023', 'jobs form a cycle: "a" waits for "a"', 'a job waiting for itself');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"name": "a", "queue": "etl"}, {"name": "a", "queue": "mail"}]')$$,
                 '22023', 'jobs has two jobs named "a"', 'a duplicate name');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"name": "a", "queue": "etl"}, {"name": "b", "queue": "etl", "depends_on": ["a", "z"]}]')$$,
                 '22023', 'jobs[1] depends on "z", which is not a job of the workflow', 'an unknown name');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"queue": "etl"}]')$$, '22023', 'jobs[0] has no name', 'no name');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"name": "", "queue": "etl"}]')$$, '22023', 'jobs[0] has no name', 'an empty name');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"name": 5, "queue": "etl"}]')$$, '22023', 'jobs[0] has no name', 'a name that is no string');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"name": "a", "queue": "etl", "depends_on": "b"}]')$$, '22023',
                 'jobs[0].depends_on must be an array of names of the workflow''s jobs', 'depends_on not an array');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('{"name": "a"}')$$, '22023', NULL, 'not an array');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow(NULL)$$, '22023', NULL, 'NULL');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[1]')$$, '22023', NULL, 'an element that is no object');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow((SELECT jsonb_agg(jsonb_build_object('name', g::text, 'queue', 'etl'))
                                                         FROM generate_series(1, 10001) g))$$,
                 '22023', 'jobs has 10001 elements; at most 10000 per workflow', 'too many jobs');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"name": "a", "queue": "etl"}, {"name": "b", "queue": "etl", "dealy": "1s"}]')$$,
                 '22023', 'jobs[1] has an unknown member "dealy"', 'an unknown member');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"name": "a", "queue": "etl"}, {"name": "b", "queue": "nope"}]')$$,
                 '42704', 'jobs[1]: queue "nope" does not exist', 'an unknown queue');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"name": "a"}]')$$, '22023', 'jobs[0] has no queue', 'no queue');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"name": "a", "queue": "etl", "delay": "soon"}]')$$, '22023',
                 'jobs[0].delay: invalid input syntax for type interval: "soon"', 'a delay that does not cast');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"name": "a", "queue": "etl", "run_at": "yesterday-ish"}]')$$, '22023',
                 NULL, 'a run_at that does not cast');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"name": "a", "queue": "etl", "priority": 1.5}]')$$, '22023',
                 'jobs[0].priority must be an integer, not 1.5', 'a priority that is no integer');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"name": "a", "queue": "etl", "priority": 12}]')$$, '22023',
                 'priority must be between 0 and 9, not 12', 'a priority enqueue refuses');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow('[{"name": "a", "queue": "etl", "task": 3}]')$$, '22023',
                 'jobs[0].task must be a string, not number', 'a task that is no string');
SELECT throws_ok($$SELECT * FROM taskq.enqueue_workflow(jsonb_build_array(jsonb_build_object(
                     'name', 'a', 'queue', 'etl', 'concurrency_key', repeat('k', 256))))$$, '22023',
                 NULL, 'concurrency_key goes to enqueue, which decides (over 255 bytes)');
SELECT is((SELECT count(*) FROM taskq.jobs), :'jobs_before'::bigint, 'nothing was created by any of them');

-- a workflow of 1000 jobs: a chain and a fan-in
SELECT is((SELECT count(*)::int FROM taskq.enqueue_workflow(
             (SELECT jsonb_agg(jsonb_build_object('name', 's' || g, 'queue', 'etl',
                                                  'depends_on', CASE WHEN g > 1 THEN jsonb_build_array('s' || (g - 1)) ELSE '[]' END)
                               ORDER BY g DESC)
              FROM generate_series(1, 1000) g))), 1000, 'a chain of 1000, given backwards');
SELECT is((SELECT count(*)::int FROM taskq.jobs WHERE queue_name = 'etl' AND status = 'waiting' AND dependencies_left = 1
           AND id IN (SELECT job_id FROM taskq.job_dependencies)), 999 + 2,  -- + report and notify above
          'every link waits for the one before');

-- follow-up jobs of complete
SELECT taskq.enqueue('etl') AS j1 \gset
SELECT taskq.enqueue('etl') AS later \gset
SELECT count(*) FROM taskq.start(:'j1', 1, 'w') \g /dev/null
SELECT count(*) AS mail_before FROM taskq.jobs WHERE queue_name = 'mail' \gset
SELECT throws_ok(format($$SELECT taskq.complete(%L, 1, '{}', '{"queue": "mail"}')$$, :'j1'), '22023',
                 'enqueue must be a JSON array of job specs, not object', 'enqueue must be an array');
SELECT throws_ok(format($$SELECT taskq.complete(%L, 1, '{}', '[{"queue": "mail"}, {"queue": "mail", "max_attempts": 0}]')$$, :'j1'),
                 '22023', 'max_attempts must be between 1 and 1000, not 0', 'a follow-up enqueue refuses');
SELECT throws_ok(format($$SELECT taskq.complete(%L, 1, '{}', '[{"queue": "mail", "depends_on": ["nope"]}]')$$, :'j1'),
                 '22023', 'enqueue[0].depends_on must be an array of job ids', 'depends_on of a follow-up: ids');
SELECT is(status, 'running'::taskq.job_status, 'a refused follow-up completes nothing') FROM taskq.jobs WHERE id = :'j1';
SELECT is((SELECT count(*) FROM taskq.jobs WHERE queue_name = 'mail'), :'mail_before'::bigint, 'and enqueues nothing');
SELECT ok(taskq.complete(:'j1', 1, '{"rows": 3}',
                         jsonb_build_array(jsonb_build_object('queue', 'mail', 'payload', jsonb_build_object('to', 'a@b.c'), 'task', 'send'),
                                           jsonb_build_object('queue', 'mail', 'depends_on', jsonb_build_array(:'later')))),
          'complete with two follow-ups');
SELECT results_eq($$SELECT task, payload, status::text FROM taskq.jobs WHERE queue_name = 'mail' ORDER BY id DESC LIMIT 2$$,
                  $$VALUES (NULL, '{}'::jsonb, 'waiting'), ('send', '{"to": "a@b.c"}'::jsonb, 'pending')$$,
                  'both enqueued, one waiting for its dependency');
SELECT count(*) AS mail_after FROM taskq.jobs WHERE queue_name = 'mail' \gset
SELECT ok(taskq.complete(:'j1', 1, '{"rows": 3}', '[{"queue": "mail"}]'), 'a repeat of the completion is true');
SELECT is((SELECT count(*) FROM taskq.jobs WHERE queue_name = 'mail'), :'mail_after'::bigint, 'but enqueues nothing');
SELECT is(taskq.complete(:'later', 1, '{}', '[{"queue": "mail"}]'), false, 'a stale completion is false');
SELECT is((SELECT count(*) FROM taskq.jobs WHERE queue_name = 'mail'), :'mail_after'::bigint, 'and enqueues nothing');
SELECT ok(taskq.complete(:'j1', 1, '{}', NULL), 'enqueue => NULL is none');

-- the worker's batch form
SELECT taskq.enqueue('etl') AS b1 \gset
SELECT taskq.enqueue('etl') AS b2 \gset
SELECT count(*) FROM taskq._start_batch(jsonb_build_array(jsonb_build_object('id', :'b1', 'attempt', 1),
                                                          jsonb_build_object('id', :'b2', 'attempt', 1)), 'w') \g /dev/null
SELECT throws_ok(format($$SELECT * FROM taskq._complete_batch('[{"id": "%s", "attempt": 1, "enqueue": [{"queue": "nope"}]}]')$$, :'b1'),
                 '42704', 'enqueue[0]: queue "nope" does not exist', 'a batch with a bad follow-up is refused whole');
SELECT is(status, 'running'::taskq.job_status, 'nothing completed') FROM taskq.jobs WHERE id = :'b1';
SELECT is((SELECT count(*)::int FROM taskq._complete_batch(jsonb_build_array(
             jsonb_build_object('id', :'b1', 'attempt', 1, 'enqueue', '[{"queue": "mail", "task": "from-b1"}]'::jsonb),
             jsonb_build_object('id', :'b1', 'attempt', 1, 'enqueue', '[{"queue": "mail", "task": "from-b1"}]'::jsonb),
             jsonb_build_object('id', :'b2', 'attempt', 1),
             jsonb_build_object('id', :'b2', 'attempt', 2, 'enqueue', '[{"queue": "mail", "task": "stale"}]'::jsonb)))),
          2, 'a batch completes two jobs');
SELECT results_eq($$SELECT task, count(*)::int FROM taskq.jobs WHERE queue_name = 'mail' AND task IN ('from-b1', 'stale') GROUP BY task$$,
                  $$VALUES ('from-b1', 1)$$, 'the follow-up of the item that completed, once; none of a stale item');
SELECT is((SELECT count(*)::int FROM taskq._complete_batch(jsonb_build_array(
             jsonb_build_object('id', :'b1', 'attempt', 1, 'enqueue', '[{"queue": "mail", "task": "from-b1"}]'::jsonb)))),
          1, 'a repeat of the batch counts the job again');
SELECT is((SELECT count(*)::int FROM taskq.jobs WHERE task = 'from-b1'), 1, 'and enqueues nothing more');

SELECT * FROM finish();

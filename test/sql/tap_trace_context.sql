-- Trace context: taskq.enqueue and enqueue_many take the W3C traceparent /
-- tracestate from the job's headers or from the session settings
-- taskq.traceparent / taskq.tracestate, headers first; invalid values are
-- dropped with a WARNING (shown below) and the job is enqueued all the same.
-- The context stays in the job's headers, so it is in every message of the
-- job (retries too) and in its callback rows.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS taskq CASCADE;
CREATE EXTENSION taskq;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT no_plan();

\set tp '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
\set tp2 '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00'
SELECT lives_ok($$SELECT taskq.create_queue('tq', max_attempts => 3)$$, 'queue');

-- the checks of the core
SELECT is(taskq._traceparent_problem(:'tp'), NULL, 'a valid traceparent has no problem');
SELECT is(taskq._traceparent_problem('00-00000000000000000000000000000000-00f067aa0ba902b7-01'),
          'the trace-id is all zeros', 'an all-zero trace-id is refused');
SELECT is(taskq._traceparent_problem(upper(:'tp')), 'the trace-id is not 32 lowercase hex digits', 'uppercase is refused');
SELECT is(taskq._traceparent_problem('ff' || substr(:'tp', 3)), 'version ff is invalid', 'version ff is refused');
SELECT is(taskq._tracestate_problem('a=1,a=2'), 'list member 2: a key appears twice', 'tracestate problems name the member');
SELECT is(taskq._tracestate_problem('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE'), NULL, 'a valid tracestate');

-- nothing set: nothing added
SELECT is(current_setting('taskq.traceparent'), '', 'the setting exists and is empty by default');
SELECT taskq.enqueue('tq', '{}') AS plain \gset
SELECT is((SELECT headers FROM taskq.jobs WHERE id = :'plain'), NULL, 'no trace context: headers stay NULL');
SELECT taskq.enqueue('tq', '{}', headers => '{"tenant": "acme"}') AS tenant \gset
SELECT is((SELECT headers FROM taskq.jobs WHERE id = :'tenant'), '{"tenant": "acme"}', 'other headers are untouched');

-- the session settings, for the transaction that enqueues
BEGIN;
SET LOCAL taskq.traceparent = :'tp';
SET LOCAL taskq.tracestate = 'congo=t61rcWkgMzE';
SELECT taskq.enqueue('tq', '{}') AS from_setting \gset
SELECT taskq.enqueue('tq', '{}', headers => '{"tenant": "acme"}', callback_url => 'http://127.0.0.1/cb') AS merged \gset
COMMIT;
SELECT is((SELECT headers FROM taskq.jobs WHERE id = :'from_setting'),
          jsonb_build_object('traceparent', :'tp', 'tracestate', 'congo=t61rcWkgMzE'), 'SET LOCAL: the job carries it');
SELECT is((SELECT headers FROM taskq.jobs WHERE id = :'merged'),
          jsonb_build_object('tenant', 'acme', 'traceparent', :'tp', 'tracestate', 'congo=t61rcWkgMzE'),
          'merged with the job''s own headers');
SELECT taskq.enqueue('tq', '{}') AS after_commit \gset
SELECT is((SELECT headers FROM taskq.jobs WHERE id = :'after_commit'), NULL, 'SET LOCAL ends with its transaction');

-- headers win over the setting, and take their own tracestate (or none)
BEGIN;
SET LOCAL taskq.traceparent = :'tp';
SET LOCAL taskq.tracestate = 'congo=t61rcWkgMzE';
SELECT taskq.enqueue('tq', '{}', headers => jsonb_build_object('traceparent', :'tp2')) AS explicit \gset
SELECT taskq.enqueue('tq', '{}', headers => jsonb_build_object('traceparent', :'tp2', 'tracestate', 'rojo=1'))
  AS explicit_state \gset
COMMIT;
SELECT is((SELECT headers FROM taskq.jobs WHERE id = :'explicit'), jsonb_build_object('traceparent', :'tp2'),
          'the traceparent header wins; the setting''s tracestate does not go with it');
SELECT is((SELECT headers FROM taskq.jobs WHERE id = :'explicit_state'),
          jsonb_build_object('traceparent', :'tp2', 'tracestate', 'rojo=1'), 'a header pair is kept as given');

-- invalid values: a WARNING, the job is enqueued without them
BEGIN;
SET LOCAL taskq.traceparent = :'tp';
SELECT taskq.enqueue('tq', '{}', headers => '{"traceparent": "00-xyz", "tenant": "acme"}') AS bad_header \gset
COMMIT;
SELECT is((SELECT headers FROM taskq.jobs WHERE id = :'bad_header'),
          jsonb_build_object('tenant', 'acme', 'traceparent', :'tp'), 'an invalid header gives way to the setting');
BEGIN;
SET LOCAL taskq.traceparent = '00-00000000000000000000000000000000-00f067aa0ba902b7-01';
SELECT taskq.enqueue('tq', '{}') AS bad_setting \gset
SELECT taskq.enqueue('tq', '{}', headers => '{"tenant": "acme"}') AS bad_setting_headers \gset
COMMIT;
SELECT is((SELECT headers FROM taskq.jobs WHERE id = :'bad_setting'), NULL, 'an invalid setting is ignored');
SELECT is((SELECT headers FROM taskq.jobs WHERE id = :'bad_setting_headers'), '{"tenant": "acme"}',
          'an invalid setting leaves the headers alone');
SELECT taskq.enqueue('tq', '{}', headers => jsonb_build_object('traceparent', upper(:'tp'))) AS upper_case \gset
SELECT is((SELECT headers FROM taskq.jobs WHERE id = :'upper_case'), '{}', 'uppercase hex is dropped');
SELECT taskq.enqueue('tq', '{}', headers => jsonb_build_object('traceparent', :'tp', 'tracestate', 'Bad=1'))
  AS bad_state \gset
SELECT is((SELECT headers FROM taskq.jobs WHERE id = :'bad_state'), jsonb_build_object('traceparent', :'tp'),
          'an invalid tracestate is dropped, its traceparent kept');
SELECT taskq.enqueue('tq', '{}', headers => '{"tracestate": "rojo=1"}') AS lone_state \gset
SELECT is((SELECT headers FROM taskq.jobs WHERE id = :'lone_state'), '{}', 'a tracestate without traceparent is dropped');
SELECT taskq.enqueue('tq', '{}', headers => '{"traceparent": "", "tracestate": ""}') AS empty_values \gset
SELECT is((SELECT headers FROM taskq.jobs WHERE id = :'empty_values'), '{}', 'empty values count as not given, quietly');
SET taskq.traceparent = 'garbage';
SELECT lives_ok($$SELECT taskq.enqueue('tq', '{}')$$, 'a session-wide invalid setting never fails an enqueue');
RESET taskq.traceparent;

-- enqueue_many: the same context for every job of the call (the ids are
-- kept first: a statement does not see the rows its own call inserted)
BEGIN;
SET LOCAL taskq.traceparent = :'tp';
CREATE TEMP TABLE many AS SELECT 'setting' AS how, id FROM taskq.enqueue_many('tq', '[1, 2, 3]') id;
INSERT INTO many SELECT 'unique_key', id FROM taskq.enqueue_many('tq', '[1, 2]', unique_key => 'k1') id;
INSERT INTO many SELECT 'header', id
  FROM taskq.enqueue_many('tq', '[1]', headers => jsonb_build_object('traceparent', :'tp2')) id;
COMMIT;
SELECT is((SELECT count(*)::int FROM many m JOIN taskq.jobs j ON j.id = m.id
           WHERE m.how = 'setting' AND j.headers->>'traceparent' = :'tp'), 3,
          'enqueue_many: every job carries the setting');
SELECT is((SELECT count(*)::int FROM many m JOIN taskq.jobs j ON j.id = m.id
           WHERE m.how = 'unique_key' AND j.headers->>'traceparent' = :'tp'), 2,
          'enqueue_many with a unique_key too');
SELECT is((SELECT count(*)::int FROM many m JOIN taskq.jobs j ON j.id = m.id
           WHERE m.how = 'header' AND j.headers->>'traceparent' = :'tp2'), 1,
          'enqueue_many: headers win there as well');

-- the message: the context is in its headers and in the body's headers
SELECT is((SELECT c.headers->>'traceparent' FROM taskq._outbox_claim(1000) c WHERE c.job_id = :'from_setting'), :'tp',
          'the publisher''s claim has it in the message headers');
SELECT is((SELECT (c.body::jsonb)->'headers'->>'tracestate' FROM taskq._outbox_claim(1000) c
           WHERE c.job_id = :'from_setting'), 'congo=t61rcWkgMzE', 'and in the body''s headers');

-- a retried job keeps its trace id; its callback carries it
SELECT isnt_empty($$SELECT * FROM taskq.start('$$ || :'merged' || $$', 1, 'w')$$, 'start attempt 1');
SELECT is(taskq.fail(:'merged', 1, 'boom', retry_in => '0 seconds'), 'pending'::taskq.job_status, 'attempt 1 failed');
SELECT is((SELECT c.headers->>'traceparent' FROM taskq._outbox_claim(1000) c WHERE c.job_id = :'merged'), :'tp',
          'the retry''s message has the same traceparent');
SELECT isnt_empty($$SELECT * FROM taskq.start('$$ || :'merged' || $$', 2, 'w')$$, 'start attempt 2');
SELECT ok(taskq.complete(:'merged', 2), 'attempt 2 completed');
SELECT is((SELECT traceparent || ' ' || tracestate FROM taskq.callbacks WHERE job_id = :'merged'),
          :'tp' || ' congo=t61rcWkgMzE', 'the callback row has the job''s trace context');
SELECT is((SELECT c.traceparent FROM taskq._callbacks_claim('d', 10, '1 minute') c WHERE c.job_id = :'merged'), :'tp',
          'and the dispatcher''s claim returns it');
SELECT is((SELECT (taskq.retry(:'merged')).headers->>'traceparent'), :'tp', 'taskq.retry keeps it too');

SELECT * FROM finish();

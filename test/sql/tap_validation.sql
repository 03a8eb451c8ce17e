-- Bad input gets a clear error with the right SQLSTATE and writes nothing.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS taskq CASCADE;
CREATE EXTENSION taskq;
CREATE EXTENSION IF NOT EXISTS pgtap;
SELECT no_plan();

SELECT lives_ok($$SELECT taskq.create_queue('v')$$, 'queue v');

-- queue names: format, length, injection attempts, NULL
SELECT throws_ok($$SELECT taskq.create_queue('')$$, '22023', 'invalid queue name ""', 'empty queue name');
SELECT throws_ok($$SELECT taskq.create_queue(NULL)$$, '22004', 'queue_name must not be null', 'NULL queue name');
SELECT throws_ok($$SELECT taskq.create_queue('a b')$$, '22023', NULL, 'space in queue name');
SELECT throws_ok($$SELECT taskq.create_queue('x''; DROP TABLE taskq.jobs; --')$$, '22023', NULL, 'injected queue name');
SELECT throws_ok($$SELECT taskq.create_queue('.hidden')$$, '22023', NULL, 'queue name must start with a letter or digit');
SELECT throws_ok($$SELECT taskq.create_queue(repeat('a', 101))$$, '22023', NULL, '101-character queue name');
SELECT lives_ok($$SELECT taskq.create_queue(repeat('a', 100))$$, '100-character queue name is fine');
SELECT throws_ok($$SELECT taskq.create_queue('ünïcode')$$, '22023', NULL, 'non-ASCII queue name');
SELECT throws_ok($$SELECT taskq.create_queue('v')$$, '42710', 'queue "v" already exists', 'duplicate queue');

-- queue options
SELECT throws_ok($$SELECT taskq.create_queue('o', max_attempts => 0)$$, '22023', NULL, 'max_attempts 0');
SELECT throws_ok($$SELECT taskq.create_queue('o', max_attempts => NULL)$$, '22004', NULL, 'max_attempts NULL');
SELECT throws_ok($$SELECT taskq.create_queue('o', lease => '0')$$, '22023', NULL, 'zero lease');
SELECT throws_ok($$SELECT taskq.create_queue('o', lease => '-1 minute')$$, '22023', NULL, 'negative lease');
SELECT throws_ok($$SELECT taskq.create_queue('o', backoff_base => '-1 second')$$, '22023', NULL, 'negative backoff_base');
SELECT throws_ok($$SELECT taskq.create_queue('o', backoff_base => '1 hour', backoff_max => '1 minute')$$, '22023', NULL, 'backoff_max below backoff_base');
SELECT throws_ok($$SELECT taskq.create_queue('o', retention => '-1 day')$$, '22023', NULL, 'negative retention');
SELECT throws_ok($$SELECT taskq.create_queue('o', delivery_delay => '-1 second')$$, '22023', NULL, 'negative delivery_delay');
SELECT throws_ok($$SELECT taskq.create_queue('o', queue_type => 'stream')$$, '22023', NULL, 'unknown queue_type');
SELECT throws_ok($$SELECT taskq.alter_queue('nope', max_attempts => 2)$$, '42704', 'queue "nope" does not exist', 'alter unknown queue');
SELECT throws_ok($$SELECT taskq.alter_queue('v', max_attempts => -1)$$, '22023', NULL, 'alter with a bad option');
SELECT throws_ok($$SELECT taskq.alter_queue('v', queue_type => 'quorum')$$, '55000', NULL, 'queue_type cannot change');
SELECT throws_ok($$SELECT taskq.pause_queue('nope')$$, '42704', NULL, 'pause unknown queue');
SELECT throws_ok($$SELECT taskq.resume_queue('nope')$$, '42704', NULL, 'resume unknown queue');
SELECT throws_ok($$SELECT taskq.drop_queue('nope')$$, '42704', NULL, 'drop unknown queue');
SELECT throws_ok($$SELECT taskq.drop_queue('v', NULL)$$, '22004', NULL, 'drop with NULL force');
SELECT is((SELECT count(*)::int FROM taskq.queues WHERE queue_name = 'o'), 0, 'no bad queue was created');

-- enqueue
SELECT throws_ok($$SELECT taskq.enqueue('nope')$$, '42704', 'queue "nope" does not exist', 'unknown queue');
SELECT throws_ok($$SELECT taskq.enqueue(NULL)$$, '22004', NULL, 'NULL queue');
SELECT throws_ok($$SELECT taskq.enqueue('v; DROP TABLE x')$$, '22023', NULL, 'malformed queue name');
SELECT throws_ok($$SELECT taskq.enqueue('v', NULL)$$, '22004', 'payload must not be null', 'NULL payload');
SELECT throws_ok($$SELECT taskq.enqueue('v', '{bad json')$$, '22P02', NULL, 'invalid JSON is refused by the jsonb type');
SELECT throws_ok($$SELECT taskq.enqueue('v', jsonb_build_object('big', repeat(md5(random()::text), 70000)))$$, '22023', NULL, 'payload over 1 MiB');
SELECT lives_ok($$SELECT taskq.enqueue('v', jsonb_build_object('big', repeat('x', 500000)))$$, 'payload of 500 kB is fine');
SELECT lives_ok($$SELECT taskq.enqueue('v', '"a string"')$$, 'any JSON value is a payload');
SELECT throws_ok($$SELECT taskq.enqueue('v', task => '')$$, '22023', NULL, 'empty task');
SELECT throws_ok($$SELECT taskq.enqueue('v', task => repeat('t', 256))$$, '22023', NULL, 'task over 255 bytes');
SELECT throws_ok($$SELECT taskq.enqueue('v', task => E'a\nb')$$, '22023', NULL, 'control character in task');
SELECT throws_ok($$SELECT taskq.enqueue('v', priority => 10)$$, '22023', NULL, 'priority 10');
SELECT throws_ok($$SELECT taskq.enqueue('v', priority => -1)$$, '22023', NULL, 'priority -1');
SELECT throws_ok($$SELECT taskq.enqueue('v', priority => NULL)$$, '22023', NULL, 'priority NULL');
SELECT throws_ok($$SELECT taskq.enqueue('v', max_attempts => 0)$$, '22023', NULL, 'max_attempts 0');
SELECT throws_ok($$SELECT taskq.enqueue('v', delay => '-1 second')$$, '22023', NULL, 'negative delay');
SELECT throws_ok($$SELECT taskq.enqueue('v', run_at => now(), delay => '1 second')$$, '22023', NULL, 'run_at and delay together');
SELECT throws_ok($$SELECT taskq.enqueue('v', run_at => 'infinity')$$, '22023', NULL, 'infinite run_at');
SELECT throws_ok($$SELECT taskq.enqueue('v', callback_url => 'ftp://example.com/')$$, '22023', NULL, 'ftp callback');
SELECT throws_ok($$SELECT taskq.enqueue('v', callback_url => 'file:///etc/passwd')$$, '22023', NULL, 'file callback');
SELECT throws_ok($$SELECT taskq.enqueue('v', callback_url => 'http://')$$, '22023', NULL, 'callback without host');
SELECT throws_ok($$SELECT taskq.enqueue('v', callback_url => 'javascript:alert(1)')$$, '22023', NULL, 'javascript callback');
SELECT throws_ok($$SELECT taskq.enqueue('v', callback_url => 'http://a b/')$$, '22023', NULL, 'space in callback');
SELECT lives_ok($$SELECT taskq.enqueue('v', callback_url => 'https://hooks.example.com:8443/taskq?x=1')$$, 'https callback with port and query');
SELECT throws_ok($$SELECT taskq.enqueue('v', unique_key => '')$$, '22023', NULL, 'empty unique_key');
SELECT throws_ok($$SELECT taskq.enqueue('v', headers => '[]')$$, '22023', NULL, 'headers not an object');
SELECT throws_ok($$SELECT taskq.enqueue('v', headers => '{"n": 1}')$$, '22023', NULL, 'non-string header value');
SELECT throws_ok($$SELECT taskq.enqueue('v', headers => '{"nested": {"a": "b"}}')$$, '22023', NULL, 'nested headers');
SELECT throws_ok($$SELECT taskq.enqueue('v', headers => '{"X-Taskq-Attempt": "9"}')$$, '22023', NULL, 'reserved header name');
SELECT throws_ok($$SELECT taskq.enqueue('v', headers => '{"": "x"}')$$, '22023', NULL, 'empty header name');
SELECT is((SELECT count(*)::int FROM taskq.jobs), 3, 'only the valid enqueues wrote jobs');
SELECT is((SELECT count(*)::int FROM taskq.outbox), 3, 'and outbox rows');

-- enqueue_many
SELECT throws_ok($$SELECT taskq.enqueue_many('v', NULL)$$, '22004', NULL, 'NULL payloads');
SELECT throws_ok($$SELECT taskq.enqueue_many('v', '{"a": 1}')$$, '22023', NULL, 'payloads not an array');
SELECT throws_ok($$SELECT taskq.enqueue_many('nope', '[1]')$$, '42704', NULL, 'enqueue_many to an unknown queue');
SELECT throws_ok($$SELECT taskq.enqueue_many('v', '[1]', priority => 11)$$, '22023', NULL, 'enqueue_many with a bad option');
SELECT throws_ok($$SELECT taskq.enqueue_many('v', jsonb_build_array(1, jsonb_build_object('big', repeat(md5(random()::text), 70000))))$$,
                 '22023', NULL, 'one oversized payload refuses the whole batch');
SELECT is((SELECT count(*)::int FROM taskq.jobs), 3, 'no job from a refused batch');
SELECT is((SELECT count(*)::int FROM taskq.enqueue_many('v', '[]')), 0, 'an empty array enqueues nothing');

-- worker functions
SELECT throws_ok($$SELECT taskq.start(NULL, 1, 'w')$$, '22004', NULL, 'start with NULL job_id');
SELECT throws_ok($$SELECT taskq.start(taskq._uuid_v7(), NULL, 'w')$$, '22004', NULL, 'start with NULL attempt');
SELECT throws_ok($$SELECT taskq.start(taskq._uuid_v7(), 1, '')$$, '22023', NULL, 'start with empty worker');
SELECT throws_ok($$SELECT taskq.start(taskq._uuid_v7(), 1, NULL)$$, '22023', NULL, 'start with NULL worker');
SELECT throws_ok($$SELECT taskq.heartbeat(NULL, 1)$$, '22004', NULL, 'heartbeat with NULL job_id');
SELECT throws_ok($$SELECT taskq.complete(taskq._uuid_v7(), NULL)$$, '22004', NULL, 'complete with NULL attempt');
SELECT throws_ok($$SELECT taskq.fail(taskq._uuid_v7(), 1, 'e', retry_in => '-1 second')$$, '22023', NULL, 'negative retry_in');
SELECT throws_ok($$SELECT taskq.fail(taskq._uuid_v7(), 1, 'e', permanent => NULL)$$, '22004', NULL, 'NULL permanent');
SELECT throws_ok($$SELECT taskq.complete(taskq._uuid_v7(), 1, jsonb_build_object('big', repeat(md5(random()::text), 70000)))$$,
                 '22023', NULL, 'result over 1 MiB');
SELECT is(taskq.complete(taskq._uuid_v7(), 1), false, 'complete of an unknown job is stale, not an error');
SELECT is(taskq.fail(taskq._uuid_v7(), 1, 'x'), NULL, 'fail of an unknown job is stale, not an error');
SELECT throws_ok($$SELECT taskq.retry(NULL)$$, '22004', NULL, 'retry NULL');
SELECT throws_ok($$SELECT taskq.retry(taskq._uuid_v7(), '-1 second')$$, '22023', NULL, 'retry with negative delay');
SELECT throws_ok($$SELECT taskq.cancel(NULL)$$, '22004', NULL, 'cancel NULL');

SELECT * FROM finish();

-- 1,000,000 jobs for bench/dashboard-queries, written straight into
-- taskq.jobs (as a superuser) the way a week of work would leave them:
-- ids time-ordered (UUIDv7 of created_at), created evenly over 7 days, the
-- newest 100,000 of them in the last hour (a busy hour: 28 jobs/s); five
-- queues from 50% down to 0.01% of the jobs ('rare': 100 jobs); the
-- newest 3,000 pending, 20 running, the rest 94% completed, 4% failed, 2%
-- cancelled. Plus 20 schedules.
SET client_min_messages = warning;
SELECT count(taskq.create_queue(q)) FROM unnest(ARRAY['emails', 'thumbnails', 'reports', 'webhooks', 'rare']) q \g /dev/null
WITH spec AS (
  SELECT i,
         -- 900,000 jobs over 7 days to an hour ago, 100,000 in the last hour.
         CASE WHEN i <= 900000 THEN now() - interval '7 days' + (interval '7 days' - interval '1 hour') * (i / 900000.0)
              ELSE now() - interval '1 hour' + interval '1 hour' * ((i - 900000) / 100000.0) - interval '5 seconds' END AS t,
         CASE WHEN i % 10000 = 7 THEN 'rare' WHEN i % 20 = 1 THEN 'webhooks' WHEN i % 7 = 2 THEN 'reports'
              WHEN i % 3 = 0 THEN 'thumbnails' ELSE 'emails' END AS queue_name,
         CASE WHEN i > 1000000 - 3000 THEN 'pending'
              WHEN i > 1000000 - 3020 THEN 'running'
              WHEN i % 50 = 3 THEN 'failed'
              WHEN i % 50 = 4 THEN 'cancelled'
              ELSE 'completed' END::taskq.job_status AS status
  FROM generate_series(1, 1000000) i
)
INSERT INTO taskq.jobs (id, queue_name, task, payload, status, priority, attempts, max_attempts, attempt_budget,
                        run_at, lease_expires_at, worker, result, last_error, created_at, started_at, finished_at,
                        updated_at)
SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || substr(md5(i::text), 1, 3) || '8'
        || substr(md5(i::text), 4, 15))::uuid,
       queue_name, 'task_' || (i % 4), jsonb_build_object('n', i, 'to', 'user' || i || '@example.com'), status,
       0, CASE WHEN status = 'pending' THEN 0 WHEN status = 'failed' THEN 5 ELSE 1 END, 5, 5,
       t, CASE WHEN status = 'running' THEN now() + interval '5 minutes' END,
       CASE WHEN status IN ('running', 'completed', 'failed') THEN 'host-' || (i % 3) || ':' || (1000 + i % 7) END,
       CASE WHEN status = 'completed' THEN '{"ok": true}'::jsonb END,
       CASE WHEN status = 'failed' THEN 'exit status 1: connection refused' END,
       t, CASE WHEN status <> 'pending' THEN t + interval '1 second' END,
       CASE WHEN status IN ('completed', 'failed', 'cancelled') THEN t + interval '2 seconds' END,
       t + interval '2 seconds'
FROM spec;
SELECT count(taskq.schedule('every-' || i, '*/' || (i % 30 + 1) || ' * * * *', 'reports', enabled => i % 5 <> 0)
) FROM generate_series(1, 20) i \g /dev/null
VACUUM ANALYZE taskq.jobs;

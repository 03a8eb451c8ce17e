-- Observability of the publisher (the "taskq publisher" background worker).

CREATE FUNCTION taskq.publisher_status(
  OUT pid int, OUT state text, OUT connected boolean, OUT blocked boolean, OUT broker text,
  OUT connected_since timestamptz, OUT last_error text, OUT last_error_at timestamptz,
  OUT last_publish_at timestamptz, OUT published bigint, OUT confirmed bigint, OUT failed bigint,
  OUT reconnects bigint, OUT rescued bigint, OUT reconciled bigint)
RETURNS record
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskq_publisher_status';
COMMENT ON FUNCTION taskq.publisher_status() IS
  'state of the publisher background worker (from shared memory): connection, last error, counters since it started';

CREATE VIEW taskq.publisher AS
SELECT s.*,
       (SELECT count(*) FROM taskq.outbox) AS backlog,
       (SELECT count(*) FROM taskq.outbox WHERE due_at <= now()) AS due_backlog
FROM taskq.publisher_status() s;
COMMENT ON VIEW taskq.publisher IS
  'the publisher''s state, counters since it started, and the outbox backlog (all rows, and rows due now)';

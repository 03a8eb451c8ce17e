-- Job ids: UUIDv7 (version 7, RFC variant), time-ordered and strictly
-- increasing within a session.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS taskq;
RESET client_min_messages;
SELECT substr(taskq._uuid_v7()::text, 15, 1) AS version_digit;
SELECT substr(taskq._uuid_v7()::text, 20, 1) IN ('8', '9', 'a', 'b') AS rfc_variant;
-- 10,000 ids in one statement (mostly within the same milliseconds) are
-- strictly increasing in generation order.
WITH ids AS (
  SELECT g, taskq._uuid_v7() AS id FROM generate_series(1, 10000) g
)
SELECT count(*) AS out_of_order
FROM (SELECT id, lag(id) OVER (ORDER BY g) AS prev FROM ids) t
WHERE prev IS NOT NULL AND id <= prev;
-- The embedded timestamp is now (to within a few seconds).
SELECT abs(extract(epoch FROM now()) * 1000
           - ('x' || lpad(replace(substr(taskq._uuid_v7()::text, 1, 13), '-', ''), 16, '0'))::bit(64)::bigint) < 5000
       AS timestamp_is_now;

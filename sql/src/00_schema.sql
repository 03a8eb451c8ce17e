-- placeholder: the SQL job model lands here
CREATE FUNCTION taskq._uuid_v7() RETURNS uuid
  LANGUAGE c VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'taskq_uuid_v7';
CREATE FUNCTION taskq._wake_publisher_at_commit() RETURNS void
  LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'taskq_wake_publisher_at_commit';

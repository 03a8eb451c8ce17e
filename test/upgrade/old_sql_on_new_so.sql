-- In a database that still has an older taskq version's SQL, with the new
-- taskq.so loaded (shared_preload_libraries): every C function that version
-- defines resolves in the new library and works, and jobs go through
-- enqueue, start and complete. Users run exactly this between installing a
-- new build and ALTER EXTENSION taskq UPDATE. Fails with the first thing
-- that does not work.
\set QUIET 1
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

DO $$
DECLARE
  f record;
  first uuid;
  second uuid;
  status record;
  job uuid;
  calls text := '';
BEGIN
  ASSERT (SELECT count(*) FROM pg_extension WHERE extname = 'taskq' AND extversion <> (
            SELECT default_version FROM pg_available_extensions WHERE name = 'taskq')) = 1,
         'the database has an older taskq than the installed default version';
  FOR f IN
    SELECT p.oid, p.oid::regprocedure::text AS sig
    FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
    JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
    JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'taskq'
    WHERE l.lanname = 'c'
    ORDER BY 2
  LOOP
    -- What CREATE FUNCTION checked at install time, checked again here:
    -- the symbol and its PG_FUNCTION_INFO_V1 record are in the library.
    PERFORM pg_catalog.fmgr_c_validator(f.oid);
    CASE f.sig
      WHEN 'taskq._uuid_v7()' THEN
        first := taskq._uuid_v7();
        second := taskq._uuid_v7();
        ASSERT substr(first::text, 15, 1) = '7' AND second > first, format('_uuid_v7: %s then %s', first, second);
      WHEN 'taskq._wake_publisher_at_commit()' THEN
        PERFORM taskq._wake_publisher_at_commit();
      WHEN 'taskq.publisher_status()' THEN
        SELECT * INTO STRICT status FROM taskq.publisher_status();
        ASSERT status.state IS NOT NULL, 'publisher_status() has a state';
        PERFORM * FROM taskq.publisher;
      ELSE
        RAISE EXCEPTION 'C function % is not called by test/upgrade/old_sql_on_new_so.sql: add a call', f.sig;
    END CASE;
    calls := calls || f.sig || ' ';
  END LOOP;
  ASSERT calls <> '', 'no C function found';

  PERFORM taskq.create_queue('upgrade_so_check');
  job := taskq.enqueue('upgrade_so_check', '{"served": "by the new taskq.so"}');
  ASSERT (SELECT count(*) FROM taskq.start(job, 1, 'w-old-sql')) = 1, 'start';
  ASSERT taskq.complete(job, 1, '{"ok": true}'), 'complete';
  ASSERT (SELECT count(*) FROM taskq.enqueue_many('upgrade_so_check', '[1, 2]')) = 2, 'enqueue_many';
END;
$$;

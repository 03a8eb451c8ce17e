// SQL-callable UUIDv7 generator: taskq._uuid_v7().
#include "core_bridge.h"
#include "pg_includes.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(taskq_uuid_v7);
Datum taskq_uuid_v7(PG_FUNCTION_ARGS) {
  char err[256];
  pg_uuid_t* out = static_cast<pg_uuid_t*>(palloc(sizeof(pg_uuid_t)));
  if (!taskq_bridge_next_uuid(out->data, err, sizeof(err)))
    ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not generate a job id: %s", err)));
  PG_RETURN_UUID_P(out);
}
}

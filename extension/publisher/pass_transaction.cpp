// Begin and end of the publisher's transactions (see pass_transaction.hpp).
#include "publisher/pass_transaction.hpp"

extern "C" {
#include "catalog/namespace.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "utils/snapmgr.h"
}

namespace taskq::publisher {

void begin_transaction(const char* activity) {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  SPI_connect();
  PushActiveSnapshot(GetTransactionSnapshot());
  pgstat_report_activity(STATE_RUNNING, activity);
}

bool lock_outbox(void) {
  RangeVar* outbox = makeRangeVar(pstrdup("taskq"), pstrdup("outbox"), -1);
  return OidIsValid(RangeVarGetRelid(outbox, AccessShareLock, true));
}

void finish_transaction(void) {
  PopActiveSnapshot();
  SPI_finish();
  CommitTransactionCommand();
  pgstat_report_stat(false);
  pgstat_report_activity(STATE_IDLE, nullptr);
}

char* copy_value(MemoryContext context, HeapTuple tuple, TupleDesc desc, int column) {
  char* value = SPI_getvalue(tuple, desc, column);
  return value == nullptr ? nullptr : MemoryContextStrdup(context, value);
}

}  // namespace taskq::publisher

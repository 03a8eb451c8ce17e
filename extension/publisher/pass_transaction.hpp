// The transaction around each unit of the publisher's work (a publishing
// pass, maintenance, recording publish times): begun, checked against a
// concurrent DROP EXTENSION, and ended the same way every time; and how a
// query's values outlive SPI's memory until the worker's pass is over.
#pragma once

#include "publisher/publisher_state.hpp"

extern "C" {
#include "executor/spi.h"
}

namespace taskq::publisher {

// Starts a transaction with a snapshot and SPI, and reports `activity` in
// pg_stat_activity.
void begin_transaction(const char* activity);

// Locks taskq.outbox for the rest of the transaction, so that DROP
// EXTENSION waits for the pass to end; false if the extension was dropped
// since the loop looked (a pass would otherwise die on a missing relation).
bool lock_outbox(void);

// Commits the transaction begun by begin_transaction and reports idle.
void finish_transaction(void);

// A column of an SPI result as text in `context` (NULL for SQL NULL), kept
// past the next SPI query.
char* copy_value(MemoryContext context, HeapTuple tuple, TupleDesc desc, int column);

}  // namespace taskq::publisher

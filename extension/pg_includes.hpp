// The one place PostgreSQL's C headers enter the PostgreSQL-facing layer of
// taskq.so. Files that include this must keep to the boundary rules in
// README "Hacking": no C++ object with a destructor may be alive on the stack
// while a PostgreSQL function that can ereport(ERROR) runs, and no C++
// exception may escape into a PostgreSQL frame (see core_bridge.h).
#pragma once

extern "C" {
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "utils/wait_event.h"
}

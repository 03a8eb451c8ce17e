// Reserves and initialises taskq's shared memory (PG15: request in
// shmem_request_hook, attach in shmem_startup_hook).
#include "shared_state.hpp"

extern "C" {
TaskqSharedState* taskq_shared = nullptr;
}

static shmem_request_hook_type prev_shmem_request_hook = nullptr;
static shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

static void taskq_shmem_request(void) {
  if (prev_shmem_request_hook) prev_shmem_request_hook();
  RequestAddinShmemSpace(MAXALIGN(sizeof(TaskqSharedState)));
}

static void taskq_shmem_startup(void) {
  if (prev_shmem_startup_hook) prev_shmem_startup_hook();
  bool found = false;
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  taskq_shared = static_cast<TaskqSharedState*>(ShmemInitStruct("taskq", sizeof(TaskqSharedState), &found));
  if (!found) {
    memset(taskq_shared, 0, sizeof(TaskqSharedState));
    SpinLockInit(&taskq_shared->mutex);
    taskq_job_waiters_init(&taskq_shared->job_waiters);
  }
  LWLockRelease(AddinShmemInitLock);
}

void taskq_request_shared_memory(void) {
  prev_shmem_request_hook = shmem_request_hook;
  shmem_request_hook = taskq_shmem_request;
  prev_shmem_startup_hook = shmem_startup_hook;
  shmem_startup_hook = taskq_shmem_startup;
}

int taskq_slot_of_database_locked(Oid db) {
  for (int i = 0; i < kTaskqMaxPublishers; i++)
    if (taskq_shared->slots[i].database == db) return i;
  return -1;
}

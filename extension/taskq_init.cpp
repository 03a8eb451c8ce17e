// Entry point of taskq.so: settings, shared memory, commit wake-ups (of the
// publisher and of taskq.wait()) and the background worker registration.
#include "pg_includes.hpp"
#include "settings.hpp"
#include "job_waiters.hpp"
#include "shared_state.hpp"

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

void taskq_register_commit_wakeup(void);
void taskq_register_publisher(void);

extern "C" void _PG_init(void) {
  taskq_define_settings();
  taskq_register_commit_wakeup();
  taskq_register_job_waiters();
  if (!process_shared_preload_libraries_in_progress) return;  // SQL API only; no publisher
  taskq_request_shared_memory();
  taskq_register_publisher();
}

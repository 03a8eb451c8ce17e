// GUC settings of taskq (names and meaning: docs/settings.md).
#pragma once

#include <stddef.h>

extern "C" {
extern char* taskq_database;              // database the background worker serves
extern char* taskq_broker_url;            // amqp://user:pass@host:port/vhost
extern char* taskq_broker_password_file;  // password of a broker URL without one; "" = none
extern char* taskq_exchange;              // direct exchange the jobs are routed by
extern int taskq_publish_batch_size;      // outbox rows claimed per pass
extern int taskq_poll_interval_ms;        // fallback wake-up of the publisher
extern int taskq_maintenance_interval_s;  // rescue / purge / reconcile period
extern int taskq_reconcile_after_s;       // a published, unstarted job older than this is published again
}

void taskq_define_settings(void);

// taskq.database is a comma-separated list of databases, one publisher
// each; blanks around a name are ignored, case is kept. How many there are,
// and the index-th one (0-based) copied into out (false past the end).
int taskq_database_count(void);
bool taskq_database_entry(int index, char* out, size_t outlen);

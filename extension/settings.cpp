// Defines the taskq.* GUCs. Reloadable ones are PGC_SIGHUP: the publisher
// re-reads them in its loop after ProcessConfigFile.
#include "settings.hpp"

#include "pg_includes.hpp"
#include "shared_state.hpp"

extern "C" {
#include "utils/guc.h"
}

extern "C" {
char* taskq_database = nullptr;
char* taskq_broker_url = nullptr;
char* taskq_broker_password_file = nullptr;
char* taskq_exchange = nullptr;
int taskq_publish_batch_size = 500;
int taskq_poll_interval_ms = 1000;
int taskq_maintenance_interval_s = 30;
int taskq_reconcile_after_s = 300;
}

namespace {

// Finds entry `index` of a taskq.database list: its start and length
// without the blanks around it; false past the end.
bool find_entry(const char* list, int index, const char** start, size_t* len) {
  const char* p = list;
  for (int i = 0;; i++) {
    const char* comma = strchr(p, ',');
    const char* end = comma != nullptr ? comma : p + strlen(p);
    if (i == index) {
      while (p < end && isspace(static_cast<unsigned char>(*p))) p++;
      while (end > p && isspace(static_cast<unsigned char>(end[-1]))) end--;
      *start = p;
      *len = static_cast<size_t>(end - p);
      return true;
    }
    if (comma == nullptr) return false;
    p = comma + 1;
  }
}

int count_entries(const char* list) {
  int n = 1;
  for (const char* p = list; *p != '\0'; p++) n += *p == ',' ? 1 : 0;
  return n;
}

bool check_database(char** newval, void** extra, GucSource source) {
  const char* list = *newval != nullptr ? *newval : "";
  const int n = count_entries(list);
  if (n > kTaskqMaxPublishers) {
    GUC_check_errdetail("taskq.database lists %d databases; at most %d are served.", n, kTaskqMaxPublishers);
    return false;
  }
  for (int i = 0; i < n; i++) {
    const char* start;
    size_t len;
    find_entry(list, i, &start, &len);
    if (len == 0) {
      GUC_check_errdetail("Database %d of %d in taskq.database is empty.", i + 1, n);
      return false;
    }
    if (len >= NAMEDATALEN) {
      GUC_check_errdetail("Database %d of %d in taskq.database is longer than %d bytes.", i + 1, n, NAMEDATALEN - 1);
      return false;
    }
  }
  return true;
}

}  // namespace

int taskq_database_count(void) { return count_entries(taskq_database != nullptr ? taskq_database : ""); }

bool taskq_database_entry(int index, char* out, size_t outlen) {
  const char* start;
  size_t len;
  if (taskq_database == nullptr || !find_entry(taskq_database, index, &start, &len)) return false;
  snprintf(out, outlen, "%.*s", static_cast<int>(len), start);
  return true;
}

void taskq_define_settings(void) {
  // Reloadable: a publisher whose entry changed exits and is started again
  // by the postmaster, connected to the new database. The number of
  // publishers is fixed at server start (static background workers): more
  // entries after a reload wait for the next restart.
  DefineCustomStringVariable("taskq.database", "Databases the taskq publisher serves, comma-separated.",
                             "One publisher per database; the extension must be created in each.", &taskq_database,
                             "postgres", PGC_SIGHUP, 0, check_database, nullptr, nullptr);
  // Superuser-only: the URL may carry the broker password. PostgreSQL still
  // logs its new value on reload, hence taskq.broker_password_file.
  DefineCustomStringVariable("taskq.broker_url",
                             "RabbitMQ URL the publisher connects to (amqp://user:pass@host:port/vhost).", nullptr,
                             &taskq_broker_url, "amqp://guest:guest@127.0.0.1:5672/", PGC_SIGHUP, GUC_SUPERUSER_ONLY,
                             nullptr, nullptr, nullptr);
  // Only the path is a setting (and logged on reload); the publisher reads
  // the file itself whenever it connects, so the password is never a GUC
  // value. Superuser-only all the same: where the secret lies is no one
  // else's business.
  DefineCustomStringVariable(
      "taskq.broker_password_file", "File holding the broker password for a taskq.broker_url without one.",
      "First line of the file; it must not be accessible by group or others (chmod 0600).", &taskq_broker_password_file,
      "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
  DefineCustomStringVariable("taskq.exchange", "Direct exchange jobs are published to.", nullptr, &taskq_exchange,
                             "taskq", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("taskq.publish_batch_size", "Outbox rows the publisher claims and confirms per pass.",
                          nullptr, &taskq_publish_batch_size, 500, 1, 10000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "taskq.poll_interval", "Fallback wake-up of the publisher; committing transactions wake it at once.", nullptr,
      &taskq_poll_interval_ms, 1000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("taskq.maintenance_interval",
                          "How often expired leases are rescued, finished jobs purged and lost messages reconciled.",
                          nullptr, &taskq_maintenance_interval_s, 30, 1, 24 * 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr,
                          nullptr, nullptr);
  DefineCustomIntVariable("taskq.reconcile_after",
                          "A pending job published this long ago and never started is published again, if its "
                          "RabbitMQ queue holds no ready message (the message was lost).",
                          nullptr, &taskq_reconcile_after_s, 300, 1, 7 * 24 * 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr,
                          nullptr, nullptr);
  MarkGUCPrefixReserved("taskq");
}

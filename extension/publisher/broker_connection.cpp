// Connecting to, staying connected to and disconnecting from the broker
// (see broker_connection.hpp). A broker that cannot be reached is retried
// with a capped backoff and logged once per distinct error, not per retry.
#include "publisher/broker_connection.hpp"

#include "publisher/status_update.hpp"
#include "settings.hpp"

extern "C" {
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

namespace taskq::publisher {
namespace {

// Logs a broker problem once per distinct message, not on every retry.
void log_once(PublisherState& st, const char* prefix, const char* error) {
  if (strcmp(error, st.last_logged_error) == 0) return;
  strlcpy(st.last_logged_error, error, sizeof(st.last_logged_error));
  ereport(LOG, (errmsg("taskq publisher: %s: %s", prefix, error)));
}

void redacted_broker(char* out, size_t len) {
  char err[256];
  if (!taskq_bridge_redact_url(taskq_broker_url, out, len, err, sizeof(err))) snprintf(out, len, "(invalid: %s)", err);
}

// Keeps a copy of a setting's value for as long as the worker lives.
void remember(char*& kept, const char* value) {
  if (kept != nullptr) pfree(kept);
  kept = MemoryContextStrdup(TopMemoryContext, value);
}

// Whether the live connection was made with other broker settings than the
// current ones (or with a password its file no longer holds); logs why.
bool needs_reconnect_after_reload(const PublisherState& st) {
  if (strcmp(st.connected_url, taskq_broker_url) != 0 || strcmp(st.connected_exchange, taskq_exchange) != 0 ||
      strcmp(st.connected_password_file, taskq_broker_password_file) != 0) {
    ereport(LOG, (errmsg("taskq publisher: broker settings changed; reconnecting")));
    return true;
  }
  char err[512];
  switch (taskq_pub_password_file_changed(st.publisher, err, sizeof(err))) {
    case 1:
      ereport(LOG, (errmsg("taskq publisher: the broker password file holds a new password; reconnecting")));
      return true;
    case -1:
      // The connection still works; a broken file should not end it. The
      // next connect reports the problem if it is still there.
      ereport(WARNING, (errmsg("taskq publisher: %s; keeping the current connection", err)));
      return false;
    default:
      return false;
  }
}

}  // namespace

void follow_broker_settings(PublisherState& st) {
  // Not connected: the reload may well be the fix (a corrected URL, a
  // rotated password), so try now rather than when the backoff runs out.
  if (st.publisher == nullptr) {
    st.next_connect_at = 0;
    return;
  }
  if (st.connected_url == nullptr || !needs_reconnect_after_reload(st)) return;
  close_connection(st);
  st.next_connect_at = 0;
}

void close_connection(PublisherState& st) {
  taskq_pub_close(st.publisher);
  st.publisher = nullptr;
  st.broker_blocked = false;
  update_shared([](TaskqPublisherSlot& shared) {
    shared.status.connected = false;
    shared.status.blocked = false;
  });
}

void disconnect(PublisherState& st, const char* why) {
  if (st.publisher == nullptr) return;
  close_connection(st);
  set_state("disconnected");
  record_error(why);
  char broker[256];
  redacted_broker(broker, sizeof(broker));
  ereport(WARNING, (errmsg("taskq publisher: lost the connection to %s: %s", broker, why)));
  strlcpy(st.last_logged_error, why, sizeof(st.last_logged_error));
  // Reconnect at once the first time, to a cluster's next node (this one
  // may be gone); back off if that fails too.
  st.broker_node++;
  st.next_connect_at = GetCurrentTimestamp();
}

void ensure_connected(PublisherState& st) {
  if (st.publisher != nullptr || GetCurrentTimestamp() < st.next_connect_at) return;
  set_state("connecting");
  char err[512];
  char name[NAMEDATALEN + 32];
  snprintf(name, sizeof(name), "taskq publisher (%s)", st.serving_database);
  char broker[256];
  redacted_broker(broker, sizeof(broker));
  update_shared(
      [&](TaskqPublisherSlot& shared) { strlcpy(shared.status.broker, broker, sizeof(shared.status.broker)); });
  char node[256] = "";
  st.publisher = taskq_pub_connect(taskq_broker_url, taskq_broker_password_file, taskq_exchange, name, &st.broker_node,
                                   node, sizeof(node), err, sizeof(err));
  if (st.publisher == nullptr) {
    ++st.connect_failures;
    const long delay = taskq_bridge_backoff_ms(st.connect_failures);
    st.next_connect_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
    set_state("connecting");
    record_error(err);
    char prefix[320];
    snprintf(prefix, sizeof(prefix), "cannot connect to %s (retrying with backoff)", broker);
    log_once(st, prefix, err);
    return;
  }
  st.connect_failures = 0;
  st.last_logged_error[0] = '\0';
  remember(st.connected_url, taskq_broker_url);
  remember(st.connected_exchange, taskq_exchange);
  remember(st.connected_password_file, taskq_broker_password_file);
  update_shared([&](TaskqPublisherSlot& shared) {
    if (shared.status.connected_since != 0) shared.status.reconnects++;
    shared.status.connected = true;
    shared.status.connected_since = GetCurrentTimestamp();
    strlcpy(shared.status.broker, node, sizeof(shared.status.broker));
    strlcpy(shared.status.state, "connected", sizeof(shared.status.state));
  });
  ereport(LOG, (errmsg("taskq publisher: connected to %s", node)));
}

void refresh_blocked(PublisherState& st) {
  char reason[128] = "";
  const bool blocked = taskq_pub_blocked(st.publisher, reason, sizeof(reason));
  if (blocked == st.broker_blocked) return;
  st.broker_blocked = blocked;
  update_shared([&](TaskqPublisherSlot& shared) { shared.status.blocked = blocked; });
  set_state(blocked ? "blocked" : "connected");
  if (blocked)
    ereport(WARNING, (errmsg("taskq publisher: the broker blocks publishing: %s", reason),
                      errhint("RabbitMQ raised a memory or disk alarm; jobs stay in the outbox until it clears.")));
  else
    ereport(LOG, (errmsg("taskq publisher: the broker accepts messages again")));
}

void service_connection(PublisherState& st) {
  if (st.publisher == nullptr) return;
  char err[512];
  if (taskq_pub_poll(st.publisher, err, sizeof(err)) != TASKQ_PUB_OK) {
    disconnect(st, err);
    return;
  }
  refresh_blocked(st);
}

}  // namespace taskq::publisher

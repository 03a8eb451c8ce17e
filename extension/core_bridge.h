/*
 * core_bridge.h: the C-ABI between the PostgreSQL-facing layer of taskq.so
 * and the C++ core in extension/core/.
 *
 * Every function here is noexcept: the implementation catches every C++
 * exception and reports failure through its return value and an error
 * buffer, so the caller can ereport() with no C++ frame left to unwind.
 * Arguments and results are plain data only.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes the next UUIDv7 of this backend into out[16]. */
bool taskq_bridge_next_uuid(uint8_t out[16], char* err, size_t errlen) noexcept;

/* Reconnect delay (ms) before retry number `attempt` (1 = first retry):
 * capped exponential backoff with jitter. */
long taskq_bridge_backoff_ms(unsigned attempt) noexcept;

/* Validates a broker URL (or a comma-separated list of them) and writes
 * its password-free form. */
bool taskq_bridge_redact_url(const char* url, char* out, size_t outlen, char* err, size_t errlen) noexcept;

/* --- schedules --------------------------------------------------------- */

/* Times are microseconds since 1970-01-01 UTC; the rules (DST, @every
 * anchors) are those of core/cron_schedule.hpp. */
enum taskq_cron_status {
  TASKQ_CRON_OK = 0,
  TASKQ_CRON_INVALID = 1, /* bad expression or unknown zone: err is the message for the user */
  TASKQ_CRON_FAILED = 2   /* out of memory */
};

/* The first tick strictly after `after`; *has_next = false when it would be
 * out of range. Expression and zone need not be NUL-terminated. */
int taskq_bridge_cron_next(const char* expression, size_t expression_len, const char* zone, size_t zone_len,
                           int64_t after, int64_t anchor, bool* has_next, int64_t* next, char* err,
                           size_t errlen) noexcept;

/* The latest max_ticks ticks t with from <= t <= until, ascending, into
 * ticks[0..*count); *skipped: older ticks of the window left out. */
int taskq_bridge_cron_ticks(const char* expression, size_t expression_len, const char* zone, size_t zone_len,
                            int64_t from, int64_t until, int64_t anchor, int64_t* ticks, size_t max_ticks,
                            size_t* count, uint64_t* skipped, char* err, size_t errlen) noexcept;

/* --- trace context ------------------------------------------------------ */

/* Why the value is not a valid W3C traceparent / tracestate (a static
 * message, never freed), or NULL when it is valid; see
 * core/trace_context.hpp. The value need not be NUL-terminated. *member
 * receives the 1-based list member a tracestate problem is about. */
const char* taskq_bridge_traceparent_problem(const char* value, size_t len) noexcept;
const char* taskq_bridge_tracestate_problem(const char* value, size_t len, int* member) noexcept;

/* --- publisher ---------------------------------------------------------- */

typedef struct taskq_publisher taskq_publisher;

typedef struct taskq_outbox_message {
  int64_t outbox_id;
  const char* job_id;
  const char* queue_name;
  const char* queue_type;
  const char* task; /* NULL: the job has no task */
  int priority;
  int attempt;
  int64_t enqueued_at;      /* unix seconds */
  const char* headers_json; /* NULL or a flat JSON object of strings */
  const char* body;         /* the contract's JSON body */
} taskq_outbox_message;

enum taskq_pub_status {
  TASKQ_PUB_OK = 0,
  TASKQ_PUB_MESSAGE_FAILED = 1, /* this message only: try it again later */
  TASKQ_PUB_CONNECTION_LOST = 2 /* reconnect; nothing outstanding will be confirmed */
};

/* Connects in confirm mode and declares the exchange; NULL on failure.
 * url is one amqp:// URL or a comma-separated list of a cluster's nodes
 * (see broker_nodes.hpp): they are tried in turn from *node on, and *node
 * becomes the one connected to (or, on failure, the one to try first next
 * time); node_url gets its password-free URL. password_file (NULL or "":
 * none) gives the password of URLs without one (see
 * broker_password_file.hpp); it is read now, on every connect. */
taskq_publisher* taskq_pub_connect(const char* url, const char* password_file, const char* exchange,
                                   const char* connection_name, size_t* node, char* node_url, size_t node_urllen,
                                   char* err, size_t errlen) noexcept;
/* basic.nacks since the broker last acked a publish on this connection. */
uint64_t taskq_pub_nacks_in_a_row(const taskq_publisher* pub) noexcept;
/* Whether the password file this connection logged in with now holds
 * another password: 1 yes, 0 no (or no file was used), -1 the file cannot
 * be read now (err says why, never with the password). */
int taskq_pub_password_file_changed(const taskq_publisher* pub, char* err, size_t errlen) noexcept;
/* Closes (quickly, see AmqpConnection::close_quickly) and frees; NULL is fine. */
void taskq_pub_close(taskq_publisher* pub) noexcept;
int taskq_pub_socket(const taskq_publisher* pub) noexcept;
int taskq_pub_publish(taskq_publisher* pub, const taskq_outbox_message* msg, char* err, size_t errlen) noexcept;
/* One message for count (>= 1) jobs of the same queue and priority, in this
 * order (docs/message-format.md#several-jobs-per-message); the status is
 * that of all of them. */
int taskq_pub_publish_packed(taskq_publisher* pub, const taskq_outbox_message* const* msgs, int count, char* err,
                             size_t errlen) noexcept;
/* Handles what has arrived without blocking: TASKQ_PUB_OK or _CONNECTION_LOST. */
int taskq_pub_poll(taskq_publisher* pub, char* err, size_t errlen) noexcept;
size_t taskq_pub_outstanding(const taskq_publisher* pub) noexcept;
void taskq_pub_fail_outstanding(taskq_publisher* pub, const char* reason) noexcept;
/* Moves up to cap resolved outcomes into ids/confirmed; the reason of the
 * last failure among them goes to reason. Returns how many. */
size_t taskq_pub_take_resolved(taskq_publisher* pub, int64_t* ids, bool* confirmed, size_t cap, char* reason,
                               size_t reasonlen) noexcept;
/* Ready messages in the RabbitMQ queue of a taskq queue; -1: the queue does
 * not exist; -2: connection lost (err says why). */
long taskq_pub_ready_messages(taskq_publisher* pub, const char* queue_name, char* err, size_t errlen) noexcept;
/* True while the broker blocks publishing (resource alarm). */
bool taskq_pub_blocked(const taskq_publisher* pub, char* reason, size_t reasonlen) noexcept;

#ifdef __cplusplus
}
#endif

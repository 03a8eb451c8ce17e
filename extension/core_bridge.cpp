// Implementation of core_bridge.h: thin wrappers that turn C++ exceptions
// into an error string. This file must not include PostgreSQL headers.
#include "core_bridge.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/amqp_error.hpp"
#include "core/backoff.hpp"
#include "core/broker_password_file.hpp"
#include "core/broker_nodes.hpp"
#include "core/broker_url.hpp"
#include "core/confirmed_publisher.hpp"
#include "core/cron_schedule.hpp"
#include "core/cron_ticks.hpp"
#include "core/trace_context.hpp"
#include "core/uuid_v7.hpp"

// The core's checks are noexcept and allocate nothing: nothing to guard.
extern "C" const char* taskq_bridge_traceparent_problem(const char* value, size_t len) noexcept {
  return taskq::traceparent_problem(std::string_view(value, len));
}

extern "C" const char* taskq_bridge_tracestate_problem(const char* value, size_t len, int* member) noexcept {
  return taskq::tracestate_problem(std::string_view(value, len), member);
}

struct taskq_publisher {
  taskq::ConfirmedPublisher publisher;
  std::vector<taskq::ConfirmOutcome> resolved;  // taken by taskq_pub_take_resolved
  // The password file the login used ("" if none) and a hash of what it
  // held then: enough to notice a rotation without keeping the password.
  std::string password_file;
  std::size_t password_hash;
};

namespace {

void copy_error(char* err, size_t errlen, const char* what) noexcept {
  if (err == nullptr || errlen == 0) return;
  std::snprintf(err, errlen, "%s", what);
}

// Runs fn, turning any exception into false + message.
template <typename Fn>
bool guarded(char* err, size_t errlen, Fn&& fn) noexcept {
  try {
    fn();
    return true;
  } catch (const std::exception& e) {
    copy_error(err, errlen, e.what());
  } catch (...) {
    copy_error(err, errlen, "unknown C++ exception");
  }
  return false;
}

// Like guarded, but maps AmqpError scopes to publisher status codes.
template <typename Fn>
int guarded_publisher(char* err, size_t errlen, Fn&& fn) noexcept {
  try {
    fn();
    return TASKQ_PUB_OK;
  } catch (const taskq::AmqpError& e) {
    copy_error(err, errlen, e.what());
    return e.needs_reconnect() ? TASKQ_PUB_CONNECTION_LOST : TASKQ_PUB_MESSAGE_FAILED;
  } catch (const std::exception& e) {
    copy_error(err, errlen, e.what());
  } catch (...) {
    copy_error(err, errlen, "unknown C++ exception");
  }
  return TASKQ_PUB_MESSAGE_FAILED;
}

}  // namespace

extern "C" bool taskq_bridge_next_uuid(uint8_t out[16], char* err, size_t errlen) noexcept {
  return guarded(err, errlen, [&] {
    // One generator per backend: ids are monotonic within a session.
    static taskq::UuidV7Generator generator;
    const taskq::Uuid id = generator.next();
    std::memcpy(out, id.data(), id.size());
  });
}

extern "C" long taskq_bridge_backoff_ms(unsigned attempt) noexcept {
  static thread_local std::minstd_rand rng{std::random_device{}()};
  const taskq::BackoffPolicy policy{std::chrono::milliseconds(200), std::chrono::milliseconds(30'000), 0.5};
  const double unit = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  return static_cast<long>(taskq::backoff_delay(policy, attempt, unit).count());
}

extern "C" bool taskq_bridge_redact_url(const char* url, char* out, size_t outlen, char* err, size_t errlen) noexcept {
  return guarded(err, errlen, [&] { copy_error(out, outlen, taskq::BrokerNodes::parse(url).redacted().c_str()); });
}

// The core says "out of memory" for an allocation failure; every other
// error is about the user's expression or zone.
static int cron_error_status(const taskq::CronError& error) noexcept {
  return error.message == "out of memory" ? TASKQ_CRON_FAILED : TASKQ_CRON_INVALID;
}

extern "C" int taskq_bridge_cron_next(const char* expression, size_t expression_len, const char* zone, size_t zone_len,
                                      int64_t after, int64_t anchor, bool* has_next, int64_t* next, char* err,
                                      size_t errlen) noexcept {
  const taskq::CronNextRun run = taskq::cron_next_run(std::string_view(expression, expression_len),
                                                      std::string_view(zone, zone_len), after, anchor);
  if (!run.ok) {
    copy_error(err, errlen, run.error.message.c_str());
    return cron_error_status(run.error);
  }
  *has_next = run.has_next;
  *next = run.next;
  return TASKQ_CRON_OK;
}

extern "C" int taskq_bridge_cron_ticks(const char* expression, size_t expression_len, const char* zone, size_t zone_len,
                                       int64_t from, int64_t until, int64_t anchor, int64_t* ticks, size_t max_ticks,
                                       size_t* count, uint64_t* skipped, char* err, size_t errlen) noexcept {
  const taskq::CronTicks found = taskq::cron_ticks(std::string_view(expression, expression_len),
                                                   std::string_view(zone, zone_len), from, until, anchor, max_ticks);
  if (!found.ok) {
    copy_error(err, errlen, found.error.message.c_str());
    return cron_error_status(found.error);
  }
  std::copy(found.ticks.begin(), found.ticks.end(), ticks);
  *count = found.ticks.size();
  *skipped = found.skipped;
  return TASKQ_CRON_OK;
}

extern "C" taskq_publisher* taskq_pub_connect(const char* url, const char* password_file, const char* exchange,
                                              const char* connection_name, size_t* node, char* node_url,
                                              size_t node_urllen, char* err, size_t errlen) noexcept {
  taskq_publisher* pub = nullptr;
  guarded(err, errlen, [&] {
    taskq::ConnectOptions options;
    options.connection_name = connection_name;
    options.send_timeout_ms = 3000;
    taskq::BrokerNodes nodes = taskq::BrokerNodes::parse(url);
    const std::string file = password_file != nullptr ? password_file : "";
    bool from_file = false;
    for (auto& each : nodes.nodes()) from_file = taskq::apply_broker_password_file(each, file) || from_file;
    nodes.start_at(*node);
    try {
      pub = nodes.connect_any<taskq_publisher*>([&](const taskq::BrokerUrl& each) {
        return new taskq_publisher{taskq::ConfirmedPublisher(each, exchange, options),
                                   {},
                                   from_file ? file : "",
                                   std::hash<std::string>{}(each.password)};
      });
    } catch (...) {
      *node = nodes.current_index();
      throw;
    }
    *node = nodes.current_index();
    copy_error(node_url, node_urllen, nodes.current().redacted().c_str());
  });
  return pub;
}

extern "C" uint64_t taskq_pub_nacks_in_a_row(const taskq_publisher* pub) noexcept {
  return pub->publisher.nacks_in_a_row();
}

extern "C" int taskq_pub_password_file_changed(const taskq_publisher* pub, char* err, size_t errlen) noexcept {
  if (pub->password_file.empty()) return 0;
  int changed = -1;
  guarded(err, errlen, [&] {
    const std::size_t now = std::hash<std::string>{}(taskq::read_broker_password_file(pub->password_file));
    changed = now != pub->password_hash ? 1 : 0;
  });
  return changed;
}

extern "C" void taskq_pub_close(taskq_publisher* pub) noexcept {
  if (pub == nullptr) return;
  pub->publisher.close_quickly();
  delete pub;  // destructors of the core never throw
}

extern "C" int taskq_pub_socket(const taskq_publisher* pub) noexcept { return pub->publisher.socket_fd(); }

namespace {

taskq::JobMessage job_message_of(const taskq_outbox_message* msg) {
  taskq::JobMessage message;
  message.job_id = msg->job_id;
  message.queue_name = msg->queue_name;
  message.has_task = msg->task != nullptr;
  if (msg->task != nullptr) message.task = msg->task;
  message.priority = msg->priority;
  message.attempt = msg->attempt;
  message.enqueued_at = msg->enqueued_at;
  if (msg->headers_json != nullptr) message.headers = taskq::parse_flat_string_object(msg->headers_json);
  message.body = msg->body;
  return message;
}

}  // namespace

extern "C" int taskq_pub_publish(taskq_publisher* pub, const taskq_outbox_message* msg, char* err,
                                 size_t errlen) noexcept {
  return guarded_publisher(err, errlen, [&] {
    const taskq::JobMessage message = job_message_of(msg);
    pub->publisher.ensure_queue(message.queue_name, msg->queue_type);
    pub->publisher.publish(msg->outbox_id, message);
  });
}

extern "C" int taskq_pub_publish_packed(taskq_publisher* pub, const taskq_outbox_message* const* msgs, int count,
                                        char* err, size_t errlen) noexcept {
  return guarded_publisher(err, errlen, [&] {
    std::vector<taskq::JobMessage> parts;
    parts.reserve(static_cast<std::size_t>(count));
    std::vector<const taskq::JobMessage*> views;
    std::vector<std::int64_t> ids;
    for (int i = 0; i < count; i++) {
      parts.push_back(job_message_of(msgs[i]));
      ids.push_back(msgs[i]->outbox_id);
    }
    for (const auto& part : parts) views.push_back(&part);
    const taskq::JobMessage message = taskq::pack_job_messages(views);
    pub->publisher.ensure_queue(message.queue_name, msgs[0]->queue_type);
    pub->publisher.publish(std::move(ids), message);
  });
}

extern "C" int taskq_pub_poll(taskq_publisher* pub, char* err, size_t errlen) noexcept {
  const int status = guarded_publisher(err, errlen, [&] { pub->publisher.poll(); });
  return status == TASKQ_PUB_OK ? TASKQ_PUB_OK : TASKQ_PUB_CONNECTION_LOST;
}

extern "C" size_t taskq_pub_outstanding(const taskq_publisher* pub) noexcept { return pub->publisher.outstanding(); }

extern "C" void taskq_pub_fail_outstanding(taskq_publisher* pub, const char* reason) noexcept {
  char ignored[8];
  guarded(ignored, sizeof(ignored), [&] { pub->publisher.fail_outstanding(reason); });
}

extern "C" size_t taskq_pub_take_resolved(taskq_publisher* pub, int64_t* ids, bool* confirmed, size_t cap, char* reason,
                                          size_t reasonlen) noexcept {
  size_t n = 0;
  char ignored[8];
  guarded(ignored, sizeof(ignored), [&] {
    for (auto& outcome : pub->publisher.take_resolved()) pub->resolved.push_back(std::move(outcome));
    while (n < cap && n < pub->resolved.size()) {
      const auto& outcome = pub->resolved[n];
      ids[n] = outcome.outbox_id;
      confirmed[n] = outcome.confirmed;
      if (!outcome.confirmed) copy_error(reason, reasonlen, outcome.reason.c_str());
      ++n;
    }
    pub->resolved.erase(pub->resolved.begin(), pub->resolved.begin() + static_cast<long>(n));
  });
  return n;
}

extern "C" long taskq_pub_ready_messages(taskq_publisher* pub, const char* queue_name, char* err,
                                         size_t errlen) noexcept {
  long ready = -2;
  const int status = guarded_publisher(err, errlen, [&] { ready = pub->publisher.ready_messages(queue_name); });
  return status == TASKQ_PUB_OK ? ready : -2;
}

extern "C" bool taskq_pub_blocked(const taskq_publisher* pub, char* reason, size_t reasonlen) noexcept {
  if (!pub->publisher.blocked()) return false;
  copy_error(reason, reasonlen, pub->publisher.blocked_reason().c_str());
  return true;
}

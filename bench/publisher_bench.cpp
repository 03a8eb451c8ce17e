// Publisher benchmark (issue: outbox publisher), run by `make bench`:
//
//  publish_latency    commit of a one-job transaction -> message received by a
//                     consumer of the RabbitMQ queue; idle system, one job at a time
//  publish_throughput outbox rows preloaded while the queue is paused, then
//                     resumed: rows confirmed per second by the publisher
//  bare_throughput    the same number of messages, same properties, body size
//                     and batch size, persistent and mandatory, into the same
//                     queue type, published by a bare rabbitmq-c confirmed
//                     publisher; run before and after taskq's, and the ratio
//                     is taken against the mean of the two, so that a change
//                     of machine load during the run does not favour either
//
// Prints RESULT lines in the format described in bench/README.md.
#include <amqp.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "core/amqp_connection.hpp"
#include "db/pg_connection.hpp"

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size()))) - 1;
  return v[std::min(rank, v.size() - 1)];
}

// 100-byte payload, like the peer benchmark's.
std::string payload(int seq) {
  std::string p = "{\"seq\":" + std::to_string(seq) + ",\"kind\":\"bench\",\"tenant\":\"acme\",\"pad\":\"";
  while (p.size() < 98) p += 'x';
  return p + "\"}";
}

void result(const char* peer, const char* scenario, long jobs, double seconds, double p50, double p99) {
  std::printf("RESULT peer=%s scenario=%s jobs=%ld seconds=%.3f rate=%.1f p50_ms=%s p99_ms=%s\n", peer, scenario, jobs,
              seconds, seconds > 0 ? static_cast<double>(jobs) / seconds : 0.0,
              p50 >= 0 ? std::to_string(p50).substr(0, 6).c_str() : "-",
              p99 >= 0 ? std::to_string(p99).substr(0, 6).c_str() : "-");
  std::fflush(stdout);
}

// Waits for the next message on a basic.consume'd channel.
bool next_message(taskq::AmqpConnection& c, std::chrono::milliseconds timeout) {
  amqp_envelope_t envelope;
  timeval tv{static_cast<long>(timeout.count() / 1000), static_cast<long>((timeout.count() % 1000) * 1000)};
  amqp_maybe_release_buffers(c.state());
  const amqp_rpc_reply_t r = amqp_consume_message(c.state(), &envelope, &tv, 0);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) return false;
  amqp_destroy_envelope(&envelope);
  return true;
}

void publish_latency(taskq::PgConnection& db, const taskq::BrokerUrl& url, int jobs) {
  db.exec("SELECT taskq.create_queue('bench_latency')");
  taskq::AmqpConnection consumer(url, {});
  taskq::declare_taskq_queue(consumer, "taskq", "bench_latency", "classic");
  amqp_basic_consume(consumer.state(), 1, amqp_cstring_bytes("taskq.bench_latency"), amqp_empty_bytes, 0, 1, 0,
                     amqp_empty_table);
  taskq::check_rpc_reply(amqp_get_rpc_reply(consumer.state()), "consume");
  std::this_thread::sleep_for(1s);  // idle
  std::vector<double> latencies;
  const auto start = Clock::now();
  for (int i = 0; i < jobs; ++i) {
    const std::string p = payload(i);
    db.exec("SELECT taskq.enqueue('bench_latency', $1::jsonb)", {p.c_str()});  // autocommit: returns after COMMIT
    const auto committed = Clock::now();
    if (!next_message(consumer, 5s)) {
      std::fprintf(stderr, "publish_latency: message %d did not arrive\n", i);
      break;
    }
    latencies.push_back(ms_since(committed));
    std::this_thread::sleep_for(10ms);
  }
  result("taskq", "publish_latency", static_cast<long>(latencies.size()),
         std::chrono::duration<double>(Clock::now() - start).count(), percentile(latencies, 0.5),
         percentile(latencies, 0.99));
}

double publish_throughput(taskq::PgConnection& db, int jobs) {
  db.exec("SELECT taskq.create_queue('bench_rate')");
  db.exec("SELECT taskq.pause_queue('bench_rate')");
  for (int done = 0; done < jobs; done += 1000) {
    std::string arr = "[";
    for (int i = 0; i < 1000 && done + i < jobs; ++i) arr += (i ? "," : "") + payload(done + i);
    arr += "]";
    db.exec("SELECT count(*) FROM taskq.enqueue_many('bench_rate', $1::jsonb)", {arr.c_str()});
  }
  db.exec("CHECKPOINT");
  // Watch the publisher's confirmed counter (shared memory): polling the
  // outbox table itself would steal CPU from the publisher on a small box.
  const long before = std::stol(db.value("SELECT confirmed FROM taskq.publisher_status()"));
  const auto start = Clock::now();
  db.exec("SELECT taskq.resume_queue('bench_rate')");
  while (std::stol(db.value("SELECT confirmed FROM taskq.publisher_status()")) < before + jobs)
    std::this_thread::sleep_for(2ms);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result("taskq", "publish_throughput", jobs, seconds, -1, -1);
  return jobs / seconds;
}

// The yardstick: rabbitmq-c publishing the same messages in confirm mode,
// `batch` at a time, waiting for every confirm of a batch before the next.
double bare_throughput(const taskq::BrokerUrl& url, int jobs, int batch) {
  taskq::AmqpConnection c(url, {});
  taskq::declare_taskq_queue(c, "taskq", "bench_bare", "classic");
  amqp_confirm_select(c.state(), 1);
  taskq::check_rpc_reply(amqp_get_rpc_reply(c.state()), "confirm.select");
  // The properties taskq sends (docs/message-format.md; no task, so no type).
  amqp_table_entry_t attempt{};
  attempt.key = amqp_cstring_bytes("x-taskq-attempt");
  attempt.value.kind = AMQP_FIELD_KIND_I32;
  attempt.value.value.i32 = 1;
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                 AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_HEADERS_FLAG;
  props.content_type = amqp_cstring_bytes("application/json");
  props.delivery_mode = 2;
  props.message_id = amqp_cstring_bytes("01a2b3c4-0000-7000-8000-000000000000");
  props.priority = 0;
  props.timestamp = 1'780'000'000;
  props.headers = amqp_table_t{1, &attempt};
  // Same size as taskq's body: payload wrapped in the contract's envelope.
  const std::string body =
      "{\"id\":\"01a2b3c4-0000-7000-8000-000000000000\",\"queue\":\"bench_bare\",\"task\":null,"
      "\"payload\":" +
      payload(0) +
      ",\"attempt\":1,\"max_attempts\":5,"
      "\"enqueued_at\":\"2026-01-01T00:00:00.123456+00:00\",\"headers\":{}}";
  const auto start = Clock::now();
  uint64_t tag = 0;
  for (int sent = 0; sent < jobs;) {
    const int n = std::min(batch, jobs - sent);
    for (int i = 0; i < n; ++i) {
      amqp_basic_publish(c.state(), 1, amqp_cstring_bytes("taskq"), amqp_cstring_bytes("bench_bare"), 1, 0, &props,
                         amqp_bytes_t{body.size(), const_cast<char*>(body.data())});
    }
    sent += n;
    const uint64_t want = tag + static_cast<uint64_t>(n);
    while (tag < want) {
      amqp_frame_t frame;
      if (amqp_simple_wait_frame(c.state(), &frame) != AMQP_STATUS_OK) return 0;
      if (frame.frame_type == AMQP_FRAME_METHOD && frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        const auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        tag = ack->delivery_tag;  // multiple acks cover everything up to it
      }
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result("bare-rabbitmq-c", "publish_throughput", jobs, seconds, -1, -1);
  amqp_queue_purge(c.state(), 1, amqp_cstring_bytes("taskq.bench_bare"));
  return jobs / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  const int jobs = argc > 1 ? std::atoi(argv[1]) : 20000;
  const int latency_jobs = argc > 2 ? std::atoi(argv[2]) : 300;
  try {
    taskq::PgConnection db(env_or("TASKQ_TEST_DATABASE_URL", "dbname=taskq"));
    db.exec("SET client_min_messages = warning");
    // A fresh extension: the bench's queues and counters start empty.
    db.exec("DROP EXTENSION IF EXISTS taskq CASCADE");
    db.exec("CREATE EXTENSION taskq");
    const auto url = taskq::BrokerUrl::parse(env_or("TASKQ_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/"));
    const int batch = std::stoi(db.value("SHOW taskq.publish_batch_size"));
    {
      // Start from empty RabbitMQ queues: a long queue slows the broker down.
      taskq::AmqpConnection admin(url, {});
      for (const char* q : {"taskq.bench_latency", "taskq.bench_rate", "taskq.bench_bare"}) {
        amqp_queue_delete(admin.state(), 1, amqp_cstring_bytes(q), 0, 0);
        taskq::check_rpc_reply(amqp_get_rpc_reply(admin.state()), "deleting a bench queue");
      }
    }
    publish_latency(db, url, latency_jobs);
    const double bare_before = bare_throughput(url, jobs, batch);
    const double taskq_rate = publish_throughput(db, jobs);
    {
      // As the bare runs do: leave no long queue behind for the next run.
      taskq::AmqpConnection admin(url, {});
      amqp_queue_purge(admin.state(), 1, amqp_cstring_bytes("taskq.bench_rate"));
      taskq::check_rpc_reply(amqp_get_rpc_reply(admin.state()), "purging the bench queue");
    }
    const double bare_after = bare_throughput(url, jobs, batch);
    const double bare_rate = (bare_before + bare_after) / 2;
    std::printf(
        "NOTE peer=taskq scenario=publish_throughput batch_size=%d bare_before=%.0f bare_after=%.0f "
        "ratio_to_bare=%.2f\n",
        batch, bare_before, bare_after, bare_rate > 0 ? taskq_rate / bare_rate : 0.0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "publisher_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

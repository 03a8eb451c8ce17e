// See heartbeater.hpp.
#include "pipeline/heartbeater.hpp"

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "db/job_store.hpp"
#include "operations/log.hpp"

namespace taskq {
namespace {

using namespace std::chrono_literals;

// An idle worker checks its database this often (for /healthz).
constexpr std::chrono::milliseconds kIdlePingEvery = 5s;
// After a failed heartbeat, the next try.
constexpr std::chrono::milliseconds kRetryHeartbeatAfter = 1s;

}  // namespace

void Heartbeater::run() {
  JobStore store(options_.database, options_.name);
  auto last_contact = Clock::now();
  std::unique_lock<std::mutex> lock(state_.mu);
  while (!state_.stop_finisher) {
    const auto now = Clock::now();
    std::vector<AttemptRef> due;
    std::vector<std::string> keys;
    auto next_wake = now + 1s;
    for (auto& [key, job] : state_.in_flight) {
      if (job->next_heartbeat <= now) {
        due.push_back({job->job.id, job->job.attempt});
        keys.push_back(key);
        job->next_heartbeat = now + job->heartbeat_every;
      }
      next_wake = std::min(next_wake, job->next_heartbeat);
      if (!job->acked && now - job->started_at >= options_.early_ack_after) {
        // RabbitMQ would close the channel at its consumer_timeout; the
        // job is PostgreSQL's (lease) since its start.
        job->acked = true;
        queue_ack_locked(state_, job->delivery);
        wake_.wake();
        log::info(job->job, "still running after {}s: delivery acknowledged early", options_.early_ack_after.count());
      }
    }
    if (!due.empty()) {
      lock.unlock();
      std::vector<bool> extended;
      bool ok = true;
      for (std::size_t from = 0; from < due.size() && ok; from += kMaxBatch) {
        const std::vector<AttemptRef> part(due.begin() + static_cast<long>(from),
                                           due.begin() + static_cast<long>(std::min(due.size(), from + kMaxBatch)));
        try {
          const auto got = store.heartbeat(part);
          extended.insert(extended.end(), got.begin(), got.end());
          metrics_.set_connected("database", true);
          watch_.up();
        } catch (const DbError& e) {
          metrics_.set_connected("database", false);
          // Try again soon; a lease is several heartbeats long.
          log::warn("database: heartbeat failed: {}", e.what());
          if (e.connection_lost()) watch_.down(e.what(), kRetryHeartbeatAfter);
          ok = false;
        }
      }
      lock.lock();
      last_contact = Clock::now();
      for (std::size_t n = 0; n < keys.size(); ++n) {
        auto it = state_.in_flight.find(keys[n]);
        if (it == state_.in_flight.end()) continue;  // finished meanwhile
        if (!ok) {
          it->second->next_heartbeat = std::min(it->second->next_heartbeat, Clock::now() + kRetryHeartbeatAfter);
        } else if (!extended[n] && !it->second->handler_done && !it->second->token.cancelled()) {
          it->second->token.cancel("cancel requested or lease lost");
          log::warn(it->second->job, "heartbeat refused (cancel requested or lease lost): stopping its handler");
        }
      }
      continue;
    }
    if (now - last_contact >= kIdlePingEvery) {
      // Nothing to heartbeat: still tell /healthz whether the database is there.
      lock.unlock();
      try {
        store.ping();
        metrics_.set_connected("database", true);
        watch_.up();
      } catch (const DbError& e) {
        metrics_.set_connected("database", false);
        if (e.connection_lost()) watch_.down(e.what(), kIdlePingEvery);
      }
      lock.lock();
      last_contact = Clock::now();
      continue;
    }
    state_.changed_cv.wait_until(lock, std::min(next_wake, last_contact + kIdlePingEvery));
  }
}

}  // namespace taskq

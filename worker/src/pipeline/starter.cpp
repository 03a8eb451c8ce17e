// See starter.hpp.
#include "pipeline/starter.hpp"

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>

#include "broker/job_parser.hpp"
#include "operations/log.hpp"
#include "pipeline/db_retry.hpp"

namespace taskq {

using namespace std::chrono_literals;

// How many more jobs may start now. Short jobs are started ahead of the
// runners, up to `concurrency` of them: a start costs one round trip and
// one commit whatever its batch size, so bigger batches are what make
// thousands of short jobs per second possible. Long jobs are not started
// ahead: a job shown `running` would wait behind another long job here
// while other workers might be idle. Caller holds state_.mu.
int Starter::free_slots() const {
  const int lookahead = state_.quick_handlers() ? options_.concurrency : 0;
  return options_.concurrency + lookahead - state_.handlers_busy;
}

void Starter::queue_ack(const Delivery& d) {
  {
    std::lock_guard<std::mutex> lock(state_.mu);
    queue_ack_locked(state_, d);
  }
  wake_.wake();
}

const Handler* Starter::handler_for(const Job& job) const {
  if (!job.task.empty()) {
    auto t = by_task_.find(job.task);
    if (t != by_task_.end()) return &t->second;
  }
  auto q = by_queue_.find(job.queue);
  return q == by_queue_.end() ? nullptr : &q->second;
}

void Starter::run() {
  JobStore store(options_.database, options_.name);
  for (;;) {
    std::vector<Delivery> batch;
    {
      std::unique_lock<std::mutex> lock(state_.mu);
      state_.starter_cv.wait(lock,
                             [&] { return state_.stop_starting || (!state_.pending.empty() && free_slots() > 0); });
      // Pending deliveries are never acked now: the broker requeues them
      // when the connection closes.
      if (state_.stop_starting) return;
      const auto n = std::min<std::size_t>({state_.pending.size(), static_cast<std::size_t>(free_slots()), kMaxBatch});
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(state_.pending.front()));
        state_.pending.pop_front();
      }
      // Reserve the slots while the start is under way.
      state_.handlers_busy += static_cast<int>(n);
      state_.starting = true;
    }
    const int reserved = static_cast<int>(batch.size());
    const int used = start_batch(store, batch);
    std::lock_guard<std::mutex> lock(state_.mu);
    state_.handlers_busy -= reserved - used;
    state_.starting = false;
    state_.changed_cv.notify_all();  // shutdown waits for this
  }
}

// Starts what it can of `batch`; returns how many jobs went to runners
// (their slots stay reserved until their handlers return).
int Starter::start_batch(JobStore& store, std::vector<Delivery>& batch) {
  std::vector<std::pair<Delivery*, Job>> valid;
  for (auto& d : batch) {
    std::string error;
    auto job = parse_job_message(d.body, d.queue, &error);
    if (!job) {
      log::error(log::JobRef::queue_only(d.queue), "dropping a malformed message: {}", error);
      metrics_.delivery_dropped(d.queue, DropReason::kMalformed);
      queue_ack(d);
      continue;
    }
    valid.emplace_back(&d, std::move(*job));
  }
  if (valid.empty()) return 0;

  std::vector<AttemptRef> items;
  for (const auto& [d, job] : valid) items.push_back({job.id, job.attempt});
  std::vector<std::optional<StartedJob>> started;
  std::vector<bool> held;  // per item: a flow limit held the job back
  const auto stopping = [&] { return stop_.requested(); };
  // One request id for this batch, its retries and the one-by-one starts
  // below: a retry after a lost answer gets the jobs the lost call started
  // (instead of finding them running and dropping them as stale), while a
  // duplicate delivery in a later batch stays stale.
  const std::string request_id = to_string(request_ids_.next());
  try {
    const bool ok = retrying(
        metrics_, watch_, "starting jobs", [&] { started = store.start(items, request_id, &held); }, stopping);
    if (!ok) return 0;  // shutting down: not acked, the broker requeues them
  } catch (const DbError& e) {
    // Something in the batch is refused outright (a bug, or a message the
    // parser let through): find it by starting them one at a time.
    log::warn("database: starting a batch of {} failed: {}; starting them one by one", items.size(), e.what());
    started.assign(items.size(), std::nullopt);
    held.assign(items.size(), false);
    for (std::size_t n = 0; n < items.size(); ++n) {
      // A second copy of a delivery in this batch stays stale: under the
      // same request id the database would answer it as a repeat.
      const bool copy =
          std::any_of(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(n), [&](const AttemptRef& earlier) {
            return earlier.job_id == items[n].job_id && earlier.attempt == items[n].attempt;
          });
      if (copy) continue;
      try {
        if (!retrying(
                metrics_, watch_, "starting a job",
                [&] {
                  std::vector<bool> one;
                  started[n] = store.start({items[n]}, request_id, &one)[0];
                  held[n] = one[0];
                },
                stopping))
          valid[n].first = nullptr;  // shutting down: left unacked, the broker requeues it
      } catch (const DbError& single) {
        log::error(valid[n].second, "dropping a message the database refuses: {}", single.what());
        metrics_.delivery_dropped(valid[n].second.queue, DropReason::kMalformed);
        queue_ack(*valid[n].first);
        valid[n].first = nullptr;
      }
    }
  }

  int used = 0;
  const auto now = Clock::now();
  for (std::size_t n = 0; n < valid.size(); ++n) {
    auto& [delivery, job] = valid[n];
    if (delivery == nullptr) continue;
    if (!started[n]) {
      if (n < held.size() && held[n]) {
        // Pending still, nothing spent: the outbox publishes it again when
        // the limit allows; keeping the delivery would only block a slot.
        log::info(job, "held back by a flow limit of its queue; acked, it is published again when its turn comes");
        metrics_.delivery_dropped(job.queue, DropReason::kHeld);
      } else {
        log::info(job, "stale delivery dropped");
        metrics_.delivery_dropped(job.queue, DropReason::kStale);
      }
      queue_ack(*delivery);
      continue;
    }
    auto entry = std::make_unique<InFlight>();
    entry->delivery = std::move(*delivery);
    job.max_attempts = started[n]->max_attempts;
    entry->job = std::move(job);
    entry->handler = handler_for(entry->job);
    entry->started_at = now;
    entry->heartbeat_every = std::max<std::chrono::milliseconds>(started[n]->lease / 3, 100ms);
    entry->next_heartbeat = now + entry->heartbeat_every;
    log::info(entry->job, "started");
    metrics_.job_started(entry->job.queue);
    std::lock_guard<std::mutex> lock(state_.mu);
    InFlight* raw = entry.get();
    state_.in_flight[entry->key()] = std::move(entry);
    state_.runnable.push_back(raw);
    state_.runner_cv.notify_one();
    ++used;
  }
  state_.changed_cv.notify_all();  // the heartbeater plans the new jobs' heartbeats
  return used;
}

}  // namespace taskq

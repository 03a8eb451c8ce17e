// pipeline/: the stages a job goes through inside a worker, each a class of
// its own over the shared state drawn here: consumer, starter, runners,
// finisher, heartbeater; shutdown drains them. worker.cpp wires them
// together.
//
// The worker's shared state between its threads: deliveries waiting to
// start, started jobs waiting for or held by a runner, outcomes waiting to be
// recorded, and acks waiting to be sent. One mutex guards all of it; each
// stage has its own condition variable.
//
//   consumer ──pending──▶ starter ──runnable──▶ runners ──finished──▶ finisher
//       ▲                    │ (stale/garbage: ack)                     │
//       └─────────────────── acks ◀──────────────────────────────────────┘
//
// A job is "in flight" from the commit of its taskq.start until its outcome is
// recorded; heartbeats keep its lease alive for all of that time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "broker/broker_consumer.hpp"
#include "taskq/worker.hpp"

namespace taskq {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxBatch = 256;  // items per start/complete/heartbeat round trip
// Handlers quicker than this on average (recent jobs) get started ahead.
constexpr double kLookaheadBelowSeconds = 0.05;

struct InFlight {
  Delivery delivery;
  Job job;
  const Handler* handler = nullptr;
  CancellationToken token;
  Clock::time_point started_at;
  std::chrono::milliseconds heartbeat_every{0};
  Clock::time_point next_heartbeat;
  bool acked = false;                // acknowledged early (a long job); the final ack is skipped
  bool handler_done = false;         // its outcome waits for the finisher
  bool stopped_by_shutdown = false;  // a retry outcome gives the attempt back (taskq._give_back)
  // Shutdown gave up on its handler (it ignored its token past the grace
  // period): the job is left to its lease, and the outcome the handler may
  // still return is dropped.
  bool abandoned = false;
  std::optional<Clock::time_point> running_since;  // while its handler runs

  // Jobs are keyed by id and attempt: a retry of a job may start here before
  // the previous attempt's entry is gone.
  std::string key() const { return job.id + '|' + std::to_string(job.attempt); }
};

struct FinishedJob {
  InFlight* job;  // owned by WorkState::in_flight until the finisher removes it
  Outcome outcome;
  double seconds = 0;
};

struct WorkState {
  std::mutex mu;
  std::condition_variable starter_cv;   // pending grew, or a runner slot freed
  std::condition_variable runner_cv;    // runnable grew
  std::condition_variable finisher_cv;  // finished grew
  std::condition_variable changed_cv;   // in_flight shrank (shutdown waits on it)

  std::deque<Delivery> pending;
  std::deque<InFlight*> runnable;
  std::deque<FinishedJob> finished;
  std::map<std::string, std::unique_ptr<InFlight>> in_flight;  // by InFlight::key()
  std::vector<std::pair<std::uint64_t, std::uint64_t>> acks;   // (generation, delivery tag)
  // Moving average of handler run times. It starts at "slow": nothing is
  // started ahead until quick jobs have actually finished here.
  double recent_handler_seconds = 1;
  int handlers_busy = 0;  // started jobs whose handler has not returned
  // Runner threads that have not returned (shutdown waits for them, up to
  // a point), and those of them whose handler shutdown gave up on.
  int runners_running = 0;
  int abandoned_handlers = 0;
  // A start round trip is under way: its jobs may start after shutdown
  // began, and must still run (their attempt is taken) before the runners go.
  bool starting = false;

  bool stop_starting = false;  // shutdown: start nothing more
  bool stop_runners = false;   // shutdown: runners exit once runnable is empty
  bool stop_finisher = false;  // shutdown: the finisher exits once finished is empty

  // Quick: recent handlers finished in under kLookaheadBelowSeconds on
  // average, and none running now has taken longer than that. (The average
  // alone learns only from finished jobs, so it would not see a long job
  // that is running.) Caller holds mu. The starter starts jobs ahead for
  // quick handlers, and the consumer deepens the prefetch.
  bool quick_handlers() const {
    if (recent_handler_seconds >= kLookaheadBelowSeconds) return false;
    const auto too_old = Clock::now() - std::chrono::duration<double>(kLookaheadBelowSeconds);
    for (const auto& [key, job] : in_flight)
      if (job->running_since && *job->running_since < too_old) return false;
    return true;
  }
};

// Queues the ack of a delivery; caller holds s.mu. Each delivery is released
// once (ack of its job's outcome, of a stale or malformed one, or an early
// ack); a packed message's tag is acked when all of its jobs are released.
inline void queue_ack_locked(WorkState& s, const Delivery& d) {
  if (d.packed && --d.packed->unreleased > 0) return;
  s.acks.emplace_back(d.generation, d.tag);
}

}  // namespace taskq

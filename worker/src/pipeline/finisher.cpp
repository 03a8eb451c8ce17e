// See finisher.hpp.
#include "pipeline/finisher.hpp"

#include <mutex>
#include <optional>
#include <string>

#include "operations/log.hpp"
#include "pipeline/db_retry.hpp"

namespace taskq {
namespace {

JobOutcome outcome_of_status(const std::optional<std::string>& status) {
  if (!status) return JobOutcome::kStale;
  if (*status == "pending") return JobOutcome::kRetried;
  if (*status == "cancelled") return JobOutcome::kCancelled;
  return JobOutcome::kFailed;
}

}  // namespace

void Finisher::run() {
  JobStore store(options_.database, options_.name);
  for (;;) {
    std::vector<FinishedJob> batch;
    {
      std::unique_lock<std::mutex> lock(state_.mu);
      state_.finisher_cv.wait(lock, [&] { return state_.stop_finisher || !state_.finished.empty(); });
      if (state_.finished.empty()) return;
      while (!state_.finished.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(state_.finished.front()));
        state_.finished.pop_front();
      }
    }
    std::vector<JobOutcome> outcomes(batch.size(), JobOutcome::kUnrecorded);
    record(store, batch, outcomes);
    {
      std::lock_guard<std::mutex> lock(state_.mu);
      for (std::size_t n = 0; n < batch.size(); ++n) {
        InFlight* job = batch[n].job;
        // Unrecorded: not acked; the lease retries the job and the broker
        // redelivers the message, which then comes back stale.
        if (outcomes[n] != JobOutcome::kUnrecorded && !job->acked) queue_ack_locked(state_, job->delivery);
        state_.in_flight.erase(job->key());
      }
      state_.changed_cv.notify_all();
    }
    wake_.wake();
  }
}

void Finisher::record(JobStore& store, std::vector<FinishedJob>& batch, std::vector<JobOutcome>& outcomes) {
  auto overdue = [&] { return stop_.past_recording_deadline(); };

  std::vector<std::size_t> completed;
  std::vector<Completion> items;
  for (std::size_t n = 0; n < batch.size(); ++n) {
    if (batch[n].outcome.kind != Outcome::Kind::kCompleted) continue;
    completed.push_back(n);
    items.push_back(
        {{batch[n].job->job.id, batch[n].job->job.attempt}, batch[n].outcome.result, batch[n].outcome.enqueue});
  }
  if (!items.empty()) {
    std::vector<bool> done;
    try {
      if (retrying(
              metrics_, watch_, "recording completed jobs", [&] { done = store.complete(items); }, overdue)) {
        for (std::size_t k = 0; k < completed.size(); ++k)
          outcomes[completed[k]] = done[k] ? JobOutcome::kCompleted : JobOutcome::kStale;
      }
    } catch (const DbError& e) {
      // Refused as a whole (e.g. a result over the size limit): record
      // one by one; a result the database refuses fails its job for good.
      log::warn("database: recording {} completions failed: {}; recording them one by one", items.size(), e.what());
      for (std::size_t k = 0; k < completed.size(); ++k) {
        FinishedJob& f = batch[completed[k]];
        try {
          if (retrying(
                  metrics_, watch_, "recording a completed job", [&] { done = store.complete({items[k]}); }, overdue))
            outcomes[completed[k]] = done[0] ? JobOutcome::kCompleted : JobOutcome::kStale;
        } catch (const DbError& single) {
          f.outcome = Outcome::failed(std::string("the outcome could not be recorded: ") + single.what());
        }
      }
    }
  }

  for (std::size_t n = 0; n < batch.size(); ++n) {
    FinishedJob& f = batch[n];
    if (f.outcome.kind == Outcome::Kind::kCompleted) continue;
    const AttemptRef ref{f.job->job.id, f.job->job.attempt};
    // Stopped by our shutdown, not by its own failure: the attempt does
    // not count (a deploy must not fail a job on its last attempt).
    const bool give_back = f.job->stopped_by_shutdown && f.outcome.kind == Outcome::Kind::kRetry;
    std::optional<std::string> status;
    try {
      if (retrying(
              metrics_, watch_, "recording a failed job",
              [&] {
                status = give_back ? store.give_back(ref, f.outcome.error)
                                   : store.fail(ref, f.outcome.error, f.outcome.retry_in,
                                                f.outcome.kind == Outcome::Kind::kFailed);
              },
              overdue))
        outcomes[n] = outcome_of_status(status);
    } catch (const DbError& e) {
      log::error(f.job->job, "recording its failure failed: {}; its lease will retry it", e.what());
    }
  }

  for (std::size_t n = 0; n < batch.size(); ++n) {
    const FinishedJob& f = batch[n];
    const Job& job = f.job->job;
    metrics_.job_finished(job.queue, outcomes[n], f.seconds);
    switch (outcomes[n]) {
      case JobOutcome::kCompleted:
        log::info(job, {{"seconds", f.seconds}}, "completed");
        break;
      case JobOutcome::kStale:
        log::warn(job, "outcome was stale (lease lost or cancelled meanwhile)");
        break;
      case JobOutcome::kUnrecorded:
        log::error(job, "outcome not recorded; its lease will retry it");
        break;
      default:
        log::warn(job, {{"seconds", f.seconds}}, "{}: {}", to_string(outcomes[n]), f.outcome.error);
    }
  }
}

}  // namespace taskq

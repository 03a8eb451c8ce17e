// An application that runs taskq jobs with in-process C++ handlers, the way a
// service embeds the worker library instead of running taskq-worker:
//
//   build/inprocess_worker 'dbname=app' amqp://guest:guest@127.0.0.1:5672/
//
// It serves queue "images": jobs with task "resize" go to resize(), every
// other job of the queue to the queue's handler. A middleware logs every job
// with its trace id and time, a listener reports the connections. SIGTERM or
// Ctrl-C stops it gracefully (in-flight jobs finish first).
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "taskq/worker.hpp"

namespace {

// A handler returns an Outcome; throwing counts as a retryable failure.
taskq::Outcome resize(const taskq::Job& job, const taskq::CancellationToken& cancel) {
  const auto width = job.payload.value("width", 0);
  if (width <= 0) return taskq::Outcome::failed("payload needs a positive \"width\"");  // retrying cannot help
  for (int step = 0; step < 10; ++step) {
    // Long work checks the token: it is set when the job is cancelled, its
    // lease was lost, or the worker is shutting down past its grace period.
    if (cancel.cancelled()) return taskq::Outcome::retry("stopped: " + cancel.reason());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return taskq::Outcome::completed({{"width", width}, {"attempt", job.attempt}});
}

taskq::Outcome anything_else(const taskq::Job& job, const taskq::CancellationToken&) {
  if (job.attempt < 2) return taskq::Outcome::retry("flaky dependency", std::chrono::seconds(1));
  return taskq::Outcome::completed({{"task", job.task}});
}

const char* outcome_name(const taskq::Outcome& outcome) {
  switch (outcome.kind) {
    case taskq::Outcome::Kind::kCompleted:
      return "completed";
    case taskq::Outcome::Kind::kRetry:
      return "retry";
    case taskq::Outcome::Kind::kFailed:
      return "failed";
  }
  return "?";
}

// A middleware: runs around every handler call. This one times the call and
// logs it with the job's trace id, so that the line can be found from the
// trace of the request that enqueued the job (and the other way round).
taskq::Outcome log_each_job(const taskq::Job& job, const taskq::CancellationToken&, const taskq::Next& next) {
  const auto began = std::chrono::steady_clock::now();
  taskq::Outcome outcome = next();  // the rest of the chain: the handler
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began);
  const std::string trace(job.trace_id());
  std::fprintf(stderr, "job %s attempt %d trace %s: %s in %lld ms\n", job.id.c_str(), job.attempt,
               trace.empty() ? "-" : trace.c_str(), outcome_name(outcome), static_cast<long long>(ms.count()));
  return outcome;  // a middleware could also change it, or throw (a retryable failure)
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s DATABASE_CONNINFO AMQP_URL\n", argv[0]);
    return 2;
  }
  taskq::WorkerOptions options;
  options.database = argv[1];
  options.broker = argv[2];
  options.concurrency = 4;
  taskq::Worker worker(options);
  worker.handle_queue("images", anything_else);
  worker.handle_task("resize", resize);
  worker.use(log_each_job);
  worker.on_connection_event([](const taskq::ConnectionEvent& e) {
    std::fprintf(stderr, "%s connection %s: %s%s%s\n", taskq::to_string(e.service), e.connection.c_str(),
                 taskq::to_string(e.kind), e.reason.empty() ? "" : ": ", e.reason.c_str());
  });

  // Signals go to one thread that asks the worker to stop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([&] {
    int sig;
    sigwait(&signals, &sig);
    worker.stop();
  }).detach();

  try {
    worker.run();  // returns after stop() once in-flight jobs are done
  } catch (const taskq::StartupError& e) {
    std::fprintf(stderr, "inprocess_worker: %s\n", e.what());
    return 2;
  }
  return 0;
}

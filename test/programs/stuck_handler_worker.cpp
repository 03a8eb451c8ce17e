// A program embedding the worker library whose handler never returns and
// ignores its cancellation token, for the integration tests of a bounded
// shutdown (test/integration/worker_shutdown_test.cpp):
//
//   stuck_handler_worker DATABASE_CONNINFO AMQP_URL QUEUE SHUTDOWN_TIMEOUT_SECONDS
//
// It is written the way a plain embedding program is (SIGTERM asks the
// worker to stop, main returns once run() does), so the test sees what such
// a program does when a handler is stuck: run() returns, the Worker is
// destroyed and the process exits while the handler's thread still waits.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "taskq/worker.hpp"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s DATABASE_CONNINFO AMQP_URL QUEUE SHUTDOWN_TIMEOUT_SECONDS\n", argv[0]);
    return 2;
  }
  taskq::WorkerOptions options;
  options.database = argv[1];
  options.broker = argv[2];
  options.concurrency = 2;
  options.shutdown_timeout = std::chrono::seconds(std::stoi(argv[4]));
  options.callbacks.enabled = false;
  taskq::Worker worker(options);
  worker.handle_queue(argv[3], [](const taskq::Job& job, const taskq::CancellationToken&) {
    std::printf("running %s\n", job.id.c_str());
    std::fflush(stdout);
    // For good, whatever its token says.
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    return taskq::Outcome::completed();
  });

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([&] {
    int sig;
    sigwait(&signals, &sig);
    worker.stop();
  }).detach();

  try {
    worker.run();
  } catch (const taskq::StartupError& e) {
    std::fprintf(stderr, "stuck_handler_worker: %s\n", e.what());
    return 2;
  }
  std::printf("run returned\n");
  std::fflush(stdout);
  return 0;
}

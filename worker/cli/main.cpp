// taskq-worker: consumes taskq jobs from RabbitMQ and runs them with exec or
// HTTP handlers. See `taskq-worker --help` and README "taskq-worker".
#include <csignal>
#include <cstdio>
#include <thread>

#include <unistd.h>

#include "command_line/cli_options.hpp"
#include "operations/log.hpp"
#include "taskq/worker.hpp"

namespace {

// A fatal error is one line: plain for a person at a terminal, a JSON
// object when the output goes to a log pipeline that expects nothing else.
int report_fatal(taskq::log::Format format, int code, const char* what) {
  if (format == taskq::log::Format::kJson)
    taskq::log::error("{}", what);
  else
    std::fprintf(stderr, "taskq-worker: %s\n", what);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  taskq::CliOptions cli;
  std::string error;
  const int parsed = taskq::parse_cli(argc, argv, &cli, &error);
  if (parsed >= 0) {
    if (!error.empty()) std::fprintf(parsed == 0 ? stdout : stderr, "%s\n", error.c_str());
    return parsed;
  }

  const taskq::log::Format format = taskq::log::parse_format(cli.log_format);  // checked by parse_cli
  taskq::log::configure(format);

  // Signals are taken by one thread (sigwait); every other thread, and the
  // handlers' children (which reset their mask), never see them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  taskq::Worker worker(cli.worker);
  for (const auto& [queue, handler] : cli.handlers) worker.handle_queue(queue, handler);

  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    taskq::log::info("received {}: finishing in-flight jobs", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    worker.stop();
  });
  signal_thread.detach();

  try {
    worker.run();
  } catch (const taskq::StartupError& e) {
    return report_fatal(format, 2, e.what());
  } catch (const std::exception& e) {
    return report_fatal(format, 1, e.what());
  }
  // A handler the shutdown gave up on still runs on its thread: leave
  // without exit()'s destructors of static objects, which it may use. Still
  // status 0: its job is left to its lease, nothing is lost (docs/worker.md).
  if (worker.handlers_still_running() > 0) {
    std::fflush(nullptr);
    _exit(0);
  }
  return 0;
}

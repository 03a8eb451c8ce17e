// taskq-worker: consumes taskq jobs from RabbitMQ and runs them with exec or
// HTTP handlers. See `taskq-worker --help` and README "taskq-worker".
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <thread>

#include "cli_options.hpp"
#include "taskq/version.hpp"
#include "taskq/worker.hpp"

int main(int argc, char** argv) {
  taskq::CliOptions cli;
  std::string error;
  const int parsed = taskq::parse_cli(argc, argv, &cli, &error);
  if (parsed >= 0) {
    if (!error.empty()) std::fprintf(parsed == 0 ? stdout : stderr, "%s\n", error.c_str());
    return parsed;
  }

  auto logger = spdlog::stderr_color_mt("taskq-worker");
  if (cli.log_format == "json")
    logger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","message":"%v"})",
                        spdlog::pattern_time_type::utc);
  else
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v", spdlog::pattern_time_type::utc);
  spdlog::set_default_logger(logger);

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
    spdlog::info("received {}: finishing in-flight jobs", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    worker.stop();
  });
  signal_thread.detach();

  try {
    worker.run();
  } catch (const taskq::StartupError& e) {
    std::fprintf(stderr, "taskq-worker: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "taskq-worker: %s\n", e.what());
    return 1;
  }
  return 0;
}

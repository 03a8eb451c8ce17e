// taskq-worker's command line; see cli_options.hpp.
#include "cli_options.hpp"

#include <CLI/CLI.hpp>

#include <cstdlib>

#include "exec_handler.hpp"
#include "http_handler.hpp"
#include "taskq/version.hpp"

namespace taskq {

std::pair<std::string, std::string> split_handler_spec(const std::string& spec) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0)
    throw std::invalid_argument("--handler must look like QUEUE=exec:COMMAND or QUEUE=http://URL, not \"" + spec +
                                "\"");
  std::string queue = spec.substr(0, eq);
  std::string target = spec.substr(eq + 1);
  const bool exec = target.rfind("exec:", 0) == 0 && target.size() > 5;
  const bool http = target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0;
  if (!exec && !http)
    throw std::invalid_argument("--handler " + queue + ": the target must be exec:COMMAND or an http(s):// URL");
  return {queue, target};
}

int parse_cli(int argc, char** argv, CliOptions* out, std::string* message) {
  CLI::App app{
      "taskq-worker: runs taskq jobs. It consumes the RabbitMQ queues of the given taskq queues, starts each job\n"
      "with taskq.start(), runs its handler, records the outcome with taskq.complete()/taskq.fail() and only\n"
      "then is the job done. Retries, backoff and the attempt limit are the queue's (taskq.create_queue).\n\n"
      "Handlers:\n"
      "  QUEUE=exec:COMMAND   run COMMAND with /bin/sh; payload JSON on stdin; env TASKQ_JOB_ID, TASKQ_QUEUE,\n"
      "                       TASKQ_TASK, TASKQ_ATTEMPT, TASKQ_MAX_ATTEMPTS. Exit 0: completed (stdout is the\n"
      "                       result), exit 65: failed for good, anything else: retried.\n"
      "  QUEUE=http://URL     POST the message body; 2xx: completed (response body is the result),\n"
      "                       4xx except 408/429: failed for good, anything else: retried.\n\n"
      "Callbacks: when a job enqueued with callback_url ends, this process POSTs its outcome there (signed\n"
      "with --callback-secret), retrying with backoff until --callback-max-attempts; see README \"Callbacks\".\n\n"
      "Example:\n"
      "  taskq-worker --database 'dbname=app' --broker amqp://guest:guest@localhost:5672/ \\\n"
      "               --handler 'emails=exec:/usr/local/bin/send-email' --concurrency 8\n",
      "taskq-worker"};
  std::vector<std::string> handlers;
  app.add_option("--database", out->worker.database, "PostgreSQL connection (conninfo or URI) [env TASKQ_DATABASE_URL]")
      ->envname("TASKQ_DATABASE_URL");
  app.add_option("--broker", out->worker.broker,
                 "RabbitMQ URL amqp://user:password@host:port/vhost [env TASKQ_BROKER_URL]")
      ->envname("TASKQ_BROKER_URL");
  app.add_option("--handler", handlers, "QUEUE=exec:COMMAND or QUEUE=http(s)://URL; repeat for several queues");
  app.add_option("--concurrency", out->worker.concurrency, "jobs run at once (default 4)")->check(CLI::Range(1, 1024));
  app.add_option("--prefetch", out->worker.prefetch, "unacknowledged deliveries per process (default 2 x concurrency)")
      ->check(CLI::Range(0, 65535));
  CallbackOptions& callbacks = out->worker.callbacks;
  app.add_option("--callback-secret", callbacks.secret,
                 "HMAC-SHA256 key: callbacks carry X-Taskq-Signature [env TASKQ_CALLBACK_SECRET]")
      ->envname("TASKQ_CALLBACK_SECRET");
  app.add_option("--callback-max-attempts", callbacks.max_attempts,
                 "deliveries tried before a callback is marked dead (default 10)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--callback-concurrency", callbacks.max_in_flight, "callback POSTs in flight at once (default 16)")
      ->check(CLI::Range(1, 1024));
  int callback_timeout = static_cast<int>(callbacks.timeout.count() / 1000);
  app.add_option("--callback-timeout", callback_timeout,
                 "seconds a callback POST may take, connect included (default 10)")
      ->check(CLI::Range(1, 3600));
  app.add_flag("--callback-refuse-private", callbacks.refuse_private_addresses,
               "refuse callback URLs that resolve to loopback, private, link-local or other non-public addresses");
  bool no_callbacks = false;
  app.add_flag("--no-callbacks", no_callbacks, "do not deliver callbacks from this process (another one does)");
  app.add_option("--metrics-addr", out->metrics_addr, "HOST:PORT for /metrics and /healthz");
  int shutdown = 30;
  app.add_option("--shutdown-timeout", shutdown, "seconds in-flight jobs get to finish after SIGTERM (default 30)")
      ->check(CLI::Range(0, 86400));
  app.add_option("--job-timeout", out->job_timeout_s, "seconds a handler may run; 0: no limit (default)")
      ->check(CLI::Range(0, 7 * 86400));
  app.add_option("--log-format", out->log_format, "text or json (one JSON object per line)")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--name", out->worker.name, "worker name recorded on started jobs (default host:pid)");
  app.set_version_flag("--version", std::string("taskq-worker ") + version());

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    *message = app.help();
    return 0;
  } catch (const CLI::CallForVersion&) {
    *message = std::string("taskq-worker ") + version();
    return 0;
  } catch (const CLI::ParseError& e) {
    *message = std::string("taskq-worker: ") + e.what() + " (see --help)";
    return 2;
  }
  out->worker.shutdown_timeout = std::chrono::seconds(shutdown);
  callbacks.timeout = std::chrono::seconds(callback_timeout);
  callbacks.enabled = !no_callbacks;
  if (out->worker.database.empty()) {
    *message = "taskq-worker: --database (or TASKQ_DATABASE_URL) is required";
    return 2;
  }
  if (out->worker.broker.empty()) {
    *message = "taskq-worker: --broker (or TASKQ_BROKER_URL) is required";
    return 2;
  }
  if (handlers.empty()) {
    *message = "taskq-worker: at least one --handler QUEUE=exec:COMMAND or QUEUE=http://URL is required";
    return 2;
  }
  if (!out->metrics_addr.empty()) {
    *message = "taskq-worker: --metrics-addr is not available in this version yet";
    return 2;
  }
  const auto timeout = std::chrono::milliseconds(static_cast<long>(out->job_timeout_s) * 1000);
  try {
    for (const auto& spec : handlers) {
      auto [queue, target] = split_handler_spec(spec);
      out->handler_specs.emplace_back(queue, target);
      if (target.rfind("exec:", 0) == 0)
        out->handlers.emplace_back(queue, make_exec_handler(target.substr(5), timeout));
      else
        out->handlers.emplace_back(queue, make_http_handler(target, timeout));
    }
  } catch (const std::invalid_argument& e) {
    *message = std::string("taskq-worker: ") + e.what();
    return 2;
  }
  return -1;
}

}  // namespace taskq

// taskq-worker's command line; see cli_options.hpp.
#include "command_line/cli_options.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>

#include <cstdlib>

#include "command_line/cli_help.hpp"
#include "handlers/exec_handler.hpp"
#include "handlers/http_handler.hpp"
#include "operations/host_port.hpp"
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
  CLI::App app{"", "taskq-worker"};  // help text: cli_help.cpp
  std::vector<std::string> handlers;
  app.add_option("--database", out->worker.database,
                 "required: the PostgreSQL database with the taskq extension,\n"
                 "'dbname=app host=db' or postgresql://user@host/app")
      ->envname("TASKQ_DATABASE_URL");
  app.add_option("--broker", out->worker.broker,
                 "required: RabbitMQ, amqp://user:password@host:port/vhost\n"
                 "(without /vhost: the default vhost \"/\")")
      ->envname("TASKQ_BROKER_URL");
  app.add_option("--handler", handlers,
                 "required: a queue to consume and what runs its jobs,\n"
                 "QUEUE=exec:COMMAND or QUEUE=http(s)://URL (see Handlers below);\n"
                 "repeat it for each queue");
  app.add_option("--concurrency", out->worker.concurrency, "jobs run at once, 1-1024 (default 4)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--prefetch", out->worker.prefetch,
                 "messages RabbitMQ hands this worker ahead of time, 0-65535\n"
                 "(default 0: follows the handlers, 16 x --concurrency while\n"
                 "they are quick, 2 x when they are slow)")
      ->check(CLI::Range(0, 65535));
  CallbackOptions& callbacks = out->worker.callbacks;
  app.add_option("--callback-secret", callbacks.secret,
                 "key that signs callbacks (X-Taskq-Signature, HMAC-SHA256);\n"
                 "default: unsigned")
      ->envname("TASKQ_CALLBACK_SECRET");
  app.add_option("--callback-max-attempts", callbacks.max_attempts,
                 "deliveries tried before a callback is marked dead, 1-1000\n"
                 "(default 10)")
      ->type_name("N")
      ->check(CLI::Range(1, 1000).description(""));  // the text says the range in words
  app.add_option("--callback-concurrency", callbacks.max_in_flight,
                 "callback POSTs in flight at once, 1-1024 (default 16)")
      ->type_name("N")
      ->check(CLI::Range(1, 1024).description(""));
  int callback_timeout = static_cast<int>(callbacks.timeout.count() / 1000);
  app.add_option("--callback-timeout", callback_timeout,
                 "seconds a callback POST may take, connect included, 1-3600\n"
                 "(default 10)")
      ->type_name("SECONDS")
      ->check(CLI::Range(1, 3600).description(""));
  int callback_retry_max = static_cast<int>(callbacks.retry_max.count() / 1000);
  app.add_option("--callback-retry-max", callback_retry_max,
                 "longest wait between two deliveries of a callback, 1-86400\n"
                 "(default 3600; the first retry comes after 10 s, then doubling)")
      ->type_name("SECONDS")
      ->check(CLI::Range(1, 86400).description(""));
  app.add_flag("--callback-refuse-private", callbacks.refuse_private_addresses,
               "refuse callback URLs that resolve to loopback, private,\n"
               "link-local or other non-public addresses (SSRF guard)");
  bool no_callbacks = false;
  app.add_flag("--no-callbacks", no_callbacks, "deliver no callbacks from this process (another one does)")
      ->group("Callbacks");
  app.add_option("--metrics-addr", out->metrics_addr,
                 "serve /metrics (Prometheus) and /healthz on HOST:PORT, such as\n"
                 "127.0.0.1:9464 or [::]:9464 (default: not served)");
  int shutdown = 30;
  app.add_option("--shutdown-timeout", shutdown,
                 "after SIGTERM/SIGINT, seconds running jobs get to finish before\n"
                 "they are stopped (and retried later), 0-86400 (default 30)")
      ->check(CLI::Range(0, 86400));
  app.add_option("--job-timeout", out->job_timeout_s,
                 "seconds a handler may run before it is stopped and the job\n"
                 "retried; 0: no limit (default)")
      ->check(CLI::Range(0, 7 * 86400));
  int early_ack = static_cast<int>(out->worker.early_ack_after.count());
  app.add_option("--early-ack-after", early_ack,
                 "seconds after which a still-running job's message is\n"
                 "acknowledged, to stay below RabbitMQ's consumer_timeout; the\n"
                 "job stays protected by its lease (default 900)")
      ->check(CLI::Range(1, 7 * 86400));
  app.add_option("--log-format", out->log_format,
                 "logs on stderr, one line per event: text (default) or json\n"
                 "(an object per line: time, level, msg, job_id, queue, attempt)")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--name", out->worker.name, "this worker's name in taskq.jobs.worker (default HOSTNAME:PID)");
  app.set_version_flag("--version", std::string("taskq-worker ") + version());
  arrange_help(app);

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
  out->worker.early_ack_after = std::chrono::seconds(early_ack);
  callbacks.timeout = std::chrono::seconds(callback_timeout);
  callbacks.retry_max = std::chrono::seconds(callback_retry_max);
  callbacks.retry_base = std::min(callbacks.retry_base, callbacks.retry_max);
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
    try {
      parse_host_port(out->metrics_addr);
    } catch (const std::invalid_argument& e) {
      *message = std::string("taskq-worker: --metrics-addr ") + e.what();
      return 2;
    }
    out->worker.metrics_addr = out->metrics_addr;
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

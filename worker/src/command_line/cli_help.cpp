// See cli_help.hpp.
#include "command_line/cli_help.hpp"

#include <string>

namespace taskq {
namespace {

const char* const kDescription =
    "taskq-worker runs the jobs of taskq queues. It takes each job from its RabbitMQ queue (taskq.<queue>),\n"
    "marks it running in PostgreSQL (taskq.start), runs the queue's handler and records the outcome\n"
    "(taskq.complete / taskq.fail). Retries, backoff and the attempt limit are the queue's settings\n"
    "(taskq.create_queue). Run as many workers, on as many hosts, as you like.\n";

const char* const kFooter =
    "Handlers (--handler QUEUE=TARGET, one per queue):\n"
    "  QUEUE=exec:COMMAND   runs COMMAND with /bin/sh, the job's payload (JSON) on stdin and env\n"
    "                       TASKQ_JOB_ID, TASKQ_QUEUE, TASKQ_TASK, TASKQ_ATTEMPT, TASKQ_MAX_ATTEMPTS.\n"
    "                       Exit 0: completed (stdout is the result); exit 65: failed for good;\n"
    "                       anything else, a signal or --job-timeout: retried (stderr's tail is the error).\n"
    "  QUEUE=http://URL     POSTs the job message (JSON). 2xx: completed (the response body is the result);\n"
    "  QUEUE=https://URL    4xx other than 408/429: failed for good; anything else: retried.\n"
    "\n"
    "Environment (used when the flag is not given):\n"
    "  TASKQ_DATABASE_URL     for --database\n"
    "  TASKQ_BROKER_URL       for --broker (keeps the password out of the process list)\n"
    "  TASKQ_CALLBACK_SECRET  for --callback-secret\n"
    "\n"
    "Signals and exit status:\n"
    "  SIGTERM or SIGINT: take no new jobs, let running ones finish within --shutdown-timeout, exit 0.\n"
    "  Exit 2: a bad flag, or PostgreSQL/RabbitMQ unreachable at start (one line on stderr says which).\n"
    "  Connections lost later are retried with backoff; the worker does not exit for them.\n"
    "\n"
    "Example:\n"
    "  TASKQ_BROKER_URL=amqp://guest:guest@localhost:5672/ taskq-worker --database 'dbname=app' \\\n"
    "      --handler 'emails=exec:/usr/local/bin/send-email' --concurrency 8 --metrics-addr 127.0.0.1:9464\n";

struct Placement {
  const char* option;
  const char* group;
  const char* value_name;  // nullptr: a flag without value
};

// Groups show in the order their first option was added (cli_options.cpp).
const Placement kPlacements[] = {
    {"--database", "Connections", "CONNINFO"},
    {"--broker", "Connections", "AMQP_URL"},
    {"--handler", "Handlers", "QUEUE=TARGET"},
    {"--concurrency", "Running jobs", "N"},
    {"--prefetch", "Running jobs", "N"},
    {"--job-timeout", "Running jobs", "SECONDS"},
    {"--shutdown-timeout", "Running jobs", "SECONDS"},
    {"--early-ack-after", "Running jobs", "SECONDS"},
    {"--name", "Running jobs", "NAME"},
    {"--callback-secret", "Callbacks", "SECRET"},
    {"--metrics-addr", "Monitoring", "HOST:PORT"},
    {"--log-format", "Monitoring", "text|json"},
};

}  // namespace

void arrange_help(CLI::App& app) {
  app.description(kDescription);
  app.footer(kFooter);
  app.get_formatter()->column_width(34);
  for (const Placement& p : kPlacements) {
    CLI::Option* opt = app.get_option_no_throw(p.option);
    if (opt == nullptr) continue;
    opt->group(p.group);
    if (p.value_name != nullptr) opt->type_name(p.value_name);
    // Range and set checks would print "INT:INT in [1 - 1024]" after the
    // value name; the descriptions say what is allowed in words instead.
    for (int i = 0;; ++i) {
      try {
        opt->get_validator(i)->description("");
      } catch (const CLI::OptionNotFound&) {
        break;
      }
    }
  }
  // Flags added later for callbacks land in their group without a table
  // entry; anything else stays under "Options", visible.
  for (CLI::Option* opt : app.get_options())
    for (const std::string& name : opt->get_lnames())
      if (opt->get_group() == "Options" && name.rfind("callback", 0) == 0) opt->group("Callbacks");
  // Re-added so that they come last, after the groups that matter.
  app.set_help_flag();
  app.set_help_flag("-h,--help", "print this help and exit")->group("Other");
  if (CLI::Option* version = app.get_option_no_throw("--version"))
    version->group("Other")->description("print the version and exit");
}

}  // namespace taskq

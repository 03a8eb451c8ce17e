// taskq-web: the REST API of taskq over HTTP (docs/web.md). Every route is
// one call of the SQL API on a small pool of long-lived connections.
#include <csignal>
#include <cstdio>
#include <optional>
#include <thread>

#include "access_tokens.hpp"
#include "api_error.hpp"
#include "api_routes.hpp"
#include "connection_pool.hpp"
#include "operations/log.hpp"
#include "openapi.hpp"
#include "route_table.hpp"
#include "sessions.hpp"
#include "taskq/worker.hpp"
#include "web_metrics.hpp"
#include "web_options.hpp"
#include "web_server.hpp"

namespace {

// Start-up failures are one line and exit status 2.
int fail_start(const std::string& what) {
  std::fprintf(stderr, "taskq-web: %s\n", what.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace taskq::web;
  WebOptions options;
  std::string message;
  const int parsed = parse_web_cli(argc, argv, &options, &message);
  if (parsed >= 0) {
    if (!message.empty()) std::fprintf(parsed == 0 ? stdout : stderr, "%s\n", message.c_str());
    return parsed;
  }
  taskq::log::configure(taskq::log::parse_format(options.log_format));

  // SIGTERM/SIGINT are taken by one thread (sigwait); the HTTP threads never
  // see them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::optional<AccessTokens> tokens;
  if (!options.token_file.empty()) {
    try {
      tokens = AccessTokens::load(options.token_file);
    } catch (const std::invalid_argument& e) {
      return fail_start(std::string("--token-file ") + e.what());
    }
  }

  std::optional<ConnectionPool> pool;
  std::vector<std::string> job_statuses;
  try {
    pool.emplace(options.database, options.pool_size);
    auto db = pool->acquire();
    taskq::PgResult r = db->run("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'taskq'", {});
    if (PQntuples(r.get()) == 0)
      return fail_start("the database has no taskq extension (run CREATE EXTENSION taskq there first)");
    taskq::PgResult statuses =
        db->run("SELECT s::text FROM pg_catalog.unnest(pg_catalog.enum_range(NULL::taskq.job_status)) s", {});
    for (int i = 0; i < PQntuples(statuses.get()); ++i) job_statuses.emplace_back(PQgetvalue(statuses.get(), i, 0));
  } catch (const taskq::DbError& e) {
    return fail_start(e.what());
  } catch (const ApiError& e) {
    return fail_start(std::string("database: ") + e.what());
  }

  WebMetrics metrics;
  SessionStore sessions;
  Services services;
  services.pool = &*pool;
  services.metrics = &metrics;
  services.sessions = &sessions;
  services.tokens = tokens ? &*tokens : nullptr;
  services.job_statuses = std::move(job_statuses);
  RouteTable routes(api_routes(&services));
  services.openapi_json = openapi_document(routes.routes()).dump(2) + "\n";

  std::optional<WebServer> server;
  try {
    ServerOptions server_options;
    server_options.listen = options.listen_at;
    server_options.tokens = tokens ? &*tokens : nullptr;
    server_options.sessions = &sessions;
    server_options.threads = std::max(4, options.pool_size * 2);
    server.emplace(server_options, routes, metrics);
  } catch (const taskq::StartupError& e) {
    return fail_start(e.what());
  }

  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    taskq::log::info("received {}: answering requests in progress, then stopping",
                     sig == SIGTERM ? "SIGTERM" : "SIGINT");
    server->stop();
  });
  signal_thread.detach();

  taskq::log::info("serving the taskq API and dashboard on http://{}/ ({})",
                   taskq::HostPort{options.listen_at.host, server->port()}.to_string(),
                   tokens ? std::to_string(tokens->size()) + " tokens" : "no token file: loopback only");
  server->run();
  taskq::log::info("stopped");
  return 0;
}

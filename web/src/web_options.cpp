// See web_options.hpp.
#include "web_options.hpp"

#include <arpa/inet.h>

#include <CLI/CLI.hpp>

#include "taskq/version.hpp"

namespace taskq::web {

bool is_loopback_host(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

int parse_web_cli(int argc, char** argv, WebOptions* out, std::string* message) {
  CLI::App app{"taskq-web: the REST API of taskq (docs/web.md)", "taskq-web"};
  app.add_option("--database", out->database, "PostgreSQL conninfo or URI of the database with the taskq extension")
      ->envname("TASKQ_DATABASE_URL")
      ->option_text("CONNINFO");
  app.add_option("--listen", out->listen, "address to serve HTTP on: 127.0.0.1:8080, [::1]:8080, localhost:8080")
      ->option_text("HOST:PORT");
  app.add_option("--token-file", out->token_file,
                 "one \"TOKEN ROLE\" per line (ROLE: read, operate, admin); required to listen beyond loopback")
      ->option_text("FILE");
  app.add_option("--pool-size", out->pool_size, "database connections kept open, 1-64 (default 4)")
      ->check(CLI::Range(1, 64))
      ->option_text("N");
  app.add_option("--log-format", out->log_format, "logs on stderr: text (default) or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->option_text("FORMAT");
  app.set_version_flag("--version", std::string("taskq-web ") + version());
  app.footer(
      "Environment: TASKQ_DATABASE_URL stands in for --database.\n"
      "Exit status: 0 after SIGTERM or SIGINT, 2 for a bad command line or a database it cannot reach at start.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    *message = app.help();
    return 0;
  } catch (const CLI::CallForVersion&) {
    *message = std::string("taskq-web ") + version();
    return 0;
  } catch (const CLI::ParseError& e) {
    *message = std::string("taskq-web: ") + e.what() + " (see --help)";
    return 2;
  }
  if (out->database.empty()) {
    *message = "taskq-web: --database (or TASKQ_DATABASE_URL) is required";
    return 2;
  }
  if (out->listen.empty()) {
    *message = "taskq-web: --listen HOST:PORT is required";
    return 2;
  }
  try {
    out->listen_at = parse_host_port(out->listen);
  } catch (const std::invalid_argument& e) {
    *message = std::string("taskq-web: --listen ") + e.what();
    return 2;
  }
  if (out->token_file.empty() && !is_loopback_host(out->listen_at.host)) {
    *message = "taskq-web: --listen " + out->listen +
               " is not a loopback address; without --token-file taskq-web only listens on 127.0.0.1, ::1 or "
               "localhost (give it a token file to serve other machines)";
    return 2;
  }
  return -1;
}

}  // namespace taskq::web

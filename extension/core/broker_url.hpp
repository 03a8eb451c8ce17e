// Parsing of amqp:// URLs (taskq.broker_url, taskq-worker --broker) and the
// password-free form that is safe to log.
#pragma once

#include "no_postgres.hpp"

#include <string>

namespace taskq {

struct BrokerUrl {
  std::string host;
  int port = 5672;
  std::string user;
  std::string password;
  bool has_password = false;  // the URL itself says user:password@ (even an empty one)
  std::string vhost;
  bool tls = false;

  // Throws std::invalid_argument with a readable message (without the
  // password) when the URL is not a valid amqp:// URL.
  static BrokerUrl parse(const std::string& url);

  // amqp://user@host:port/vhost — never the password.
  std::string redacted() const;
};

}  // namespace taskq

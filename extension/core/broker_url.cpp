// amqp:// URL parsing on top of rabbitmq-c's amqp_parse_url, which wants a
// writable buffer and leaves the pieces pointing into it.
#include "broker_url.hpp"

#include <amqp.h>

#include <stdexcept>
#include <vector>

namespace taskq {

BrokerUrl BrokerUrl::parse(const std::string& url) {
  if (url.empty()) throw std::invalid_argument("broker URL is empty");
  if (url.rfind("amqp://", 0) != 0 && url.rfind("amqps://", 0) != 0)
    throw std::invalid_argument("broker URL must start with amqp:// or amqps://");
  if (url.rfind("amqps://", 0) == 0) throw std::invalid_argument("amqps:// (TLS) is not supported by this build");

  // amqp_parse_url fills in "localhost" for a missing host; a broker URL
  // without one is a configuration mistake, not a request for localhost.
  std::string authority = url.substr(url.find("://") + 3);
  authority = authority.substr(0, authority.find('/'));
  const std::size_t at = authority.rfind('@');
  const std::string userinfo = at == std::string::npos ? "" : authority.substr(0, at);
  authority = authority.substr(at == std::string::npos ? 0 : at + 1);
  if (authority.empty() || authority[0] == ':') throw std::invalid_argument("broker URL has no host");

  std::vector<char> buffer(url.begin(), url.end());
  buffer.push_back('\0');
  amqp_connection_info info;
  amqp_default_connection_info(&info);
  if (amqp_parse_url(buffer.data(), &info) != AMQP_STATUS_OK)
    throw std::invalid_argument("broker URL is not a valid amqp://user:password@host:port/vhost URL");

  BrokerUrl parsed;
  parsed.host = info.host ? info.host : "";
  parsed.port = info.port;
  parsed.user = info.user ? info.user : "";
  // Without "user:password@" amqp_parse_url leaves its default password
  // ("guest"); whether the URL names one itself decides whether
  // taskq.broker_password_file applies.
  parsed.has_password = userinfo.find(':') != std::string::npos;
  parsed.password = info.password ? info.password : "";
  // "amqp://host/" leaves an empty vhost; users mean the default one.
  parsed.vhost = info.vhost != nullptr && info.vhost[0] != '\0' ? info.vhost : "/";
  parsed.tls = info.ssl != 0;
  if (parsed.host.empty()) throw std::invalid_argument("broker URL has no host");
  if (parsed.port <= 0 || parsed.port > 65535) throw std::invalid_argument("broker URL has an invalid port");
  return parsed;
}

std::string BrokerUrl::redacted() const {
  std::string out = tls ? "amqps://" : "amqp://";
  if (!user.empty()) out += user + "@";
  out += host + ":" + std::to_string(port);
  out += vhost == "/" ? "/" : "/" + vhost;
  return out;
}

}  // namespace taskq

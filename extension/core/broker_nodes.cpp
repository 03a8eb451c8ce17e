// See broker_nodes.hpp.
#include "broker_nodes.hpp"

#include <stdexcept>

#include "amqp_error.hpp"

namespace taskq {
namespace {

std::string trimmed(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

}  // namespace

BrokerNodes BrokerNodes::parse(const std::string& list) {
  std::vector<std::string> parts;
  std::size_t begin = 0;
  for (;;) {
    const std::size_t comma = list.find(',', begin);
    parts.push_back(trimmed(list.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin)));
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  BrokerNodes nodes;
  if (parts.size() == 1) {
    nodes.nodes_.push_back(BrokerUrl::parse(parts[0]));
    return nodes;
  }
  for (std::size_t i = 0; i < parts.size(); i++) {
    const std::string where = "broker URL " + std::to_string(i + 1) + " of " + std::to_string(parts.size());
    if (parts[i].empty()) throw std::invalid_argument(where + " is empty (a stray comma?)");
    try {
      nodes.nodes_.push_back(BrokerUrl::parse(parts[i]));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(where + ": " + e.what());
    }
  }
  return nodes;
}

std::string BrokerNodes::redacted() const {
  std::string out;
  for (const auto& node : nodes_) out += (out.empty() ? "" : ",") + node.redacted();
  return out;
}

void throw_all_nodes_failed(const std::vector<std::string>& earlier, const std::string& last_node) {
  std::string prefix;
  for (const auto& e : earlier) prefix += e + "; ";
  prefix += last_node + ": ";
  try {
    throw;
  } catch (const AmqpError& e) {
    throw AmqpError(e.scope(), e.reply_code(), prefix + e.what());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(prefix + e.what());
  } catch (const std::exception& e) {
    throw std::runtime_error(prefix + e.what());
  }
}

}  // namespace taskq

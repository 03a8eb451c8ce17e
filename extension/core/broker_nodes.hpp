// The nodes of a RabbitMQ cluster as taskq.broker_url and taskq-worker's
// --broker give them (a comma-separated list of amqp:// URLs), and the
// order a client tries them in: it stays on the node that works and moves
// on when that one fails, so the clients of a cluster spread over its nodes
// and leave a dead one at once.
#pragma once

#include "no_postgres.hpp"

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "broker_url.hpp"

namespace taskq {

class BrokerNodes {
 public:
  // Throws std::invalid_argument naming the bad element ("broker URL 2 of
  // 3: ..."), never the password. Blanks around the commas are ignored; an
  // empty element is an error (a stray comma usually hides a typo).
  static BrokerNodes parse(const std::string& list);

  std::size_t size() const { return nodes_.size(); }
  const std::vector<BrokerUrl>& nodes() const { return nodes_; }
  std::vector<BrokerUrl>& nodes() { return nodes_; }
  const BrokerUrl& current() const { return nodes_[current_]; }
  std::size_t current_index() const { return current_; }
  // Starts the next round of attempts at `index` (mod size), e.g. to spread
  // several clients of one cluster over its nodes.
  void start_at(std::size_t index) { current_ = index % nodes_.size(); }

  // Calls `connect` with each node in turn, starting at the current one,
  // until one returns without throwing; that node becomes the current one.
  // When every node failed, rethrows the last node's error with the others'
  // in front ("127.0.0.1:5672: refused; 127.0.0.1:5673: refused").
  template <typename Connected>
  Connected connect_any(const std::function<Connected(const BrokerUrl&)>& connect);

  // After the current node's connection failed: the next round starts at
  // the node after it.
  void move_on() { current_ = (current_ + 1) % nodes_.size(); }

  // Every node, password-free, comma-separated (for logs and status).
  std::string redacted() const;

 private:
  std::vector<BrokerUrl> nodes_;
  std::size_t current_ = 0;
};

// Rethrows the error of the last failed node, its message prefixed with
// the errors of the nodes before it (the error type is kept).
[[noreturn]] void throw_all_nodes_failed(const std::vector<std::string>& earlier, const std::string& last_node);

template <typename Connected>
Connected BrokerNodes::connect_any(const std::function<Connected(const BrokerUrl&)>& connect) {
  std::vector<std::string> errors;
  for (std::size_t tried = 0;; tried++) {
    const std::size_t index = (current_ + tried) % nodes_.size();
    const BrokerUrl& node = nodes_[index];
    try {
      Connected connected = connect(node);
      current_ = index;
      return connected;
    } catch (const std::exception& e) {
      if (tried + 1 == nodes_.size()) {
        current_ = (index + 1) % nodes_.size();
        if (nodes_.size() == 1) throw;
        throw_all_nodes_failed(errors, node.host + ":" + std::to_string(node.port));
      }
      errors.push_back(node.host + ":" + std::to_string(node.port) + ": " + e.what());
    }
  }
}

}  // namespace taskq

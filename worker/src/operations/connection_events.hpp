// The worker's connection events (Worker::on_connection_event): each of its
// connections (the broker consumer, the starter's, finisher's,
// heartbeater's and callback dispatcher's database connections) reports
// its state through a ConnectionWatch, which turns "this call worked" /
// "this call lost the connection" into the transitions an embedding program
// wants to see: connected, lost (why), reconnecting (when). The worker's own
// log lines about connections stay where they are; these go to the
// program's listeners.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "taskq/worker.hpp"

namespace taskq {

// The listeners of one worker. add() before the worker runs; emit() from
// any thread: listeners are called one event at a time.
class ConnectionEvents {
 public:
  void add(ConnectionListener listener);
  // Calls every listener; a listener's exception is logged, never thrown.
  void emit(const ConnectionEvent& event) noexcept;

 private:
  std::mutex mu_;  // serialises the calls, so listeners need no locking of their own
  std::vector<ConnectionListener> listeners_;
};

// One connection's state as its events report it. Owned and used by the one
// thread that uses the connection; costs a comparison when nothing changes
// (it is called after every successful database round trip).
class ConnectionWatch {
 public:
  // `events` may be nullptr (no events: tests of the parts).
  ConnectionWatch(ConnectionEvents* events, ConnectionEvent::Service service, std::string connection)
      : events_(events), service_(service), connection_(std::move(connection)) {}

  // A call on the connection worked: kConnected unless it was up already.
  void up() noexcept {
    if (state_ != State::kUp) changed_up();
  }
  // The connection failed, or a try to open it did: kLost if it was up,
  // then kReconnecting when the caller will try again after `next_delay`.
  void down(const std::string& reason, std::optional<std::chrono::milliseconds> next_delay) noexcept;

 private:
  enum class State { kNever, kUp, kDown };
  void changed_up() noexcept;
  void emit(ConnectionEvent::Kind kind, const std::string& reason, std::chrono::milliseconds delay) noexcept;

  ConnectionEvents* events_;
  ConnectionEvent::Service service_;
  std::string connection_;
  State state_ = State::kNever;
};

}  // namespace taskq

// See connection_events.hpp.
#include "operations/connection_events.hpp"

#include "operations/log.hpp"

namespace taskq {

const char* to_string(ConnectionEvent::Service service) {
  return service == ConnectionEvent::Service::kBroker ? "broker" : "database";
}

const char* to_string(ConnectionEvent::Kind kind) {
  switch (kind) {
    case ConnectionEvent::Kind::kConnected:
      return "connected";
    case ConnectionEvent::Kind::kLost:
      return "lost";
    case ConnectionEvent::Kind::kReconnecting:
      return "reconnecting";
  }
  return "connected";
}

void ConnectionEvents::add(ConnectionListener listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.push_back(std::move(listener));
}

void ConnectionEvents::emit(const ConnectionEvent& event) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& listener : listeners_) {
    try {
      listener(event);
    } catch (const std::exception& e) {
      log::error("connection event listener threw: {}", e.what());
    } catch (...) {
      log::error("connection event listener threw a non-standard exception");
    }
  }
}

void ConnectionWatch::changed_up() noexcept {
  state_ = State::kUp;
  emit(ConnectionEvent::Kind::kConnected, {}, std::chrono::milliseconds(0));
}

void ConnectionWatch::down(const std::string& reason, std::optional<std::chrono::milliseconds> next_delay) noexcept {
  // A connection that never came up was not lost: its first tries only
  // report that they are being repeated.
  if (state_ == State::kUp) emit(ConnectionEvent::Kind::kLost, reason, std::chrono::milliseconds(0));
  state_ = State::kDown;
  if (next_delay) emit(ConnectionEvent::Kind::kReconnecting, reason, *next_delay);
}

void ConnectionWatch::emit(ConnectionEvent::Kind kind, const std::string& reason,
                           std::chrono::milliseconds delay) noexcept {
  if (events_ == nullptr) return;
  try {
    ConnectionEvent event;
    event.service = service_;
    event.kind = kind;
    event.connection = connection_;
    event.reason = reason;
    event.next_delay = delay;
    events_->emit(event);
  } catch (...) {
    // Out of memory copying the strings: the event is lost, the worker is not.
  }
}

}  // namespace taskq

// The HTTP side of callback delivery: many signed POSTs in flight on one
// libcurl multi handle (whose connection cache reuses connections across
// deliveries), each with a total timeout, no redirects, http/https only, a
// bounded response, and the SSRF guard applied at socket-open time.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "callbacks/callback_retry.hpp"
#include "callbacks/callback_store.hpp"
#include "handlers/curl_handles.hpp"

namespace taskq {

struct SenderOptions {
  std::string secret;  // empty: unsigned
  bool refuse_private_addresses = false;
  std::chrono::milliseconds timeout{10'000};
  int max_connections = 16;  // kept open for reuse
  std::string user_agent = "taskq-worker";
};

struct SentCallback {
  CallbackRow row;
  DeliveryAttempt attempt;
};

class CallbackSender {
 public:
  explicit CallbackSender(SenderOptions options);  // throws std::runtime_error if libcurl cannot start
  ~CallbackSender();
  CallbackSender(const CallbackSender&) = delete;
  CallbackSender& operator=(const CallbackSender&) = delete;

  // Starts the POST (signed now, with a fresh timestamp). A request that
  // cannot even be set up finishes at once, failed.
  void start(CallbackRow row);
  std::size_t in_flight() const { return transfers_.size(); }

  // Drives the transfers, waiting at most `timeout` for progress on them or
  // for `extra_fd` (-1: none) to become readable; returns whether it did.
  bool wait(std::chrono::milliseconds timeout, int extra_fd);
  // The POSTs that ended since the last call.
  std::vector<SentCallback> take_finished();

  // New connections opened so far (the rest reused one).
  long connections_opened() const { return connections_opened_; }

 private:
  struct Transfer;
  void finish(CURL* easy, CURLcode result);

  SenderOptions options_;
  CurlMulti multi_;
  std::map<CURL*, std::unique_ptr<Transfer>> transfers_;
  std::vector<SentCallback> finished_;
  long connections_opened_ = 0;
};

}  // namespace taskq

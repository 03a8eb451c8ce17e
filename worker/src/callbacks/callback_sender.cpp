// Signed callback POSTs over libcurl's multi interface; see callback_sender.hpp.
#include "callbacks/callback_sender.hpp"

#include <sys/socket.h>

#include <ctime>
#include <stdexcept>

#include "callbacks/address_policy.hpp"
#include "callbacks/callback_signature.hpp"

namespace taskq {
namespace {

// What is kept of a response: enough for last_error. A receiver that sends
// more than kMaxResponseBytes is cut off (the status line has arrived by
// then, so a 2xx still counts as delivered).
constexpr std::size_t kKeptResponseBytes = 512;
constexpr std::size_t kMaxResponseBytes = 1 << 20;

}  // namespace

struct CallbackSender::Transfer {
  CallbackRow row;
  CurlEasy easy;
  CurlHeaders headers;
  std::string response;           // first kKeptResponseBytes
  std::size_t response_size = 0;  // all of it
  std::string refusal;            // why the SSRF guard refused a connection
  bool refuse_private = false;
  char error[CURL_ERROR_SIZE] = {};

  static std::size_t on_data(char* data, std::size_t size, std::size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const std::size_t len = size * n;
    t->response_size += len;
    if (t->response_size > kMaxResponseBytes) return 0;  // aborts with CURLE_WRITE_ERROR
    if (t->response.size() < kKeptResponseBytes)
      t->response.append(data, std::min(len, kKeptResponseBytes - t->response.size()));
    return len;
  }

  // Called for every connection libcurl opens, with the address it resolved:
  // the only place a DNS answer cannot change between check and use.
  static curl_socket_t on_open_socket(void* user, curlsocktype purpose, curl_sockaddr* address) {
    auto* t = static_cast<Transfer*>(user);
    if (t->refuse_private) {
      const AddressClass c = classify_address(&address->addr);
      if (c != AddressClass::kPublic) {
        if (t->refusal.empty())
          t->refusal = "refused to connect to " + address_text(&address->addr) + " (" + describe(c) +
                       "): refuse_private_addresses allows public addresses only";
        return CURL_SOCKET_BAD;
      }
    }
    return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  }
};

CallbackSender::CallbackSender(SenderOptions options) : options_(std::move(options)) {
  ensure_curl_initialised();
  multi_.reset(curl_multi_init());
  if (!multi_) throw std::runtime_error("libcurl: cannot create a multi handle");
  curl_multi_setopt(multi_.get(), CURLMOPT_MAXCONNECTS, static_cast<long>(std::max(options_.max_connections, 1)));
}

CallbackSender::~CallbackSender() {
  // Easy handles must leave the multi handle before either is cleaned up.
  for (auto& [easy, transfer] : transfers_) curl_multi_remove_handle(multi_.get(), easy);
  transfers_.clear();
}

void CallbackSender::start(CallbackRow row) {
  auto t = std::make_unique<Transfer>();
  t->row = std::move(row);
  t->refuse_private = options_.refuse_private_addresses;
  t->easy.reset(curl_easy_init());
  if (!t->easy) {
    finished_.push_back({std::move(t->row), {0, "libcurl: cannot create a request handle", false}});
    return;
  }
  CURL* e = t->easy.get();
  t->headers.append("Content-Type: application/json");
  t->headers.append("X-Taskq-Event: " + t->row.event);
  t->headers.append("X-Taskq-Job-Id: " + t->row.job_id);
  t->headers.append("X-Taskq-Delivery: " + t->row.delivery_id);
  if (!t->row.traceparent.empty()) t->headers.append("traceparent: " + t->row.traceparent);
  if (!t->row.tracestate.empty()) t->headers.append("tracestate: " + t->row.tracestate);
  if (!options_.secret.empty())
    t->headers.append("X-Taskq-Signature: " +
                      callback_signature(options_.secret, static_cast<std::int64_t>(std::time(nullptr)), t->row.body));
  t->headers.append("Expect:");  // no 100-continue round trip

  curl_easy_setopt(e, CURLOPT_URL, t->row.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->row.body.data());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->row.body.size()));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers.get());
  curl_easy_setopt(e, CURLOPT_USERAGENT, options_.user_agent.c_str());
  // CURLOPT_TIMEOUT_MS covers the whole exchange, connect included.
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Transfer::on_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &Transfer::on_open_socket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t.get());
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  // A proxy would be the address the guard sees, not the target: with the
  // guard on, connect directly (environment proxies ignored).
  if (options_.refuse_private_addresses) curl_easy_setopt(e, CURLOPT_PROXY, "");

  const CURLMcode rc = curl_multi_add_handle(multi_.get(), e);
  if (rc != CURLM_OK) {
    finished_.push_back({std::move(t->row), {0, std::string("libcurl: ") + curl_multi_strerror(rc), false}});
    return;
  }
  transfers_.emplace(e, std::move(t));
}

bool CallbackSender::wait(std::chrono::milliseconds timeout, int extra_fd) {
  int running = 0;
  curl_multi_perform(multi_.get(), &running);
  curl_waitfd extra{};
  extra.fd = extra_fd;
  extra.events = CURL_WAIT_POLLIN;
  const int timeout_ms = static_cast<int>(std::max<std::int64_t>(timeout.count(), 0));
  curl_multi_poll(multi_.get(), extra_fd >= 0 ? &extra : nullptr, extra_fd >= 0 ? 1 : 0, timeout_ms, nullptr);
  curl_multi_perform(multi_.get(), &running);
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &queued))
    if (msg->msg == CURLMSG_DONE) finish(msg->easy_handle, msg->data.result);
  return extra_fd >= 0 && (extra.revents & CURL_WAIT_POLLIN) != 0;
}

void CallbackSender::finish(CURL* easy, CURLcode result) {
  auto it = transfers_.find(easy);
  if (it == transfers_.end()) return;
  std::unique_ptr<Transfer> t = std::move(it->second);
  transfers_.erase(it);
  curl_multi_remove_handle(multi_.get(), easy);

  long connects = 0;
  if (curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK) connections_opened_ += connects;
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);

  DeliveryAttempt a;
  a.status = status;
  const bool cut_off = result == CURLE_WRITE_ERROR && t->response_size > kMaxResponseBytes;
  if (result == CURLE_OK || (cut_off && status > 0)) {
    if (!is_delivered_status(status)) {
      a.error = "HTTP " + std::to_string(status);
      if (status >= 300 && status < 400) {
        char* location = nullptr;
        curl_easy_getinfo(easy, CURLINFO_REDIRECT_URL, &location);
        a.error += location ? std::string(": redirects are not followed (Location: ") + location + ")"
                            : ": redirects are not followed";
      } else if (!t->response.empty()) {
        // Control characters (a NUL would not even fit in a text column)
        // become spaces; invalid UTF-8 is replaced when it is recorded.
        std::string excerpt = t->response;
        for (char& c : excerpt)
          if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
        a.error += ": " + excerpt + (t->response_size > t->response.size() ? "..." : "");
      }
      if (cut_off) a.error += " (response cut off after 1 MiB)";
    }
  } else if (!t->refusal.empty()) {
    a.error = t->refusal;
  } else if (result == CURLE_OPERATION_TIMEDOUT) {
    a.error = "timed out after " + std::to_string(options_.timeout.count()) + " ms (connect included)";
  } else {
    a.error = std::string(curl_easy_strerror(result));
    if (t->error[0] != '\0') a.error += std::string(": ") + t->error;
    // Retrying cannot make these URLs work.
    a.permanent = result == CURLE_UNSUPPORTED_PROTOCOL || result == CURLE_URL_MALFORMAT;
  }
  finished_.push_back({std::move(t->row), std::move(a)});
}

std::vector<SentCallback> CallbackSender::take_finished() {
  std::vector<SentCallback> out;
  out.swap(finished_);
  return out;
}

}  // namespace taskq

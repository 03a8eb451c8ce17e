// http(s):// handler; see http_handler.hpp. One CURL easy handle per runner
// thread, so connections to the endpoint are reused across jobs.
#include "handlers/http_handler.hpp"

#include "db/valid_text.hpp"

#include <curl/curl.h>

#include <memory>

namespace taskq {
namespace {

constexpr std::size_t kMaxResponse = 1 << 20;

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

// libcurl calls this while the request waits for its answer too (about once a
// second when nothing moves), so a cancel or a shutdown stops a request to an
// endpoint that hangs instead of waiting for it.
int abort_when_cancelled(void* token, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const CancellationToken*>(token)->cancelled() ? 1 : 0;
}

std::size_t collect(char* data, std::size_t size, std::size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  const std::size_t len = size * n;
  if (out->size() < kMaxResponse) out->append(data, std::min(len, kMaxResponse - out->size()));
  return len;
}

CURL* thread_handle() {
  static const bool initialised = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  (void)initialised;
  thread_local std::unique_ptr<CURL, CurlDeleter> handle(curl_easy_init());
  curl_easy_reset(handle.get());  // keeps its connection cache
  return handle.get();
}

}  // namespace

Outcome map_http_result(long status, const std::string& body, const std::string& transport_error) {
  if (status == 0) return Outcome::retry("HTTP request failed: " + transport_error);
  if (status >= 200 && status < 300) {
    if (body.empty()) return Outcome::completed(nullptr);
    auto parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    return Outcome::completed(parsed.is_discarded() ? nlohmann::json(valid_text(body)) : parsed);
  }
  const std::string error = "HTTP " + std::to_string(status) + (body.empty() ? "" : ": " + body.substr(0, 2000));
  if (status >= 400 && status < 500 && status != 408 && status != 429) return Outcome::failed(error);
  return Outcome::retry(error);
}

Handler make_http_handler(std::string url, std::chrono::milliseconds timeout) {
  return [url = std::move(url), timeout](const Job& job, const CancellationToken& token) {
    CURL* curl = thread_handle();
    std::string response;
    std::unique_ptr<curl_slist, SlistDeleter> headers(curl_slist_append(nullptr, "Content-Type: application/json"));
    const std::string id_header = "X-Taskq-Job-Id: " + job.id;
    const std::string attempt_header = "X-Taskq-Attempt: " + std::to_string(job.attempt);
    curl_slist_append(headers.get(), id_header.c_str());
    curl_slist_append(headers.get(), attempt_header.c_str());
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, job.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(job.body.size()));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    // No limit but --job-timeout, as for exec handlers; keepalive probes find
    // an endpoint that vanished without closing the connection.
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, abort_when_cancelled);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &token);
    const CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_ABORTED_BY_CALLBACK) return Outcome::retry("HTTP request stopped: " + token.reason());
    long status = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    return map_http_result(status, response, rc == CURLE_OK ? "" : curl_easy_strerror(rc));
  };
}

}  // namespace taskq

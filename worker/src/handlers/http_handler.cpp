// http(s):// handler; see http_handler.hpp. One CURL easy handle per runner
// thread, so connections to the endpoint are reused across jobs.
#include "handlers/http_handler.hpp"

#include "handlers/curl_handles.hpp"
#include "handlers/handler_result.hpp"

#include <curl/curl.h>

#include <new>
#include <stdexcept>

namespace taskq {
namespace {

constexpr std::size_t kMaxResponse = 1 << 20;

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

// This runner thread's handle, reset for the next request; null when libcurl
// could not make one (out of memory), which the next job tries again.
// Throws when libcurl cannot be initialised at all.
CURL* thread_handle() {
  ensure_curl_initialised();
  thread_local CurlEasy handle;
  if (!handle) handle.reset(curl_easy_init());
  if (handle) curl_easy_reset(handle.get());  // keeps its connection cache
  return handle.get();
}

}  // namespace

Outcome map_http_result(long status, const std::string& body, const std::string& transport_error) {
  if (status == 0) return Outcome::retry("HTTP request failed: " + transport_error);
  if (status >= 200 && status < 300) return completed_from_output(body);
  const std::string error = "HTTP " + std::to_string(status) + (body.empty() ? "" : ": " + body.substr(0, 2000));
  if (status >= 400 && status < 500 && status != 408 && status != 429) return Outcome::failed(error);
  return Outcome::retry(error);
}

Handler make_http_handler(std::string url, std::chrono::milliseconds timeout) {
  return [url = std::move(url), timeout](const Job& job, const CancellationToken& token) {
    // Nothing was sent in these two cases, so the job is simply retried.
    CURL* curl;
    try {
      curl = thread_handle();
    } catch (const std::runtime_error& e) {
      return Outcome::retry(std::string("HTTP request not sent: ") + e.what());
    }
    if (curl == nullptr) return Outcome::retry("HTTP request not sent: libcurl could not create a handle");
    CurlHeaders headers;
    try {
      headers.append("Content-Type: application/json");
      headers.append("X-Taskq-Job-Id: " + job.id);
      headers.append("X-Taskq-Attempt: " + std::to_string(job.attempt));
      // The producer's trace context (checked when the message was parsed:
      // it cannot carry a line break into the request).
      if (!job.traceparent.empty()) headers.append("traceparent: " + job.traceparent);
      if (!job.tracestate.empty()) headers.append("tracestate: " + job.tracestate);
    } catch (const std::bad_alloc&) {
      return Outcome::retry("HTTP request not sent: out of memory for its headers");
    }
    std::string response;
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

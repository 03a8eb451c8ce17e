// Move-only RAII owners of libcurl handles (CURL*, CURLM*, curl_slist*) and
// the once-per-process libcurl initialisation.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace taskq {

struct CurlEasyDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct CurlMultiDeleter {
  void operator()(CURLM* m) const { curl_multi_cleanup(m); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlMulti = std::unique_ptr<CURLM, CurlMultiDeleter>;

// A header list that stays valid if appending fails half-way (curl_slist_append
// returns NULL then, and the old list must still be freed).
class CurlHeaders {
 public:
  void append(const std::string& line) {
    curl_slist* grown = curl_slist_append(list_.get(), line.c_str());
    if (grown == nullptr) throw std::bad_alloc();
    list_.release();
    list_.reset(grown);
  }
  curl_slist* get() const { return list_.get(); }

 private:
  std::unique_ptr<curl_slist, CurlSlistDeleter> list_;
};

// curl_global_init once, before the first handle; thread-safe (a function-
// local static), and a failure is reported on every call.
inline void ensure_curl_initialised() {
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) throw std::runtime_error(std::string("libcurl initialisation failed: ") + curl_easy_strerror(rc));
}

}  // namespace taskq

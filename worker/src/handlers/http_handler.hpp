// The http(s)://URL handler (docs/worker.md): POSTs the message
// body; 2xx completes the job with the response body as result, 4xx other
// than 408/429 fails it for good, anything else is retried.
#pragma once

#include <chrono>
#include <string>

#include "taskq/worker.hpp"

namespace taskq {

// Maps an HTTP exchange to an outcome. status 0: no response (the error
// text says why).
Outcome map_http_result(long status, const std::string& body, const std::string& transport_error);

Handler make_http_handler(std::string url, std::chrono::milliseconds timeout);

}  // namespace taskq

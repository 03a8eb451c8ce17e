// Messages that carry several jobs (a queue with jobs_per_message > 1,
// docs/message-format.md#several-jobs-per-message): the body is a JSON array
// of job bodies. Each job is handed on as a delivery of its own with the
// element's exact text (an HTTP handler POSTs it as the one-job body), and
// the message is acked once every one of its jobs is done with.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace taskq {

// Whether the body is a packed message's: its first non-blank character
// opens an array (a one-job body is an object).
bool is_packed_body(const std::string& body);

// The elements of a valid JSON array, each as its exact text (leading and
// trailing blanks trimmed); nullopt when the body is not valid JSON, not an
// array, or an empty one. Strings are scanned with their escapes, so a "]"
// or "," inside a payload string splits nothing.
std::optional<std::vector<std::string>> split_packed_body(const std::string& body);

}  // namespace taskq

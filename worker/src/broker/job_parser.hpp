// Parsing and validation of a delivered message into a taskq::Job. Garbage
// (not JSON, missing fields, wrong queue) is reported, never thrown: the
// consumer logs it and drops the delivery instead of looping on it.
// (The message is built by extension/core/job_message; this is the other end.)
#pragma once

#include <optional>
#include <string>

#include "taskq/worker.hpp"

namespace taskq {

// `queue` is the taskq queue the delivery came from (routing key); a body
// naming another queue is refused.
std::optional<Job> parse_job_message(const std::string& body, const std::string& queue, std::string* error);

}  // namespace taskq

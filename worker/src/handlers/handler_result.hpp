// What exec and http handlers turn a successful run's output into: the
// completed outcome, with the result as JSON (or a JSON string when it does
// not parse) and the follow-up jobs the output asks for.
//
// Follow-up jobs (docs/worker.md, "Follow-up jobs"): when the output is a
// JSON object with the reserved member "taskq_enqueue", that member's value
// is the outcome's `enqueue` (job specs, as taskq.complete takes them) and
// the result is the object without it. Nothing else is reserved; any other
// output is the result as before.
#pragma once

#include <string>

#include "taskq/worker.hpp"

namespace taskq {

// The reserved member of a handler's JSON output.
inline constexpr const char* kEnqueueMember = "taskq_enqueue";

// `output` is stdout or the response body, trailing newlines removed;
// empty: completed with a NULL result.
Outcome completed_from_output(const std::string& output);

}  // namespace taskq

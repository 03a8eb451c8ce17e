// W3C Trace Context (https://www.w3.org/TR/trace-context/): checks of the
// `traceparent` and `tracestate` values a producer hands taskq, so that a
// job's trace context travels from the enqueueing transaction to its
// handler and callback unchanged. taskq only carries the context, it does
// not trace: nothing here makes ids or spans.
//
// Shared by the extension (taskq.enqueue drops invalid values with a
// warning, through taskq._traceparent_problem / _tracestate_problem) and the
// worker (which checks again what a message carries before it becomes an
// environment variable or an HTTP header of a handler's request).
#pragma once

#include "no_postgres.hpp"

#include <optional>
#include <string_view>

namespace taskq {

// A valid traceparent, as views into the value it was parsed from:
// "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".
struct TraceParent {
  std::string_view version;    // 2 lowercase hex digits, not "ff"
  std::string_view trace_id;   // 32 lowercase hex digits, not all zero
  std::string_view parent_id;  // 16 lowercase hex digits, not all zero
  std::string_view flags;      // 2 lowercase hex digits
};

// Version 00 is exactly this long; later versions may append "-..." fields.
constexpr std::size_t kTraceparentBytes = 55;
// Longest traceparent of a later version that taskq passes on.
constexpr std::size_t kMaxTraceparentBytes = 256;
// A tracestate holds at most this many list members.
constexpr int kMaxTracestateMembers = 32;

// Why `value` is not a traceparent taskq passes on ("trace-id is all
// zeros"), or nullptr when it is one. Lowercase hex only, as the
// specification requires; a version above 00 is accepted when it starts
// like version 00 and anything after is "-" and visible ASCII.
const char* traceparent_problem(std::string_view value) noexcept;
std::optional<TraceParent> parse_traceparent(std::string_view value) noexcept;

// Why `value` is not a valid tracestate (a list of up to 32 "key=value"
// members separated by commas), or nullptr when it is one. The empty list
// is valid. `member` (may be nullptr) receives the 1-based position of the
// offending member.
const char* tracestate_problem(std::string_view value, int* member = nullptr) noexcept;

}  // namespace taskq

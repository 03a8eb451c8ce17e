// Handler output (stdout, stderr, HTTP bodies) is arbitrary bytes, but what
// taskq stores is PostgreSQL text and jsonb: valid UTF-8 without NUL bytes.
#pragma once

#include <string>

namespace taskq {

// Drops NUL bytes and replaces every invalid UTF-8 sequence with U+FFFD.
std::string valid_text(const std::string& bytes);

}  // namespace taskq

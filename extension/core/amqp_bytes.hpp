// Conversions between std::string and rabbitmq-c's amqp_bytes_t, which is a
// pointer and a length with no ownership: bytes_of() borrows the string's
// storage, so the string must outlive every use of the result.
#pragma once

#include "no_postgres.hpp"

#include <amqp.h>

#include <string>

namespace taskq {

inline amqp_bytes_t bytes_of(const std::string& s) { return amqp_bytes_t{s.size(), const_cast<char*>(s.data())}; }

inline std::string string_of(amqp_bytes_t b) { return std::string(static_cast<const char*>(b.bytes), b.len); }

}  // namespace taskq

// Implementation of core_bridge.h: thin wrappers that turn C++ exceptions
// into an error string. This file must not include PostgreSQL headers.
#include "core_bridge.h"

#include <cstring>
#include <exception>

#include "core/uuid_v7.hpp"

namespace {

void copy_error(char* err, size_t errlen, const char* what) noexcept {
  if (err == nullptr || errlen == 0) return;
  std::strncpy(err, what, errlen - 1);
  err[errlen - 1] = '\0';
}

// Runs fn, turning any exception into false + message.
template <typename Fn>
bool guarded(char* err, size_t errlen, Fn&& fn) noexcept {
  try {
    fn();
    return true;
  } catch (const std::exception& e) {
    copy_error(err, errlen, e.what());
  } catch (...) {
    copy_error(err, errlen, "unknown C++ exception");
  }
  return false;
}

}  // namespace

extern "C" bool taskq_bridge_next_uuid(uint8_t out[16], char* err, size_t errlen) noexcept {
  return guarded(err, errlen, [&] {
    // One generator per backend: ids are monotonic within a session.
    static taskq::UuidV7Generator generator;
    const taskq::Uuid id = generator.next();
    std::memcpy(out, id.data(), id.size());
  });
}

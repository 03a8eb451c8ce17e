// X-Taskq-Signature (docs/callbacks.md): "t=<unix seconds>,v1=<hex
// HMAC-SHA256(secret, "<t>.<body>")>". The timestamp is part of the signed
// text so that a receiver can refuse replays of old deliveries.
#pragma once

#include <cstdint>
#include <string>

namespace taskq {

// Lower-case hex HMAC-SHA256 of `message` under `key`.
std::string hmac_sha256_hex(const std::string& key, const std::string& message);

// The header's value (without the "X-Taskq-Signature: " name).
std::string callback_signature(const std::string& secret, std::int64_t unix_seconds, const std::string& body);

}  // namespace taskq

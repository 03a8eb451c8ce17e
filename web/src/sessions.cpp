// See sessions.hpp.
#include "sessions.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <stdexcept>

namespace taskq::web {
namespace {

std::string digest_of(const std::string& id) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(id.data()), id.size(), out);
  return std::string(reinterpret_cast<const char*>(out), sizeof(out));
}

}  // namespace

std::string random_token() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) throw std::runtime_error("no random bytes from OpenSSL");
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  unsigned int acc = 0;
  int bits = 0;
  for (unsigned char b : bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += alphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += alphabet[(acc << (6 - bits)) & 63];
  return out;
}

std::string SessionStore::create(Role role, Session* out) {
  const std::string id = random_token();
  Session s{role, random_token()};
  const Clock::time_point now = Clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = sessions_.begin(); it != sessions_.end();) it = it->second.expires <= now ? sessions_.erase(it) : ++it;
  if (sessions_.size() >= kMaxSessions) {
    auto oldest = sessions_.begin();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it)
      if (it->second.expires < oldest->second.expires) oldest = it;
    sessions_.erase(oldest);
  }
  sessions_[digest_of(id)] = {s, now + kLifetime};
  if (out) *out = s;
  return id;
}

std::optional<Session> SessionStore::find(const std::string& session_id) const {
  if (session_id.empty()) return std::nullopt;
  const std::string key = digest_of(session_id);
  std::lock_guard<std::mutex> lock(mu_);
  const auto found = sessions_.find(key);
  if (found == sessions_.end() || found->second.expires <= Clock::now()) return std::nullopt;
  return found->second.session;
}

void SessionStore::remove(const std::string& session_id) {
  const std::string key = digest_of(session_id);
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(key);
}

bool SessionStore::csrf_matches(const Session& session, const std::string& presented) {
  const std::string& expected = session.csrf_token;
  // Same length first (it is public: 43), then the bytes in constant time.
  return presented.size() == expected.size() && !expected.empty() &&
         CRYPTO_memcmp(presented.data(), expected.data(), expected.size()) == 0;
}

std::string cookie_value(const std::string& header, const std::string& name) {
  std::size_t i = 0;
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ';')) ++i;
    const std::size_t end = std::min(header.find(';', i), header.size());
    const std::size_t eq = header.find('=', i);
    if (eq != std::string::npos && eq < end && header.compare(i, eq - i, name) == 0 && eq - i == name.size())
      return header.substr(eq + 1, end - eq - 1);
    i = end;
  }
  return "";
}

}  // namespace taskq::web

// Dashboard sessions: what a browser holds instead of a bearer token. A
// person signs in once with a token (POST /login); the server hands back a
// random session id in an HttpOnly, SameSite=Strict cookie and a separate
// random CSRF token that the page sends in X-CSRF-Token with every request
// that changes something. Sessions live in memory only (a restart signs
// everyone out) and end 12 hours after sign-in. Ids and CSRF tokens never
// appear in logs or messages.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "access_tokens.hpp"

namespace taskq::web {

constexpr const char* kSessionCookie = "taskq_session";

struct Session {
  Role role = Role::kRead;
  std::string csrf_token;
};

class SessionStore {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::hours kLifetime{12};
  static constexpr std::size_t kMaxSessions = 10000;  // the oldest goes beyond

  // A new session with `role`; returns the cookie value (the session id).
  std::string create(Role role, Session* out);
  // The session of a cookie value, if it exists and has not expired.
  std::optional<Session> find(const std::string& session_id) const;
  void remove(const std::string& session_id);

  // Whether `presented` is the session's CSRF token (constant time).
  static bool csrf_matches(const Session& session, const std::string& presented);

 private:
  struct Entry {
    Session session;
    Clock::time_point expires;
  };
  mutable std::mutex mu_;
  // Keyed by SHA-256 of the session id, so that the map's timing says
  // nothing about ids.
  std::map<std::string, Entry> sessions_;
};

// 32 random bytes from the operating system, as 43 base64url characters.
std::string random_token();

// The value of cookie `name` in a Cookie header ("" if absent).
std::string cookie_value(const std::string& cookie_header, const std::string& name);

}  // namespace taskq::web

// Who may do what: the roles of taskq-web and the token file that hands
// them out (--token-file: one "TOKEN ROLE" per line). Tokens are looked up
// in constant time and never appear in messages or logs.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace taskq::web {

// Ordered: each role may do everything the ones before it may.
enum class Role {
  kPublic,   // no token needed (/healthz, the placeholder page)
  kRead,     // GET only
  kOperate,  // also enqueue, retry, cancel, pause, resume
  kAdmin,    // also create, change and drop queues
};

const char* to_string(Role role);

class AccessTokens {
 public:
  // Parses the token file's text: one "TOKEN ROLE" per line, blank lines
  // and lines starting with # ignored. Throws std::invalid_argument naming
  // the line (never the token) when a line is malformed, a role unknown or
  // a token listed twice.
  static AccessTokens parse(const std::string& text);
  // Reads and parses FILE; throws std::invalid_argument (unreadable, empty
  // or malformed).
  static AccessTokens load(const std::string& path);

  // The role of a presented token, or nullopt if it is not one of ours.
  // Takes the same time whichever token (if any) matches: every entry is
  // compared, by SHA-256 digest, with a constant-time comparison.
  std::optional<Role> find(const std::string& token) const;

  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string digest;  // SHA-256 of the token, 32 bytes
    Role role;
  };
  std::vector<Entry> entries_;
};

}  // namespace taskq::web

// Token file parsing and constant-time look-up; see access_tokens.hpp.
#include "access_tokens.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace taskq::web {
namespace {

std::string sha256(const std::string& text) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), out);
  return std::string(reinterpret_cast<const char*>(out), sizeof(out));
}

std::optional<Role> parse_role(const std::string& name) {
  if (name == "read") return Role::kRead;
  if (name == "operate") return Role::kOperate;
  if (name == "admin") return Role::kAdmin;
  return std::nullopt;
}

}  // namespace

const char* to_string(Role role) {
  switch (role) {
    case Role::kPublic:
      return "public";
    case Role::kRead:
      return "read";
    case Role::kOperate:
      return "operate";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

AccessTokens AccessTokens::parse(const std::string& text) {
  AccessTokens tokens;
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream fields(line);
    std::string token, role_name, extra;
    fields >> token;
    if (token.empty() || token[0] == '#') continue;
    const std::string where = "line " + std::to_string(number) + ": ";
    if (!(fields >> role_name) || (fields >> extra))
      throw std::invalid_argument(where + "expected \"TOKEN ROLE\" (ROLE: read, operate or admin)");
    const auto role = parse_role(role_name);
    if (!role) throw std::invalid_argument(where + "unknown role \"" + role_name + "\" (read, operate or admin)");
    if (token.size() < 16) throw std::invalid_argument(where + "token is shorter than 16 characters");
    const std::string digest = sha256(token);
    for (const Entry& e : tokens.entries_)
      if (e.digest == digest) throw std::invalid_argument(where + "token listed twice");
    tokens.entries_.push_back({digest, *role});
  }
  return tokens;
}

AccessTokens AccessTokens::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  AccessTokens tokens;
  try {
    tokens = parse(text.str());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + " " + e.what());
  }
  if (tokens.size() == 0) throw std::invalid_argument(path + " holds no token");
  return tokens;
}

std::optional<Role> AccessTokens::find(const std::string& token) const {
  // Digests have one length, so the comparison time says nothing about
  // how much of a guess was right; no early exit, so neither does the
  // position of the match.
  const std::string digest = sha256(token);
  std::optional<Role> found;
  for (const Entry& e : entries_) {
    if (CRYPTO_memcmp(e.digest.data(), digest.data(), digest.size()) == 0) found = e.role;
  }
  return found;
}

}  // namespace taskq::web

// See trace_context.hpp. Written from the grammar of W3C Trace Context
// Level 1, sections 3.2 (traceparent) and 3.3 (tracestate).
#include "core/trace_context.hpp"

#include <cstddef>

namespace taskq {
namespace {

bool lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool all_lower_hex(std::string_view s) {
  for (char c : s)
    if (!lower_hex(c)) return false;
  return true;
}

bool all_zero(std::string_view s) {
  for (char c : s)
    if (c != '0') return false;
  return true;
}

bool lcalpha(char c) { return c >= 'a' && c <= 'z'; }
bool digit(char c) { return c >= '0' && c <= '9'; }
// The characters a tracestate key may hold after its first.
bool key_char(char c) { return lcalpha(c) || digit(c) || c == '_' || c == '-' || c == '*' || c == '/'; }
// Value characters other than the space: printable ASCII but ',' and '='.
bool nonblank_value_char(char c) { return c >= 0x21 && c <= 0x7e && c != ',' && c != '='; }
bool ows(char c) { return c == ' ' || c == '\t'; }

// simple-key = lcalpha 0*255(key_char)
// multi-tenant-key = (lcalpha / DIGIT) 0*240(key_char) "@" lcalpha 0*13(key_char)
const char* key_problem(std::string_view key) {
  if (key.empty()) return "a list member has no key";
  const auto at = key.find('@');
  if (at == std::string_view::npos) {
    if (key.size() > 256) return "a key is longer than 256 characters";
    if (!lcalpha(key[0])) return "a key must start with a lowercase letter";
    for (char c : key.substr(1))
      if (!key_char(c)) return "a key holds a character other than a-z 0-9 _ - * /";
    return nullptr;
  }
  const std::string_view tenant = key.substr(0, at);
  const std::string_view system = key.substr(at + 1);
  if (tenant.empty() || tenant.size() > 241) return "the tenant of a key is not 1 to 241 characters";
  if (system.empty() || system.size() > 14) return "the system of a key is not 1 to 14 characters";
  if (!lcalpha(tenant[0]) && !digit(tenant[0])) return "the tenant of a key must start with a-z or 0-9";
  if (!lcalpha(system[0])) return "the system of a key must start with a lowercase letter";
  for (char c : tenant.substr(1))
    if (!key_char(c)) return "a key holds a character other than a-z 0-9 _ - * / @";
  for (char c : system.substr(1))
    if (!key_char(c)) return "a key holds a character other than a-z 0-9 _ - * / @";
  return nullptr;
}

// value = 0*255(" " / nonblank) nonblank
const char* value_problem(std::string_view value) {
  if (value.empty()) return "a list member has an empty value";
  if (value.size() > 256) return "a value is longer than 256 characters";
  for (char c : value)
    if (c != ' ' && !nonblank_value_char(c)) return "a value holds a character other than printable ASCII but , =";
  if (value.back() == ' ') return "a value ends in a space";
  return nullptr;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && ows(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

const char* traceparent_problem(std::string_view v) noexcept {
  if (v.size() < kTraceparentBytes) return "too short: version-traceid-parentid-flags is 55 characters";
  if (v.size() > kMaxTraceparentBytes) return "longer than 256 characters";
  const std::string_view version = v.substr(0, 2);
  if (!all_lower_hex(version)) return "the version is not two lowercase hex digits";
  if (version == "ff") return "version ff is invalid";
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return "the fields are not separated by '-' at 2, 35 and 52";
  const std::string_view trace_id = v.substr(3, 32);
  const std::string_view parent_id = v.substr(36, 16);
  if (!all_lower_hex(trace_id)) return "the trace-id is not 32 lowercase hex digits";
  if (all_zero(trace_id)) return "the trace-id is all zeros";
  if (!all_lower_hex(parent_id)) return "the parent-id is not 16 lowercase hex digits";
  if (all_zero(parent_id)) return "the parent-id is all zeros";
  if (!all_lower_hex(v.substr(53, 2))) return "the flags are not two lowercase hex digits";
  if (version == "00") return v.size() == kTraceparentBytes ? nullptr : "version 00 is exactly 55 characters";
  // A later version: its own fields follow after a '-'. They are passed on
  // as given, so only characters that are safe in an HTTP header and an
  // environment variable are let through.
  if (v.size() == kTraceparentBytes) return nullptr;
  if (v[kTraceparentBytes] != '-') return "the flags of a later version are not followed by '-'";
  for (char c : v.substr(kTraceparentBytes))
    if (c < 0x21 || c > 0x7e || c == ',') return "a later version's fields hold a character other than visible ASCII";
  return nullptr;
}

std::optional<TraceParent> parse_traceparent(std::string_view v) noexcept {
  if (traceparent_problem(v) != nullptr) return std::nullopt;
  return TraceParent{v.substr(0, 2), v.substr(3, 32), v.substr(36, 16), v.substr(53, 2)};
}

const char* tracestate_problem(std::string_view v, int* member) noexcept {
  int members = 0;
  int position = 0;
  std::string_view keys[kMaxTracestateMembers];
  while (true) {
    ++position;
    if (member != nullptr) *member = position;
    const auto comma = v.find(',');
    const std::string_view item = trim_ows(v.substr(0, comma));
    // Empty members (",,", or only spaces) are allowed and carry nothing.
    if (!item.empty()) {
      const auto eq = item.find('=');
      if (eq == std::string_view::npos) return "a list member is not key=value";
      const std::string_view key = item.substr(0, eq);
      if (const char* p = key_problem(key)) return p;
      if (const char* p = value_problem(item.substr(eq + 1))) return p;
      if (members == kMaxTracestateMembers) return "more than 32 list members";
      for (int i = 0; i < members; ++i)
        if (keys[i] == key) return "a key appears twice";
      keys[members++] = key;
    }
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  if (member != nullptr) *member = 0;
  return nullptr;
}

}  // namespace taskq

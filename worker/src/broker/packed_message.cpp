// See packed_message.hpp.
#include "broker/packed_message.hpp"

#include <nlohmann/json.hpp>

namespace taskq {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string trimmed(const std::string& s, std::size_t from, std::size_t to) {
  while (from < to && is_blank(s[from])) ++from;
  while (to > from && is_blank(s[to - 1])) --to;
  return s.substr(from, to - from);
}

}  // namespace

bool is_packed_body(const std::string& body) {
  for (const char c : body) {
    if (is_blank(c)) continue;
    return c == '[';
  }
  return false;
}

std::optional<std::vector<std::string>> split_packed_body(const std::string& body) {
  // Validated by the JSON library first; the scan below then only has to
  // find the top-level commas of a well-formed array.
  if (!is_packed_body(body) || !nlohmann::json::accept(body)) return std::nullopt;
  std::vector<std::string> elements;
  int depth = 0;
  bool in_string = false;
  std::size_t element_start = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // the escaped character, whatever it is
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (depth++ == 0) element_start = i + 1;
        break;
      case ']':
      case '}':
        if (--depth == 0) {
          std::string last = trimmed(body, element_start, i);
          if (!last.empty()) elements.push_back(std::move(last));
        }
        break;
      case ',':
        if (depth == 1) {
          elements.push_back(trimmed(body, element_start, i));
          element_start = i + 1;
        }
        break;
      default:
        break;
    }
  }
  if (elements.empty()) return std::nullopt;
  return elements;
}

}  // namespace taskq

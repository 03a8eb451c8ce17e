// Request parsing; see request_input.hpp.
#include "request_input.hpp"

#include <algorithm>
#include <cstring>

#include "api_error.hpp"

namespace taskq::web {
namespace {

using nlohmann::json;

void skip_space(const std::string& s, std::size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
}

// Index just past the JSON string starting at s[i] == '"'.
std::size_t end_of_string(const std::string& s, std::size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\')
      ++i;
    else if (s[i] == '"')
      return i + 1;
  }
  return s.size();
}

// Index just past the JSON value starting at s[i] (already validated).
std::size_t end_of_value(const std::string& s, std::size_t i) {
  int depth = 0;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '"') {
      i = end_of_string(s, i) - 1;
      if (depth == 0) return i + 1;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
      if (depth < 0) return i;  // the end of the enclosing object
    } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
      return i;
    }
  }
  return i;
}

// The raw text of each member of a JSON object that nlohmann already
// accepted: JSON values are passed on as written, so a payload's numbers
// keep all their digits (jsonb stores numbers exactly; a double would not).
std::map<std::string, std::string> raw_members(const std::string& s) {
  std::map<std::string, std::string> out;
  std::size_t i = 0;
  skip_space(s, i);
  ++i;  // '{'
  for (;;) {
    skip_space(s, i);
    if (i >= s.size() || s[i] != '"') break;
    const std::size_t key_end = end_of_string(s, i);
    const std::string key = json::parse(s.substr(i, key_end - i)).get<std::string>();
    i = key_end;
    skip_space(s, i);
    ++i;  // ':'
    skip_space(s, i);
    const std::size_t value_end = end_of_value(s, i);
    out[key] = s.substr(i, value_end - i);
    i = value_end;
    skip_space(s, i);
    if (i < s.size() && s[i] == ',') ++i;
  }
  return out;
}

const char* type_name(FieldType type) {
  switch (type) {
    case FieldType::kString:
      return "a string";
    case FieldType::kInteger:
      return "an integer";
    case FieldType::kBoolean:
      return "true or false";
    case FieldType::kJson:
      return "any JSON value";
    case FieldType::kStringArray:
      return "an array of strings";
  }
  return "?";
}

// {"a","b"}: the array literal PostgreSQL reads, every element double-quoted
// with its backslashes and quotes escaped.
std::string array_literal(const json& strings) {
  std::string out = "{";
  for (const json& element : strings) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (const char c : element.get_ref<const std::string&>()) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

}  // namespace

void check_text(const std::string& name, const std::string& value) {
  if (value.find('\0') != std::string::npos)
    throw bad_request("invalid_text", name + " must not contain a NUL character");
}

std::vector<Argument> parse_body(const std::string& body, const std::vector<Field>& fields) {
  std::vector<Argument> args;
  const bool blank = body.find_first_not_of(" \t\r\n") == std::string::npos;
  json doc;
  if (!blank) {
    try {
      doc = json::parse(body);
    } catch (const json::parse_error& e) {
      throw bad_request("invalid_json", std::string("the body is not valid JSON: ") + e.what());
    }
    if (!doc.is_object()) throw bad_request("not_an_object", "the body must be a JSON object");
  }
  for (const auto& [key, value] : doc.items()) {
    bool known = false;
    for (const Field& f : fields) known = known || f.name == key;
    if (!known) {
      std::string names;
      for (const Field& f : fields) names += (names.empty() ? "" : ", ") + f.name;
      throw bad_request("unknown_field",
                        "unknown field \"" + key + "\"" +
                            (names.empty() ? " (this request takes no body)" : " (known: " + names + ")"));
    }
  }
  std::map<std::string, std::string> raw;
  for (const Field& f : fields) {
    if (!doc.contains(f.name)) {
      if (f.required) throw bad_request("missing_field", "field \"" + f.name + "\" is required");
      continue;
    }
    const json& v = doc[f.name];
    Argument arg{f.name, f.sql_type, std::nullopt};
    if (v.is_null() && f.type != FieldType::kJson) {
      args.push_back(arg);
      continue;
    }
    const bool fits = (f.type == FieldType::kString && v.is_string()) ||
                      (f.type == FieldType::kInteger && v.is_number_integer()) ||
                      (f.type == FieldType::kBoolean && v.is_boolean()) || f.type == FieldType::kJson ||
                      (f.type == FieldType::kStringArray && v.is_array() &&
                       std::all_of(v.begin(), v.end(), [](const json& element) { return element.is_string(); }));
    if (!fits) throw bad_request("wrong_type", "field \"" + f.name + "\" must be " + type_name(f.type));
    switch (f.type) {
      case FieldType::kString:
        arg.value = v.get<std::string>();
        check_text(f.name, *arg.value);
        break;
      case FieldType::kInteger:
      case FieldType::kBoolean:
        arg.value = v.dump();
        break;
      case FieldType::kJson:
        if (v.is_null()) break;  // JSON null: SQL NULL, and the SQL API says what it thinks of that
        if (raw.empty()) raw = raw_members(body);
        arg.value = raw[f.name];
        break;
      case FieldType::kStringArray:
        for (const json& element : v) check_text(f.name, element.get<std::string>());
        arg.value = array_literal(v);
        break;
    }
    args.push_back(std::move(arg));
  }
  return args;
}

std::string sql_call(const std::string& function, const std::vector<Argument>& args, int first_param) {
  std::string sql = function + "(";
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (i) sql += ", ";
    sql += args[i].name + " => $" + std::to_string(first_param + static_cast<int>(i)) + "::" + args[i].sql_type;
  }
  return sql + ")";
}

std::vector<Param> param_values(const std::vector<Argument>& args) {
  std::vector<Param> out;
  out.reserve(args.size());
  for (const Argument& a : args) out.push_back(a.value);
  return out;
}

void check_query(const std::multimap<std::string, std::string>& params, const std::vector<std::string>& allowed) {
  for (const auto& [name, value] : params) {
    bool known = false;
    for (const auto& a : allowed) known = known || a == name;
    if (!known) {
      std::string names;
      for (const auto& a : allowed) names += (names.empty() ? "" : ", ") + a;
      throw bad_request("unknown_parameter",
                        "unknown query parameter \"" + name + "\"" + (names.empty() ? "" : " (known: " + names + ")"));
    }
    if (params.count(name) > 1)
      throw bad_request("duplicate_parameter", "query parameter \"" + name + "\" is given more than once");
    check_text(name, value);
  }
}

nlohmann::ordered_json body_schema(const std::vector<Field>& fields) {
  nlohmann::ordered_json properties = nlohmann::ordered_json::object();
  nlohmann::ordered_json required = nlohmann::ordered_json::array();
  for (const Field& f : fields) {
    nlohmann::ordered_json p;
    switch (f.type) {
      case FieldType::kString:
        p["type"] = f.required ? nlohmann::ordered_json("string") : nlohmann::ordered_json({"string", "null"});
        break;
      case FieldType::kInteger:
        p["type"] = {"integer", "null"};
        break;
      case FieldType::kBoolean:
        p["type"] = {"boolean", "null"};
        break;
      case FieldType::kJson:
        break;  // any JSON value
      case FieldType::kStringArray:
        p["type"] = {"array", "null"};
        p["items"] = {{"type", "string"}};
        if (!f.format.empty()) p["items"]["format"] = f.format;
        break;
    }
    if (!f.format.empty() && f.type != FieldType::kStringArray) p["format"] = f.format;
    p["description"] = f.description;
    properties[f.name] = p;
    if (f.required) required.push_back(f.name);
  }
  nlohmann::ordered_json schema = {{"type", "object"}, {"properties", properties}, {"additionalProperties", false}};
  if (!required.empty()) schema["required"] = required;
  return schema;
}

}  // namespace taskq::web

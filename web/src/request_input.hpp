// Turning request bodies and query strings into SQL arguments, strictly:
// a body is one JSON object whose fields are all known and of the right
// JSON type, or the request is refused with 400 naming the field. The same
// field lists document the request bodies in the OpenAPI document.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "db_session.hpp"

namespace taskq::web {

enum class FieldType {
  kString,   // JSON string -> SQL text (then cast to sql_type)
  kInteger,  // JSON integer
  kBoolean,  // JSON true/false
  kJson,     // any JSON value, passed on byte for byte (numbers keep every digit)
  // JSON array of strings -> a PostgreSQL array literal (then cast to
  // sql_type, "uuid[]"): each element quoted, so none can reach beyond it.
  kStringArray,
};

struct Field {
  std::string name;  // = the SQL argument name
  FieldType type;
  std::string sql_type;  // the cast applied to the parameter: "text", "interval", "jsonb", ...
  std::string description;
  std::string format = "";  // OpenAPI format hint ("date-time", "uuid", "duration", "uri"); of the items for arrays
  bool required = false;
};

// A named SQL argument with its value (nullopt: SQL NULL, from a JSON null).
struct Argument {
  std::string name;
  std::string sql_type;
  Param value;
};

// Parses a request body against `fields`. An empty body counts as {}.
// Fields left out are left out of the result, so the SQL function's own
// default applies; an explicit null becomes SQL NULL. Throws ApiError 400
// (invalid_json, not_an_object, unknown_field, wrong_type, missing_field,
// invalid_text).
std::vector<Argument> parse_body(const std::string& body, const std::vector<Field>& fields);

// `function(name => $N::type, ...)` for the given arguments, numbering
// parameters from `first_param`. Only argument names and types from the
// field lists reach the text; values stay parameters.
std::string sql_call(const std::string& function, const std::vector<Argument>& args, int first_param = 1);
std::vector<Param> param_values(const std::vector<Argument>& args);

// Refuses query parameters not in `allowed`, given twice, or holding a NUL
// byte (400 unknown_parameter / duplicate_parameter / invalid_text).
void check_query(const std::multimap<std::string, std::string>& params, const std::vector<std::string>& allowed);

// Text PostgreSQL can take as a parameter: no NUL byte (400 invalid_text).
void check_text(const std::string& name, const std::string& value);

// The JSON Schema of a body made of `fields` (for the OpenAPI document).
nlohmann::ordered_json body_schema(const std::vector<Field>& fields);

}  // namespace taskq::web

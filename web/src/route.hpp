// What one API route is: method, path template, the role it needs, its
// handler and its documentation. The router, the authorization check, the
// metrics labels and the OpenAPI document are all made from one list of
// these (api_routes.hpp), so the served API and its description cannot
// drift apart.
#pragma once

#include <httplib.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "access_tokens.hpp"
#include "request_input.hpp"
#include "sessions.hpp"

namespace taskq::web {

class ConnectionPool;
class WebMetrics;

// What handlers use; outlives the server.
struct Services {
  ConnectionPool* pool = nullptr;
  WebMetrics* metrics = nullptr;
  SessionStore* sessions = nullptr;
  const AccessTokens* tokens = nullptr;  // null: no token file (loopback only, no sign-in)
  std::string openapi_json;              // the served /v1/openapi.json, made once at start
  // The values of taskq.job_status in their order, read at start (job
  // lists of a queue merge one index scan per status).
  std::vector<std::string> job_statuses;
};

struct QueryParam {
  std::string name;
  std::string type;  // JSON Schema type: "string", "integer", "boolean"
  std::string description;
  std::string format = "";
};

struct RouteDoc {
  std::string summary;
  std::string description;
  std::vector<QueryParam> query;  // path parameters come from the template
  std::vector<Field> body;        // request body fields (none: no body taken)
  int success_status = 200;
  // components/schemas name of the success body, "" for none (204), or a
  // media type other than JSON ("text/plain", "text/html").
  std::string response_schema;
  std::vector<int> errors;  // error statuses besides 401/403 (added by role)
};

// Who is asking, as the server found out before calling the handler.
struct Caller {
  Role role = Role::kPublic;
  std::string session_id;          // the session cookie's value when it names a live session
  std::optional<Session> session;  // that session
};

struct RouteRequest {
  const httplib::Request& http;
  std::map<std::string, std::string> path;  // {name} -> value, percent-decoded
  const Caller& caller;
};

struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers = {};  // e.g. Set-Cookie
};

using Handler = std::function<Reply(const RouteRequest&)>;

struct Route {
  std::string method;        // GET, POST, PUT, PATCH, DELETE
  std::string path;          // OpenAPI template: /v1/jobs/{id}
  std::string operation_id;  // camelCase, unique
  Role role;
  RouteDoc doc;
  Handler handler;
};

// "METHOD /path/{template}": the route's name in metrics and logs.
std::string route_label(const Route& route);

}  // namespace taskq::web

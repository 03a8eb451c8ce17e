// The dashboard's sign-in: POST /login trades a token for a session cookie
// (HttpOnly, SameSite=Strict) and a CSRF token; GET /session tells the page
// who it is; POST /logout ends the session. Without a token file there is
// nothing to sign in with: /session hands out an admin session straight
// away, so the page's requests still carry a CSRF token.
#include <nlohmann/json.hpp>

#include "api_error.hpp"
#include "api_routes.hpp"
#include "web_metrics.hpp"

namespace taskq::web {
namespace {

const std::vector<Field>& login_fields() {
  static const std::vector<Field> fields = {
      {"token", FieldType::kString, "text", "a token of the token file", "", true}};
  return fields;
}

std::string session_body(const Services* s, const Session& session) {
  return nlohmann::json{{"role", to_string(session.role)},
                        {"csrf_token", session.csrf_token},
                        {"sign_in", s->tokens ? "token" : "none"}}
             .dump() +
         "\n";
}

// Secure only when a TLS-terminating proxy says the page came over https
// (taskq-web itself speaks plain HTTP).
std::string cookie(const RouteRequest& req, const std::string& value, long max_age) {
  std::string c = std::string(kSessionCookie) + "=" + value +
                  "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(max_age);
  if (req.http.get_header_value("X-Forwarded-Proto") == "https") c += "; Secure";
  return c;
}

Reply new_session(Services* s, const RouteRequest& req, Role role) {
  Session session;
  const std::string id = s->sessions->create(role, &session);
  const long seconds = std::chrono::duration_cast<std::chrono::seconds>(SessionStore::kLifetime).count();
  return {200, session_body(s, session), "application/json", {{"Set-Cookie", cookie(req, id, seconds)}}};
}

Reply get_session(Services* s, const RouteRequest& req) {
  check_query(req.http.params, {});
  if (req.caller.session) return {200, session_body(s, *req.caller.session)};
  if (!s->tokens) return new_session(s, req, Role::kAdmin);
  throw ApiError(401, "unauthorized", "not signed in: POST /login with a token");
}

Reply login(Services* s, const RouteRequest& req) {
  const std::vector<Argument> args = parse_body(req.http.body, login_fields());
  if (!s->tokens) return new_session(s, req, Role::kAdmin);
  const auto role = s->tokens->find(args.at(0).value.value_or(""));
  if (!role) {
    s->metrics->auth_failed("unknown_token");
    throw ApiError(401, "unauthorized", "unknown token");
  }
  if (!req.caller.session_id.empty()) s->sessions->remove(req.caller.session_id);
  return new_session(s, req, *role);
}

Reply logout(Services* s, const RouteRequest& req) {
  parse_body(req.http.body, {});
  if (req.caller.session) {
    if (!SessionStore::csrf_matches(*req.caller.session, req.http.get_header_value("X-CSRF-Token"))) {
      s->metrics->auth_failed("csrf");
      throw ApiError(403, "csrf", "signing out needs the session's X-CSRF-Token header");
    }
    s->sessions->remove(req.caller.session_id);
  }
  return {204, "", "application/json", {{"Set-Cookie", cookie(req, "", 0)}}};
}

}  // namespace

std::vector<Route> session_routes(Services* s) {
  return {
      {"GET",
       "/session",
       "getSession",
       Role::kPublic,
       {"The dashboard's session",
        "For the dashboard: the signed-in role and the CSRF token that requests changing something must carry in "
        "X-CSRF-Token. 401 when not signed in. Without a token file, a session is made at once (Set-Cookie).",
        {},
        {},
        200,
        "Session",
        {400, 401}},
       with_services(s, get_session)},
      {"POST",
       "/login",
       "login",
       Role::kPublic,
       {"Sign the dashboard in",
        "Trades a token for a session: Set-Cookie taskq_session (HttpOnly, SameSite=Strict, 12 hours) and the CSRF "
        "token. Refused (403) from other sites' pages.",
        {},
        login_fields(),
        200,
        "Session",
        {400, 401, 413}},
       with_services(s, login)},
      {"POST",
       "/logout",
       "logout",
       Role::kPublic,
       {"Sign the dashboard out",
        "Ends the session of the cookie (its X-CSRF-Token is required) and clears the cookie.",
        {},
        {},
        204,
        "",
        {400, 413}},
       with_services(s, logout)},
  };
}

}  // namespace taskq::web

// Routes about the server itself: /healthz for probes, /metrics for
// Prometheus, and the OpenAPI document of everything served.
#include "api_error.hpp"
#include "api_routes.hpp"
#include "connection_pool.hpp"
#include "web_metrics.hpp"

namespace taskq::web {
namespace {

Reply healthz(Services* s, const RouteRequest& req) {
  // Probes should learn of trouble quickly, not queue behind busy requests.
  try {
    auto db = s->pool->acquire(std::chrono::seconds(2));
    db->run("SELECT 1", {});
  } catch (const ApiError& e) {
    return {503, "{\"status\":\"unavailable\",\"database\":\"down\"}\n"};
  }
  return {200, "{\"status\":\"ok\",\"database\":\"up\"}\n"};
}

Reply metrics(Services* s, const RouteRequest&) {
  return {200, s->metrics->render(), "text/plain; version=0.0.4; charset=utf-8"};
}

Reply openapi(Services* s, const RouteRequest&) { return {200, s->openapi_json}; }

}  // namespace

std::vector<Route> system_routes(Services* s) {
  return {
      {"GET",
       "/healthz",
       "getHealth",
       Role::kPublic,
       {"Is the database reachable",
        "200 when a query on the database succeeds, 503 when not. Needs no token.",
        {},
        {},
        200,
        "Health",
        {503}},
       with_services(s, healthz)},
      {"GET",
       "/metrics",
       "getMetrics",
       Role::kRead,
       {"Prometheus metrics",
        "Requests by route and status, request latency, failed authentications (text format 0.0.4).",
        {},
        {},
        200,
        "text/plain",
        {}},
       with_services(s, metrics)},
      {"GET",
       "/v1/openapi.json",
       "getOpenApi",
       Role::kPublic,
       {"This document",
        "The OpenAPI 3.1 description of exactly the routes served. Needs no token.",
        {},
        {},
        200,
        "application/json",
        {}},
       with_services(s, openapi)},
  };
}

}  // namespace taskq::web

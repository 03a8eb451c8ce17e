// The whole API as one list of routes (route.hpp), grouped by what they
// act on. The server serves exactly this list and /v1/openapi.json
// describes exactly this list. `services` may be null when the list is
// only read (its handlers are then never called).
#pragma once

#include <string>
#include <vector>

#include "route.hpp"

namespace taskq::web {

std::vector<Route> api_routes(Services* services);

std::vector<Route> job_routes(Services* services);       // job_routes.cpp
std::vector<Route> queue_routes(Services* services);     // queue_routes.cpp
std::vector<Route> schedule_routes(Services* services);  // schedule_routes.cpp
std::vector<Route> activity_routes(Services* services);  // activity_routes.cpp
std::vector<Route> session_routes(Services* services);   // session_routes.cpp
std::vector<Route> system_routes(Services* services);    // system_routes.cpp

// Helpers shared by the route files.
// A route handler calling f(services, request).
inline Handler with_services(Services* services, Reply (*f)(Services*, const RouteRequest&)) {
  return [services, f](const RouteRequest& req) { return f(services, req); };
}
// Every row's first column (JSON text) joined into a JSON array.
std::string json_array(const PGresult* result, int first_row = 0, int rows = -1);
// The first column of the only row; ApiError 404 (42704) saying `missing`
// when there is no row.
std::string only_row(const PGresult* result, const std::string& missing);

}  // namespace taskq::web

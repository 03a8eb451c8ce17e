// The OpenAPI 3.1 document of the routes served, built from the route list
// itself (so every route is documented and every documented route served).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "route.hpp"

namespace taskq::web {

nlohmann::ordered_json openapi_document(const std::vector<Route>& routes);

// The parameter names of a path template, in order: /v1/jobs/{id} -> {"id"}.
std::vector<std::string> split_path_templates(const std::string& path);

}  // namespace taskq::web

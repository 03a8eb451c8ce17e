// Finds the route for a request: templates like /v1/jobs/{id} matched
// segment by segment (a parameter is one non-empty segment).
#pragma once

#include <string>
#include <vector>

#include "route.hpp"

namespace taskq::web {

class RouteTable {
 public:
  explicit RouteTable(std::vector<Route> routes);

  struct Match {
    const Route* route = nullptr;      // null: no route for this method and path
    bool path_known = false;           // some route has this path (so 405, not 404)
    std::vector<std::string> allowed;  // methods of that path
    std::map<std::string, std::string> params;
  };
  // HEAD matches GET routes.
  Match match(const std::string& method, const std::string& path) const;

  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
  std::vector<std::vector<std::string>> segments_;  // per route
};

std::vector<std::string> split_path(const std::string& path);

}  // namespace taskq::web

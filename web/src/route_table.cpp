// See route_table.hpp.
#include "route_table.hpp"

namespace taskq::web {

std::string route_label(const Route& route) { return route.method + " " + route.path; }

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::size_t start = 1;
  if (path.empty() || path[0] != '/') return {"\x01"};  // matches nothing
  while (start <= path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::size_t end = slash == std::string::npos ? path.size() : slash;
    out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

RouteTable::RouteTable(std::vector<Route> routes) : routes_(std::move(routes)) {
  for (const Route& r : routes_) segments_.push_back(split_path(r.path));
}

RouteTable::Match RouteTable::match(const std::string& method, const std::string& path) const {
  Match m;
  const std::string wanted = method == "HEAD" ? "GET" : method;
  const std::vector<std::string> parts = split_path(path);
  for (std::size_t i = 0; i < routes_.size(); ++i) {
    const auto& tmpl = segments_[i];
    if (tmpl.size() != parts.size()) continue;
    std::map<std::string, std::string> params;
    bool ok = true;
    for (std::size_t s = 0; s < tmpl.size() && ok; ++s) {
      const std::string& t = tmpl[s];
      if (t.size() > 2 && t.front() == '{' && t.back() == '}') {
        ok = !parts[s].empty();
        params[t.substr(1, t.size() - 2)] = parts[s];
      } else {
        ok = t == parts[s];
      }
    }
    if (!ok) continue;
    m.path_known = true;
    m.allowed.push_back(routes_[i].method);
    if (routes_[i].method == wanted && !m.route) {
      m.route = &routes_[i];
      m.params = std::move(params);
    }
  }
  return m;
}

}  // namespace taskq::web

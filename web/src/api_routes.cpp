// The list of every route, and small helpers for turning query results
// into response bodies; see api_routes.hpp.
#include "api_routes.hpp"

#include "api_error.hpp"

namespace taskq::web {

std::vector<Route> api_routes(Services* services) {
  std::vector<Route> all;
  for (auto* group :
       {&job_routes, &queue_routes, &schedule_routes, &activity_routes, &system_routes, &session_routes}) {
    std::vector<Route> routes = (*group)(services);
    all.insert(all.end(), std::make_move_iterator(routes.begin()), std::make_move_iterator(routes.end()));
  }
  return all;
}

std::string json_array(const PGresult* result, int first_row, int rows) {
  const int end = rows < 0 ? PQntuples(result) : std::min(PQntuples(result), first_row + rows);
  std::string out = "[";
  for (int i = first_row; i < end; ++i) {
    if (i > first_row) out += ",";
    out += PQgetvalue(result, i, 0);
  }
  return out + "]";
}

std::string only_row(const PGresult* result, const std::string& missing) {
  if (PQntuples(result) == 0) throw ApiError(404, "42704", missing);
  return std::string(PQgetvalue(result, 0, 0)) + "\n";
}

}  // namespace taskq::web

// See static_assets.hpp.
#include "static_assets.hpp"

#include <map>

namespace taskq::web {

const StaticAsset* find_static_asset(const std::string& path) {
  static const std::map<std::string, StaticAsset> assets = {
      {"/",
       {"text/html; charset=utf-8",
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>taskq-web</title></head>\n"
        "<body><h1>taskq-web</h1>\n<p>The dashboard is not part of this version yet. The REST API is under "
        "<code>/v1</code>; its description is <a href=\"/v1/openapi.json\">/v1/openapi.json</a>.</p>\n"
        "</body></html>\n"}},
  };
  const auto found = assets.find(path);
  return found == assets.end() ? nullptr : &found->second;
}

}  // namespace taskq::web

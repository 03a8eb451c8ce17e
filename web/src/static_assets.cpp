// See static_assets.hpp.
#include "static_assets.hpp"

namespace taskq::web {

const StaticAsset* find_static_asset(const std::string& path) {
  for (const StaticAsset& a : embedded_assets())
    if (path == a.path) return &a;
  return nullptr;
}

}  // namespace taskq::web

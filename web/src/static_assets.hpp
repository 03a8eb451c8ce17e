// Files served as they are, outside the API: for now only a placeholder
// page at /. The dashboard's files will be compiled in here (a generated
// table of path, media type and bytes), so the binary stays one file.
#pragma once

#include <string>

namespace taskq::web {

struct StaticAsset {
  const char* content_type;
  std::string body;
};

// The asset served at `path`, or null.
const StaticAsset* find_static_asset(const std::string& path);

}  // namespace taskq::web

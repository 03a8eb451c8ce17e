// taskq version, one number for the extension, META.json and the worker
// (CMake's project() version is checked against taskq.control by the build).
#pragma once

namespace taskq {
const char* version() noexcept;
}

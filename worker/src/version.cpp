#include "taskq/version.hpp"

namespace taskq {
const char* version() noexcept { return TASKQ_VERSION; }
}  // namespace taskq

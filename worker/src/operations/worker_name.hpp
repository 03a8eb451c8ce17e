// The name a worker goes by when none is given (taskq.jobs.worker, lease
// holders of callbacks): host:pid.
#pragma once

#include <string>

namespace taskq {

std::string default_worker_name();

}  // namespace taskq

// See worker_name.hpp.
#include "operations/worker_name.hpp"

#include <unistd.h>

namespace taskq {

std::string default_worker_name() {
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + ":" + std::to_string(getpid());
}

}  // namespace taskq

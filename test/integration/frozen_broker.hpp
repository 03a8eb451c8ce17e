// A RabbitMQ node that does not answer: SIGSTOP on the node (beam.smp) of
// the test environment, so its sockets stay open and silent, a half-open
// connection as seen from the clients. Thawed again by the destructor, also
// when the test fails.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <fstream>

#include "test_env.hpp"

namespace taskq::test {

class FrozenBroker {
 public:
  FrozenBroker() {
    std::ifstream file(env("TASKQ_TEST_STATE") + "/rabbit/rabbit.pid");
    file >> pid_;
    if (pid_ > 0 && kill(pid_, SIGSTOP) != 0) pid_ = 0;
  }
  ~FrozenBroker() { thaw(); }
  FrozenBroker(const FrozenBroker&) = delete;
  FrozenBroker& operator=(const FrozenBroker&) = delete;

  bool frozen() const { return pid_ > 0; }
  void thaw() {
    if (pid_ > 0) kill(pid_, SIGCONT);
    pid_ = 0;
  }

 private:
  pid_t pid_ = 0;
};

}  // namespace taskq::test

// Running the real taskq-worker binary from integration tests: a child
// process with chosen flags and environment whose stderr and stdout go to
// files the test can read and wait on, stopped with SIGTERM or SIGKILL.
// Everything is RAII: a test that fails half-way never leaves a worker, or
// a handler one of its workers started, running behind it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace taskq::test {

// The taskq-worker built next to the tests (CMake's TASKQ_WORKER_BINARY).
std::string worker_binary();
// A program of test/programs/, built next to taskq-worker.
std::string test_program(const std::string& name);
// --database and --broker pointing at the servers of scripts/test-env.
std::vector<std::string> connection_flags();

// Whether a process exists and is not a zombie (a reparented child nobody
// reaps stays a zombie in containers whose init does not reap).
bool process_alive(pid_t pid);
// The processes of process group `pgid` that still run (zombies left out):
// what a handler's group still holds after the worker ended it.
std::vector<pid_t> live_group_members(pid_t pgid);

class WorkerProcess {
 public:
  // Environment changes for the child: a value sets a variable, nullopt
  // removes it. TASKQ_DATABASE_URL, TASKQ_BROKER_URL and
  // TASKQ_CALLBACK_SECRET are always removed unless set here, so the flags
  // a test passes are the only configuration the worker gets.
  using EnvChanges = std::map<std::string, std::optional<std::string>>;

  // Starts worker_binary() with `args` (nothing added). Throws
  // std::runtime_error if it cannot be started at all.
  explicit WorkerProcess(std::vector<std::string> args, EnvChanges env = {});
  // The same for another program of taskq (taskq-web).
  WorkerProcess(std::string binary, std::vector<std::string> args, EnvChanges env = {});
  // SIGKILLs the worker if it still runs; on a failed test, prints the tail
  // of its log first.
  ~WorkerProcess();
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Everything the worker wrote to stderr (its log) / stdout so far.
  std::string log() const;
  std::string stdout_text() const;

  // Waits until the log contains `needle`; false after `timeout`. For
  // diagnostics and readiness only: tests assert on the database and the
  // broker, not on log wording.
  bool wait_for_log(const std::string& needle, std::chrono::milliseconds timeout) const;
  // Waits for the process to end; its exit code, 128 + signal number when a
  // signal ended it, or nullopt if it still runs after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  bool running();

  void terminate();  // SIGTERM: graceful shutdown
  void kill();       // SIGKILL, then reap

 private:
  bool reap(bool block);

  pid_t pid_ = -1;
  std::optional<int> exit_status_;
  std::string dir_;  // holds stderr.log and stdout.log
};

// A temporary folder for handler scripts and the files they write, removed
// with everything in it at the end of the test. Scripts written by script()
// record their process group in handlers.pgids first, so kill_handlers()
// (and the destructor) can end any handler a killed worker left behind.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return dir_; }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }

  // Writes an executable /bin/sh script named `name` with `body` after the
  // pid-recording prologue; returns its path. Inside the body, $DIR is this
  // folder.
  std::string script(const std::string& name, const std::string& body);
  // The lines of a file here (none if it does not exist).
  std::vector<std::string> lines(const std::string& name) const;
  // Process groups recorded by handler scripts so far.
  std::vector<pid_t> handler_groups() const;
  // SIGKILLs every recorded handler process group that still exists.
  void kill_handlers();

 private:
  std::string dir_;
};

// Output of the test node's rabbitmqctl (e.g. "list_queues name messages");
// nullopt when it failed.
std::optional<std::string> rabbitmqctl_output(const std::string& args);

// Reads and sets RabbitMQ application settings at runtime; puts the old
// values back when it goes out of scope.
class RabbitSettings {
 public:
  RabbitSettings() = default;
  RabbitSettings(const RabbitSettings&) = delete;
  RabbitSettings& operator=(const RabbitSettings&) = delete;
  ~RabbitSettings();
  bool set(const std::string& key, long value);

 private:
  std::vector<std::pair<std::string, std::string>> saved_;
};
// Messages of a RabbitMQ queue, ready plus unacknowledged (basic.get and a
// passive declare see only the ready ones); -1 if unknown.
long rabbit_queue_total_messages(const std::string& rabbit_queue);

// Publishes a raw message as a misbehaving or duplicating producer would:
// to an exchange with a routing key ("" and a queue name: straight to that
// RabbitMQ queue through the default exchange).
void publish_raw(const std::string& exchange, const std::string& routing_key, const std::string& body);
// The way the publisher sends a job of `queue`: exchange "taskq", routing
// key <queue>.
void publish_as_taskq(const std::string& queue, const std::string& body);

}  // namespace taskq::test

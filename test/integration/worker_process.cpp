// See worker_process.hpp.
#include "worker_process.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/amqp_connection.hpp"
#include "test_env.hpp"

extern char** environ;

namespace taskq::test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string make_temp_dir(const char* prefix) {
  std::string pattern = std::string("/tmp/") + prefix + ".XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  // Handlers may run as whoever the worker runs as; the folder is private
  // to the test anyway.
  chmod(pattern.c_str(), 0755);
  return pattern;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string tail(const std::string& text, std::size_t max_lines) {
  if (text.empty()) return text;
  std::size_t pos = text.size();
  for (std::size_t n = 0; n <= max_lines && pos > 0; ++n) {
    const auto nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    pos = nl;
  }
  return text.substr(pos + 1);
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::string worker_binary() { return TASKQ_WORKER_BINARY; }

std::string test_program(const std::string& name) {
  const std::string worker = worker_binary();
  return worker.substr(0, worker.rfind('/') + 1) + name;
}

std::vector<std::string> connection_flags() {
  return {"--database", env("TASKQ_TEST_DATABASE_URL"), "--broker", env("TASKQ_TEST_BROKER_URL")};
}

bool process_alive(pid_t pid) {
  if (pid <= 0) return false;
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  // Field 3 follows the ")" that closes the command name.
  const auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'Z';
}

std::vector<pid_t> live_group_members(pid_t pgid) {
  std::vector<pid_t> members;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = read_file(entry.path().string() + "/stat");
    // After the ")" closing the command name: state, ppid, pgrp.
    const auto paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(paren + 1));
    char state = 0;
    long ppid = 0, pgrp = 0;
    if (!(fields >> state >> ppid >> pgrp)) continue;
    if (pgrp == pgid && state != 'Z') members.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return members;
}

// --- WorkerProcess -----------------------------------------------------------

WorkerProcess::WorkerProcess(std::vector<std::string> args, EnvChanges env_changes)
    : WorkerProcess(worker_binary(), std::move(args), std::move(env_changes)) {}

WorkerProcess::WorkerProcess(std::string binary, std::vector<std::string> args, EnvChanges env_changes) {
  dir_ = make_temp_dir("taskq-worker-test");

  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls (the test process has threads).
  std::map<std::string, std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string::npos) environment[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const char* name : {"TASKQ_DATABASE_URL", "TASKQ_BROKER_URL", "TASKQ_CALLBACK_SECRET"}) environment.erase(name);
  for (const auto& [name, value] : env_changes) {
    if (value)
      environment[name] = *value;
    else
      environment.erase(name);
  }
  std::vector<std::string> env_storage;
  for (const auto& [name, value] : environment) env_storage.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  std::vector<char*> argv{binary.data()};
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const int err_fd = open((dir_ + "/stderr.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int out_fd = open((dir_ + "/stdout.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (err_fd < 0 || out_fd < 0 || null_fd < 0) throw std::runtime_error("cannot open the worker's log files");
  const pid_t parent = getpid();

  pid_ = fork();
  if (pid_ == 0) {
    // The worker dies with the test process, even if that one crashes.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(null_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    close_range(3, ~0U, 0);  // sockets of the test's own connections
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(err_fd);
  close(out_fd);
  close(null_fd);
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
}

WorkerProcess::~WorkerProcess() {
  if (running()) kill();
  if (::testing::Test::HasFailure()) {
    std::cout << "---- taskq-worker " << pid_ << " log (last 60 lines) ----\n"
              << tail(log(), 60) << "\n---- end of log ----" << std::endl;
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string WorkerProcess::log() const { return read_file(dir_ + "/stderr.log"); }
std::string WorkerProcess::stdout_text() const { return read_file(dir_ + "/stdout.log"); }

bool WorkerProcess::wait_for_log(const std::string& needle, std::chrono::milliseconds timeout) const {
  return wait_until([&] { return log().find(needle) != std::string::npos; }, timeout, 50ms);
}

bool WorkerProcess::reap(bool block) {
  if (exit_status_) return true;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return false;
  exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

std::optional<int> WorkerProcess::wait_exit(std::chrono::milliseconds timeout) {
  wait_until([&] { return reap(false); }, timeout, 20ms);
  return exit_status_;
}

bool WorkerProcess::running() { return pid_ > 0 && !reap(false); }

void WorkerProcess::terminate() {
  if (running()) ::kill(pid_, SIGTERM);
}

void WorkerProcess::kill() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  reap(true);
}

// --- ScratchDir ----------------------------------------------------------------

ScratchDir::ScratchDir() : dir_(make_temp_dir("taskq-handlers")) {}

ScratchDir::~ScratchDir() {
  kill_handlers();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string ScratchDir::script(const std::string& name, const std::string& body) {
  const std::string path = file(name);
  {
    std::ofstream out(path);
    // Field 5 of /proc/PID/stat is the process group: the one the worker
    // made for this handler, which a timeout or cancel must end as a whole.
    // Field 22 of its leader is the leader's start time: with it,
    // kill_handlers() can tell the group from a later one that reuses the
    // number (a PostgreSQL backend, say: each is a group leader).
    out << "#!/bin/sh\n"
        << "DIR=" << shell_quote(dir_) << "\n"
        << "taskq_pgid=$(cut -d' ' -f5 /proc/$$/stat)\n"
        << "echo \"$taskq_pgid $(cut -d' ' -f22 /proc/$taskq_pgid/stat 2>/dev/null)\" >> \"$DIR/handlers.pgids\"\n"
        << body << "\n";
  }
  chmod(path.c_str(), 0755);
  return path;
}

std::vector<std::string> ScratchDir::lines(const std::string& name) const {
  std::vector<std::string> out;
  std::istringstream in(read_file(file(name)));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

std::vector<pid_t> ScratchDir::handler_groups() const {
  std::set<pid_t> groups;
  for (const auto& line : lines("handlers.pgids")) {
    const long pgid = std::strtol(line.c_str(), nullptr, 10);
    if (pgid > 1) groups.insert(static_cast<pid_t>(pgid));
  }
  return {groups.begin(), groups.end()};
}

namespace {

// Field 22 of /proc/PID/stat (the start time), "" if there is no such
// process. Field 2 is "(comm)" and may hold spaces: count after its ')'.
std::string start_time_of(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream fields(stat.substr(close + 2));  // field 3 on
  std::string field;
  for (int i = 3; i <= 22 && (fields >> field); i++)
    if (i == 22) return field;
  return "";
}

}  // namespace

void ScratchDir::kill_handlers() {
  // Only groups whose leader is still the process that recorded them: PIDs
  // are reused, and a killed number may belong to anything by now.
  std::set<std::string> done;
  for (const auto& line : lines("handlers.pgids")) {
    std::istringstream in(line);
    long pgid = 0;
    std::string started;
    if (!(in >> pgid >> started) || pgid <= 1 || pgid == getpgrp() || !done.insert(line).second) continue;
    if (start_time_of(static_cast<pid_t>(pgid)) == started) ::kill(-static_cast<pid_t>(pgid), SIGKILL);
  }
}

// --- RabbitMQ -----------------------------------------------------------------

std::optional<std::string> rabbitmqctl_output(const std::string& args) {
  const std::string command = shell_quote(env("TASKQ_TEST_RABBITMQCTL")) + " -q " + args + " 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string out;
  char buffer[4096];
  std::size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  const int status = pclose(pipe);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return out;
}

long rabbit_queue_total_messages(const std::string& rabbit_queue) {
  const auto out = rabbitmqctl_output("list_queues --no-table-headers name messages");
  if (!out) return -1;
  std::istringstream in(*out);
  for (std::string name, count; in >> name >> count;)
    if (name == rabbit_queue) return std::stol(count);
  return -1;
}

void publish_raw(const std::string& exchange, const std::string& routing_key, const std::string& body) {
  ConnectOptions options;
  options.connection_name = "taskq integration test (raw publisher)";
  AmqpConnection conn(BrokerUrl::parse(env("TASKQ_TEST_BROKER_URL")), options);
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  props.delivery_mode = 2;
  props.content_type = amqp_cstring_bytes("application/json");
  amqp_bytes_t payload{body.size(), const_cast<char*>(body.data())};
  const int rc = amqp_basic_publish(conn.state(), AmqpConnection::kChannel, amqp_cstring_bytes(exchange.c_str()),
                                    amqp_cstring_bytes(routing_key.c_str()), 0, 0, &props, payload);
  if (rc != AMQP_STATUS_OK) throw std::runtime_error("publishing a raw message failed");
  // connection.close-ok comes after the broker handled everything sent
  // before it, so the message is in the queue once this returns.
  conn.close();
}

void publish_as_taskq(const std::string& queue, const std::string& body) { publish_raw("taskq", queue, body); }

RabbitSettings::~RabbitSettings() {
  for (const auto& [key, old] : saved_) {
    if (old == "undefined")
      rabbitmqctl("eval 'application:unset_env(rabbit, " + key + ").'");
    else
      rabbitmqctl("eval 'application:set_env(rabbit, " + key + ", " + old + ").'");
  }
}

bool RabbitSettings::set(const std::string& key, long value) {
  auto current = rabbitmqctl_output("eval 'application:get_env(rabbit, " + key + ").'");
  if (!current) return false;
  // "{ok,1800000}" or "undefined"
  std::string old = *current;
  while (!old.empty() && (old.back() == '\n' || old.back() == ' ')) old.pop_back();
  if (old.rfind("{ok,", 0) == 0) old = old.substr(4, old.size() - 5);
  saved_.emplace_back(key, old);
  return rabbitmqctl("eval 'application:set_env(rabbit, " + key + ", " + std::to_string(value) + ").'") == 0;
}

}  // namespace taskq::test

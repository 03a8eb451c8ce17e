// Reading the broker password file. The checks run on the opened
// descriptor (fstat), so the file that is checked is the file that is read
// even if it is replaced in between (rotation by rename, a Kubernetes secret
// swapping its symlink).
#include "broker_password_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace taskq {
namespace {

// No real password is this long; a larger first line is the wrong file.
constexpr std::size_t kMaxPasswordBytes = 4096;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw std::runtime_error("broker password file \"" + path + "\" " + problem);
}

// Closes the descriptor however the reading ends.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

std::string read_broker_password_file(const std::string& path) {
  FileDescriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (file.get() < 0) fail(path, std::string("cannot be opened: ") + std::strerror(errno));
  struct stat info;
  if (::fstat(file.get(), &info) != 0) fail(path, std::string("cannot be examined: ") + std::strerror(errno));
  if (!S_ISREG(info.st_mode)) fail(path, "is not a regular file");
  // The same rule as libpq's .pgpass: a secret others can read is refused,
  // not used with a warning that nobody reads.
  if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    fail(path, "has group or world access; permissions should be u=rw (0600) or less");

  std::string content;
  char chunk[512];
  while (content.find('\n') == std::string::npos && content.size() <= kMaxPasswordBytes) {
    const ssize_t n = ::read(file.get(), chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(path, std::string("cannot be read: ") + std::strerror(errno));
    if (n == 0) break;
    content.append(chunk, static_cast<std::size_t>(n));
  }
  std::string password = content.substr(0, content.find('\n'));
  if (!password.empty() && password.back() == '\r') password.pop_back();  // written on Windows
  if (password.size() > kMaxPasswordBytes)
    fail(path, "has a first line longer than " + std::to_string(kMaxPasswordBytes) + " bytes");
  if (password.empty()) fail(path, "has no password on its first line");
  return password;
}

bool apply_broker_password_file(BrokerUrl& url, const std::string& path) {
  if (path.empty() || url.has_password) return false;
  url.password = read_broker_password_file(path);
  return true;
}

}  // namespace taskq

// The broker password file: which line is the password, which files are
// refused, and that no message ever repeats what the file holds.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

#include "core/broker_password_file.hpp"

using taskq::apply_broker_password_file;
using taskq::BrokerUrl;
using taskq::read_broker_password_file;

namespace {

class PasswordFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/taskq-password-file-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/broker-password";
  }
  void TearDown() override {
    std::remove(path_.c_str());
    rmdir(dir_.c_str());
  }

  void write(const std::string& content, mode_t mode = 0600) {
    std::ofstream(path_, std::ios::binary | std::ios::trunc) << content;
    ASSERT_EQ(chmod(path_.c_str(), mode), 0);
  }

  // The message of the refusal, checked not to contain `secret`.
  std::string refusal(const std::string& secret) {
    try {
      read_broker_password_file(path_);
    } catch (const std::runtime_error& e) {
      const std::string what = e.what();
      if (!secret.empty()) {
        EXPECT_EQ(what.find(secret), std::string::npos) << what;
      }
      EXPECT_NE(what.find(path_), std::string::npos) << "names the file: " << what;
      return what;
    }
    ADD_FAILURE() << "accepted";
    return "";
  }

  std::string dir_;
  std::string path_;
};

TEST_F(PasswordFile, TheFirstLineWithoutItsLineEndIsThePassword) {
  write("s3cret\n");
  EXPECT_EQ(read_broker_password_file(path_), "s3cret");
  write("s3cret");
  EXPECT_EQ(read_broker_password_file(path_), "s3cret") << "no newline at the end";
  write("s3cret\r\n");
  EXPECT_EQ(read_broker_password_file(path_), "s3cret") << "written on Windows";
  write("s3cret\nsecond line\n");
  EXPECT_EQ(read_broker_password_file(path_), "s3cret");
  write(" spaced #and: @odd%40\n");
  EXPECT_EQ(read_broker_password_file(path_), " spaced #and: @odd%40") << "taken as is, not URL-decoded";
}

TEST_F(PasswordFile, OwnerOnlyModesAreAccepted) {
  write("s3cret\n", 0400);
  EXPECT_EQ(read_broker_password_file(path_), "s3cret");
}

TEST_F(PasswordFile, GroupOrWorldAccessIsRefusedLikePgpass) {
  for (mode_t mode : {0640, 0604, 0660, 0644, 0610}) {
    write("s3cret\n", mode);
    EXPECT_NE(refusal("s3cret").find("group or world access"), std::string::npos) << std::oct << mode;
  }
}

TEST_F(PasswordFile, AMissingFileSaysSo) {
  EXPECT_NE(refusal("").find("No such file or directory"), std::string::npos);
}

TEST_F(PasswordFile, ADirectoryIsRefused) {
  path_ = dir_;
  EXPECT_NE(refusal("").find("not a regular file"), std::string::npos);
  path_ = dir_ + "/broker-password";
}

TEST_F(PasswordFile, AnEmptyFirstLineIsRefused) {
  write("");
  EXPECT_NE(refusal("").find("no password"), std::string::npos);
  write("\nsecond-line-secret\n");
  EXPECT_NE(refusal("second-line-secret").find("no password"), std::string::npos);
}

TEST_F(PasswordFile, AHugeFirstLineIsRefusedWithoutEchoingIt) {
  const std::string huge(10000, 'x');
  write(huge + "\n");
  EXPECT_NE(refusal(std::string(64, 'x')).find("longer than"), std::string::npos);
}

TEST_F(PasswordFile, AppliesOnlyToAUrlWithoutAPasswordOfItsOwn) {
  write("from-the-file\n");
  auto without = BrokerUrl::parse("amqp://alice@rabbit/");
  EXPECT_TRUE(apply_broker_password_file(without, path_));
  EXPECT_EQ(without.password, "from-the-file");
  EXPECT_EQ(without.redacted(), "amqp://alice@rabbit:5672/");

  auto with = BrokerUrl::parse("amqp://alice:own@rabbit/");
  EXPECT_FALSE(apply_broker_password_file(with, path_));
  EXPECT_EQ(with.password, "own");

  auto no_file = BrokerUrl::parse("amqp://alice@rabbit/");
  EXPECT_FALSE(apply_broker_password_file(no_file, ""));
}

TEST_F(PasswordFile, AFileThatCannotBeUsedFailsTheConnectAttempt) {
  auto url = BrokerUrl::parse("amqp://alice@rabbit/");
  EXPECT_THROW(apply_broker_password_file(url, path_), std::runtime_error);
  write("s3cret\n", 0644);
  EXPECT_THROW(apply_broker_password_file(url, path_), std::runtime_error);
}

}  // namespace

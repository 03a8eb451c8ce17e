// The curl examples of docs/web.md work: every ```sh block that starts with
// curl is run, in the order of the page, against a real taskq-web with an
// admin token, and must succeed (curl --fail-with-body: no 4xx or 5xx).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "web_fixture.hpp"

namespace taskq::test {
namespace {

std::vector<std::string> curl_examples(const std::string& markdown) {
  std::vector<std::string> out;
  std::istringstream in(markdown);
  std::string line, block;
  bool in_sh = false;
  while (std::getline(in, line)) {
    if (!in_sh && line == "```sh") {
      in_sh = true;
      block.clear();
    } else if (in_sh && line == "```") {
      in_sh = false;
      if (block.rfind("curl ", 0) == 0) out.push_back(block);
    } else if (in_sh) {
      block += line + "\n";
    }
  }
  return out;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

TEST(WebDocs, EveryCurlExampleWorks) {
  TASKQ_REQUIRE_TEST_ENV();
  std::ifstream in(std::string(TASKQ_SOURCE_DIR) + "/docs/web.md");
  std::stringstream text;
  text << in.rdbuf();
  const std::vector<std::string> examples = curl_examples(text.str());
  ASSERT_GE(examples.size(), 15u) << "docs/web.md lost its examples";

  PgConnection db = taskq::test::db();
  // The page works on a queue named emails; an earlier run may have left it.
  db.exec("SELECT taskq.drop_queue('emails', true) FROM taskq.queues WHERE queue_name = 'emails'");
  WebProcess web(true);
  ScratchDir dir;
  for (const std::string& example : examples) {
    const std::string job = db.value("SELECT id FROM taskq.jobs WHERE queue_name = 'emails' ORDER BY id DESC LIMIT 1");
    const std::string out = dir.file("out");
    const std::string command = "TASKQ_WEB=" + shell_quote(web.base_url()) + " TOKEN=" + shell_quote(kAdminToken) +
                                " JOB_ID=" + shell_quote(job) + " bash -c " + shell_quote(example) + " >" + out +
                                " 2>&1";
    const int rc = run(command);
    std::ifstream result(out);
    std::stringstream body;
    body << result.rdbuf();
    EXPECT_EQ(rc, 0) << example << "answered:\n" << body.str();
  }
  EXPECT_EQ(db.value("SELECT count(*) FROM taskq.queues WHERE queue_name = 'emails'"), "0")
      << "the last example drops the queue";
}

}  // namespace
}  // namespace taskq::test

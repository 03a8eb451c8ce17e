// The curl examples of docs/web.md and of the README's taskq-web section
// work: every ```sh block that starts with curl is run, in the order of the
// page, against a real taskq-web with an admin token, and must succeed
// (curl --fail-with-body: no 4xx or 5xx).
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

// Runs every example of `markdown` (a section of it, from `from` to the
// next "## " heading, when `from` is given) against a fresh taskq-web.
void run_examples(const std::string& markdown, std::size_t minimum, const std::string& queue) {
  const std::vector<std::string> examples = curl_examples(markdown);
  ASSERT_GE(examples.size(), minimum) << "the page lost its examples";
  PgConnection db = taskq::test::db();
  // The examples work on one queue; an earlier run may have left it.
  db.exec("SELECT taskq.drop_queue(queue_name, true) FROM taskq.queues WHERE queue_name = $1", {queue.c_str()});
  WebProcess web(true);
  ScratchDir dir;
  for (const std::string& example : examples) {
    const std::string job =
        db.value("SELECT id FROM taskq.jobs WHERE queue_name = $1 ORDER BY id DESC LIMIT 1", {queue.c_str()});
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
  EXPECT_EQ(db.value("SELECT count(*) FROM taskq.queues WHERE queue_name = $1", {queue.c_str()}), "0")
      << "the last example drops the queue";
}

std::string read_file(const std::string& relative) {
  std::ifstream in(std::string(TASKQ_SOURCE_DIR) + "/" + relative);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(WebDocs, TheReadmesExamplesWork) {
  TASKQ_REQUIRE_TEST_ENV();
  const std::string readme = read_file("README.md");
  const std::size_t from = readme.find("\n## taskq-web\n");
  ASSERT_NE(from, std::string::npos);
  const std::size_t to = readme.find("\n## ", from + 1);
  run_examples(readme.substr(from, to - from), 5, "newsletters");
}

TEST(WebDocs, EveryCurlExampleWorks) {
  TASKQ_REQUIRE_TEST_ENV();
  run_examples(read_file("docs/web.md"), 22, "emails");
}

}  // namespace
}  // namespace taskq::test

// See web_fixture.hpp.
#include "web_fixture.hpp"

#include <cctype>
#include <fstream>

namespace taskq::test {

using namespace std::chrono_literals;

std::string web_binary() { return TASKQ_WEB_BINARY; }

nlohmann::json HttpAnswer::json() const { return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false); }

std::string HttpAnswer::error_code() const {
  const nlohmann::json j = json();
  if (!j.is_object() || !j.contains("error") || !j["error"].contains("code")) return "";
  return j["error"]["code"].get<std::string>();
}

WebProcess::WebProcess(bool with_tokens, std::vector<std::string> extra) {
  // taskq-web refuses a database without the extension: a test that runs
  // first in a fresh environment must not depend on others having made it.
  db();
  port_ = free_tcp_port();
  std::vector<std::string> args{"--database", env("TASKQ_TEST_DATABASE_URL"), "--listen",
                                "127.0.0.1:" + std::to_string(port_)};
  if (with_tokens) {
    std::ofstream(scratch_.file("tokens")) << "# test tokens\n"
                                           << kReadToken << " read\n"
                                           << kOperateToken << " operate\n"
                                           << kAdminToken << " admin\n";
    args.push_back("--token-file");
    args.push_back(scratch_.file("tokens"));
  }
  for (auto& e : extra) args.push_back(std::move(e));
  process_ = std::make_unique<WorkerProcess>(web_binary(), args);
  const bool up = wait_until([&] { return get("/healthz").status == 200 || !process_->running(); }, 15s, 20ms);
  if (!up || !process_->running())
    ADD_FAILURE() << "taskq-web did not come up on port " << port_ << ":\n" << process_->log();
}

HttpAnswer WebProcess::request(const std::string& method, const std::string& path, const std::string& body,
                               const std::string& token, const httplib::Headers& extra) const {
  httplib::Client client("127.0.0.1", port_);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(30, 0);
  httplib::Headers headers = extra;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  httplib::Result r(nullptr, httplib::Error::Unknown);
  const char* type = "application/json";
  if (method == "GET")
    r = client.Get(path, headers);
  else if (method == "POST")
    r = client.Post(path, headers, body, type);
  else if (method == "PUT")
    r = client.Put(path, headers, body, type);
  else if (method == "PATCH")
    r = client.Patch(path, headers, body, type);
  else if (method == "DELETE")
    r = client.Delete(path, headers, body, type);
  HttpAnswer a;
  if (!r) return a;
  a.status = r->status;
  a.body = r->body;
  a.content_type = r->get_header_value("Content-Type");
  a.headers = r->headers;
  return a;
}

std::string url_encode(const std::string& text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string make_queue(PgConnection& db, const std::string& prefix) {
  const std::string name = unique_name(prefix);
  db.exec("SELECT taskq.create_queue($1)", {name.c_str()});
  return name;
}

}  // namespace taskq::test

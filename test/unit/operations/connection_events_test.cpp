// ConnectionWatch: what one connection's successes and failures become for
// the program's listeners (connected once, lost only after it was up,
// reconnecting with its delay), and ConnectionEvents keeping a throwing
// listener from reaching the worker's thread.
#include "operations/connection_events.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace std::chrono_literals;
using taskq::ConnectionEvent;

namespace {

class Watch : public ::testing::Test {
 protected:
  void SetUp() override {
    events_.add([this](const ConnectionEvent& e) {
      seen_.push_back(std::string(taskq::to_string(e.service)) + " " + e.connection + " " + taskq::to_string(e.kind) +
                      (e.reason.empty() ? "" : " (" + e.reason + ")") +
                      (e.next_delay.count() ? " " + std::to_string(e.next_delay.count()) + "ms" : ""));
    });
  }

  taskq::ConnectionEvents events_;
  std::vector<std::string> seen_;
};

TEST_F(Watch, ReportsTransitionsNotEveryCall) {
  taskq::ConnectionWatch w(&events_, ConnectionEvent::Service::kDatabase, "starter");
  w.up();
  w.up();  // every successful call says up: only the first is news
  w.down("server closed the connection", 100ms);
  w.down("connection refused", 200ms);
  w.up();
  w.up();
  EXPECT_EQ(seen_, (std::vector<std::string>{
                       "database starter connected",
                       "database starter lost (server closed the connection)",
                       "database starter reconnecting (server closed the connection) 100ms",
                       "database starter reconnecting (connection refused) 200ms",
                       "database starter connected",
                   }));
}

TEST_F(Watch, AConnectionThatNeverCameUpIsNotLost) {
  taskq::ConnectionWatch w(&events_, ConnectionEvent::Service::kBroker, "consumer");
  w.down("connection refused", 500ms);
  w.up();
  w.down("broker closed the connection", std::nullopt);  // no retry: shutting down
  EXPECT_EQ(seen_, (std::vector<std::string>{
                       "broker consumer reconnecting (connection refused) 500ms",
                       "broker consumer connected",
                       "broker consumer lost (broker closed the connection)",
                   }));
}

TEST_F(Watch, AThrowingListenerDoesNotStopTheOthers) {
  events_.add([](const ConnectionEvent&) { throw std::runtime_error("listener bug"); });
  int after = 0;
  events_.add([&](const ConnectionEvent&) { ++after; });
  taskq::ConnectionWatch w(&events_, ConnectionEvent::Service::kDatabase, "callbacks");
  EXPECT_NO_THROW(w.up());
  EXPECT_EQ(after, 1);
  EXPECT_EQ(seen_.size(), 1u);
}

TEST(WatchWithoutEvents, IsQuiet) {
  taskq::ConnectionWatch w(nullptr, ConnectionEvent::Service::kDatabase, "x");
  EXPECT_NO_THROW(w.up());
  EXPECT_NO_THROW(w.down("gone", 1s));
}

}  // namespace

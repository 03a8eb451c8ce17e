// BrokerNodes: parsing a cluster's node list and the order nodes are tried
// in. The connect function is a fake (it stands for a broker outside the
// system); real failover is tested against a real cluster
// (test/integration/cluster_failover_test.cpp).
#include "core/broker_nodes.hpp"

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

#include "core/amqp_error.hpp"

using taskq::AmqpError;
using taskq::BrokerNodes;
using taskq::BrokerUrl;

TEST(BrokerNodes, OneUrlIsOneNode) {
  const auto nodes = BrokerNodes::parse("amqp://guest:secret@127.0.0.1:5672/");
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes.current().port, 5672);
  EXPECT_EQ(nodes.redacted(), "amqp://guest@127.0.0.1:5672/");
}

TEST(BrokerNodes, CommaSeparatedListWithBlanks) {
  const auto nodes = BrokerNodes::parse("amqp://u:p@a:5672/, amqp://u:p@b:5673/ ,amqp://u:p@c:5674/vh");
  ASSERT_EQ(nodes.size(), 3u);
  EXPECT_EQ(nodes.nodes()[1].host, "b");
  EXPECT_EQ(nodes.nodes()[2].vhost, "vh");
  EXPECT_EQ(nodes.redacted(), "amqp://u@a:5672/,amqp://u@b:5673/,amqp://u@c:5674/vh");
}

TEST(BrokerNodes, BadElementIsNamedWithoutItsPassword) {
  try {
    BrokerNodes::parse("amqp://u:p@a:5672/,http://u:topsecret@b/");
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("broker URL 2 of 2"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("topsecret"), std::string::npos) << e.what();
  }
  EXPECT_THROW(BrokerNodes::parse("amqp://a/,,amqp://b/"), std::invalid_argument);
  EXPECT_THROW(BrokerNodes::parse("amqp://a/,"), std::invalid_argument);
  EXPECT_THROW(BrokerNodes::parse(""), std::invalid_argument);
  EXPECT_THROW(BrokerNodes::parse(" , "), std::invalid_argument);
}

namespace {

// A fake connect: nodes whose host is in `down` refuse.
std::function<std::string(const BrokerUrl&)> connect_unless(std::set<std::string> down,
                                                            std::vector<std::string>* tried) {
  return [down, tried](const BrokerUrl& node) {
    tried->push_back(node.host);
    if (down.count(node.host) != 0) throw AmqpError(AmqpError::Scope::kLibrary, -9, "refused");
    return node.host;
  };
}

}  // namespace

TEST(BrokerNodes, StaysOnTheWorkingNodeAndSkipsDeadOnes) {
  auto nodes = BrokerNodes::parse("amqp://a/,amqp://b/,amqp://c/");
  std::vector<std::string> tried;
  EXPECT_EQ(nodes.connect_any(connect_unless({"a"}, &tried)), "b");
  EXPECT_EQ(tried, (std::vector<std::string>{"a", "b"}));
  tried.clear();
  EXPECT_EQ(nodes.connect_any(connect_unless({}, &tried)), "b");  // b is current now
  EXPECT_EQ(tried, (std::vector<std::string>{"b"}));
  nodes.move_on();  // b's connection failed
  tried.clear();
  EXPECT_EQ(nodes.connect_any(connect_unless({}, &tried)), "c");
  nodes.move_on();
  tried.clear();
  EXPECT_EQ(nodes.connect_any(connect_unless({}, &tried)), "a");  // wraps around
}

TEST(BrokerNodes, AllDownKeepsEveryErrorAndTheErrorType) {
  auto nodes = BrokerNodes::parse("amqp://a/,amqp://b/");
  std::vector<std::string> tried;
  try {
    nodes.connect_any(connect_unless({"a", "b"}, &tried));
    FAIL() << "no error";
  } catch (const AmqpError& e) {
    EXPECT_EQ(std::string(e.what()), "a:5672: refused; b:5672: refused");
    EXPECT_TRUE(e.needs_reconnect());
  }
  EXPECT_EQ(tried.size(), 2u);
  // The next round starts after the last node tried.
  tried.clear();
  EXPECT_EQ(nodes.connect_any(connect_unless({}, &tried)), "a");
}

TEST(BrokerNodes, OneNodeRethrowsItsErrorUnchanged) {
  auto nodes = BrokerNodes::parse("amqp://a/");
  std::vector<std::string> tried;
  try {
    nodes.connect_any(connect_unless({"a"}, &tried));
    FAIL() << "no error";
  } catch (const AmqpError& e) {
    EXPECT_EQ(std::string(e.what()), "refused");
  }
}

TEST(BrokerNodes, StartAtSpreadsClientsOverNodes) {
  auto nodes = BrokerNodes::parse("amqp://a/,amqp://b/,amqp://c/");
  nodes.start_at(5);  // modulo the node count
  std::vector<std::string> tried;
  EXPECT_EQ(nodes.connect_any(connect_unless({}, &tried)), "c");
}

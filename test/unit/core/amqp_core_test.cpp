// Broker URL parsing and redaction, reply decoding, message properties.
#include <gtest/gtest.h>

#include <cstring>

#include "core/amqp_error.hpp"
#include "core/broker_url.hpp"
#include "core/job_message.hpp"

using taskq::AmqpError;
using taskq::BrokerUrl;

TEST(BrokerUrl, ParsesEveryPart) {
  const auto url = BrokerUrl::parse("amqp://alice:s3cret@rabbit.example:5673/prod");
  EXPECT_EQ(url.host, "rabbit.example");
  EXPECT_EQ(url.port, 5673);
  EXPECT_EQ(url.user, "alice");
  EXPECT_EQ(url.password, "s3cret");
  EXPECT_EQ(url.vhost, "prod");
}

TEST(BrokerUrl, TrailingSlashMeansTheDefaultVhost) {
  EXPECT_EQ(BrokerUrl::parse("amqp://guest:guest@127.0.0.1:5672/").vhost, "/");
  EXPECT_EQ(BrokerUrl::parse("amqp://127.0.0.1").vhost, "/");
  EXPECT_EQ(BrokerUrl::parse("amqp://127.0.0.1/%2f").vhost, "/");
}

TEST(BrokerUrl, RedactedFormNeverShowsThePassword) {
  const auto url = BrokerUrl::parse("amqp://alice:s3cret@rabbit:5672/prod");
  EXPECT_EQ(url.redacted(), "amqp://alice@rabbit:5672/prod");
  EXPECT_EQ(url.redacted().find("s3cret"), std::string::npos);
}

TEST(BrokerUrl, KnowsWhetherTheUrlNamesAPassword) {
  EXPECT_TRUE(BrokerUrl::parse("amqp://alice:s3cret@rabbit/").has_password);
  EXPECT_TRUE(BrokerUrl::parse("amqp://alice:@rabbit/").has_password) << "an explicit empty password";
  // rabbitmq-c fills in "guest" for a missing password: that is not the URL's.
  const auto user_only = BrokerUrl::parse("amqp://alice@rabbit:5672/prod");
  EXPECT_FALSE(user_only.has_password);
  EXPECT_EQ(user_only.user, "alice");
  EXPECT_EQ(user_only.host, "rabbit");
  EXPECT_FALSE(BrokerUrl::parse("amqp://rabbit:5672/").has_password);
}

TEST(BrokerUrl, RedactsPercentEncodedAndOddPasswords) {
  for (const char* url :
       {"amqp://alice:p%40ss%3Aw0rd@rabbit/", "amqp://alice:s%2Fl%40sh@rabbit/", "amqp://alice:@rabbit/"}) {
    const auto parsed = BrokerUrl::parse(url);
    EXPECT_EQ(parsed.redacted(), "amqp://alice@rabbit:5672/") << url;
  }
  EXPECT_EQ(BrokerUrl::parse("amqp://alice:p%40ss%3Aw0rd@rabbit/").password, "p@ss:w0rd");
}

TEST(BrokerUrl, RefusesBadUrlsWithoutEchoingThem) {
  for (const char* bad : {"", "http://rabbit/", "amqp://", "rabbit:5672", "amqp://u:p@host:99999/"}) {
    try {
      BrokerUrl::parse(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).find("p@"), std::string::npos);
    }
  }
}

TEST(ReplyDecoding, NormalReplyPasses) {
  amqp_rpc_reply_t reply{};
  reply.reply_type = AMQP_RESPONSE_NORMAL;
  EXPECT_NO_THROW(taskq::check_rpc_reply(reply, "x"));
}

TEST(ReplyDecoding, ChannelCloseIsChannelScoped) {
  amqp_channel_close_t close{};
  close.reply_code = 404;
  close.reply_text = amqp_cstring_bytes("NOT_FOUND - no queue 'taskq.q'");
  amqp_rpc_reply_t reply{};
  reply.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
  reply.reply.id = AMQP_CHANNEL_CLOSE_METHOD;
  reply.reply.decoded = &close;
  try {
    taskq::check_rpc_reply(reply, "inspecting queue taskq.q");
    FAIL();
  } catch (const AmqpError& e) {
    EXPECT_EQ(e.scope(), AmqpError::Scope::kChannel);
    EXPECT_EQ(e.reply_code(), 404);
    EXPECT_FALSE(e.needs_reconnect());
    EXPECT_NE(std::string(e.what()).find("NOT_FOUND"), std::string::npos);
  }
}

TEST(ReplyDecoding, ConnectionCloseNeedsReconnect) {
  amqp_connection_close_t close{};
  close.reply_code = 320;
  close.reply_text = amqp_cstring_bytes("CONNECTION_FORCED - broker forced connection closure");
  amqp_rpc_reply_t reply{};
  reply.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
  reply.reply.id = AMQP_CONNECTION_CLOSE_METHOD;
  reply.reply.decoded = &close;
  try {
    taskq::check_rpc_reply(reply, "publishing");
    FAIL();
  } catch (const AmqpError& e) {
    EXPECT_EQ(e.scope(), AmqpError::Scope::kConnection);
    EXPECT_TRUE(e.needs_reconnect());
  }
}

TEST(ReplyDecoding, LibraryErrorsAreClassified) {
  amqp_rpc_reply_t reply{};
  reply.reply_type = AMQP_RESPONSE_LIBRARY_EXCEPTION;
  reply.library_error = AMQP_STATUS_HEARTBEAT_TIMEOUT;
  try {
    taskq::check_rpc_reply(reply, "waiting");
    FAIL();
  } catch (const AmqpError& e) {
    EXPECT_TRUE(e.needs_reconnect());  // a half-open connection: start over
  }
}

TEST(MessageProperties, CarryTheContractsFields) {
  taskq::JobMessage m;
  m.job_id = "01a2-id";
  m.queue_name = "emails";
  m.task = "welcome";
  m.has_task = true;
  m.priority = 7;
  m.attempt = 3;
  m.enqueued_at = 1700000000;
  m.headers = {{"tenant", "acme"}};
  m.body = "{}";
  taskq::MessageProperties props(m);
  const amqp_basic_properties_t* p = props.get();
  EXPECT_EQ(p->delivery_mode, 2);
  EXPECT_EQ(std::string(static_cast<char*>(p->content_type.bytes), p->content_type.len), "application/json");
  EXPECT_EQ(std::string(static_cast<char*>(p->message_id.bytes), p->message_id.len), "01a2-id");
  EXPECT_EQ(std::string(static_cast<char*>(p->type.bytes), p->type.len), "welcome");
  EXPECT_EQ(p->priority, 7);
  EXPECT_EQ(p->timestamp, 1700000000u);
  ASSERT_EQ(p->headers.num_entries, 2);
  bool saw_attempt = false, saw_tenant = false;
  for (int i = 0; i < p->headers.num_entries; ++i) {
    const auto& e = p->headers.entries[i];
    const std::string key(static_cast<char*>(e.key.bytes), e.key.len);
    if (key == "x-taskq-attempt") saw_attempt = e.value.value.i32 == 3;
    if (key == "tenant")
      saw_tenant = std::string(static_cast<char*>(e.value.value.bytes.bytes), e.value.value.bytes.len) == "acme";
  }
  EXPECT_TRUE(saw_attempt);
  EXPECT_TRUE(saw_tenant);
}

TEST(MessageProperties, NoTaskNoTypeProperty) {
  taskq::JobMessage m;
  m.job_id = "x";
  taskq::MessageProperties props(m);
  EXPECT_EQ(props.get()->_flags & AMQP_BASIC_TYPE_FLAG, 0);
}

// Several jobs per message: one body array, the first job's id and
// priority, x-taskq-jobs instead of x-taskq-attempt, no type and no job
// headers (each job's are in its own body).
TEST(MessageProperties, APackedMessageCarriesItsJobsInTheBody) {
  taskq::JobMessage a, b;
  a.job_id = "id-a";
  a.queue_name = b.queue_name = "emails";
  a.task = "welcome";
  a.has_task = true;
  a.priority = b.priority = 4;
  a.attempt = 2;
  a.enqueued_at = 1700000000;
  a.headers = {{"tenant", "acme"}};
  a.body = R"({"id":"id-a","payload":{"s":"],["}})";
  b.job_id = "id-b";
  b.body = R"({"id":"id-b"})";
  const taskq::JobMessage packed = taskq::pack_job_messages({&a, &b});
  EXPECT_EQ(packed.jobs, 2);
  EXPECT_EQ(packed.body, "[" + a.body + "," + b.body + "]");
  taskq::MessageProperties props(packed);
  const amqp_basic_properties_t* p = props.get();
  EXPECT_EQ(std::string(static_cast<char*>(p->message_id.bytes), p->message_id.len), "id-a");
  EXPECT_EQ(p->priority, 4);
  EXPECT_EQ(p->timestamp, 1700000000u);
  EXPECT_EQ(p->_flags & AMQP_BASIC_TYPE_FLAG, 0);
  ASSERT_EQ(p->headers.num_entries, 1);
  EXPECT_EQ(std::string(static_cast<char*>(p->headers.entries[0].key.bytes), p->headers.entries[0].key.len),
            "x-taskq-jobs");
  EXPECT_EQ(p->headers.entries[0].value.value.i32, 2);
  // One job packs to itself: the one-job form, byte for byte.
  EXPECT_EQ(taskq::pack_job_messages({&a}).body, a.body);
  EXPECT_EQ(taskq::pack_job_messages({&a}).jobs, 1);
  EXPECT_THROW(taskq::pack_job_messages({}), std::invalid_argument);
}

TEST(FlatStringObject, ParsesHeadersAndRefusesOthers) {
  const auto h = taskq::parse_flat_string_object(R"({"a": "1", "b": "two"})");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_THROW(taskq::parse_flat_string_object(R"({"a": 1})"), std::invalid_argument);
  EXPECT_THROW(taskq::parse_flat_string_object("[1]"), std::invalid_argument);
  EXPECT_ANY_THROW(taskq::parse_flat_string_object("{bad"));
}

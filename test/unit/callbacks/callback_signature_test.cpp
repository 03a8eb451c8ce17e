// X-Taskq-Signature: HMAC-SHA256 against published vectors and the header's
// exact format.
#include <gtest/gtest.h>

#include "callbacks/callback_signature.hpp"

namespace {

TEST(CallbackSignature, MatchesRfc4231TestCase2) {
  EXPECT_EQ(taskq::hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(CallbackSignature, MatchesRfc4231TestCase1WithABinaryKey) {
  // Key 0x0b x 20, data "Hi There".
  EXPECT_EQ(taskq::hmac_sha256_hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

TEST(CallbackSignature, EmptyKeyAndMessageAreStillSigned) {
  // printf '' | openssl dgst -sha256 -hmac ''
  EXPECT_EQ(taskq::hmac_sha256_hex("", ""), "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(CallbackSignature, HeaderIsTimestampThenHmacOfTimestampDotBody) {
  // printf '1700000000.{"id": "x"}' | openssl dgst -sha256 -hmac s3cret
  EXPECT_EQ(taskq::callback_signature("s3cret", 1700000000, R"({"id": "x"})"),
            "t=1700000000,v1=0805abf1113b8997bd0b5ee58892ae0d67113786095870fe9edc87053d30ef93");
}

TEST(CallbackSignature, DependsOnSecretTimestampAndBody) {
  const std::string base = taskq::callback_signature("k", 100, "{}");
  EXPECT_NE(base, taskq::callback_signature("k2", 100, "{}"));
  EXPECT_NE(base.substr(base.find(",v1=")), taskq::callback_signature("k", 101, "{}").substr(base.find(",v1=")));
  EXPECT_NE(base, taskq::callback_signature("k", 100, "{ }"));
}

}  // namespace

// valid_text: what handlers produce becomes text PostgreSQL stores.
#include <gtest/gtest.h>

#include "db/valid_text.hpp"

namespace {

TEST(ValidText, KeepsValidUtf8) {
  const std::string text = "plain, \xC3\xA9t\xC3\xA9, \xE2\x82\xAC, \xF0\x9F\x98\x80";
  EXPECT_EQ(taskq::valid_text(text), text);
}

TEST(ValidText, DropsNulBytesAndReplacesInvalidSequences) {
  EXPECT_EQ(taskq::valid_text(std::string("a\0b", 3)), "ab");
  const std::string replacement = "\xEF\xBF\xBD";
  EXPECT_EQ(taskq::valid_text("a\xFF"
                              "b"),
            "a" + replacement + "b");                                                     // never valid
  EXPECT_EQ(taskq::valid_text("\xC0\xAF"), replacement + replacement);                    // overlong '/'
  EXPECT_EQ(taskq::valid_text("\xED\xA0\x80"), replacement + replacement + replacement);  // surrogate
  EXPECT_EQ(taskq::valid_text("end\xE2\x82"), "end" + replacement + replacement);         // cut mid-sequence
  EXPECT_EQ(taskq::valid_text("\xF4\x90\x80\x80").substr(0, 3), replacement);             // above U+10FFFF
}

}  // namespace

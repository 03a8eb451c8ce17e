// Schedule expression parser; the syntax is described in cron_expression.hpp.
//
// The parser throws SyntaxError internally (deep inside an item, unwinding
// is the simplest way out) and parse_cron_expression() turns it into the
// message, so callers never see an exception.
#include "cron_expression.hpp"

#include <algorithm>
#include <array>
#include <vector>

namespace taskq {

namespace {

constexpr std::uint64_t bit_range(int lo, int hi) {
  // Bits lo..hi inclusive, hi < 64.
  return ((hi >= 63 ? ~0ULL : ((1ULL << (hi + 1)) - 1))) & ~((1ULL << lo) - 1);
}

constexpr std::uint64_t kAllHours = bit_range(0, 23);
constexpr std::uint64_t kAllDaysOfMonth = bit_range(1, 31);
constexpr std::uint64_t kAllDaysOfWeek = bit_range(0, 6);

// Thrown with the part of the message after the quoted expression.
struct SyntaxError {
  std::string detail;
  std::size_t position;  // 1-based, 0: none
};

struct FieldSpec {
  const char* name;
  int min;
  int max;                                   // largest value accepted: 7 for the day of week (Sunday again)
  int last;                                  // where `*` and `a/n` end: 6 for the day of week, else max
  const std::array<const char*, 12>* names;  // names[i] is value name_base + i
  int name_base;
};

const std::array<const char*, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                 "jul", "aug", "sep", "oct", "nov", "dec"};
const std::array<const char*, 12> kDayNames = {"sun", "mon",   "tue",   "wed",   "thu",   "fri",
                                               "sat", nullptr, nullptr, nullptr, nullptr, nullptr};

const std::array<FieldSpec, 5> kFields = {{
    {"minute", 0, 59, 59, nullptr, 0},
    {"hour", 0, 23, 23, nullptr, 0},
    {"day-of-month", 1, 31, 31, nullptr, 0},
    {"month", 1, 12, 12, &kMonthNames, 1},
    {"day-of-week", 0, 7, 6, &kDayNames, 0},
}};

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
// Letters and non-ASCII bytes: a misspelt name is reported as one word.
bool is_word_byte(char c) { return is_letter(c) || static_cast<unsigned char>(c) >= 0x80; }

// ASCII only: the server's locale must not change what a name means.
std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// The character at text[at] for a message: a control character by its code,
// a multi-byte UTF-8 character whole, so the message stays valid text.
std::string shown_char(std::string_view text, std::size_t at) {
  const char c = text[at];
  if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "character " + std::to_string(c);
  std::size_t end = at + 1;
  if (static_cast<unsigned char>(c) >= 0xc0) {
    while (end < text.size() && end < at + 4 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80) ++end;
  }
  return quoted(text.substr(at, end - at));
}

// A run of digits as a number; saturates instead of overflowing so a huge
// number is reported as out of range (with its text) rather than wrapping.
int to_number(std::string_view digits) {
  long long v = 0;
  for (char c : digits) {
    v = v * 10 + (c - '0');
    if (v > 1'000'000'000) return 1'000'000'000;
  }
  return static_cast<int>(v);
}

// Reads one item list of one field. `offset` is the 0-based position of the
// field's text in the whole expression, for error positions.
class FieldParser {
 public:
  FieldParser(const FieldSpec& spec, std::string_view text, std::size_t offset)
      : spec_(spec), text_(text), offset_(offset) {}

  std::uint64_t parse() {
    std::uint64_t mask = 0;
    std::size_t start = 0;
    while (true) {
      const std::size_t comma = text_.find(',', start);
      const std::size_t end = comma == std::string_view::npos ? text_.size() : comma;
      if (end == start) fail("empty list item at position " + std::to_string(offset_ + start + 1), start);
      mask |= parse_item(start, end);
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return mask;
  }

 private:
  [[noreturn]] void fail(const std::string& detail, std::size_t at) const {
    throw SyntaxError{std::string(spec_.name) + " field: " + detail, offset_ + at + 1};
  }

  [[noreturn]] void unexpected(std::size_t at) const {
    fail("unexpected " + shown_char(text_, at) + " at position " + std::to_string(offset_ + at + 1), at);
  }

  struct Value {
    int number;
    bool is_name;
  };

  // A number or a name at pos_ (advanced past it), checked against the range.
  Value parse_value(std::size_t end) {
    const std::size_t begin = pos_;
    if (pos_ >= end) fail("expected a value at position " + std::to_string(offset_ + pos_ + 1), pos_);
    if (is_digit(text_[pos_])) {
      while (pos_ < end && is_digit(text_[pos_])) ++pos_;
      const std::string_view digits = text_.substr(begin, pos_ - begin);
      const int v = to_number(digits);
      if (v < spec_.min || v > spec_.max) {
        fail(std::string(digits) + " is out of range " + std::to_string(spec_.min) + "-" + std::to_string(spec_.max),
             begin);
      }
      return {v, false};
    }
    if (!is_word_byte(text_[pos_])) unexpected(pos_);
    while (pos_ < end && is_word_byte(text_[pos_])) ++pos_;
    const std::string_view word = text_.substr(begin, pos_ - begin);
    if (spec_.names == nullptr) fail(quoted(word) + " is not a number", begin);
    const std::string name = lower(word);
    for (std::size_t i = 0; i < spec_.names->size(); ++i) {
      const char* candidate = (*spec_.names)[i];
      if (candidate != nullptr && name == candidate) return {spec_.name_base + static_cast<int>(i), true};
    }
    const char* known = spec_.names == &kMonthNames ? "a month name (jan-dec)" : "a day name (sun-sat)";
    fail(quoted(word) + " is not a number or " + std::string(known), begin);
  }

  std::uint64_t parse_item(std::size_t begin, std::size_t end) {
    pos_ = begin;
    int lo = spec_.min;
    int hi = spec_.last;
    bool open_ended = false;  // `a/n`: a single value with a step runs to the maximum
    if (text_[pos_] == '*') {
      ++pos_;
    } else {
      const Value first = parse_value(end);
      lo = hi = first.number;
      open_ended = true;
      if (pos_ < end && text_[pos_] == '-') {
        ++pos_;
        const Value last = parse_value(end);
        hi = last.number;
        // `fri-sun`: Sunday as the end of a range is 7, the end of the week.
        if (spec_.names == &kDayNames && last.is_name && hi == 0 && lo > 0) hi = 7;
        open_ended = false;
        if (lo > hi) fail("range " + std::string(text_.substr(begin, pos_ - begin)) + " is reversed", begin);
      }
    }
    int step = 1;
    if (pos_ < end && text_[pos_] == '/') {
      ++pos_;
      const std::size_t step_begin = pos_;
      if (pos_ >= end) fail("expected a step at position " + std::to_string(offset_ + pos_ + 1), pos_);
      if (!is_digit(text_[pos_])) {
        if (!is_letter(text_[pos_])) unexpected(pos_);
        while (pos_ < end && is_letter(text_[pos_])) ++pos_;
        fail("step " + quoted(text_.substr(step_begin, pos_ - step_begin)) + " is not a number", step_begin);
      }
      while (pos_ < end && is_digit(text_[pos_])) ++pos_;
      const std::string_view digits = text_.substr(step_begin, pos_ - step_begin);
      step = to_number(digits);
      const int max_step = spec_.last - spec_.min + 1;
      if (step < 1 || step > max_step) {
        fail("step " + std::string(digits) + " is out of range 1-" + std::to_string(max_step), step_begin);
      }
      if (open_ended) hi = std::max(lo, spec_.last);
    }
    if (pos_ < end) unexpected(pos_);
    std::uint64_t mask = 0;
    for (int v = lo; v <= hi; v += step) mask |= 1ULL << v;
    return mask;
  }

  const FieldSpec& spec_;
  std::string_view text_;
  std::size_t offset_;
  std::size_t pos_ = 0;
};

struct Macro {
  const char* name;
  const char* expansion;
};

const std::array<Macro, 7> kMacros = {{
    {"yearly", "0 0 1 1 *"},
    {"annually", "0 0 1 1 *"},
    {"monthly", "0 0 1 * *"},
    {"weekly", "0 0 * * 0"},
    {"daily", "0 0 * * *"},
    {"midnight", "0 0 * * *"},
    {"hourly", "0 * * * *"},
}};

constexpr std::int64_t kMaxEverySeconds = 3650LL * 86400;

// `@every` interval text (after the keyword); `offset` as for FieldParser.
std::int64_t parse_every(std::string_view text, std::size_t offset) {
  std::size_t pos = 0;
  const auto skip_blanks = [&] {
    while (pos < text.size() && is_blank(text[pos])) ++pos;
  };
  const auto at = [&](std::size_t p) { return " at position " + std::to_string(offset + p + 1); };
  skip_blanks();
  if (pos == text.size()) throw SyntaxError{"@every needs an interval, e.g. @every 5 minutes", 0};
  std::int64_t total = 0;
  while (pos < text.size()) {
    const std::size_t number_begin = pos;
    if (!is_digit(text[pos])) {
      throw SyntaxError{"@every: expected a number" + at(pos) + ", found " + shown_char(text, pos), offset + pos + 1};
    }
    while (pos < text.size() && is_digit(text[pos])) ++pos;
    const std::string_view digits = text.substr(number_begin, pos - number_begin);
    const std::int64_t number = to_number(digits);
    skip_blanks();
    const std::size_t unit_begin = pos;
    while (pos < text.size() && is_letter(text[pos])) ++pos;
    const std::string unit = lower(text.substr(unit_begin, pos - unit_begin));
    if (unit.empty()) {
      if (pos < text.size()) {
        throw SyntaxError{"@every: unexpected " + shown_char(text, pos) + at(pos), offset + pos + 1};
      }
      throw SyntaxError{"@every: " + std::string(digits) + at(number_begin) +
                            " has no unit (seconds, minutes, hours, " + "days or weeks)",
                        offset + number_begin + 1};
    }
    std::int64_t unit_seconds = 0;
    if (unit == "s" || unit == "sec" || unit == "secs" || unit == "second" || unit == "seconds") {
      unit_seconds = 1;
    } else if (unit == "m" || unit == "min" || unit == "mins" || unit == "minute" || unit == "minutes") {
      unit_seconds = 60;
    } else if (unit == "h" || unit == "hr" || unit == "hrs" || unit == "hour" || unit == "hours") {
      unit_seconds = 3600;
    } else if (unit == "d" || unit == "day" || unit == "days") {
      unit_seconds = 86400;
    } else if (unit == "w" || unit == "week" || unit == "weeks") {
      unit_seconds = 7 * 86400;
    } else {
      throw SyntaxError{"@every: unknown unit " + quoted(text.substr(unit_begin, pos - unit_begin)) + at(unit_begin) +
                            " (use seconds, minutes, hours, days or weeks)",
                        offset + unit_begin + 1};
    }
    // number <= 1e9 and unit <= 604800, so the product fits; cap the sum early.
    total += number * unit_seconds;
    if (total > kMaxEverySeconds) throw SyntaxError{"@every interval must be at most 3650 days", 0};
    skip_blanks();
  }
  if (total < 1) throw SyntaxError{"@every interval must be at least 1 second", 0};
  return total;
}

void split_fields(std::string_view text, std::vector<std::string_view>& fields, std::vector<std::size_t>& offsets) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    while (pos < text.size() && is_blank(text[pos])) ++pos;
    if (pos == text.size()) break;
    const std::size_t begin = pos;
    while (pos < text.size() && !is_blank(text[pos])) ++pos;
    fields.push_back(text.substr(begin, pos - begin));
    offsets.push_back(begin);
  }
}

int days_in_month_at_most(int month) {
  static constexpr std::array<int, 13> kDays = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return kDays[month];
}

CronExpression parse_fields(std::string_view text);

CronExpression parse_macro(std::string_view text, std::size_t at) {
  std::size_t pos = at + 1;
  while (pos < text.size() && is_letter(text[pos])) ++pos;
  const std::string_view word = text.substr(at, pos - at);
  const std::string name = lower(word.substr(1));
  if (name == "every") {
    CronExpression every;
    every.every_seconds = parse_every(text.substr(pos), pos);
    return every;
  }
  for (const Macro& macro : kMacros) {
    if (name != macro.name) continue;
    std::size_t rest = pos;
    while (rest < text.size() && is_blank(text[rest])) ++rest;
    if (rest < text.size()) {
      throw SyntaxError{"unexpected " + shown_char(text, rest) + " at position " + std::to_string(rest + 1) +
                            " after " + std::string(word),
                        rest + 1};
    }
    return parse_fields(macro.expansion);
  }
  throw SyntaxError{"unknown macro " + std::string(word) +
                        " (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, "
                        "@every <interval>)",
                    at + 1};
}

CronExpression parse_fields(std::string_view text) {
  std::vector<std::string_view> fields;
  std::vector<std::size_t> offsets;
  split_fields(text, fields, offsets);
  if (fields.size() != kFields.size()) {
    throw SyntaxError{
        "expected 5 fields (minute hour day-of-month month day-of-week), found " + std::to_string(fields.size()), 0};
  }
  std::array<std::uint64_t, 5> masks{};
  for (std::size_t i = 0; i < kFields.size(); ++i) masks[i] = FieldParser(kFields[i], fields[i], offsets[i]).parse();
  CronExpression e;
  e.minutes = masks[0];
  e.hours = masks[1];
  e.days_of_month = masks[2];
  e.months = masks[3];
  // 7 is another name for Sunday.
  e.days_of_week = (masks[4] & kAllDaysOfWeek) | ((masks[4] >> 7) & 1ULL);

  // With the day of week unrestricted only the day of month decides, and it
  // may select no day that exists in the selected months (Feb 29 exists
  // every four years, so it counts).
  if (e.day_of_month_restricted() && !e.day_of_week_restricted()) {
    bool occurs = false;
    for (int month = 1; month <= 12 && !occurs; ++month) {
      if ((e.months >> month & 1ULL) != 0) occurs = (e.days_of_month & bit_range(1, days_in_month_at_most(month))) != 0;
    }
    if (!occurs) {
      throw SyntaxError{"day-of-month field: day " + quoted(fields[2]) + " never occurs in month " + quoted(fields[3]),
                        offsets[2] + 1};
    }
  }
  return e;
}

}  // namespace

bool CronExpression::every_hour() const { return (hours & kAllHours) == kAllHours; }
bool CronExpression::day_of_month_restricted() const { return (days_of_month & kAllDaysOfMonth) != kAllDaysOfMonth; }
bool CronExpression::day_of_week_restricted() const { return (days_of_week & kAllDaysOfWeek) != kAllDaysOfWeek; }

CronParseResult parse_cron_expression(std::string_view text) noexcept {
  CronParseResult result;
  try {
    if (text.size() > kMaxCronExpressionLength) {
      result.error.message =
          "invalid cron expression: longer than " + std::to_string(kMaxCronExpressionLength) + " characters";
      return result;
    }
    try {
      std::size_t first = 0;
      while (first < text.size() && is_blank(text[first])) ++first;
      if (first < text.size() && text[first] == '@') {
        result.expression = parse_macro(text, first);
      } else {
        result.expression = parse_fields(text);
      }
    } catch (const SyntaxError& e) {
      result.error.message = "invalid cron expression " + quoted(text) + ": " + e.detail;
      result.error.position = e.position;
    }
  } catch (...) {
    // Only an allocation can fail here; the short message needs none.
    result.expression.reset();
    result.error.message = "out of memory";
    result.error.position = 0;
  }
  return result;
}

}  // namespace taskq

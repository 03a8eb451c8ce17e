// The metrics registry's rendering, checked line by line against the
// Prometheus text format (0.0.4) by a small parser written for this test:
// HELP and TYPE once per family before its samples, families not
// interleaved, valid names, escaped label values, numeric values, and
// histograms with cumulative buckets ending in +Inf equal to _count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "operations/metrics.hpp"

namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped values
  std::string raw_value;
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family -> counter/gauge/histogram
  std::vector<Sample> samples;
  std::vector<std::string> errors;

  std::vector<Sample> find(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    std::vector<Sample> out;
    for (const auto& s : samples) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : labels) match = match && s.labels.count(k) && s.labels.at(k) == v;
      if (match) out.push_back(s);
    }
    return out;
  }
  double value(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    auto found = find(name, labels);
    if (found.size() != 1) {
      ADD_FAILURE() << found.size() << " samples for " << name;
      return NAN;
    }
    return found[0].value;
  }
};

const std::regex kMetricName("[a-zA-Z_:][a-zA-Z0-9_:]*");
const std::regex kLabelName("[a-zA-Z_][a-zA-Z0-9_]*");

bool parse_value(const std::string& text, double* out) {
  if (text == "NaN" || text == "+Inf" || text == "-Inf") {
    *out = text == "NaN" ? NAN : (text == "+Inf" ? INFINITY : -INFINITY);
    return true;
  }
  if (text.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && text.find_first_of("xXpP") == std::string::npos;
}

// name{label="value",...} value; label values may hold only \\, \" and \n
// escapes.
bool parse_sample(const std::string& line, Sample* s, std::string* why) {
  std::size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  s->name = line.substr(0, i);
  if (!std::regex_match(s->name, kMetricName)) return *why = "bad metric name", false;
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      std::size_t eq = line.find('=', i);
      if (eq == std::string::npos) return *why = "label without =", false;
      const std::string key = line.substr(i, eq - i);
      if (!std::regex_match(key, kLabelName)) return *why = "bad label name " + key, false;
      if (s->labels.count(key)) return *why = "repeated label " + key, false;
      i = eq + 1;
      if (i >= line.size() || line[i] != '"') return *why = "label value not quoted", false;
      ++i;
      std::string value;
      for (;;) {
        if (i >= line.size()) return *why = "unterminated label value", false;
        const char c = line[i++];
        if (c == '"') break;
        if (c == '\\') {
          if (i >= line.size()) return *why = "dangling backslash", false;
          const char e = line[i++];
          if (e == '\\')
            value += '\\';
          else if (e == '"')
            value += '"';
          else if (e == 'n')
            value += '\n';
          else
            return *why = std::string("bad escape \\") + e, false;
        } else {
          value += c;
        }
      }
      s->labels[key] = value;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return *why = "unterminated label set", false;
    ++i;  // '}'
  }
  if (i >= line.size() || line[i] != ' ') return *why = "no space before the value", false;
  s->raw_value = line.substr(i + 1);
  // An optional timestamp would follow a second space; we never write one.
  if (!parse_value(s->raw_value, &s->value)) return *why = "bad value " + s->raw_value, false;
  return true;
}

// The family a sample belongs to: histogram series carry suffixes.
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string sfx = suffix;
    if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
      const std::string base = name.substr(0, name.size() - sfx.size());
      auto it = types.find(base);
      if (it != types.end() && it->second == "histogram") return base;
    }
  }
  return name;
}

Exposition check_exposition(const std::string& text) {
  Exposition out;
  if (text.empty() || text.back() != '\n') out.errors.push_back("does not end with a newline");
  std::map<std::string, int> helps;
  std::set<std::string> finished_families;
  std::string current;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    const std::string where = "line " + std::to_string(n) + " \"" + line + "\": ";
    if (line.empty()) {
      out.errors.push_back(where + "empty line");
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const bool help = line[2] == 'H';
      const std::string rest = line.substr(7);
      const auto space = rest.find(' ');
      const std::string name = rest.substr(0, space);
      if (!std::regex_match(name, kMetricName)) out.errors.push_back(where + "bad family name");
      if (space == std::string::npos || space + 1 >= rest.size()) out.errors.push_back(where + "nothing after name");
      if (name != current) {
        if (finished_families.count(name)) out.errors.push_back(where + "family appears twice");
        if (!current.empty()) finished_families.insert(current);
        current = name;
      }
      if (help) {
        if (++helps[name] > 1) out.errors.push_back(where + "second HELP");
      } else {
        const std::string type = space == std::string::npos ? "" : rest.substr(space + 1);
        if (out.types.count(name)) out.errors.push_back(where + "second TYPE");
        if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" && type != "untyped")
          out.errors.push_back(where + "unknown type");
        if (out.samples.size() && family_of(out.samples.back().name, out.types) == name)
          out.errors.push_back(where + "TYPE after samples");
        out.types[name] = type;
      }
      continue;
    }
    if (line[0] == '#') continue;  // other comments are allowed
    Sample s;
    std::string why;
    if (!parse_sample(line, &s, &why)) {
      out.errors.push_back(where + why);
      continue;
    }
    const std::string family = family_of(s.name, out.types);
    if (family != current) out.errors.push_back(where + "sample outside its family's block (" + family + ")");
    if (!out.types.count(family) || !helps.count(family)) out.errors.push_back(where + "no HELP/TYPE before it");
    if (out.types[family] == "counter" && (s.value < 0 || std::isnan(s.value)))
      out.errors.push_back(where + "counter below zero");
    out.samples.push_back(std::move(s));
  }
  // Histograms: per label set (without le), buckets with increasing le,
  // non-decreasing counts, a final +Inf equal to _count, and a _sum.
  for (const auto& [family, type] : out.types) {
    if (type != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::vector<const Sample*>> series;
    for (const auto& s : out.samples)
      if (s.name == family + "_bucket") {
        auto labels = s.labels;
        if (!labels.count("le")) out.errors.push_back(family + ": bucket without le");
        labels.erase("le");
        series[labels].push_back(&s);
      }
    for (const auto& [labels, buckets] : series) {
      double last_le = -INFINITY, last_count = 0;
      for (const Sample* b : buckets) {
        double le = 0;
        if (!parse_value(b->labels.at("le"), &le)) out.errors.push_back(family + ": bad le " + b->labels.at("le"));
        if (!(le > last_le)) out.errors.push_back(family + ": le not increasing at " + b->labels.at("le"));
        if (b->value < last_count) out.errors.push_back(family + ": buckets not cumulative at " + b->labels.at("le"));
        last_le = le;
        last_count = b->value;
      }
      if (buckets.back()->labels.at("le") != "+Inf") out.errors.push_back(family + ": last bucket is not +Inf");
      auto count = out.find(family + "_count", labels);
      auto sum = out.find(family + "_sum", labels);
      if (count.size() != 1 || sum.size() != 1)
        out.errors.push_back(family + ": _count/_sum missing");
      else if (count[0].value != buckets.back()->value)
        out.errors.push_back(family + ": +Inf bucket != _count");
    }
  }
  return out;
}

std::string joined(const std::vector<std::string>& errors) {
  std::string out;
  for (const auto& e : errors) out += e + "\n";
  return out;
}

// The checker itself must catch what it is there to catch.
TEST(PrometheusChecker, RefusesMalformedExpositions) {
  const char* good = "# HELP a_total A.\n# TYPE a_total counter\na_total{q=\"x\"} 1\n";
  EXPECT_TRUE(check_exposition(good).errors.empty()) << joined(check_exposition(good).errors);
  for (const char* bad : {
           "a_total 1\n",                                                         // no HELP/TYPE
           "# HELP a_total A.\n# TYPE a_total counter\na_total{q=\"x\"} 1",       // no final newline
           "# HELP a_total A.\n# TYPE a_total counter\na_total{q=\"x\\t\"} 1\n",  // bad escape
           "# HELP a_total A.\n# TYPE a_total counter\na_total{q=\"x} 1\n",       // unterminated
           "# HELP a_total A.\n# TYPE a_total counter\na_total{q=\"x\"} one\n",   // not a number
           "# HELP a_total A.\n# TYPE a_total counter\n# HELP b B.\n# TYPE b gauge\nb 1\na_total 1\n",  // interleaved
           "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
           "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
           "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
       }) {
    EXPECT_FALSE(check_exposition(bad).errors.empty()) << bad;
  }
}

TEST(Metrics, EmptyRegistryIsValidAndShowsBothServicesDown) {
  taskq::Metrics m;
  auto e = check_exposition(m.render());
  EXPECT_TRUE(e.errors.empty()) << joined(e.errors);
  EXPECT_EQ(e.value("taskq_worker_connected", {{"service", "broker"}}), 0);
  EXPECT_EQ(e.value("taskq_worker_connected", {{"service", "database"}}), 0);
  EXPECT_EQ(e.value("taskq_worker_jobs_in_flight"), 0);
  for (const char* family :
       {"taskq_worker_jobs_started_total", "taskq_worker_jobs_finished_total", "taskq_worker_handler_duration_seconds",
        "taskq_worker_callbacks_total", "taskq_worker_reconnects_total", "taskq_worker_deliveries_dropped_total"})
    EXPECT_TRUE(e.types.count(family)) << family;
}

TEST(Metrics, CountersByQueueOutcomeAndService) {
  taskq::Metrics m;
  m.job_started("emails");
  m.job_started("emails");
  m.job_started("sms");
  m.job_finished("emails", taskq::JobOutcome::kCompleted, 0.2);
  m.job_finished("emails", taskq::JobOutcome::kFailed, 0.3);
  m.job_finished("sms", taskq::JobOutcome::kRetried, 0.1);
  m.delivery_dropped("sms", taskq::DropReason::kMalformed);
  m.delivery_dropped("sms", taskq::DropReason::kHeld);
  m.delivery_dropped("sms", taskq::DropReason::kHeld);
  m.callback_finished(taskq::CallbackResult::kDelivered);
  m.callback_finished(taskq::CallbackResult::kDelivered);
  m.callback_finished(taskq::CallbackResult::kDead);
  m.reconnected("broker");
  m.set_connected("broker", true);
  m.add_in_flight(3);
  m.add_in_flight(-1);

  auto e = check_exposition(m.render());
  ASSERT_TRUE(e.errors.empty()) << joined(e.errors);
  EXPECT_EQ(e.types["taskq_worker_jobs_started_total"], "counter");
  EXPECT_EQ(e.types["taskq_worker_jobs_in_flight"], "gauge");
  EXPECT_EQ(e.value("taskq_worker_jobs_started_total", {{"queue", "emails"}}), 2);
  EXPECT_EQ(e.value("taskq_worker_jobs_started_total", {{"queue", "sms"}}), 1);
  EXPECT_EQ(e.value("taskq_worker_jobs_finished_total", {{"queue", "emails"}, {"outcome", "completed"}}), 1);
  EXPECT_EQ(e.value("taskq_worker_jobs_finished_total", {{"queue", "emails"}, {"outcome", "failed"}}), 1);
  EXPECT_EQ(e.value("taskq_worker_jobs_finished_total", {{"queue", "sms"}, {"outcome", "retried"}}), 1);
  EXPECT_EQ(e.value("taskq_worker_deliveries_dropped_total", {{"queue", "sms"}, {"reason", "malformed"}}), 1);
  EXPECT_EQ(e.value("taskq_worker_deliveries_dropped_total", {{"queue", "sms"}, {"reason", "held"}}), 2);
  EXPECT_EQ(e.value("taskq_worker_callbacks_total", {{"result", "delivered"}}), 2);
  EXPECT_EQ(e.value("taskq_worker_callbacks_total", {{"result", "dead"}}), 1);
  EXPECT_EQ(e.value("taskq_worker_reconnects_total", {{"service", "broker"}}), 1);
  EXPECT_EQ(e.value("taskq_worker_connected", {{"service", "broker"}}), 1);
  EXPECT_EQ(e.value("taskq_worker_connected", {{"service", "database"}}), 0);
  EXPECT_EQ(e.value("taskq_worker_jobs_in_flight"), 2);
  EXPECT_TRUE(m.connected("broker"));
  EXPECT_FALSE(m.connected("database"));
  EXPECT_EQ(m.in_flight(), 2);
}

TEST(Metrics, LabelValuesAreEscapedAndReadBackIntact) {
  taskq::Metrics m;
  const std::string nasty = "we\"ird\\queue\nname é";
  m.job_started(nasty);
  m.job_finished(nasty, taskq::JobOutcome::kCompleted, 0.01);
  const std::string text = m.render();
  auto e = check_exposition(text);
  ASSERT_TRUE(e.errors.empty()) << joined(e.errors) << text;
  EXPECT_EQ(e.value("taskq_worker_jobs_started_total", {{"queue", nasty}}), 1);
  EXPECT_EQ(e.value("taskq_worker_handler_duration_seconds_count", {{"queue", nasty}}), 1);
}

TEST(Metrics, HistogramBucketsAreCumulativeAndEndInInf) {
  taskq::Metrics m;
  // One observation below the first bound, on a bound (le is inclusive),
  // in the middle, and above the last bound (only +Inf counts it).
  const std::vector<double> observed = {0.001, 0.25, 0.7, 400};
  for (double s : observed) m.job_finished("emails", taskq::JobOutcome::kCompleted, s);
  const std::string text = m.render();
  auto e = check_exposition(text);
  ASSERT_TRUE(e.errors.empty()) << joined(e.errors) << text;
  EXPECT_EQ(e.types["taskq_worker_handler_duration_seconds"], "histogram");

  auto buckets = e.find("taskq_worker_handler_duration_seconds_bucket", {{"queue", "emails"}});
  ASSERT_EQ(buckets.size(), taskq::Metrics::kDurationBuckets.size() + 1);
  for (std::size_t i = 0; i < taskq::Metrics::kDurationBuckets.size(); ++i) {
    const double le = taskq::Metrics::kDurationBuckets[i];
    double expected = 0;
    for (double s : observed) expected += s <= le ? 1 : 0;
    EXPECT_EQ(buckets[i].value, expected) << "le=" << buckets[i].labels["le"];
    // Written as the short, exact decimal (0.005, not 0.0050000000000000001).
    EXPECT_LE(buckets[i].labels["le"].size(), 5u) << buckets[i].labels["le"];
    EXPECT_EQ(std::strtod(buckets[i].labels["le"].c_str(), nullptr), le);
  }
  EXPECT_EQ(buckets.back().labels["le"], "+Inf");
  EXPECT_EQ(buckets.back().value, 4);
  EXPECT_EQ(e.value("taskq_worker_handler_duration_seconds_count", {{"queue", "emails"}}), 4);
  EXPECT_DOUBLE_EQ(e.value("taskq_worker_handler_duration_seconds_sum", {{"queue", "emails"}}), 400.951);
}

TEST(Metrics, ConcurrentRecordingLosesNothing) {
  taskq::Metrics m;
  constexpr int kThreads = 8, kEach = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&m, t] {
      for (int i = 0; i < kEach; ++i) {
        m.job_started(t % 2 ? "a" : "b");
        m.job_finished(t % 2 ? "a" : "b", taskq::JobOutcome::kCompleted, 0.001 * i);
        if (i % 100 == 0) m.render();  // rendering while others record
      }
    });
  for (auto& t : threads) t.join();
  auto e = check_exposition(m.render());
  ASSERT_TRUE(e.errors.empty()) << joined(e.errors);
  EXPECT_EQ(e.value("taskq_worker_jobs_started_total", {{"queue", "a"}}) +
                e.value("taskq_worker_jobs_started_total", {{"queue", "b"}}),
            kThreads * kEach);
  EXPECT_EQ(e.value("taskq_worker_handler_duration_seconds_count", {{"queue", "a"}}), kThreads / 2 * kEach);
}

}  // namespace

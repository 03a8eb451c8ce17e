// Building a job's AMQP properties; see job_message.hpp.
#include "job_message.hpp"

#include "amqp_bytes.hpp"

#include <nlohmann/json.hpp>

#include <stdexcept>

namespace taskq {
MessageProperties::MessageProperties(const JobMessage& message) {
  // Every string the properties point at is copied here first; reserve so
  // that no reallocation moves them.
  strings_.reserve(4 + 2 * message.headers.size());
  auto keep = [this](const std::string& s) -> amqp_bytes_t {
    strings_.push_back(s);
    return bytes_of(strings_.back());
  };

  entries_.reserve(1 + message.headers.size());
  if (message.jobs > 1) {
    // A packed message: the jobs' own attempts and headers are in the body.
    amqp_table_entry_t jobs{};
    jobs.key = amqp_cstring_bytes("x-taskq-jobs");
    jobs.value.kind = AMQP_FIELD_KIND_I32;
    jobs.value.value.i32 = message.jobs;
    entries_.push_back(jobs);
  }
  for (const auto& [name, value] : message.headers) {
    amqp_table_entry_t entry{};
    entry.key = keep(name);
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = keep(value);
    entries_.push_back(entry);
  }
  if (message.jobs == 1) {
    amqp_table_entry_t attempt{};
    attempt.key = amqp_cstring_bytes("x-taskq-attempt");
    attempt.value.kind = AMQP_FIELD_KIND_I32;
    attempt.value.value.i32 = message.attempt;
    entries_.push_back(attempt);
  }

  properties_._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                       AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_HEADERS_FLAG;
  properties_.content_type = amqp_cstring_bytes("application/json");
  properties_.delivery_mode = 2;  // persistent
  properties_.message_id = keep(message.job_id);
  properties_.priority = static_cast<std::uint8_t>(message.priority);
  properties_.timestamp = static_cast<std::uint64_t>(message.enqueued_at);
  properties_.headers.num_entries = static_cast<int>(entries_.size());
  properties_.headers.entries = entries_.data();
  if (message.has_task) {
    properties_._flags |= AMQP_BASIC_TYPE_FLAG;
    properties_.type = keep(message.task);
  }
}

JobMessage pack_job_messages(const std::vector<const JobMessage*>& parts) {
  if (parts.empty()) throw std::invalid_argument("pack_job_messages: no jobs");
  if (parts.size() == 1) return *parts.front();
  const JobMessage& first = *parts.front();
  JobMessage packed;
  packed.job_id = first.job_id;
  packed.queue_name = first.queue_name;
  packed.priority = first.priority;
  packed.attempt = first.attempt;
  packed.enqueued_at = first.enqueued_at;
  packed.jobs = static_cast<int>(parts.size());
  std::size_t size = 2;
  for (const JobMessage* part : parts) size += part->body.size() + 1;
  packed.body.reserve(size);
  packed.body += '[';
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) packed.body += ',';
    packed.body += parts[i]->body;
  }
  packed.body += ']';
  return packed;
}

std::vector<std::pair<std::string, std::string>> parse_flat_string_object(const std::string& json) {
  std::vector<std::pair<std::string, std::string>> out;
  if (json.empty()) return out;
  const auto doc = nlohmann::json::parse(json);  // throws on invalid JSON
  if (!doc.is_object()) throw std::invalid_argument("job headers are not a JSON object");
  for (const auto& [name, value] : doc.items()) {
    if (!value.is_string()) throw std::invalid_argument("job header " + name + " is not a string");
    out.emplace_back(name, value.get<std::string>());
  }
  return out;
}

}  // namespace taskq

// The AMQP message of a job (docs/message-format.md): properties and headers
// built from plain data, with storage that outlives the publish call. A
// message may also carry several jobs of a queue with jobs_per_message > 1
// (docs/message-format.md#several-jobs-per-message): `jobs` > 1, the body a
// JSON array of the jobs' bodies; made by pack_job_messages().
#pragma once

#include "no_postgres.hpp"

#include <amqp.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace taskq {

struct JobMessage {
  std::string job_id;      // message_id
  std::string queue_name;  // routing key
  std::string task;        // type; empty: no type property
  bool has_task = false;
  int priority = 0;
  int attempt = 1;                                           // header x-taskq-attempt
  std::int64_t enqueued_at = 0;                              // unix seconds: the timestamp property
  std::vector<std::pair<std::string, std::string>> headers;  // the job's own headers
  std::string body;                                          // the contract's JSON body
  // Jobs in this message: 1, or for a packed message how many its body's
  // array holds (header x-taskq-jobs; then job_id is the first job's, and
  // attempt, task and headers are per job, in the body only).
  int jobs = 1;
};

// One message for several jobs of the same queue and priority: properties of
// the first, body `[b1,b2,...]`. `parts` must not be empty.
JobMessage pack_job_messages(const std::vector<const JobMessage*>& parts);

// Owns everything amqp_basic_properties_t points at.
class MessageProperties {
 public:
  explicit MessageProperties(const JobMessage& message);
  MessageProperties(const MessageProperties&) = delete;
  MessageProperties& operator=(const MessageProperties&) = delete;

  const amqp_basic_properties_t* get() const { return &properties_; }

 private:
  std::vector<std::string> strings_;  // reserved up front: pointers stay valid
  std::vector<amqp_table_entry_t> entries_;
  amqp_basic_properties_t properties_{};
};

// Parses a flat JSON object of strings ({"a": "b", ...}) as produced by
// PostgreSQL's jsonb output into name/value pairs. Throws
// std::invalid_argument on anything else.
std::vector<std::pair<std::string, std::string>> parse_flat_string_object(const std::string& json);

}  // namespace taskq

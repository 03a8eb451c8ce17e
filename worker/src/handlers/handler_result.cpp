// See handler_result.hpp.
#include "handlers/handler_result.hpp"

#include "db/valid_text.hpp"

namespace taskq {

Outcome completed_from_output(const std::string& output) {
  if (output.empty()) return Outcome::completed(nullptr);
  auto parsed = nlohmann::json::parse(output, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return Outcome::completed(nlohmann::json(valid_text(output)));
  Outcome outcome = Outcome::completed();
  if (parsed.is_object()) {
    if (auto follow_ups = parsed.find(kEnqueueMember); follow_ups != parsed.end()) {
      // Passed on as it is: taskq.complete checks it (a malformed list fails
      // the job for good, with the database's message saying what is wrong).
      outcome.enqueue = std::move(*follow_ups);
      parsed.erase(follow_ups);
    }
  }
  outcome.result = std::move(parsed);
  return outcome;
}

}  // namespace taskq

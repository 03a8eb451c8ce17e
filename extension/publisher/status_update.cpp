// The two status changes every part of the publisher makes (see
// status_update.hpp).
#include "publisher/status_update.hpp"

namespace taskq::publisher {

int my_slot = 0;

void set_state(const char* state) {
  update_shared([&](TaskqPublisherSlot& shared) { strlcpy(shared.status.state, state, sizeof(shared.status.state)); });
}

void record_error(const char* error) {
  update_shared([&](TaskqPublisherSlot& shared) {
    strlcpy(shared.status.last_error, error, sizeof(shared.status.last_error));
    shared.status.last_error_at = GetCurrentTimestamp();
  });
}

}  // namespace taskq::publisher

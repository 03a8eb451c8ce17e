// The publisher's connection to RabbitMQ: connecting with backoff, the one
// way a connection ends, keeping it alive while idle and following the
// broker's connection.blocked notices.
#pragma once

#include "publisher/publisher_state.hpp"

namespace taskq::publisher {

// Connects unless connected or a backoff delay is still running.
void ensure_connected(PublisherState& st);

// Closes the connection (if any) and marks it gone in the status; the
// callers say what happens next (see disconnect).
void close_connection(PublisherState& st);

// Drops a connection that failed, for `why`: logged, recorded as the last
// error, and reconnected at once the next time round.
void disconnect(PublisherState& st, const char* why);

// After a reload: reconnects at once when the broker URL, the exchange or
// the password file changed, or the file holds another password than the
// one the connection logged in with (a rotation). While disconnected, the
// next attempt is made at once.
void follow_broker_settings(PublisherState& st);

// Handles heartbeats, connection.blocked and a broker-side close while idle.
void service_connection(PublisherState& st);

// Takes note of connection.blocked/unblocked (read by the last poll), in
// the status and the log, once per change.
void refresh_blocked(PublisherState& st);

}  // namespace taskq::publisher

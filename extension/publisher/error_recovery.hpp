// Surviving an ERROR inside one round of the publisher's work. Without
// this, any SQL error (a full disk, a lock or statement timeout, a cancel,
// a broken plan) ends the background worker: the postmaster starts it again
// 2 s later and it reconnects to RabbitMQ, so a persistent error becomes a
// crash loop with a new broker connection every 2 s. Here the round's
// transaction is aborted, the error recorded and logged once, and the next
// round waits for a capped exponential backoff, over the same connection.
#pragma once

#include "publisher/publisher_state.hpp"

namespace taskq::publisher {

using Round = long (*)(PublisherState& st);

// Runs round(st) and returns how long to sleep afterwards, as round does.
// After a round failed, the next rounds wait for its backoff (100 ms
// doubling to 10 s); until then only the broker connection is serviced.
long run_round_recovering(PublisherState& st, Round round);

}  // namespace taskq::publisher

// The callback delivery loop; see callback_dispatcher.hpp.
#include "callbacks/callback_dispatcher.hpp"

#include <algorithm>
#include <deque>
#include <optional>
#include <random>
#include <thread>

#include "callbacks/callback_retry.hpp"
#include "callbacks/callback_sender.hpp"
#include "callbacks/callback_store.hpp"
#include "core/backoff.hpp"
#include "operations/log.hpp"
#include "operations/worker_name.hpp"
#include "taskq/version.hpp"

namespace taskq {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How often a wait re-checks the stop flag (nothing can wake it up).
constexpr milliseconds kStopCheck{200};
// After a claim that found fewer rows than it could take while rows seem
// due (locked by another dispatcher's claim right now): a pause, not a spin.
constexpr milliseconds kMinClaimGap{50};
// The lease outlives the POST's timeout by this much, so that a live
// dispatcher records its outcome before anyone else may claim the row.
constexpr milliseconds kLeaseMargin{60'000};
// Outcomes recorded per statement.
constexpr std::size_t kMaxRecordBatch = 500;

CallbackOptions sanitised(CallbackOptions o) {
  o.max_in_flight = std::clamp(o.max_in_flight, 1, 4096);
  o.max_attempts = std::max(o.max_attempts, 1);
  if (o.timeout <= milliseconds::zero()) o.timeout = CallbackOptions{}.timeout;
  o.retry_base = std::max(o.retry_base, milliseconds::zero());
  o.retry_max = std::max(o.retry_max, o.retry_base);
  o.poll_interval = std::max(o.poll_interval, milliseconds(10));
  return o;
}

std::string lease_holder_name(std::string worker_name) {
  if (worker_name.empty()) worker_name = default_worker_name();
  // Unique per instance: the lease functions fence by holder name, so two
  // dispatchers (two Worker objects, or a restart reusing a pid) must differ.
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%08x", static_cast<unsigned>(rd()));
  return worker_name + "/cb-" + suffix;
}

struct DeliveryOutcome {
  CallbackRow row;
  DeliveryAttempt attempt;
  CallbackDecision decision;
};

}  // namespace

struct CallbackDispatcher::Impl {
  Impl(std::string conninfo_, std::string worker_name, CallbackOptions options_, Metrics* metrics_,
       ConnectionEvents* events)
      : conninfo(std::move(conninfo_)),
        holder(lease_holder_name(std::move(worker_name))),
        options(sanitised(std::move(options_))),
        metrics(metrics_),
        watch(events, ConnectionEvent::Service::kDatabase, "callbacks"),
        lease(options.timeout + kLeaseMargin),
        rng(std::random_device{}()),
        db_backoff(BackoffPolicy{milliseconds(500), milliseconds(30'000), 0.5}) {}

  const std::string conninfo;
  const std::string holder;
  const CallbackOptions options;
  Metrics* const metrics;
  ConnectionWatch watch;  // the run() thread only
  const milliseconds lease;

  std::atomic<std::uint64_t> delivered{0}, retried{0}, dead{0}, connections{0}, reconnects{0};

  // Loop state (the run() thread only).
  std::mt19937_64 rng;
  std::optional<CallbackStore> store;
  std::deque<DeliveryOutcome> unrecorded;  // POSTs done, outcome not yet in the database
  bool wake = true;                        // claim as soon as there is room
  Clock::time_point next_claim{};
  Clock::time_point next_connect{};
  Backoff db_backoff;
  bool ever_connected = false;

  void run(const std::atomic<bool>& stop);
  bool step(const std::atomic<bool>& stop, CallbackSender& sender);
  void connect();
  void lose_connection(const std::exception& e);
  void record();
  void note_recorded(const DeliveryOutcome& o);
  void claim(CallbackSender& sender);
  DeliveryOutcome decide(SentCallback sent);
};

void CallbackDispatcher::Impl::run(const std::atomic<bool>& stop) {
  if (!options.enabled) return;
  SenderOptions so;
  so.secret = options.secret;
  so.refuse_private_addresses = options.refuse_private_addresses;
  so.timeout = options.timeout;
  so.max_connections = options.max_in_flight;
  so.user_agent = std::string("taskq-worker/") + version();

  std::optional<CallbackSender> sender;
  Backoff setup_backoff;
  while (!sender && !stop.load()) {
    try {
      sender.emplace(so);
    } catch (const std::exception& e) {
      const milliseconds delay = setup_backoff.next();
      log::error("callbacks: {} (retrying in {} ms)", e.what(), delay.count());
      for (auto until = Clock::now() + delay; Clock::now() < until && !stop.load();)
        std::this_thread::sleep_for(std::min(kStopCheck, delay));
    }
  }
  if (!sender) return;
  log::info("callbacks: dispatcher {} started (up to {} in flight, {} attempts, timeout {} ms{}{})", holder,
            options.max_in_flight, options.max_attempts, options.timeout.count(),
            options.secret.empty() ? ", unsigned" : ", signed",
            options.refuse_private_addresses ? ", private addresses refused" : "");
  for (;;) {
    try {
      if (!step(stop, *sender)) break;
    } catch (const std::exception& e) {
      // Not a database loss (that is handled inside): log, pause, go on.
      log::error("callbacks: {}", e.what());
      sender->wait(kStopCheck, -1);
    } catch (...) {
      log::error("callbacks: unknown error");
      sender->wait(kStopCheck, -1);
    }
  }
  log::info("callbacks: dispatcher {} stopped", holder);
}

bool CallbackDispatcher::Impl::step(const std::atomic<bool>& stop, CallbackSender& sender) {
  const bool stopping = stop.load();
  if (stopping && sender.in_flight() == 0) {
    if (!unrecorded.empty() && store) {
      try {
        record();
      } catch (const DbError& e) {
        lose_connection(e);
      }
    }
    if (!unrecorded.empty())
      log::warn("callbacks: stopping with {} outcomes unrecorded; their leases run out and they are sent again",
                unrecorded.size());
    return false;
  }

  if (!store && !stopping && Clock::now() >= next_connect) connect();
  if (store) {
    try {
      if (store->drain_notifications()) wake = true;
      record();
      if (!stopping) claim(sender);
      // Notifications that came in with those results are in libpq's queue
      // already, where waiting on the socket would not see them.
      if (store->drain_notifications()) wake = true;
    } catch (const DbError& e) {
      lose_connection(e);
    }
  }

  const auto now = Clock::now();
  milliseconds wait = kStopCheck;
  const bool room = static_cast<int>(sender.in_flight()) < options.max_in_flight;
  if (store && !stopping && room)
    wait = std::min(wait, wake ? milliseconds::zero()
                               : std::chrono::duration_cast<milliseconds>(next_claim - now) + milliseconds(1));
  if (!store && !stopping)
    wait = std::min(wait, std::chrono::duration_cast<milliseconds>(next_connect - now) + milliseconds(1));
  sender.wait(std::max(wait, milliseconds::zero()), store ? store->socket() : -1);
  connections = static_cast<std::uint64_t>(sender.connections_opened());
  for (auto& sent : sender.take_finished()) unrecorded.push_back(decide(std::move(sent)));
  return true;
}

void CallbackDispatcher::Impl::connect() {
  try {
    store.emplace(conninfo);
    if (ever_connected) {
      ++reconnects;
      log::info("callbacks: reconnected to PostgreSQL");
    }
    ever_connected = true;
    watch.up();
    db_backoff.reset();
    wake = true;  // whatever was written meanwhile
  } catch (const std::exception& e) {
    lose_connection(e);
  }
}

void CallbackDispatcher::Impl::lose_connection(const std::exception& e) {
  store.reset();
  const milliseconds delay = db_backoff.next();
  next_connect = Clock::now() + delay;
  log::warn("callbacks: database: {} (retrying in {} ms)", e.what(), delay.count());
  watch.down(e.what(), delay);
}

void CallbackDispatcher::Impl::record() {
  while (!unrecorded.empty()) {
    const std::size_t n = std::min(unrecorded.size(), kMaxRecordBatch);
    std::vector<CallbackStore::Outcome> batch;
    batch.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      const DeliveryOutcome& o = unrecorded[i];
      CallbackStore::Outcome r;
      r.id = o.row.id;
      r.delivered = o.decision.kind == CallbackDecision::Kind::kDelivered;
      r.status = o.attempt.status;
      r.error = o.attempt.error;
      r.retry_in = o.decision.retry_in;
      r.give_up = o.decision.kind == CallbackDecision::Kind::kDead;
      batch.push_back(std::move(r));
    }
    std::vector<bool> recorded;
    try {
      recorded = store->record(holder, batch);
    } catch (const DbError& e) {
      // A broken connection keeps the outcomes for after the reconnect. An
      // error that retrying cannot fix: find the culprit by recording one at
      // a time, and drop it (its lease runs out and it is sent again, which
      // is safe).
      if (e.kind() != DbFailure::kPermanent) throw;
      if (n > 1) {
        recorded.clear();
        for (std::size_t i = 0; i < n; ++i) {
          try {
            recorded.push_back(store->record(holder, {batch[i]}).at(0));
          } catch (const DbError& single) {
            if (single.kind() != DbFailure::kPermanent) throw;
            log::error("callback {}: cannot record its outcome: {}", unrecorded[i].row.delivery_id, single.what());
            recorded.push_back(false);
          }
        }
      } else {
        log::error("callback {}: cannot record its outcome: {}", unrecorded.front().row.delivery_id, e.what());
        recorded.assign(1, false);
      }
    }
    for (std::size_t i = 0; i < n; ++i) {
      const DeliveryOutcome& o = unrecorded.front();
      if (i >= recorded.size() || !recorded[i]) {
        log::warn("callback {}: outcome not recorded: lease lost (another dispatcher owns it now)", o.row.delivery_id);
      } else {
        note_recorded(o);
      }
      unrecorded.pop_front();
    }
  }
}

void CallbackDispatcher::Impl::note_recorded(const DeliveryOutcome& o) {
  CallbackResult result = CallbackResult::kDelivered;
  switch (o.decision.kind) {
    case CallbackDecision::Kind::kDelivered:
      ++delivered;
      break;
    case CallbackDecision::Kind::kRetry:
      ++retried;
      result = CallbackResult::kRetried;
      // Released by us, so nobody else is bound to look at it sooner.
      next_claim = std::min(next_claim, Clock::now() + o.decision.retry_in);
      break;
    case CallbackDecision::Kind::kDead:
      ++dead;
      result = CallbackResult::kDead;
      break;
  }
  if (metrics) metrics->callback_finished(result);
}

void CallbackDispatcher::Impl::claim(CallbackSender& sender) {
  const int room = options.max_in_flight - static_cast<int>(sender.in_flight());
  const auto now = Clock::now();
  if (room <= 0 || (!wake && now < next_claim)) return;
  wake = false;
  std::vector<CallbackRow> rows = store->claim(holder, room, lease);
  const bool full = static_cast<int>(rows.size()) == room;
  for (auto& row : rows) sender.start(std::move(row));
  if (full) {
    wake = true;  // more may be due: claim again as soon as there is room
    return;
  }
  milliseconds sleep = options.poll_interval;
  if (const auto due = store->next_due_in()) sleep = std::min(sleep, std::max(*due, kMinClaimGap));
  next_claim = Clock::now() + sleep;
}

DeliveryOutcome CallbackDispatcher::Impl::decide(SentCallback sent) {
  const BackoffPolicy policy{options.retry_base, options.retry_max, 0.5};
  const double unit = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  const CallbackDecision d = decide_callback(sent.attempt, sent.row.attempts, options.max_attempts, policy, unit);
  const CallbackRow& r = sent.row;
  switch (d.kind) {
    case CallbackDecision::Kind::kDelivered:
      log::debug("callback {} job={} {} delivered to {} (HTTP {})", r.delivery_id, r.job_id, r.event, r.url,
                 sent.attempt.status);
      break;
    case CallbackDecision::Kind::kRetry:
      log::warn("callback {} job={} {} to {}: attempt {}/{} failed: {}; retrying in {} ms", r.delivery_id, r.job_id,
                r.event, r.url, r.attempts, options.max_attempts, sent.attempt.error, d.retry_in.count());
      break;
    case CallbackDecision::Kind::kDead:
      log::error("callback {} job={} {} to {}: attempt {}/{} failed: {}; giving up (dead)", r.delivery_id, r.job_id,
                 r.event, r.url, r.attempts, options.max_attempts, sent.attempt.error);
      break;
  }
  return {std::move(sent.row), std::move(sent.attempt), d};
}

CallbackDispatcher::CallbackDispatcher(std::string database_conninfo, std::string worker_name, CallbackOptions options,
                                       Metrics* metrics, ConnectionEvents* events)
    : impl_(std::make_unique<Impl>(std::move(database_conninfo), std::move(worker_name), std::move(options), metrics,
                                   events)) {}

CallbackDispatcher::~CallbackDispatcher() = default;

void CallbackDispatcher::run(const std::atomic<bool>& stop) {
  try {
    impl_->run(stop);
  } catch (const std::exception& e) {
    log::error("callbacks: dispatcher ended: {}", e.what());
  } catch (...) {
    log::error("callbacks: dispatcher ended by an unknown error");
  }
}

CallbackDispatcher::Stats CallbackDispatcher::stats() const {
  Stats s;
  s.delivered = impl_->delivered.load();
  s.retried = impl_->retried.load();
  s.dead = impl_->dead.load();
  s.connections_opened = impl_->connections.load();
  s.reconnects = impl_->reconnects.load();
  return s;
}

const std::string& CallbackDispatcher::lease_holder() const { return impl_->holder; }

}  // namespace taskq

// See connection_pool.hpp.
#include "connection_pool.hpp"

#include "api_error.hpp"
#include "operations/log.hpp"

namespace taskq::web {

ConnectionPool::ConnectionPool(std::string conninfo, int size)
    : conninfo_(std::move(conninfo)), sessions_(static_cast<std::size_t>(size)), busy_(static_cast<std::size_t>(size)) {
  sessions_[0] = std::make_unique<DbSession>(conninfo_);
}

ConnectionPool::Lease ConnectionPool::acquire(std::chrono::milliseconds wait) {
  std::size_t slot = 0;
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto free_slot = [&] {
      for (std::size_t i = 0; i < busy_.size(); ++i)
        if (!busy_[i]) {
          slot = i;
          return true;
        }
      return false;
    };
    if (!freed_.wait_for(lock, wait, free_slot))
      throw ApiError(503, "busy", "every database connection is in use; try again");
    busy_[slot] = true;
  }
  Lease lease(this, slot);  // gives the slot back however this ends
  std::unique_ptr<DbSession>& session = sessions_[slot];
  if (!session || !session->ok()) {
    // Connecting happens outside the lock: only this slot waits for it.
    session.reset();
    try {
      session = std::make_unique<DbSession>(conninfo_);
    } catch (const DbError& e) {
      log::warn("database: {}", e.what());
      throw ApiError(503, "database_unavailable", "the database is not reachable right now; try again");
    }
  }
  return lease;
}

void ConnectionPool::release(std::size_t slot) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    busy_[slot] = false;
  }
  freed_.notify_one();
}

}  // namespace taskq::web

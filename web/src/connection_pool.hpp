// A small fixed pool of long-lived DbSessions shared by the HTTP threads.
// Connections are made on first need and made again when one broke, so a
// PostgreSQL restart costs the requests in flight at that moment, not the
// server.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "db_session.hpp"

namespace taskq::web {

class ConnectionPool {
 public:
  // Connects the first session at once, so a wrong --database is reported
  // at start (throws DbError); the others connect when first needed.
  ConnectionPool(std::string conninfo, int size);

  class Lease {
   public:
    Lease(ConnectionPool* pool, std::size_t slot) : pool_(pool), slot_(slot) {}
    Lease(Lease&& other) noexcept : pool_(other.pool_), slot_(other.slot_) { other.pool_ = nullptr; }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (pool_) pool_->release(slot_);
    }
    DbSession& operator*() const { return *pool_->sessions_[slot_]; }
    DbSession* operator->() const { return pool_->sessions_[slot_].get(); }

   private:
    ConnectionPool* pool_;
    std::size_t slot_;
  };

  // A connected session for the caller alone. Throws ApiError 503 when none
  // is free within `wait` or the database cannot be reached.
  Lease acquire(std::chrono::milliseconds wait = std::chrono::seconds(10));

  int size() const { return static_cast<int>(sessions_.size()); }

 private:
  void release(std::size_t slot);

  const std::string conninfo_;
  std::mutex mu_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<DbSession>> sessions_;  // null: not connected
  std::vector<bool> busy_;
};

}  // namespace taskq::web

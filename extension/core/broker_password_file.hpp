// The broker password read from a file (taskq.broker_password_file), so
// that it never passes through a setting PostgreSQL would log on reload.
// The rules (first line, permissions like libpq's .pgpass) are in
// docs/settings.md. No message of this file ever contains the password.
#pragma once

#include "no_postgres.hpp"

#include <string>

#include "broker_url.hpp"

namespace taskq {

// The first line of the file at `path` (without its line end). Throws
// std::runtime_error naming the path and the problem when the file cannot
// be opened, is not a regular file, is accessible by group or others, or
// its first line is empty or too long.
std::string read_broker_password_file(const std::string& path);

// Gives `url` the password of the file at `path` when it has none of its
// own and `path` is not empty; returns whether it did. Throws like
// read_broker_password_file.
bool apply_broker_password_file(BrokerUrl& url, const std::string& path);

}  // namespace taskq

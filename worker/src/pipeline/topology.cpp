// See topology.hpp.
#include "pipeline/topology.hpp"

#include "db/pg_connection.hpp"

namespace taskq {

Topology look_up_topology(const std::string& database, const std::map<std::string, Handler>& by_queue,
                          Metrics& metrics) {
  Topology topology;
  try {
    PgConnection db(database);
    // The signature this worker calls (a request id, so that a start can be
    // repeated, and the report of starts held back by a flow limit: 0.2.0).
    if (db.value("SELECT to_regprocedure('taskq._start_batch(jsonb, text, uuid, boolean)') IS NOT NULL") != "t")
      throw StartupError("the taskq extension is not installed in that database (or is older than this worker)");
    const std::string configured = db.value("SELECT current_setting('taskq.exchange', true)");
    if (!configured.empty()) topology.exchange = configured;
    for (const auto& [queue, handler] : by_queue) {
      const std::string type = db.value("SELECT queue_type FROM taskq.queues WHERE queue_name = $1", {queue.c_str()});
      if (type.empty())
        throw StartupError("queue \"" + queue + "\" does not exist (create it with taskq.create_queue)");
      topology.queues.push_back({queue, type});
    }
    metrics.set_connected("database", true);
  } catch (const DbError& e) {
    throw StartupError(e.what());
  }
  return topology;
}

}  // namespace taskq

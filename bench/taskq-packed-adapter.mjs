// The taskq adapter (taskq-adapter.mjs) with the queue option
// jobs_per_message = 20: the publisher packs up to 20 jobs of the queue into
// one RabbitMQ message (docs/message-format.md#several-jobs-per-message).
// An opt-in variant, as graphile-worker-batched is that peer's:
//
//   make bench-peers ARGS='--adapter taskq-packed=bench/taskq-packed-adapter.mjs'
import pg from "pg";
// The harness copies each adapter to adapters/<peer name>.mjs, and
// bench/run-peers-with-taskq always loads taskq-adapter.mjs as "taskq".
import * as base from "./taskq.mjs";

export const name = "taskq-packed";
export const packages = base.packages;
export const unfinishedSql = base.unfinishedSql;
export const openProducer = base.openProducer;
export const openWorker = base.openWorker;

export function settings(options) {
  return [...base.settings(options), "queue created with jobs_per_message => 20 (several jobs per RabbitMQ message)"];
}

export async function prepare(url) {
  await base.prepare(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const db = new URL(url).pathname.replace(/^\//, "") || "postgres";
    const queue = `bench_${db}`.replace(/[^A-Za-z0-9_]/g, "_");
    await client.query("SELECT taskq.alter_queue($1, jobs_per_message => 20)", [queue]);
  } finally {
    await client.end();
  }
}

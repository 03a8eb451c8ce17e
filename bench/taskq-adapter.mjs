// Peer adapter for ../shared/bench/peers: measures taskq with the same
// workload and measuring code as graphile-worker and pg-boss.
//
//   make bench-peers    (bench/run-peers-with-taskq: RabbitMQ, then run-peers.sh with this adapter)
//
// Producer: taskq.enqueue / taskq.enqueue_many through node-postgres, each a
// committed transaction. Worker: the real taskq-worker binary with an HTTP
// handler pointing at a tiny server in the worker process, which calls
// onJob(payload) first thing for every job. Jobs travel the full path:
// enqueue -> outbox -> publisher (in PostgreSQL) -> RabbitMQ -> taskq-worker
// -> start -> HTTP handler -> complete -> ack.
//
// Environment (set by bench/run-peers-with-taskq):
//   TASKQ_BENCH_BROKER_URL   amqp:// URL of the RabbitMQ node
//   TASKQ_BENCH_WORKER       path of the taskq-worker binary
import { spawn } from "node:child_process";
import http from "node:http";
import pg from "pg";

// One queue per scenario database: the harness gives every scenario a fresh
// database, and RabbitMQ queues outlive databases. With one shared name, the
// messages the enqueue scenarios published (and nobody consumed) would be
// drained by the worker of a later scenario, as stale deliveries.
function queueFor(url) {
  const db = new URL(url).pathname.replace(/^\//, "") || "postgres";
  return `bench_${db}`.replace(/[^A-Za-z0-9_]/g, "_");
}

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`taskq adapter: ${name} is not set (run bench/run-peers-with-taskq)`);
  return v;
}

async function withClient(url, fn) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const name = "taskq";
export const packages = ["pg"];

export function settings({ concurrency }) {
  return [
    `taskq-worker --concurrency ${concurrency} (prefetch adaptive, the default), HTTP handler on 127.0.0.1 (no-op)`,
    "publisher: background worker in PostgreSQL, woken at commit, publisher confirms",
    "enqueue: SELECT taskq.enqueue per job, SELECT taskq.enqueue_many per batch",
  ];
}

export async function prepare(url) {
  await withClient(url, async (c) => {
    await c.query("CREATE EXTENSION IF NOT EXISTS taskq");
    await c.query("SELECT taskq.create_queue($1)", [queueFor(url)]);
    // The publisher serves one database (taskq.database); the harness makes a
    // fresh database per scenario, so point the publisher at this one and wait
    // until it has connected.
    const db = (await c.query("SELECT current_database() AS d")).rows[0].d;
    await c.query(`ALTER SYSTEM SET taskq.database = '${db.replace(/'/g, "''")}'`);
    await c.query("SELECT pg_reload_conf()");
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { rows } = await c.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'taskq publisher' AND datname = current_database()",
      );
      if (rows[0].n > 0) break;
      if (Date.now() > deadline) throw new Error("taskq adapter: the publisher did not connect to the bench database");
      await sleep(100);
    }
  });
}

export async function openProducer(url) {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  const queue = queueFor(url);
  return {
    enqueueOne: (payload) => pool.query("SELECT taskq.enqueue($1, $2::jsonb)", [queue, JSON.stringify(payload)]),
    enqueueMany: (payloads) =>
      pool.query("SELECT count(*) FROM taskq.enqueue_many($1, $2::jsonb)", [queue, JSON.stringify(payloads)]),
    close: () => pool.end(),
  };
}

export const unfinishedSql = "select count(*)::int as n from taskq.jobs where status <> 'completed'";

export async function openWorker(url, { concurrency, onJob }) {
  // The handler endpoint lives in this (the worker) process so that onJob
  // runs here, as the harness expects.
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      try {
        onJob(JSON.parse(Buffer.concat(chunks).toString("utf8")).payload);
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      } catch (err) {
        res.writeHead(500).end(String(err));
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = server.address().port;
  let child = null;
  return {
    async start() {
      child = spawn(
        env("TASKQ_BENCH_WORKER"),
        [
          "--database", url,
          "--broker", env("TASKQ_BENCH_BROKER_URL"),
          "--handler", `${queueFor(url)}=http://127.0.0.1:${port}/`,
          "--concurrency", String(concurrency),
        ],
        { stdio: ["ignore", "ignore", "inherit"] },
      );
    },
    async stop() {
      if (child && child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

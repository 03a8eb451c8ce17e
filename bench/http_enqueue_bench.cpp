// make bench: HTTP enqueue through taskq-web. CLIENTS threads, each with one
// keep-alive connection, POST /v1/queues/QUEUE/jobs (the same 100-byte
// payload as the SQL scenarios) for SECONDS; prints the RESULT line of
// bench/README.md with the rate and the latency percentiles.
//
//   http_enqueue_bench HOST PORT QUEUE CLIENTS SECONDS
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: http_enqueue_bench HOST PORT QUEUE CLIENTS SECONDS\n");
    return 2;
  }
  const std::string host = argv[1];
  const int port = std::stoi(argv[2]);
  const std::string path = std::string("/v1/queues/") + argv[3] + "/jobs";
  const int clients = std::stoi(argv[4]);
  const double seconds = std::stod(argv[5]);
  const std::string body =
      R"({"payload": {"seq":1,"kind":"bench","tenant":"acme","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}})";
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  const Clock::time_point end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::atomic<long> errors{0};
  std::vector<std::vector<double>> latencies(clients);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client client(host, port);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);  // as curl and most HTTP clients do
      client.set_read_timeout(30, 0);
      while (Clock::now() < end) {
        const Clock::time_point t0 = Clock::now();
        auto r = client.Post(path, body, "application/json");
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (!r || r->status != 201) {
          ++errors;
          continue;
        }
        latencies[c].push_back(ms);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    if (all.empty()) return 0.0;
    const std::size_t rank = static_cast<std::size_t>(p / 100.0 * all.size() + 0.999999);
    return all[std::min(all.size(), std::max<std::size_t>(rank, 1)) - 1];
  };
  std::printf("RESULT peer=taskq scenario=http_enqueue jobs=%zu seconds=%.1f rate=%.1f p50_ms=%.2f p99_ms=%.2f\n",
              all.size(), elapsed, all.size() / elapsed, pct(50), pct(99));
  std::printf("NOTE peer=taskq scenario=http_enqueue clients=%d keep_alive=true errors=%ld\n", clients, errors.load());
  return errors.load() == 0 ? 0 : 1;
}

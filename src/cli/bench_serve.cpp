#include "cli/bench_serve.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/json_output.h"
#include "cli/plots.h"
#include "core/error.h"
#include "core/timer.h"
#include "engine/cost_profile.h"
#include "engine/prompt_file.h"
#include "server/serving.h"

namespace dspark::cli {

namespace {

const std::vector<std::string> kPrompts = {
    "And God said",          "In the beginning",        "And it came to pass, when",
    "Blessed are they that", "The LORD is my shepherd", "And the king said unto",
    "Now these are the",     "Then Jesus answered and"};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

double percentile(std::vector<double> xs, double q) {
  if (xs.empty()) return 0;
  std::sort(xs.begin(), xs.end());
  const double at = q * double(xs.size() - 1);
  const size_t lo = size_t(at);
  const size_t hi = std::min(lo + 1, xs.size() - 1);
  return xs[lo] + (at - double(lo)) * (xs[hi] - xs[lo]);
}

// One finished request as its client saw it.
struct Sample {
  double start = 0, first = -1, end = 0;  // seconds since the level began
  int tokens = 0;
};

// Streams one completion; false when the request failed.
bool stream_request(httplib::Client& cli, const nlohmann::json& body, const Timer& clock, Sample& s) {
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  std::string buffer;
  bool done = false;
  s.start = clock.seconds();
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    for (size_t end; (end = buffer.find("\n\n")) != std::string::npos; buffer.erase(0, end + 2)) {
      if (buffer.compare(0, 6, "data: ") != 0) continue;
      const std::string payload = buffer.substr(6, end - 6);
      if (payload == "[DONE]") {
        done = true;
        continue;
      }
      const nlohmann::json j = nlohmann::json::parse(payload, nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("usage") && j["usage"].is_object())
        s.tokens = j["usage"]["completion_tokens"].get<int>();
      if (s.first < 0 && j.contains("choices") && !j["choices"].empty() &&
          !j["choices"][0]["text"].get<std::string>().empty())
        s.first = clock.seconds();
    }
    return true;
  };
  const auto res = cli.send(req);
  s.end = clock.seconds();
  return res && res->status == 200 && done;
}

// The server's counters that the benchmark reads back (Prometheus text, untyped parse).
std::map<std::string, double> scrape(httplib::Client& cli) {
  std::map<std::string, double> out;
  const auto res = cli.Get("/metrics");
  if (!res || res->status != 200) fail("bench serve: /metrics did not answer");
  std::istringstream in(res->body);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

struct Level {
  std::string scheduler;
  int concurrency = 0;
  int requests = 0, failed = 0;
  long tokens = 0;
  double seconds = 0;
  double aggregate_tps = 0, per_user_tps = 0;   // median over requests for the latter
  double aggregate_min = 0, aggregate_max = 0;  // over the rounds
  double tau = 0, mean_verify = 0, drafted_steps = 0;
  double latency_p50 = 0, latency_p90 = 0, latency_p99 = 0, ttft_p50 = 0, ttft_p99 = 0;

  nlohmann::json to_json() const {
    return {{"scheduler", scheduler},
            {"concurrency", concurrency},
            {"requests", requests},
            {"failed", failed},
            {"tokens", tokens},
            {"seconds", seconds},
            {"aggregate_tokens_per_second", aggregate_tps},
            {"aggregate_tokens_per_second_min", aggregate_min},
            {"aggregate_tokens_per_second_max", aggregate_max},
            {"per_user_tokens_per_second", per_user_tps},
            {"tau", tau},
            {"mean_verify_length", mean_verify},
            {"drafted_step_fraction", drafted_steps},
            {"latency_p50", latency_p50},
            {"latency_p90", latency_p90},
            {"latency_p99", latency_p99},
            {"ttft_p50", ttft_p50},
            {"ttft_p99", ttft_p99}};
  }
};

// Runs `clients` concurrent clients against the server for `seconds` (requests started
// before then run to the end).
Level drive(int port, int clients, double seconds, const ServeBenchOptions& o,
            const std::vector<std::string>& prompts) {
  httplib::Client probe("127.0.0.1", port);
  const auto before = scrape(probe);
  std::mutex mu;
  std::vector<Sample> samples;
  std::atomic<int> failed{0};
  Timer clock;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      httplib::Client cli("127.0.0.1", port);
      cli.set_read_timeout(600, 0);
      for (int i = 0; clock.seconds() < seconds; ++i) {
        const nlohmann::json body = {{"prompt", prompts[size_t(c + i * clients) % prompts.size()]},
                                     {"max_tokens", o.n},
                                     {"temperature", o.temperature},
                                     {"seed", c * 1000 + i},
                                     {"stream", true},
                                     {"stream_options", {{"include_usage", true}}}};
        Sample s;
        if (!stream_request(cli, body, clock, s)) {
          ++failed;
          continue;
        }
        std::lock_guard lock(mu);
        samples.push_back(s);
      }
    });
  for (auto& t : threads) t.join();
  const auto after = scrape(probe);
  auto delta = [&](const std::string& name) {
    auto b = before.find(name);
    auto a = after.find(name);
    return (a == after.end() ? 0.0 : a->second) - (b == before.end() ? 0.0 : b->second);
  };

  Level l;
  l.concurrency = clients;
  l.failed = failed;
  l.requests = int(samples.size());
  l.seconds = clock.seconds();
  std::vector<double> per_user, latency, ttft;
  for (const Sample& s : samples) {
    l.tokens += s.tokens;
    latency.push_back(s.end - s.start);
    if (s.first >= 0) ttft.push_back(s.first - s.start);
    if (s.first >= 0 && s.end > s.first && s.tokens > 1)
      per_user.push_back((s.tokens - 1) / (s.end - s.first));
  }
  l.aggregate_tps = l.tokens / l.seconds;
  l.per_user_tps = percentile(per_user, 0.5);
  l.latency_p50 = percentile(latency, 0.5);
  l.latency_p90 = percentile(latency, 0.9);
  l.latency_p99 = percentile(latency, 0.99);
  l.ttft_p50 = percentile(ttft, 0.5);
  l.ttft_p99 = percentile(ttft, 0.99);
  const double drafts = delta("dspark_spec_decode_num_drafts_total");
  if (drafts > 0) {
    l.tau = 1 + delta("dspark_spec_decode_num_accepted_tokens_total") / drafts;
    l.mean_verify = delta("dspark_spec_decode_num_draft_tokens_total") / drafts;
  }
  const double steps = delta("dspark_steps_total");
  if (steps > 0) l.drafted_steps = 1 - delta("dspark_spec_decode_skipped_steps_total") / steps;
  return l;
}

}  // namespace

void run_bench_serve(const ServeBenchOptions& o) {
  const std::vector<std::string> schedulers = split_list(o.schedulers);
  std::vector<int> levels;
  for (const std::string& c : split_list(o.concurrency)) {
    const int v = std::atoi(c.c_str());
    if (v < 1) fail("bench serve: --concurrency takes positive integers, not '", c, "'");
    levels.push_back(v);
  }
  if (schedulers.empty() || levels.empty()) fail("bench serve: no scheduler or no concurrency level");
  for (const std::string& s : schedulers) parse_scheduler(s);  // names checked before loading
  if (!(o.seconds > 0)) fail("bench serve: --seconds must be positive");
  const std::vector<std::string> prompts = o.prompt_file.empty() ? kPrompts : read_prompt_file(o.prompt_file);
  if (prompts.empty()) fail("bench serve: no prompts in ", o.prompt_file);

  const bool json_stdout = o.json && json_to_stdout(o.json_path);
  FILE* table = json_stdout ? stderr : stdout;
  ServeConfig base;
  base.model = model_path_or_default(o.model);
  base.draft = o.draft;
  base.spec = o.spec;
  const bool checkpoint_kind = o.spec.empty() || o.spec == "dspark" || o.spec == "dflash";
  if (o.model.empty() && o.draft.empty() && checkpoint_kind) base.draft = default_drafter_path(base.model);
  base.threads = o.threads;
  base.engine.slots = o.parallel > 0 ? o.parallel : *std::max_element(levels.begin(), levels.end());
  base.engine.context = o.ctx_size;
  base.engine.max_waiting = 4096;
  base.server.port = 0;
  base.server.http_threads = *std::max_element(levels.begin(), levels.end()) + 8;

  nlohmann::json out;
  out["cpu"] = cpu_model_name();
  out["model"] = base.model;
  out["max_tokens"] = o.n;
  out["temperature"] = o.temperature;
  out["seconds_per_level"] = o.seconds;
  std::vector<Level> results;
  std::fprintf(table, "%-9s %5s %8s %10s %11s %10s %6s %7s %7s %9s %9s %9s\n", "scheduler", "users",
               "requests", "agg tok/s", "(rounds)", "user tok/s", "tau", "verify", "drafted", "lat p50",
               "lat p99", "ttft p50");
  // Every round runs every scheduler at every level, so slow spells of this shared machine
  // fall on all of them alike; each (scheduler, level) reports the round of median
  // aggregate throughput, with the spread over rounds.
  std::map<std::pair<std::string, int>, std::vector<Level>> rounds;
  for (int round = 0; round < o.repeat; ++round)
    for (const std::string& name : schedulers) {
      ServeConfig c = base;
      c.engine.scheduler = parse_scheduler(name);
      if (name == "none") c.spec = "none", c.draft.clear();
      Serving serving(c, [&](const std::string& line) {
        if (round == 0) std::fprintf(stderr, "%s\n", line.c_str());
      });
      if (name != "none") out["drafter"] = serving.drafter_name();
      std::thread listener([&] { serving.http().listen(); });
      for (int users : levels) {
        Level l = drive(serving.http().port(), users, o.seconds, o, prompts);
        l.scheduler = name;
        if (l.failed) std::fprintf(stderr, "warning: %d requests failed\n", l.failed);
        rounds[{name, users}].push_back(l);
      }
      serving.http().stop();
      listener.join();
    }
  for (const std::string& name : schedulers)
    for (int users : levels) {
      std::vector<Level>& r = rounds[{name, users}];
      std::sort(r.begin(), r.end(),
                [](const Level& x, const Level& y) { return x.aggregate_tps < y.aggregate_tps; });
      Level l = r[r.size() / 2];
      l.aggregate_min = r.front().aggregate_tps;
      l.aggregate_max = r.back().aggregate_tps;
      const std::string drafted =
          name == "none" ? "-" : std::to_string(int(100 * l.drafted_steps + 0.5)) + "%";
      char spread[32];
      std::snprintf(spread, sizeof spread, "%.0f-%.0f", l.aggregate_min, l.aggregate_max);
      std::fprintf(table, "%-9s %5d %8d %10.1f %11s %10.1f %6.2f %7.2f %7s %8.0fms %8.0fms %8.0fms\n",
                   name.c_str(), users, l.requests, l.aggregate_tps, spread, l.per_user_tps, l.tau,
                   l.mean_verify, drafted.c_str(), 1e3 * l.latency_p50, 1e3 * l.latency_p99,
                   1e3 * l.ttft_p50);
      results.push_back(l);
    }
  for (const Level& l : results) out["results"].push_back(l.to_json());
  out["rounds"] = o.repeat;

  if (!o.plot.empty()) {
    std::vector<ThroughputLine> lines;
    for (const std::string& name : schedulers) {
      ThroughputLine line{name, {}};
      for (const Level& l : results)
        if (l.scheduler == name) line.points.push_back({l.per_user_tps, l.aggregate_tps, l.concurrency});
      lines.push_back(line);
    }
    std::fprintf(stderr, "plot: %s\n",
                 plot_throughput(o.plot, "serving throughput, " + base.model, lines).c_str());
  }
  if (o.json) write_json_output(out, o.json_path);
}

}  // namespace dspark::cli

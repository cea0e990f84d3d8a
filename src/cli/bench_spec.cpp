#include "cli/bench_spec.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/json_output.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "draft/replay_drafter.h"
#include "engine/cost_profile.h"
#include "engine/drafter_setup.h"
#include "engine/prompt_file.h"
#include "engine/speculative_generator.h"

namespace dspark::cli {

namespace {

// Prompts of different kinds: story, instructions, and text that repeats itself (which
// prompt-lookup drafting likes).
const char* const kPrompts[] = {
    "Once upon a time, there was a little girl named Lily. She loved to play outside.",
    "Write a short list of three things to pack for a trip to the beach.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n\n"
    "def factorial(n):\n",
    "The cat sat on the mat. The dog sat on the log. The bird sat on the",
};

std::vector<std::string> load_prompts(const std::string& path) {
  if (path.empty()) return {std::begin(kPrompts), std::end(kPrompts)};
  return read_prompt_file(path);  // '#' comment lines skipped, as for eval and calibrate
}

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  const size_t n = xs.size();
  return n == 0 ? 0.0 : n % 2 ? xs[n / 2] : 0.5 * (xs[n / 2 - 1] + xs[n / 2]);
}

// One drafter set-up measured over every prompt.
struct Entry {
  std::string label;  // what the table shows
  std::string kind, path;
  std::unique_ptr<DrafterSource> source;
  std::unique_ptr<Drafter> drafter;                 // all prompts but replay's
  std::unique_ptr<SpeculativeGenerator> generator;  // keeps what the draft gate learnt
  SpecStats total;
  double decode_seconds = 0;
  int64_t tokens = 0;            // tokens counted by the decode rate (all but the first per prompt)
  std::vector<double> speedups;  // per prompt, against plain decoding in the same window
  std::string scheduler;
};

std::string fraction_list(const std::vector<double>& xs) {
  std::ostringstream s;
  for (size_t i = 0; i < xs.size(); ++i) s << (i ? " " : "") << int(xs[i] * 100 + 0.5);
  return s.str();
}

}  // namespace

void run_bench_spec(const SpecBenchOptions& o) {
  if (o.n < 2) fail("bench spec: -n must be at least 2");
  const bool json_stdout = o.json && json_to_stdout(o.json_path);
  FILE* table = json_stdout ? stderr : stdout;
  const std::string model_path = model_path_or_default(o.model);
  const LoadedModel lm = load_model(model_path);
  ThreadPool pool(o.threads);
  const std::vector<std::string> prompts = load_prompts(o.prompt_file);

  std::vector<Entry> entries;
  for (const std::string& d : o.drafts) {
    Entry e;
    e.path = d;
    e.source = load_drafter(d, "", lm);
    e.kind = drafter_kind_name(e.source->kind);
    e.label = e.kind + " " + d;
    entries.push_back(std::move(e));
  }
  std::stringstream kinds(o.kinds);
  for (std::string k; std::getline(kinds, k, ',');) {
    if (k.empty()) continue;
    Entry e;
    e.source = load_drafter("", k, lm);
    e.kind = e.label = k;
    entries.push_back(std::move(e));
  }
  if (o.replay_block > 0) {
    Entry e;
    e.kind = "replay";
    e.label = "replay (always right, block " + std::to_string(o.replay_block) + ")";
    entries.push_back(std::move(e));
  }
  if (entries.empty()) fail("bench spec: no drafter to measure (give -d, --kinds or --replay-block)");

  std::function<double(int)> cost;
  std::fprintf(table, "dspark bench spec: %s, %d threads, %zu prompts, %d tokens each, temperature %g\n",
               model_path.c_str(), pool.size(), prompts.size(), o.n, double(o.temperature));

  // Drafters are made once, for the longest prompt, and serve every prompt in turn.
  int capacity = 0;
  for (const std::string& p : prompts)
    capacity = std::max(capacity, int(Generator(lm, pool).tokenize_prompt(p).size()) + o.n + 1);

  GenerateRequest req;
  req.max_tokens = o.n;
  req.sampling.temperature = o.temperature;
  req.seed = o.seed;
  double ar_seconds = 0;
  int64_t ar_tokens = 0;
  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    req.prompt = prompts[pi];
    Generator plain(lm, pool);
    const GenerateResult ar = plain.generate(req);
    ar_seconds += ar.decode_seconds;
    ar_tokens += int64_t(ar.tokens.size()) - 1;
    std::vector<int> reference = plain.tokenize_prompt(req.prompt);
    reference.insert(reference.end(), ar.tokens.begin(), ar.tokens.end());
    for (Entry& e : entries) {
      if (e.kind == "replay") {  // a new script for each prompt
        e.generator.reset();
        e.drafter = std::make_unique<ReplayDrafter>(reference, o.replay_block);
      } else if (!e.drafter) {
        e.drafter = make_drafter(*e.source, lm, pool, 1, capacity);
      }
      Drafter& drafter = *e.drafter;
      if (!e.generator) {
        SpecOptions so;
        // replay is the upper bound: every draft verified, unless asked otherwise.
        so.scheduler = e.kind == "replay" && o.scheduler.empty()
                           ? SchedulerKind::Fixed
                           : choose_scheduler(o.scheduler, o.conf_threshold, o.draft_max);
        so.draft_max = std::min(o.draft_max, drafter.max_block());
        so.conf_threshold = std::max(o.conf_threshold, 0.0f);
        if (e.source && e.source->calibration) so.calibration = &*e.source->calibration;
        if (so.scheduler == SchedulerKind::Prefix) {
          if (!cost) cost = verify_cost_curve(*lm.model, pool, 64);
          so.verify_seconds = cost;
        }
        e.scheduler = scheduler_name(so.scheduler);
        e.generator = std::make_unique<SpeculativeGenerator>(lm, drafter, pool, so);
      }
      const GenerateResult r = e.generator->generate(req);
      if (o.temperature <= 0 && r.tokens != ar.tokens)
        fail("bench spec: ", e.label, " changed the greedy output on prompt ", pi + 1,
             " (a bug: please report it)");
      e.total.add(*r.spec);
      e.decode_seconds += r.decode_seconds;
      e.tokens += int64_t(r.tokens.size()) - 1;
      if (r.tokens_per_second() > 0 && ar.tokens_per_second() > 0)
        e.speedups.push_back(r.tokens_per_second() / ar.tokens_per_second());
    }
    std::fprintf(stderr, "  prompt %zu/%zu done\n", pi + 1, prompts.size());
  }

  const double ar_rate = ar_seconds > 0 ? double(ar_tokens) / ar_seconds : 0;
  nlohmann::json out = {{"model", model_path},
                        {"cpu", cpu_model_name()},
                        {"threads", pool.size()},
                        {"prompts", prompts.size()},
                        {"n", o.n},
                        {"temperature", o.temperature},
                        {"ar", {{"tokens_per_second", ar_rate}, {"decode_seconds", ar_seconds}}},
                        {"drafters", nlohmann::json::array()}};
  std::fprintf(table, "\n%-44s %-9s %8s %8s %6s %7s %9s %9s  %s\n", "drafter", "scheduler", "tok/s",
               "speedup", "tau", "accept", "draft ms", "verify ms", "accept % per position");
  std::fprintf(table, "%-44s %-9s %8.2f %8s\n", "none (plain decoding)", "-", ar_rate, "1.00");
  for (const Entry& e : entries) {
    const SpecStats& s = e.total;
    const double rate = e.decode_seconds > 0 ? double(e.tokens) / e.decode_seconds : 0;
    const int64_t drafted_rounds = s.rounds - s.skipped_rounds;
    const double draft_ms = drafted_rounds ? 1e3 * s.draft_seconds / double(drafted_rounds) : 0;
    const double verify_ms = s.rounds ? 1e3 * s.verify_seconds / double(s.rounds) : 0;
    const double accept = s.verified ? double(s.accepted) / double(s.verified) : 0;
    std::fprintf(table, "%-44s %-9s %8.2f %8.2f %6.2f %6.0f%% %9.1f %9.1f  %s\n",
                 e.label.substr(0, 44).c_str(), e.scheduler.c_str(), rate, median(e.speedups), s.tau(),
                 100 * accept, draft_ms, verify_ms, fraction_list(s.accept_per_pos()).c_str());
    nlohmann::json j = s.to_json();
    j["drafter"] = e.kind;
    j["path"] = e.path;
    j["scheduler"] = e.scheduler;
    j["tokens_per_second"] = rate;
    j["speedup_median"] = median(e.speedups);
    j["speedups"] = e.speedups;
    j["draft_ms_per_drafted_round"] = draft_ms;
    j["verify_ms_per_round"] = verify_ms;
    out["drafters"].push_back(j);
  }
  std::fprintf(
      table,
      "speedup: median over prompts of (drafter tok/s / plain tok/s), each pair measured back to back;\n"
      "draft ms per round that drafted, verify ms per round (target forward + acceptance)\n");
  if (o.json) write_json_output(out, o.json_path);
}

}  // namespace dspark::cli

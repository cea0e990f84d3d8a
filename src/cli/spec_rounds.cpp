#include "cli/spec_rounds.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/error.h"
#include "engine/generator.h"
#include "engine/speculative_generator.h"

namespace dspark::cli {

RecordedRounds run_full_blocks(const LoadedModel& target, Drafter& drafter, ThreadPool& pool,
                               const std::vector<std::string>& prompts, float temperature, int max_tokens,
                               uint64_t seed, const std::function<void(size_t)>& progress) {
  RecordedRounds out;
  SpecOptions so;
  so.scheduler = SchedulerKind::Fixed;
  so.draft_max = drafter.max_block();
  so.on_round = [&out](const RoundRecord& r) {
    if (r.drafted == 0) return;
    ConfidenceRound c;
    c.logits.assign(r.confidence.begin(), r.confidence.end());
    c.accepted = r.accepted;
    c.valid = r.valid;
    out.rounds.push_back(std::move(c));
  };
  SpeculativeGenerator gen(target, drafter, pool, so);
  GenerateRequest req;
  req.max_tokens = max_tokens;
  req.sampling.temperature = temperature;
  req.sampling.top_k = 0;
  req.sampling.top_p = 1.0f;
  req.sampling.min_p = 0.0f;
  req.sampling.repeat_penalty = 1.0f;
  for (size_t i = 0; i < prompts.size(); ++i) {
    req.prompt = prompts[i];
    req.seed = seed + i;
    const GenerateResult r = gen.generate(req);
    out.stats.add(*r.spec);
    out.tokens += int64_t(r.tokens.size());
    out.seconds += r.prefill_seconds + r.decode_seconds;
    if (progress) progress(i + 1);
  }
  return out;
}

std::function<void(size_t)> progress_on_stderr(const std::string& what, size_t total) {
  const bool terminal = isatty(fileno(stderr)) != 0;
  return [what, total, terminal](size_t done) {
    if (terminal)
      std::fprintf(stderr, "\r  %s: prompt %zu/%zu%s", what.c_str(), done, total, done == total ? "\n" : "");
    else if (done == total)
      std::fprintf(stderr, "  %s: %zu prompts done\n", what.c_str(), total);
  };
}

int drafter_capacity(const LoadedModel& target, ThreadPool& pool, const std::vector<std::string>& prompts,
                     int max_tokens) {
  int capacity = 0;
  const Generator g(target, pool);
  for (const std::string& p : prompts)
    capacity = std::max(capacity, int(g.tokenize_prompt(p).size()) + max_tokens + 1);
  return capacity;
}

std::vector<float> parse_temperatures(const std::vector<std::string>& values, const std::string& option) {
  std::vector<float> temps;
  for (const std::string& v : values) {
    std::stringstream list(v);
    for (std::string item; std::getline(list, item, ',');) {
      const size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
      const std::string s = b == std::string::npos ? "" : item.substr(b, e - b + 1);
      float t = 0;
      size_t used = 0;
      try {
        t = std::stof(s, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (s.empty() || used != s.size() || !std::isfinite(t) || t < 0)
        fail(option, ": '", s, "' is not a temperature (a number >= 0; 0 is greedy)");
      if (std::find(temps.begin(), temps.end(), t) == temps.end()) temps.push_back(t);
    }
  }
  if (temps.empty()) fail(option, ": no temperature given");
  return temps;
}

}  // namespace dspark::cli

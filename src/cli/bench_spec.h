// dspark bench spec: plain decoding against each drafter on the same prompts: tokens/s,
// speedup, tau, per-position acceptance, and the time split between drafting and verifying.
#pragma once

#include <string>
#include <vector>

#include "kernels/sampling.h"

namespace dspark::cli {

struct SpecBenchOptions {
  std::string model;                // target (empty: the project's default model)
  std::vector<std::string> drafts;  // -d: drafter checkpoints or draft models
  std::string kinds = "ngram";      // extra drafters needing no -d (comma-separated; "" none)
  std::string scheduler;            // "" : each drafter's default
  int draft_max = 0;
  float conf_threshold = -1;
  int replay_block = 7;     // the always-right replay drafter's block (0: leave it out)
  std::string prompt_file;  // one prompt per line; empty: built-in prompts
  int n = 64;
  float temperature = 0;
  uint64_t seed = 1;
  int threads = 0;
  bool json = false;
  std::string json_path;
};

void run_bench_spec(const SpecBenchOptions& o);

}  // namespace dspark::cli

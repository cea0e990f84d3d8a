// What `calibrate` and `eval` share: speculative generation over a prompt set with the whole
// block verified every round, recording each round's confidences and outcome.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "draft/drafter.h"
#include "model/load.h"
#include "spec/calibration_metrics.h"
#include "spec/stats.h"

namespace dspark::cli {

struct RecordedRounds {
  SpecStats stats;                      // summed over the prompts
  std::vector<ConfidenceRound> rounds;  // rounds that drafted, with the drafter's confidence logits
  int64_t tokens = 0;                   // tokens generated
  double seconds = 0;                   // prefill + decode
};

// Generates up to max_tokens after each prompt with the fixed scheduler at the drafter's full
// block and no calibration, sampling at `temperature` with nothing else (no top-k / top-p /
// min-p / penalty, as the reference evaluator). Prompt i uses seed + i, so drafters and
// temperatures see the same draws. `progress` (may be empty) is told after each prompt.
RecordedRounds run_full_blocks(const LoadedModel& target, Drafter& drafter, ThreadPool& pool,
                               const std::vector<std::string>& prompts, float temperature, int max_tokens,
                               uint64_t seed, const std::function<void(size_t done)>& progress = {});

// A progress callback for run_full_blocks that reports on stderr: a line rewritten after each
// prompt on a terminal, else one line when all `total` prompts are done.
std::function<void(size_t done)> progress_on_stderr(const std::string& what, size_t total);

// Positions a drafter needs room for to serve every prompt with max_tokens generated.
int drafter_capacity(const LoadedModel& target, ThreadPool& pool, const std::vector<std::string>& prompts,
                     int max_tokens);

// Temperatures from options that each hold one value or a comma list ("0,1", "0.7"), in order
// without repeats; Error naming `option` for anything that is not a number >= 0.
std::vector<float> parse_temperatures(const std::vector<std::string>& values, const std::string& option);

}  // namespace dspark::cli

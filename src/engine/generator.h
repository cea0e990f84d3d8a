// Plain autoregressive generation for one request: prefill the prompt in one batch, then
// decode one token per forward pass. Reports the statistics of the `--json` contract.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/sampling.h"
#include "model/load.h"
#include "spec/stats.h"

namespace dspark {

struct GenerateRequest {
  std::string prompt;  // "" starts from the beginning-of-sequence token alone
  int max_tokens = 256;
  SamplingParams sampling;
  uint64_t seed = 0;
};

struct GenerateResult {
  std::string text;         // generated text only; a stop token is not rendered
  std::vector<int> tokens;  // generated ids, including the stop token if one ended it
  int n_prompt = 0;         // prompt tokens including BOS
  double prefill_seconds = 0, decode_seconds = 0;
  bool stopped = false;           // ended by a stop token rather than the length limit
  bool context_limited = false;   // fewer than max_tokens because the context is full
  std::optional<SpecStats> spec;  // with a drafter

  // Decode rate: tokens after the first, over the decode time.
  double tokens_per_second() const {
    return decode_seconds > 0 && tokens.size() > 1 ? double(tokens.size() - 1) / decode_seconds : 0.0;
  }
};

// Prompt tokens as the model sees them: BOS (when the model has one) then the text. Error
// for an empty prompt of a model without BOS.
std::vector<int> tokenize_prompt(const LoadedModel& model, const std::string& prompt);

class Generator {
 public:
  Generator(const LoadedModel& model, ThreadPool& pool);

  // on_text receives each piece of generated text as soon as it is complete UTF-8.
  GenerateResult generate(const GenerateRequest& req,
                          const std::function<void(const std::string&)>& on_text = {});

  // Prompt tokens as the model sees them: BOS (when the model has one) then the text.
  std::vector<int> tokenize_prompt(const std::string& prompt) const;

 private:
  const LoadedModel& lm_;
  ThreadPool& pool_;
};

}  // namespace dspark

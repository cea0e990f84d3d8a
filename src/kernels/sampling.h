// Turning logits into a next token. The transform from logits to the distribution that is
// sampled from is a function of its own, because lossless speculative decoding must apply
// exactly the same transform to the target's and the drafter's logits.
//
// Order: repetition penalty, temperature, top-k, top-p, min-p (min-p relative to the most
// likely token after the earlier cuts), renormalise. temperature <= 0 means greedy.
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace dspark {

struct SamplingParams {
  float temperature = 0.8f;
  int top_k = 40;               // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off
  int repeat_last_n = 64;

  bool greedy() const { return temperature <= 0.0f; }
};

// Index of the largest logit (the lowest index on ties).
int argmax(const float* logits, int n);

// Divides positive / multiplies negative logits of recently seen tokens (llama.cpp's rule).
void apply_repeat_penalty(float* logits, int n, const int* recent, int n_recent, float penalty);

// A sparse distribution: the tokens that survive the cuts and their probabilities (sum 1),
// most likely first (in index order when no cut applies: sorting a whole vocabulary per
// token would cost more than the rest of sampling).
struct TokenProbs {
  std::vector<int> ids;
  std::vector<float> probs;
};

// Applies temperature, top-k, top-p and min-p to logits (not modified). Not for greedy.
void sampling_distribution(const float* logits, int n, const SamplingParams& p, TokenProbs& out);

// Draws from a distribution with a uniform number u in [0, 1).
int sample_from(const TokenProbs& d, float u);
// Draws from a distribution with the generator; a one-token distribution (greedy) draws no
// random number, so greedy decoding consumes none.
int draw_from(const TokenProbs& d, Rng& rng);

// The whole transform for one position: the repetition penalty over the last repeat_last_n
// tokens of history (logits modified in place), then the cuts above; greedy gives the
// one-hot distribution of the argmax. Speculative decoding applies exactly this to the
// target's and the drafter's logits, with the same history, so both sides agree.
void next_token_distribution(float* logits, int n, const SamplingParams& p, const int* history, int n_history,
                             TokenProbs& out);

// The whole chain for plain decoding; keeps its own seeded generator.
class Sampler {
 public:
  Sampler(const SamplingParams& params, uint64_t seed) : params_(params), rng_(seed) {}
  // `logits` may be modified (penalty). `history`: tokens so far, for the penalty.
  int sample(float* logits, int n, const std::vector<int>& history);
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  Rng rng_;
  TokenProbs scratch_;
};

}  // namespace dspark

// Building a target cache (target_cache.h) from a loaded target model: step 1 of drafter
// training.
//
// Responses mode (DSPARK.md 6): for each prompt and each of its samples the target writes
// its own response (plain generation with the given sampling and a seed derived from the
// build seed, the prompt index and the sample number), then one forward pass over prompt +
// response records the tapped layers' outputs and the final-normed hidden state of every
// token. The loss mask is 1 on the response (a generated stop token included), 0 on the
// prompt. Samples with fewer loss tokens than the minimum are dropped.
//
// Corpus mode: a plain text, tokenized whole, cut into sequences of seq_len tokens (each
// led by BOS when the model has one, the loss mask 1 on every token but BOS); features from
// one forward per sequence, nothing generated. A shorter last piece is kept when it has
// enough loss tokens.
//
// Both are resumable: called again on the same directory with the same model, source and
// options, a build continues after the last item finished, and the samples are the same as
// an uninterrupted build's. Nothing is printed: the plan (an upper bound of the bytes to be
// written) and the progress go to callbacks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/sampling.h"
#include "model/load.h"
#include "train/target_cache.h"

namespace dspark {

// The sampling the reference regenerates Qwen3 responses with: T 0.7, top-p 0.8, top-k 20,
// min-p 0, no repetition penalty.
inline SamplingParams reference_response_sampling() {
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_k = 20;
  p.top_p = 0.8f;
  p.min_p = 0.0f;
  p.repeat_penalty = 1.0f;
  return p;
}

struct TargetCacheOptions {
  std::vector<int> taps;  // layer ids in tap order; -1 = embedding output; never the last layer
  CacheDType dtype = CacheDType::BF16;
  int min_loss_tokens = 14;  // the reference drops samples with fewer
  // Responses mode.
  int max_new_tokens = 256;  // the reference uses 4096
  SamplingParams sampling = reference_response_sampling();
  int samples_per_prompt = 1;
  uint64_t seed = 0;
  // Corpus mode.
  int seq_len = 256;
  // Tokens per feature forward; 0 picks as many as keep the logits (which the forward pass
  // computes for every row asked for) under 64 MiB: a whole sample at small vocabularies.
  // The features do not depend on it.
  int max_forward_rows = 0;
};

// What a build is about to do, reported once the cache is open (an interrupted tail cut
// away) and before any sample is written.
struct TargetCachePlan {
  int64_t items = 0;       // of the whole source: prompts x samples, or corpus sequences
  int64_t items_left = 0;  // still to do
  // Upper bound of the bytes the remaining items add to samples.bin and samples.idx
  // (responses at most max_new_tokens long, the model's context permitting).
  uint64_t max_bytes = 0;
  uint64_t max_total_bytes = 0;  // the same bound for the whole cache, existing samples included
  CacheResume resume;            // what reopening an existing cache found
};

struct TargetCacheProgress {
  int64_t items = 0, items_done = 0;
  // In the cache, earlier runs included.
  int64_t samples = 0, tokens = 0, loss_tokens = 0;
  // In this run: items dropped for too few loss tokens, prompts skipped because they fill
  // the model's context.
  int64_t dropped = 0, skipped = 0;
  int64_t generated_tokens = 0;  // in this run
  double seconds = 0;            // since this run started
};

struct TargetCacheCallbacks {
  std::function<void(const TargetCachePlan&)> on_plan;          // may throw to stop before any sample
  std::function<void(const TargetCacheProgress&)> on_progress;  // after every item
};

// Builds (or continues) the cache of responses to `prompts` in `dir`. Returns the final
// progress. Throws Error for bad options, a cache made with another model/taps/sampling/
// dtype/prompts, or a failed write.
TargetCacheProgress build_target_cache(const LoadedModel& lm, ThreadPool& pool,
                                       const std::vector<std::string>& prompts, const std::string& dir,
                                       const TargetCacheOptions& opt, const TargetCacheCallbacks& cb = {});

// Builds (or continues) the corpus-mode cache of `text` in `dir`.
TargetCacheProgress build_corpus_cache(const LoadedModel& lm, ThreadPool& pool, const std::string& text,
                                       const std::string& dir, const TargetCacheOptions& opt,
                                       const TargetCacheCallbacks& cb = {});

// The generation seed of a prompt's sample: a splitmix64 chain over seed, prompt, sample.
uint64_t target_cache_sample_seed(uint64_t seed, int64_t prompt, int sample);

// FNV-1a 64 (hex) of a few dequantized weight rows of every tensor kind: the same weights in
// the same storage type give the same fingerprint, another checkpoint or type another.
std::string target_fingerprint(const Model& m);

// The cache spec a build with these options records (taps validated: -1 .. n_layers - 2,
// no repeats).
TargetCacheSpec target_cache_spec(const LoadedModel& lm, const TargetCacheOptions& opt, CacheMode mode);

// The features of one token sequence (positions 0..n-1 of a fresh sequence): taps
// [n, m*d] and final_hidden [n, d], from forward passes of at most max_rows tokens
// (0: the 64 MiB rule above).
void record_target_features(const Model& m, ThreadPool& pool, const std::vector<int>& taps,
                            const std::vector<int>& tokens, int max_rows, std::vector<float>& taps_out,
                            std::vector<float>& final_hidden_out);

}  // namespace dspark

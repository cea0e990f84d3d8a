// The forward pass of a decoder-only transformer (Llama, Qwen2, Qwen3) over a flattened
// batch of tokens, with causal attention per sequence through the KV cache.
#pragma once

#include <vector>

#include "core/thread_pool.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace dspark {

// Raw residual-stream outputs of chosen decoder layers for every token of a batch, as
// DSpark's drafter reads them. Layer -1 is the embedding output.
struct HiddenTaps {
  std::vector<int> layers;
  float* out = nullptr;  // [batch tokens, layers.size() * dim], layers concatenated in list order
  // Optional: the final-normed hidden states of the logit rows (what the LM head reads),
  // [logit_rows.size(), dim] in logit_rows order. A drafter trainer's target distribution.
  float* final_hidden = nullptr;
};

class Transformer {
 public:
  Transformer(const Model& model, ThreadPool& pool);

  // Appends the batch's keys/values to the cache and writes the logits of batch.logit_rows
  // to `logits` ([logit_rows.size(), vocab], row-major), and the requested hidden states.
  // Throws Error (and changes nothing) for a token out of the vocabulary, an unknown
  // sequence, a position that does not continue its sequence, an attention range past the
  // sequence's end, a tapped layer that does not exist, or a batch that does not fit.
  void forward(const Batch& batch, KVCache& cache, float* logits, const HiddenTaps* taps = nullptr);

  const Model& model() const { return model_; }

 private:
  void validate(const Batch& batch, const KVCache& cache, const HiddenTaps* taps) const;
  void copy_taps(int layer, int n_tokens, const HiddenTaps* taps);
  void reserve(int n_tokens);
  void attention_layer(int layer, const Batch& batch, KVCache& cache);
  void ffn_layer(int layer, int n_tokens);

  const Model& model_;
  ThreadPool& pool_;
  // Scratch, grown on demand (never inside a forward once large enough). Shapes per token.
  int reserved_ = 0;
  std::vector<float> x_;                    // [T, dim] residual stream
  std::vector<float> xb_;                   // [T, dim] normed input of a sublayer
  std::vector<float> q_;                    // [T, q_dim]
  std::vector<float> k_;                    // [T, kv_dim]
  std::vector<float> v_;                    // [T, kv_dim]
  std::vector<float> att_;                  // [T, q_dim] attention output before wo
  std::vector<float> out_;                  // [T, dim] sublayer output
  std::vector<float> gate_;                 // [T, ffn_dim]
  std::vector<float> up_;                   // [T, ffn_dim]
  std::vector<float> rope_;                 // [T, head_dim] cos/sin of each token's position
  std::vector<std::vector<float>> scores_;  // per thread [n_heads, capacity] attention scores
};

}  // namespace dspark

// The DSpark drafter's forward pass over one block of one sequence (DSPARK.md 1.1-1.2).
//
// The drafter keeps its own KV cache of *context* rows: for each target position p it has
// absorbed, c_p = RMSNorm_hidden(W_fc f_p) projected by every draft layer's k_proj (then
// k_norm, RoPE at p) and v_proj. Context rows get no input norm and no MLP.
// A round with anchor x0 at position s = (context length after absorbing) runs the block
// [x0, MASK x (B-1)] at positions s..s+B-1 through the draft layers; every block query sees
// all context keys 0..s-1 and all B block keys (bidirectional, no mask). The block's own K/V
// are dropped afterwards, so the cache again holds exactly positions 0..s-1.
//
// Output k of the block (k = 0..B-1) predicts the token at position s+k+1: h_k (final-normed
// hidden state) and U_k = lm_head(h_k). The sequential and confidence heads that turn these
// into draft tokens are in dspark_heads.h.
#pragma once

#include <vector>

#include "core/thread_pool.h"
#include "draft/dspark_model.h"
#include "model/kv_cache.h"

namespace dspark {

class DSparkForward {
 public:
  // Memory for n_seqs sequences of up to max_positions positions each (context + one block)
  // is reserved here; drafting never allocates. The model must have an embedding and an LM
  // head (its own, or the target's through attach_target).
  DSparkForward(const DSparkModel& model, ThreadPool& pool, int n_seqs, int max_positions);

  const DSparkModel& model() const { return model_; }
  int block_size() const { return B_; }
  // Target positions absorbed so far for a sequence (the next round's s once pending rows are in).
  int context_length(int seq) const { return cache_.length(seq); }
  // The drafter's own cache: truncate / clear / copy sequences (e.g. when a request restarts).
  KVCache& cache() { return cache_; }
  const KVCache& cache() const { return cache_; }

  // Appends context rows for positions [context_length(seq), context_length(seq) + n_rows).
  // taps: [n_rows, m*d], each row the target's tapped layer outputs concatenated in
  // target_layer_ids order (what Transformer::forward writes through HiddenTaps). Only rows
  // of committed tokens belong here: a verify pass's rows for rejected drafts must not be
  // absorbed (rows cannot be taken back except by truncating the cache).
  void absorb(int seq, const float* taps, int n_rows);

  // One block: absorbs the pending rows (positions [context_length, s)), then runs
  // [anchor, MASK x (B-1)] at positions s..s+B-1. Fills hidden() and base_logits().
  // Afterwards the cache holds positions 0..s-1. Throws Error (changing nothing) for a bad
  // sequence, token or a block that does not fit max_positions.
  void draft(int seq, const float* pending_taps, int n_pending, int anchor);

  const float* hidden() const { return h_.data(); }            // [B, d] h_k
  const float* base_logits() const { return logits_.data(); }  // [B, V] U_k
  const float* hidden(int k) const { return h_.data() + size_t(k) * size_t(dim_); }
  const float* base_logits(int k) const { return logits_.data() + size_t(k) * size_t(vocab_); }

 private:
  void check_seq(int seq, int extra_positions) const;
  void absorb_chunk(int seq, const float* taps, int n, int pos0);
  void block_attention(int layer, int seq, int s);  // dspark_layer.cpp
  void block_mlp(int layer);                        // dspark_layer.cpp

  const DSparkModel& model_;
  const ModelConfig& cfg_;  // the draft backbone
  ThreadPool& pool_;
  const int B_, dim_, vocab_;
  KVCache cache_;

  // Context absorption, at most kChunk rows at a time.
  static constexpr int kChunk = 64;
  std::vector<float> ctx_;    // [kChunk, d]      c_p = RMSNorm_hidden(W_fc f_p)
  std::vector<float> ctx_k_;  // [kChunk, kv_dim] k_proj(c_p), then k_norm and RoPE at p
  std::vector<float> ctx_v_;  // [kChunk, kv_dim] v_proj(c_p)

  // The block (B rows).
  std::vector<float> x_;                    // [B, d]      residual stream
  std::vector<float> xb_;                   // [B, d]      normed input of a sublayer
  std::vector<float> q_;                    // [B, q_dim]
  std::vector<float> k_;                    // [B, kv_dim]
  std::vector<float> v_;                    // [B, kv_dim]
  std::vector<float> att_;                  // [B, q_dim]  attention output before o_proj
  std::vector<float> out_;                  // [B, d]      sublayer output
  std::vector<float> gate_;                 // [B, ffn_dim]
  std::vector<float> up_;                   // [B, ffn_dim]
  std::vector<float> h_;                    // [B, d]      final-normed hidden states h_k
  std::vector<float> logits_;               // [B, V]      base logits U_k
  std::vector<std::vector<float>> scores_;  // per thread [max_positions] attention weights
};

}  // namespace dspark

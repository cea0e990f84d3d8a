// The DSpark drafter's sequential head, confidence head and losses for training
// (DSPARK.md 2 and 6): forward and hand-written backward from the backbone's final-normed
// hidden states h and base logits U = lm_head(h). The inference counterpart is
// draft/dspark_heads.h; both compute the same biased logits and confidence logits.
//
// Per row (block position k of a block, teacher forced: x_{k-1} is the anchor for k = 0 and
// the ground-truth previous token after), with e = W1[x_{k-1}]:
//   vanilla  u = e
//   gated    u = sigmoid(gate_proj([h ; e]) + b_g) ⊙ e
//   rnn      [g ; c ; o] = joint_proj([s_{k-1} ; e ; h]) + b_j         (s_{-1} = 0 per block)
//            s_k = sigmoid(g) ⊙ s_{k-1} + (1 - sigmoid(g)) ⊙ tanh(c);  u = tanh(o)
//   none     no bias (a DFlash drafter)
//   l = U + W2 · u;  p_d = softmax(l)
//   conf     x = w_c · [h ; e] + b_c   (w_c · h + b_c without Markov input)
// Losses (losses.h), as weighted means with w = valid * exp(-k/4):
//   CE = Σ w (-log p_d(x*)) / W;  L1 = Σ w ||p_d - p_t||_1 / W;  Conf = Σ w BCE(x, c*) / W
// with c* = clamp(1 - ½||p_d - p_t||_1, 0, 1) held constant in the backward pass.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "draft/dspark_config.h"
#include "draft/dspark_model.h"
#include "train/losses.h"
#include "train/param.h"

namespace dspark {

struct HeadsWorkspace;  // per-call buffers that only grow (draft_heads_train.cpp)

// The heads' parameters under their checkpoint names (DSPARK.md 3.3); a Param of a head the
// configuration lacks is empty.
struct DraftHeadsTrain {
  // Throws Error when the head fields of the configuration disagree (markov_rank > 0 exactly
  // when there is a Markov head; a confidence head with Markov input needs markov_rank > 0).
  explicit DraftHeadsTrain(const DSparkConfig& config);
  ~DraftHeadsTrain();
  DraftHeadsTrain(DraftHeadsTrain&&) noexcept;
  DraftHeadsTrain& operator=(DraftHeadsTrain&&) noexcept;

  MarkovHead markov_type;
  bool confidence, confidence_with_markov;
  int d, r, V;  // hidden size, markov_rank, vocabulary

  Param w1;       // markov_head.markov_w1.weight   [V, r]     (r > 0)
  Param w2;       // markov_head.markov_w2.weight   [V, r]     (r > 0)
  Param gate_w;   // markov_head.gate_proj.weight   [r, d+r]   (gated)
  Param gate_b;   // markov_head.gate_proj.bias     [r]
  Param joint_w;  // markov_head.joint_proj.weight  [3r, 2r+d] (rnn)
  Param joint_b;  // markov_head.joint_proj.bias    [3r]
  Param conf_w;   // confidence_head.proj.weight    [1, d+r] or [1, d] (confidence head)
  Param conf_b;   // confidence_head.proj.bias      [1]

  bool has_markov() const { return markov_type != MarkovHead::None; }
  // The parameters present, in checkpoint order.
  std::vector<Param*> params();
  // HF default initialisation: every matrix (W1 and W2 included) normal with std 0.02,
  // biases zero. Deterministic for a seed.
  void init(uint64_t seed);
  void zero_grad();
  // Points the head tensors of `w` (markov_w1 .. confidence_bias) at these parameters as F32
  // views, named as in the checkpoint; they stay valid while this object lives and keeps
  // its shapes. Other tensors of `w` are left alone.
  void view_weights(DSparkWeights& w) const;

  std::unique_ptr<HeadsWorkspace> ws;  // scratch reused across calls: one call at a time
};

// One batch of rows for the heads: blocks of block_size rows, block-major (row =
// block * block_size + k); the RNN state runs along k inside a block and restarts at 0.
struct HeadBatch {
  int n_rows = 0;                      // a multiple of block_size
  int block_size = 0;                  // B
  const float* h = nullptr;            // [n_rows, d]  final-normed hidden states h_k
  const float* base_logits = nullptr;  // [n_rows, V]  U_k = lm_head(h_k), before the Markov bias
  // [n_rows] x_{k-1}: the anchor for k = 0, the ground-truth previous token after. Every row's
  // must be a valid token when the heads read it (a Markov head, or confidence with Markov
  // input), weight 0 or not: the RNN state passes through every row.
  const int* prev = nullptr;
  const int* labels = nullptr;     // [n_rows] x*_k; ignored where the weight is 0
  const float* weights = nullptr;  // [n_rows] w_k >= 0; 0 = the row does not count
  // [n_rows, V] p_t, the target's softmax at T = 1; ignored where the weight is 0. May be
  // null when neither L1 nor Conf is needed (their weights 0, or no confidence head).
  const float* target_probs = nullptr;
  double weight_sum = 0;  // W = Σ w over the whole batch (the caller may pass it in chunks); > 0
};

// Optional outputs and inputs of the forward pass; every pointer may be null.
struct HeadForwardIO {
  float* logits = nullptr;        // out [n_rows, V] l = U + bias
  float* conf_logits = nullptr;   // out [n_rows]    x (confidence head)
  float* conf_targets = nullptr;  // out [n_rows]    c* (0 where the weight is 0)
  // in [n_rows]: use these c* instead of computing them from p_d, e.g. to differentiate the
  // Conf loss numerically as the backward pass does (c* constant).
  const float* fixed_conf_targets = nullptr;
};

// The loss terms without gradients.
LossTerms heads_forward(DraftHeadsTrain& heads, const HeadBatch& batch, const LossWeights& lw,
                        ThreadPool& pool, const HeadForwardIO& io = {});

// Forward and backward in one call: adds the parameter gradients into each Param::grad and
// SETS d_h [n_rows, d] (the gradient with respect to h from the Markov and confidence heads)
// and d_logits [n_rows, V] (the gradient with respect to U). Parallel over rows and blocks.
// Throws Error on a malformed batch (shapes, a token outside the vocabulary, weight_sum <= 0,
// a needed target_probs missing).
LossTerms heads_forward_backward(DraftHeadsTrain& heads, const HeadBatch& batch, const LossWeights& lw,
                                 float* d_h, float* d_logits, ThreadPool& pool);

}  // namespace dspark

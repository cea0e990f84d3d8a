// A DSpark drafter checkpoint (DSPARK.md 3): its configuration and typed views of its
// weights. Matrices keep their stored type (F32, F16, BF16); norms and biases are fp32.
// Names and shapes follow DSPARK.md 3.3 (no "model." prefix).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "draft/dspark_config.h"
#include "model/model.h"
#include "model/weight_storage.h"

namespace dspark {

struct DSparkWeights {
  TensorView embed_tokens;  // [V, d]   optional: a frozen copy of the target's embedding
  TensorView lm_head;       // [V, d]   optional: a frozen copy of the target's LM head
  TensorView fc;            // [d, m*d] projection of the concatenated taps
  TensorView hidden_norm;   // [d]      RMSNorm of the projected context
  TensorView norm;          // [d]      final RMSNorm
  // Qwen3 decoder layers: attn_norm = input_layernorm, ffn_norm = post_attention_layernorm,
  // q_norm / k_norm per head; no biases.
  std::vector<LayerWeights> layers;
  TensorView markov_w1;        // [V, r]      (rank > 0) embedding of the previous token
  TensorView markov_w2;        // [V, r]      (rank > 0) linear r -> V
  TensorView gate_proj;        // [r, d+r]    (gated)
  TensorView gate_bias;        // [r]         (gated)
  TensorView joint_proj;       // [3r, 2r+d]  (rnn)
  TensorView joint_bias;       // [3r]        (rnn)
  TensorView confidence;       // [1, d+r] or [1, d] (confidence head)
  TensorView confidence_bias;  // [1]

  // Calls fn(view) for every tensor present, with its checkpoint name in view.name.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const TensorView* t : {&embed_tokens, &lm_head, &fc, &hidden_norm, &norm})
      if (!t->empty()) fn(*t);
    for (const auto& l : layers)
      for (const TensorView* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.q_norm, &l.k_norm, &l.ffn_norm,
                                  &l.w_gate, &l.w_up, &l.w_down})
        if (!t->empty()) fn(*t);
    for (const TensorView* t : {&markov_w1, &markov_w2, &gate_proj, &gate_bias, &joint_proj, &joint_bias,
                                &confidence, &confidence_bias})
      if (!t->empty()) fn(*t);
  }
};

struct DSparkModel {
  DSparkConfig config;
  std::string source;  // folder it was loaded from
  DSparkWeights weights;
  // The target's matrices, used where the checkpoint has no embed_tokens / lm_head; set by
  // attach_target. They point into the target Model, which must outlive the drafter.
  TensorView target_embed, target_lm_head;
  // Keeps mapped files and converted buffers alive for as long as the views are used.
  WeightStorage storage;

  // The embedding and LM head the forward pass uses: the checkpoint's when it has them.
  const TensorView& embedding() const {
    return weights.embed_tokens.empty() ? target_embed : weights.embed_tokens;
  }
  const TensorView& output() const { return weights.lm_head.empty() ? target_lm_head : weights.lm_head; }

  // Checks every tensor against the configuration; throws Error naming the tensor, its
  // shape and the expected shape.
  void validate() const;
  int64_t parameter_count() const;  // of the tensors in the checkpoint
};

// Loads config.json and model.safetensors (or the shards of model.safetensors.index.json).
// Every tensor name is checked: missing tensors, tensors the configuration does not expect
// (e.g. Markov weights with markov_rank 0) and wrong shapes are errors naming the tensor.
std::unique_ptr<DSparkModel> load_dspark(const std::string& dir);

// Throws Error naming both models when the drafter does not fit the target: hidden size,
// vocabulary, num_target_layers, a tapped layer outside [-1, target layers - 1) (the last
// layer is forbidden) or a mask token outside the vocabulary.
void check_target(const DSparkModel& draft, const Model& target);

// check_target, then takes the target's embedding / LM head where the checkpoint has none
// (for a tied target the LM head is the embedding). The target must outlive the drafter.
void attach_target(DSparkModel& draft, const Model& target);

// Writes config.json and model.safetensors in the layout load_dspark reads (tests, trainer).
// Tensors are written in their stored type under the names of DSPARK.md 3.3; absent
// (empty) optional tensors are left out.
void write_dspark_checkpoint(const std::string& dir, const DSparkConfig& config,
                             const DSparkWeights& weights);

}  // namespace dspark

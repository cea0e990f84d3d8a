// One pre-norm decoder layer (Llama, or Qwen3 with per-head q/k norms) for training: its
// parameters, its forward pass over a flattened batch of rows, and its backward pass.
//
//   h = x + o_proj(Attn(RMSNorm_in(x)))
//   y = h + down(silu(gate(RMSNorm_post(h))) * up(RMSNorm_post(h)))
//
// Keys and values come from [extra rows ; RMSNorm_in(x)]: the extra rows (a drafter's
// injected context, DSPARK.md 1.2) are projected by k_proj / v_proj only; a language model
// has none. Which keys a row sees is a KeyRanges per row over that key list.
#pragma once

#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/config.h"
#include "model/model.h"
#include "train/attention_grad.h"
#include "train/param.h"

namespace dspark {

// What one forward pass attends over.
struct LayerBatch {
  int n_rows = 0;                      // N rows of x
  int n_extra = 0;                     // S extra key/value rows (no input norm, no MLP)
  const float* extra = nullptr;        // [S, d]
  const int* positions = nullptr;      // [N] RoPE position of each row
  const int* key_positions = nullptr;  // [S + N] RoPE position of each key: extra rows, then rows
  const KeyRanges* ranges = nullptr;   // [N] visible keys among [extra ; rows]
};

class DecoderLayerTrain {
 public:
  // Parameters named `prefix` + the Hugging Face names ("self_attn.q_proj.weight", ...),
  // zero-filled; q_norm / k_norm only when config.qk_norm.
  DecoderLayerTrain(const ModelConfig& config, const std::string& prefix);

  std::vector<Param*> params();
  // F32 views of the parameters, as the inference code reads a layer (absent norms empty).
  LayerWeights weights_view() const;
  Param attn_norm, wq, wk, wv, wo, q_norm, k_norm, ffn_norm, w_gate, w_up, w_down;

  // y [N, d] from x [N, d]; keeps what the backward pass needs.
  void forward(const LayerBatch& batch, const float* x, float* y, ThreadPool& pool);
  // dy [N, d] in, dx [N, d] out (may alias dy); adds the extra rows' gradient into d_extra
  // [S, d] (when not null) and the parameters' gradients into their grads. Uses the batch
  // and activations of the last forward.
  void backward(const float* dy, float* dx, float* d_extra, ThreadPool& pool);

 private:
  const ModelConfig& cfg_;
  LayerBatch batch_;
  // Activations of the last forward.
  std::vector<float> x_in_;   // [N, d]       layer input
  std::vector<float> xn_;     // [N, d]       RMSNorm_in(x)
  std::vector<float> kv_in_;  // [S+N, d]     rows projected to keys/values: extra, then xn
  std::vector<float> q_;      // [N, q_dim]   q_proj before q_norm
  std::vector<float> kraw_;   // [S+N, kv_dim] k_proj before k_norm
  std::vector<float> qr_;     // [N, q_dim]   after q_norm and RoPE
  std::vector<float> kr_;     // [S+N, kv_dim] after k_norm and RoPE
  std::vector<float> v_;      // [S+N, kv_dim]
  std::vector<float> att_;    // [N, q_dim]   attention output before o_proj
  std::vector<float> x_mid_;  // [N, d]       residual after attention
  std::vector<float> hn_;     // [N, d]       RMSNorm_post(x_mid)
  std::vector<float> g_, u_;  // [N, ffn]     gate and up projections
  std::vector<float> act_;    // [N, ffn]     silu(g) * u
};

}  // namespace dspark

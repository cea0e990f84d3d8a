// A loaded model: its configuration and typed views of its weights. The views point into
// memory-mapped files where the stored type has a kernel, or into buffers the model owns
// where the loader had to convert.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/weight_storage.h"

namespace dspark {

struct LayerWeights {
  TensorView attn_norm;             // [dim]
  TensorView wq, wk, wv, wo;        // [q_dim, dim] [kv_dim, dim] [kv_dim, dim] [dim, q_dim]
  TensorView bq, bk, bv;            // Qwen2 biases [q_dim] [kv_dim] [kv_dim]
  TensorView q_norm, k_norm;        // Qwen3 [head_dim]
  TensorView ffn_norm;              // [dim]
  TensorView w_gate, w_up, w_down;  // [ffn_dim, dim] [ffn_dim, dim] [dim, ffn_dim]
};

struct Model {
  ModelConfig config;
  GenerationTokens tokens;
  std::string source;         // path it was loaded from
  std::string format;         // "safetensors", "gguf", "llama2c"
  TensorView tok_embeddings;  // [vocab, dim]
  std::vector<LayerWeights> layers;
  TensorView output_norm;  // [dim]
  TensorView output;       // [vocab, dim]; the same data as tok_embeddings when tied

  // Keeps mapped files and converted buffers alive for as long as the views are used.
  WeightStorage storage;

  // Checks every tensor against the configuration; throws Error naming the tensor, its
  // shape and the expected shape.
  void validate() const;
  int64_t parameter_count() const;
  size_t weight_bytes() const;  // bytes of weights read per decoded token
  // Calls fn(view) for every weight tensor (the tied output counted once).
  template <class Fn>
  void for_each_tensor(Fn&& fn) const {
    fn(tok_embeddings);
    for (const auto& l : layers)
      for (const TensorView* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv, &l.q_norm,
                                  &l.k_norm, &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down})
        if (!t->empty()) fn(*t);
    fn(output_norm);
    if (output.data != tok_embeddings.data) fn(output);
  }
};

}  // namespace dspark

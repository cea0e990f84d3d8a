// The shape of a decoder-only transformer, whatever file it came from.
#pragma once

#include <string>
#include <vector>

namespace dspark {

enum class Arch { Llama, Qwen2, Qwen3 };

// How RoPE pairs the dimensions of a head. llama2.c (and GGUF `llama`, whose Q/K rows are
// stored permuted for it) rotates adjacent pairs (2i, 2i+1); Hugging Face and GGUF qwen
// rotate halves (i, i + head_dim/2).
enum class RopeStyle { AdjacentPairs, Halves };

struct ModelConfig {
  Arch arch = Arch::Llama;
  int n_layers = 0;
  int dim = 0;  // residual stream width
  int n_heads = 0;
  int n_kv_heads = 0;  // < n_heads: grouped-query attention
  int head_dim = 0;    // usually dim / n_heads; Qwen3 may set it independently
  int ffn_dim = 0;     // SwiGLU hidden width
  int vocab_size = 0;
  int max_seq_len = 0;
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;
  RopeStyle rope_style = RopeStyle::Halves;
  bool qkv_bias = false;  // Qwen2
  bool qk_norm = false;   // Qwen3: per-head RMSNorm on q and k before RoPE
  bool tied_embeddings = false;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
};

const char* arch_name(Arch a);

// Special token ids the generation loop needs.
struct GenerationTokens {
  int bos = -1;
  std::vector<int> eos;  // any of these ends generation
};

}  // namespace dspark

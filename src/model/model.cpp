#include "model/model.h"

#include "core/error.h"

namespace dspark {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::Llama:
      return "llama";
    case Arch::Qwen2:
      return "qwen2";
    case Arch::Qwen3:
      return "qwen3";
  }
  return "?";
}

namespace {

void expect(const Model& m, const TensorView& t, std::vector<int64_t> shape, bool f32_only) {
  if (t.empty()) fail(m.source, ": missing tensor (expected shape ", shape_str(shape), ")");
  if (t.shape != shape)
    fail(m.source, ": tensor '", t.name, "' has shape ", shape_str(t.shape), ", expected ", shape_str(shape),
         " from the model configuration");
  if (f32_only && t.type != DType::F32)
    fail(m.source, ": tensor '", t.name, "' must be F32 after loading, is ", dtype_name(t.type));
  if (t.cols() % dtype_block_elems(t.type) != 0)
    fail(m.source, ": tensor '", t.name, "' row of ", t.cols(), " values is not a whole number of ",
         dtype_name(t.type), " blocks");
}

}  // namespace

void Model::validate() const {
  const ModelConfig& c = config;
  if (c.n_layers <= 0 || c.dim <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.head_dim <= 0 ||
      c.ffn_dim <= 0 || c.vocab_size <= 0)
    fail(source, ": configuration has a non-positive size (layers ", c.n_layers, ", dim ", c.dim, ", heads ",
         c.n_heads, ", kv heads ", c.n_kv_heads, ", head dim ", c.head_dim, ", ffn ", c.ffn_dim, ", vocab ",
         c.vocab_size, ")");
  if (c.n_heads % c.n_kv_heads != 0)
    fail(source, ": ", c.n_heads, " attention heads are not a multiple of ", c.n_kv_heads,
         " key/value heads");
  if (c.head_dim % 2 != 0) fail(source, ": head dimension ", c.head_dim, " is odd; RoPE needs pairs");
  if (int(layers.size()) != c.n_layers)
    fail(source, ": ", layers.size(), " layers of weights for ", c.n_layers, " configured layers");
  const int64_t d = c.dim, q = c.q_dim(), kv = c.kv_dim(), f = c.ffn_dim, v = c.vocab_size, hd = c.head_dim;
  expect(*this, tok_embeddings, {v, d}, false);
  expect(*this, output_norm, {d}, true);
  expect(*this, output, {v, d}, false);
  for (const auto& l : layers) {
    expect(*this, l.attn_norm, {d}, true);
    expect(*this, l.wq, {q, d}, false);
    expect(*this, l.wk, {kv, d}, false);
    expect(*this, l.wv, {kv, d}, false);
    expect(*this, l.wo, {d, q}, false);
    if (c.qkv_bias) {
      expect(*this, l.bq, {q}, true);
      expect(*this, l.bk, {kv}, true);
      expect(*this, l.bv, {kv}, true);
    }
    if (c.qk_norm) {
      expect(*this, l.q_norm, {hd}, true);
      expect(*this, l.k_norm, {hd}, true);
    }
    expect(*this, l.ffn_norm, {d}, true);
    expect(*this, l.w_gate, {f, d}, false);
    expect(*this, l.w_up, {f, d}, false);
    expect(*this, l.w_down, {d, f}, false);
  }
}

int64_t Model::parameter_count() const {
  int64_t n = 0;
  for_each_tensor([&](const TensorView& t) { n += t.numel(); });
  return n;
}

size_t Model::weight_bytes() const {
  size_t n = 0;
  for_each_tensor([&](const TensorView& t) { n += t.nbytes(); });
  return n - tok_embeddings.nbytes() + (output.data == tok_embeddings.data ? tok_embeddings.nbytes() : 0);
}

}  // namespace dspark

// GGUF models of the `llama`, `qwen2` and `qwen3` architectures, with llama.cpp's standard
// metadata keys and tensor names. `llama` files store Q and K rows permuted so that RoPE
// rotates adjacent pairs; qwen files use the rotate-half form.
#include "core/error.h"
#include "model/loaders.h"

namespace dspark {

namespace {

Arch parse_arch(const GgufFile& g, const std::string& name) {
  if (name == "llama") return Arch::Llama;
  if (name == "qwen2") return Arch::Qwen2;
  if (name == "qwen3") return Arch::Qwen3;
  fail(g.label(), ": unsupported architecture '", name, "' (supported: llama, qwen2, qwen3)");
}

int get_dim(const GgufFile& g, const std::string& key) {
  const uint64_t v = g.get_uint(key);
  if (v == 0 || v > (uint64_t(1) << 30)) fail(g.label(), ": metadata '", key, "' = ", v, " is out of range");
  return int(v);
}

}  // namespace

std::unique_ptr<Model> load_gguf_model(const std::shared_ptr<GgufFile>& gguf) {
  const GgufFile& g = *gguf;
  auto m = std::make_unique<Model>();
  m->source = g.label();
  m->format = "gguf";
  m->storage.hold(gguf);
  const std::string arch = g.get_string("general.architecture");
  ModelConfig& c = m->config;
  c.arch = parse_arch(g, arch);
  const std::string p = arch + ".";
  c.n_layers = get_dim(g, p + "block_count");
  c.dim = get_dim(g, p + "embedding_length");
  c.ffn_dim = get_dim(g, p + "feed_forward_length");
  c.n_heads = get_dim(g, p + "attention.head_count");
  c.n_kv_heads =
      g.find(p + "attention.head_count_kv") ? get_dim(g, p + "attention.head_count_kv") : c.n_heads;
  c.head_dim =
      g.find(p + "attention.key_length") ? get_dim(g, p + "attention.key_length") : c.dim / c.n_heads;
  c.max_seq_len = int(g.get_uint_or(p + "context_length", 2048));
  c.norm_eps = float(g.get_float_or(p + "attention.layer_norm_rms_epsilon", 1e-5));
  c.rope_theta = float(g.get_float_or(p + "rope.freq_base", 10000.0));
  c.rope_style = c.arch == Arch::Llama ? RopeStyle::AdjacentPairs : RopeStyle::Halves;
  c.qkv_bias = c.arch == Arch::Qwen2;
  c.qk_norm = c.arch == Arch::Qwen3;
  if (const GgufValue* scaling = g.find(p + "rope.scaling.type"); scaling && scaling->str != "none")
    fail(g.label(), ": RoPE scaling '", scaling->str, "' is not supported yet");

  auto get = [&](const std::string& name, bool required = true) -> TensorView {
    const GgufTensor* t = g.find_tensor(name);
    if (!t) {
      if (required) fail(g.label(), ": missing tensor '", name, "'");
      return {};
    }
    if (!t->supported())
      fail(g.label(), ": tensor '", name, "' has type ", ggml_type_name(t->ggml_type),
           ", which is not supported yet");
    return m->storage.aligned(t->view);
  };
  m->tok_embeddings = get("token_embd.weight");
  c.vocab_size = int(m->tok_embeddings.shape.empty() ? 0 : m->tok_embeddings.shape[0]);
  m->output = get("output.weight", false);
  c.tied_embeddings = m->output.empty();
  if (c.tied_embeddings) m->output = m->tok_embeddings;
  m->output_norm = m->storage.as_f32(get("output_norm.weight"));
  for (int i = 0; i < c.n_layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    LayerWeights l;
    l.attn_norm = m->storage.as_f32(get(b + "attn_norm.weight"));
    l.wq = get(b + "attn_q.weight");
    l.wk = get(b + "attn_k.weight");
    l.wv = get(b + "attn_v.weight");
    l.wo = get(b + "attn_output.weight");
    if (c.qkv_bias) {
      l.bq = m->storage.as_f32(get(b + "attn_q.bias"));
      l.bk = m->storage.as_f32(get(b + "attn_k.bias"));
      l.bv = m->storage.as_f32(get(b + "attn_v.bias"));
    }
    if (c.qk_norm) {
      l.q_norm = m->storage.as_f32(get(b + "attn_q_norm.weight"));
      l.k_norm = m->storage.as_f32(get(b + "attn_k_norm.weight"));
    }
    l.ffn_norm = m->storage.as_f32(get(b + "ffn_norm.weight"));
    l.w_gate = get(b + "ffn_gate.weight");
    l.w_up = get(b + "ffn_up.weight");
    l.w_down = get(b + "ffn_down.weight");
    m->layers.push_back(std::move(l));
  }
  if (g.find("tokenizer.ggml.bos_token_id")) m->tokens.bos = int(g.get_uint("tokenizer.ggml.bos_token_id"));
  // End of sequence, and end of turn for chat models: either ends generation.
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"})
    if (g.find(key)) m->tokens.eos.push_back(int(g.get_uint(key)));
  m->validate();
  return m;
}

}  // namespace dspark

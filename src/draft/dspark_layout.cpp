#include "draft/dspark_layout.h"

namespace dspark {

std::vector<DSparkSlot> dspark_layout(const DSparkConfig& c, DSparkWeights& w) {
  const ModelConfig& b = c.backbone;
  const int64_t d = b.dim, V = b.vocab_size, q = b.q_dim(), kv = b.kv_dim(), I = b.ffn_dim, hd = b.head_dim;
  const int64_t r = c.markov_rank, md = c.tap_dim();
  std::vector<DSparkSlot> s;
  auto matrix = [&](std::string name, TensorView* v, std::vector<int64_t> shape, bool optional = false) {
    s.push_back({std::move(name), v, std::move(shape), false, optional});
  };
  auto vec = [&](std::string name, TensorView* v, int64_t n) {
    s.push_back({std::move(name), v, {n}, true, false});
  };

  matrix("embed_tokens.weight", &w.embed_tokens, {V, d}, true);
  matrix("lm_head.weight", &w.lm_head, {V, d}, true);
  matrix("fc.weight", &w.fc, {d, md});
  vec("hidden_norm.weight", &w.hidden_norm, d);
  vec("norm.weight", &w.norm, d);
  w.layers.resize(size_t(b.n_layers));
  for (int i = 0; i < b.n_layers; ++i) {
    LayerWeights& l = w.layers[size_t(i)];
    const std::string p = "layers." + std::to_string(i) + ".";
    vec(p + "input_layernorm.weight", &l.attn_norm, d);
    vec(p + "post_attention_layernorm.weight", &l.ffn_norm, d);
    matrix(p + "self_attn.q_proj.weight", &l.wq, {q, d});
    matrix(p + "self_attn.k_proj.weight", &l.wk, {kv, d});
    matrix(p + "self_attn.v_proj.weight", &l.wv, {kv, d});
    matrix(p + "self_attn.o_proj.weight", &l.wo, {d, q});
    vec(p + "self_attn.q_norm.weight", &l.q_norm, hd);
    vec(p + "self_attn.k_norm.weight", &l.k_norm, hd);
    matrix(p + "mlp.gate_proj.weight", &l.w_gate, {I, d});
    matrix(p + "mlp.up_proj.weight", &l.w_up, {I, d});
    matrix(p + "mlp.down_proj.weight", &l.w_down, {d, I});
  }
  if (r > 0) {
    matrix("markov_head.markov_w1.weight", &w.markov_w1, {V, r});
    matrix("markov_head.markov_w2.weight", &w.markov_w2, {V, r});
  }
  if (c.markov_head == MarkovHead::Gated) {
    matrix("markov_head.gate_proj.weight", &w.gate_proj, {r, d + r});
    vec("markov_head.gate_proj.bias", &w.gate_bias, r);
  }
  if (c.markov_head == MarkovHead::Rnn) {
    matrix("markov_head.joint_proj.weight", &w.joint_proj, {3 * r, 2 * r + d});
    vec("markov_head.joint_proj.bias", &w.joint_bias, 3 * r);
  }
  if (c.confidence_head) {
    matrix("confidence_head.proj.weight", &w.confidence, {1, c.confidence_in()});
    vec("confidence_head.proj.bias", &w.confidence_bias, 1);
  }
  return s;
}

}  // namespace dspark

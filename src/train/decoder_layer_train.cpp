#include "train/decoder_layer_train.h"

#include <algorithm>
#include <cmath>

#include "train/grad_ops.h"
#include "train/products.h"

namespace dspark {

DecoderLayerTrain::DecoderLayerTrain(const ModelConfig& c, const std::string& p) : cfg_(c) {
  const int d = c.dim, qd = c.q_dim(), kvd = c.kv_dim(), ffn = c.ffn_dim, hd = c.head_dim;
  attn_norm = make_param(p + "input_layernorm.weight", {d});
  wq = make_param(p + "self_attn.q_proj.weight", {qd, d});
  wk = make_param(p + "self_attn.k_proj.weight", {kvd, d});
  wv = make_param(p + "self_attn.v_proj.weight", {kvd, d});
  wo = make_param(p + "self_attn.o_proj.weight", {d, qd});
  if (c.qk_norm) {
    q_norm = make_param(p + "self_attn.q_norm.weight", {hd});
    k_norm = make_param(p + "self_attn.k_norm.weight", {hd});
  }
  ffn_norm = make_param(p + "post_attention_layernorm.weight", {d});
  w_gate = make_param(p + "mlp.gate_proj.weight", {ffn, d});
  w_up = make_param(p + "mlp.up_proj.weight", {ffn, d});
  w_down = make_param(p + "mlp.down_proj.weight", {d, ffn});
}

std::vector<Param*> DecoderLayerTrain::params() {
  std::vector<Param*> out;
  for (Param* p : {&attn_norm, &wq, &wk, &wv, &wo, &q_norm, &k_norm, &ffn_norm, &w_gate, &w_up, &w_down})
    if (!p->empty()) out.push_back(p);
  return out;
}

LayerWeights DecoderLayerTrain::weights_view() const {
  LayerWeights w;
  w.attn_norm = view_of(attn_norm);
  w.wq = view_of(wq);
  w.wk = view_of(wk);
  w.wv = view_of(wv);
  w.wo = view_of(wo);
  w.q_norm = view_of(q_norm);
  w.k_norm = view_of(k_norm);
  w.ffn_norm = view_of(ffn_norm);
  w.w_gate = view_of(w_gate);
  w.w_up = view_of(w_up);
  w.w_down = view_of(w_down);
  return w;
}

void DecoderLayerTrain::forward(const LayerBatch& b, const float* x, float* y, ThreadPool& pool) {
  batch_ = b;
  const int N = b.n_rows, S = b.n_extra, K = S + N, d = cfg_.dim, qd = cfg_.q_dim(), kvd = cfg_.kv_dim();
  const int ffn = cfg_.ffn_dim, hd = cfg_.head_dim;
  const size_t nd = size_t(N) * size_t(d);

  x_in_.assign(x, x + nd);
  xn_.resize(nd);
  rmsnorm_rows(x, attn_norm.w(), N, d, cfg_.norm_eps, xn_.data(), pool);
  kv_in_.resize(size_t(K) * size_t(d));
  if (S > 0) std::copy_n(b.extra, size_t(S) * size_t(d), kv_in_.begin());
  std::copy(xn_.begin(), xn_.end(), kv_in_.begin() + ptrdiff_t(S) * d);

  q_.resize(size_t(N) * size_t(qd));
  kraw_.resize(size_t(K) * size_t(kvd));
  v_.resize(kraw_.size());
  matmul_nt(xn_.data(), wq.w(), N, qd, d, q_.data(), pool);
  matmul_nt(kv_in_.data(), wk.w(), K, kvd, d, kraw_.data(), pool);
  matmul_nt(kv_in_.data(), wv.w(), K, kvd, d, v_.data(), pool);

  qr_ = q_;
  kr_ = kraw_;
  if (cfg_.qk_norm) {
    rmsnorm_rows(q_.data(), q_norm.w(), N * cfg_.n_heads, hd, cfg_.norm_eps, qr_.data(), pool);
    rmsnorm_rows(kraw_.data(), k_norm.w(), K * cfg_.n_kv_heads, hd, cfg_.norm_eps, kr_.data(), pool);
  }
  rope_rows(qr_.data(), b.positions, N, cfg_.n_heads, hd, cfg_.rope_theta, false, pool);
  rope_rows(kr_.data(), b.key_positions, K, cfg_.n_kv_heads, hd, cfg_.rope_theta, false, pool);

  const AttentionShape shape{N, K, cfg_.n_heads, cfg_.n_kv_heads, hd, 1.0f / std::sqrt(float(hd))};
  att_.resize(size_t(N) * size_t(qd));
  attention_forward(shape, qr_.data(), kr_.data(), v_.data(), b.ranges, att_.data(), pool);

  x_mid_ = x_in_;
  std::vector<float> o(nd);
  matmul_nt(att_.data(), wo.w(), N, d, qd, o.data(), pool);
  add_rows(x_mid_.data(), o.data(), int64_t(nd), pool);

  hn_.resize(nd);
  rmsnorm_rows(x_mid_.data(), ffn_norm.w(), N, d, cfg_.norm_eps, hn_.data(), pool);
  g_.resize(size_t(N) * size_t(ffn));
  u_.resize(g_.size());
  act_.resize(g_.size());
  matmul_nt(hn_.data(), w_gate.w(), N, ffn, d, g_.data(), pool);
  matmul_nt(hn_.data(), w_up.w(), N, ffn, d, u_.data(), pool);
  swiglu_forward(g_.data(), u_.data(), int64_t(g_.size()), act_.data(), pool);
  matmul_nt(act_.data(), w_down.w(), N, d, ffn, o.data(), pool);
  std::copy(x_mid_.begin(), x_mid_.end(), y);
  add_rows(y, o.data(), int64_t(nd), pool);
}

void DecoderLayerTrain::backward(const float* dy, float* dx, float* d_extra, ThreadPool& pool) {
  const LayerBatch& b = batch_;
  const int N = b.n_rows, S = b.n_extra, K = S + N, d = cfg_.dim, qd = cfg_.q_dim(), kvd = cfg_.kv_dim();
  const int ffn = cfg_.ffn_dim, hd = cfg_.head_dim;
  const size_t nd = size_t(N) * size_t(d);
  std::vector<float> dmid(dy, dy + nd);  // d(x_mid), once the MLP's norm path is added

  // MLP: y = x_mid + down(silu(gate(hn)) * up(hn)), hn = RMSNorm_post(x_mid).
  std::vector<float> dact(size_t(N) * size_t(ffn)), dg(dact.size()), du(dact.size());
  matmul_nn(dy, w_down.w(), N, ffn, d, dact.data(), false, pool);
  matmul_tn_add(dy, act_.data(), N, d, ffn, w_down.g(), pool);
  swiglu_backward(g_.data(), u_.data(), dact.data(), int64_t(dact.size()), dg.data(), du.data(), pool);
  std::vector<float> dhn(nd);
  matmul_nn(dg.data(), w_gate.w(), N, d, ffn, dhn.data(), false, pool);
  matmul_nn(du.data(), w_up.w(), N, d, ffn, dhn.data(), true, pool);
  matmul_tn_add(dg.data(), hn_.data(), N, ffn, d, w_gate.g(), pool);
  matmul_tn_add(du.data(), hn_.data(), N, ffn, d, w_up.g(), pool);
  rmsnorm_rows_backward(x_mid_.data(), ffn_norm.w(), dhn.data(), N, d, cfg_.norm_eps, dmid.data(),
                        ffn_norm.g(), true, pool);

  // Attention: x_mid = x_in + o_proj(att).
  std::vector<float> datt(size_t(N) * size_t(qd));
  matmul_nn(dmid.data(), wo.w(), N, qd, d, datt.data(), false, pool);
  matmul_tn_add(dmid.data(), att_.data(), N, d, qd, wo.g(), pool);
  const AttentionShape shape{N, K, cfg_.n_heads, cfg_.n_kv_heads, hd, 1.0f / std::sqrt(float(hd))};
  std::vector<float> dq(size_t(N) * size_t(qd)), dk(size_t(K) * size_t(kvd)), dv(dk.size());
  attention_backward(shape, qr_.data(), kr_.data(), v_.data(), b.ranges, datt.data(), dq.data(), dk.data(),
                     dv.data(), pool);
  rope_rows(dq.data(), b.positions, N, cfg_.n_heads, hd, cfg_.rope_theta, true, pool);
  rope_rows(dk.data(), b.key_positions, K, cfg_.n_kv_heads, hd, cfg_.rope_theta, true, pool);
  if (cfg_.qk_norm) {
    std::vector<float> dqr = dq, dkr = dk;
    rmsnorm_rows_backward(q_.data(), q_norm.w(), dqr.data(), N * cfg_.n_heads, hd, cfg_.norm_eps, dq.data(),
                          q_norm.g(), false, pool);
    rmsnorm_rows_backward(kraw_.data(), k_norm.w(), dkr.data(), K * cfg_.n_kv_heads, hd, cfg_.norm_eps,
                          dk.data(), k_norm.g(), false, pool);
  }

  // Projections: q from xn; k and v from [extra ; xn].
  std::vector<float> dkv_in(size_t(K) * size_t(d));
  matmul_nn(dk.data(), wk.w(), K, d, kvd, dkv_in.data(), false, pool);
  matmul_nn(dv.data(), wv.w(), K, d, kvd, dkv_in.data(), true, pool);
  matmul_tn_add(dk.data(), kv_in_.data(), K, kvd, d, wk.g(), pool);
  matmul_tn_add(dv.data(), kv_in_.data(), K, kvd, d, wv.g(), pool);
  matmul_tn_add(dq.data(), xn_.data(), N, qd, d, wq.g(), pool);
  if (d_extra && S > 0) add_rows(d_extra, dkv_in.data(), int64_t(S) * d, pool);
  float* dxn = dkv_in.data() + size_t(S) * size_t(d);
  matmul_nn(dq.data(), wq.w(), N, d, qd, dxn, true, pool);
  std::copy(dmid.begin(), dmid.end(), dx);
  rmsnorm_rows_backward(x_in_.data(), attn_norm.w(), dxn, N, d, cfg_.norm_eps, dx, attn_norm.g(), true, pool);
}

}  // namespace dspark

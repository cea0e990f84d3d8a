#include "train/draft_train_model.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "kernels/matmul.h"
#include "train/grad_ops.h"
#include "train/products.h"

namespace dspark {

std::vector<int> sample_anchors(const TrainSequence& seq, int max_anchors, Rng& rng) {
  std::vector<int> candidates;
  for (int i = 0; i + 1 < seq.length; ++i)
    if (seq.loss_mask[i] && seq.loss_mask[i + 1]) candidates.push_back(i);
  const int n = std::min<int>(max_anchors, int(candidates.size()));
  // Partial Fisher-Yates: the first n entries become a uniform sample without replacement.
  for (int i = 0; i < n; ++i) {
    const int j = i + int(rng.next_u64() % uint64_t(candidates.size() - size_t(i)));
    std::swap(candidates[size_t(i)], candidates[size_t(j)]);
  }
  candidates.resize(size_t(n));
  std::sort(candidates.begin(), candidates.end());
  return candidates;
}

namespace {

Param matrix(const std::string& name, int64_t rows, int64_t cols) { return make_param(name, {rows, cols}); }
Param vector_param(const std::string& name, int64_t n) { return make_param(name, {n}); }

TensorView view_of(const Param& p) {
  TensorView t;
  t.name = p.name;
  t.type = DType::F32;
  t.shape = p.shape;
  t.data = p.value.data();
  return t;
}

float* at(std::vector<float>& v, size_t row, size_t width) { return v.data() + row * width; }

}  // namespace

DraftTrainModel::DraftTrainModel(const DSparkConfig& config, const Model& target)
    : config_(config),
      bb_(config_.backbone),
      target_(target),
      d_(config.dim()),
      V_(config.vocab_size()),
      B_(config.block_size),
      heads_(config) {
  validate_dspark_config(config_, "drafter being trained");
  {
    DSparkModel probe;
    probe.config = config_;
    check_target(probe, target);
  }
  const TensorView& lm = target.output;
  if (lm.type == DType::F32) {
    lm_head_ = static_cast<const float*>(lm.data);
  } else {
    lm_head_f32_.resize(size_t(V_) * size_t(d_));
    for (int v = 0; v < V_; ++v) dequantize_row(lm, v, lm_head_f32_.data() + size_t(v) * size_t(d_));
    lm_head_ = lm_head_f32_.data();
  }

  const int m = config_.tap_dim(), qd = bb_.q_dim(), kvd = bb_.kv_dim(), ffn = bb_.ffn_dim, hd = bb_.head_dim;
  fc_ = matrix("fc.weight", d_, m);
  hidden_norm_ = vector_param("hidden_norm.weight", d_);
  norm_ = vector_param("norm.weight", d_);
  for (int l = 0; l < bb_.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    layers_.push_back(Layer{
        vector_param(p + "input_layernorm.weight", d_), matrix(p + "self_attn.q_proj.weight", qd, d_),
        matrix(p + "self_attn.k_proj.weight", kvd, d_), matrix(p + "self_attn.v_proj.weight", kvd, d_),
        matrix(p + "self_attn.o_proj.weight", d_, qd), vector_param(p + "self_attn.q_norm.weight", hd),
        vector_param(p + "self_attn.k_norm.weight", hd),
        vector_param(p + "post_attention_layernorm.weight", d_), matrix(p + "mlp.gate_proj.weight", ffn, d_),
        matrix(p + "mlp.up_proj.weight", ffn, d_), matrix(p + "mlp.down_proj.weight", d_, ffn)});
  }
  acts_.resize(size_t(bb_.n_layers));
}

std::vector<Param*> DraftTrainModel::params() {
  std::vector<Param*> out{&fc_, &hidden_norm_, &norm_};
  for (Layer& l : layers_)
    for (Param* p : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.q_norm, &l.k_norm, &l.ffn_norm, &l.w_gate,
                     &l.w_up, &l.w_down})
      out.push_back(p);
  for (Param* p : heads_.params()) out.push_back(p);
  return out;
}

void DraftTrainModel::init(uint64_t seed) {
  Rng rng(seed);
  for (Param* p : params()) {
    const bool is_vector = p->shape.size() == 1;
    if (is_vector) {  // norm weights 1, biases 0
      std::fill(p->value.begin(), p->value.end(), p->name.ends_with(".bias") ? 0.0f : 1.0f);
      continue;
    }
    for (float& x : p->value) {  // N(0, 0.02) by Box-Muller
      const float u1 = std::max(rng.uniform(), 1e-7f), u2 = rng.uniform();
      x = 0.02f * std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853f * u2);
    }
  }
}

void DraftTrainModel::zero_grad() {
  for (Param* p : params()) std::fill(p->grad.begin(), p->grad.end(), 0.0f);
}

DSparkWeights DraftTrainModel::weights_view() const {
  DSparkWeights w;
  w.fc = view_of(fc_);
  w.hidden_norm = view_of(hidden_norm_);
  w.norm = view_of(norm_);
  for (const Layer& l : layers_) {
    LayerWeights lw;
    lw.attn_norm = view_of(l.attn_norm);
    lw.wq = view_of(l.wq);
    lw.wk = view_of(l.wk);
    lw.wv = view_of(l.wv);
    lw.wo = view_of(l.wo);
    lw.q_norm = view_of(l.q_norm);
    lw.k_norm = view_of(l.k_norm);
    lw.ffn_norm = view_of(l.ffn_norm);
    lw.w_gate = view_of(l.w_gate);
    lw.w_up = view_of(l.w_up);
    lw.w_down = view_of(l.w_down);
    w.layers.push_back(lw);
  }
  heads_.view_weights(w);
  return w;
}

void DraftTrainModel::build_blocks(const TrainSequence& seq, const std::vector<int>& anchors, float gamma) {
  S_ = seq.length;
  N_ = int(anchors.size()) * B_;
  anchors_ = anchors;
  tokens_.resize(size_t(N_));
  positions_.resize(size_t(N_));
  prev_.resize(size_t(N_));
  labels_.resize(size_t(N_));
  weights_.resize(size_t(N_));
  ranges_.resize(size_t(N_));
  kv_positions_.resize(size_t(S_ + N_));
  std::iota(kv_positions_.begin(), kv_positions_.begin() + S_, 0);
  for (size_t j = 0; j < anchors.size(); ++j) {
    const int a = anchors[j];
    if (a < 0 || a >= S_) fail("drafter training: anchor ", a, " outside the sequence of ", S_, " tokens");
    bool valid = true;  // the contiguous prefix of labels inside the sequence and the loss mask
    for (int k = 0; k < B_; ++k) {
      const size_t r = j * size_t(B_) + size_t(k);
      tokens_[r] = k == 0 ? seq.tokens[a] : config_.mask_token_id;
      positions_[r] = a + k;
      kv_positions_[size_t(S_) + r] = a + k;
      const int label_pos = a + k + 1;
      valid = valid && label_pos < S_ && seq.loss_mask[label_pos];
      labels_[r] = valid ? seq.tokens[label_pos] : 0;
      prev_[r] = k == 0 ? seq.tokens[a] : (a + k < S_ ? seq.tokens[a + k] : 0);
      weights_[r] = valid ? std::exp(-float(k) / gamma) : 0.0f;
      const int block_begin = S_ + int(j) * B_;
      ranges_[r] = KeyRanges{0, a, block_begin, block_begin + B_};
    }
  }
}

void DraftTrainModel::forward(const TrainSequence& seq, const std::vector<int>& anchors, ThreadPool& pool) {
  build_blocks(seq, anchors, 4.0f);
  run_forward(seq, pool);
}

void DraftTrainModel::run_forward(const TrainSequence& seq, ThreadPool& pool) {
  const size_t d = size_t(d_);
  // Context: c = RMSNorm_hidden(W_fc f) for every position of the sequence.
  fc_out_.resize(size_t(S_) * d);
  c_.resize(size_t(S_) * d);
  matmul_nt(seq.taps, fc_.w(), S_, d_, config_.tap_dim(), fc_out_.data(), pool);
  rmsnorm_rows(fc_out_.data(), hidden_norm_.w(), S_, d_, bb_.norm_eps, c_.data(), pool);

  // Block inputs: the anchor's and the mask token's embedding rows.
  x0_.resize(size_t(N_) * d);
  for (int r = 0; r < N_; ++r)
    dequantize_row(target_.tok_embeddings, tokens_[size_t(r)], at(x0_, size_t(r), d));

  for (int l = 0; l < bb_.n_layers; ++l) {
    acts_[size_t(l)].x_in = l == 0 ? x0_ : x_last_;
    layer_forward(l, pool);
  }
  if (bb_.n_layers == 0) x_last_ = x0_;
  h_.resize(size_t(N_) * d);
  rmsnorm_rows(x_last_.data(), norm_.w(), N_, d_, bb_.norm_eps, h_.data(), pool);
  U_.resize(size_t(N_) * size_t(V_));
  matmul_nt(h_.data(), lm_head_, N_, V_, d_, U_.data(), pool);
}

void DraftTrainModel::layer_forward(int l, ThreadPool& pool) {
  const Layer& w = layers_[size_t(l)];
  LayerActs& a = acts_[size_t(l)];
  const int N = N_, S = S_, K = S_ + N_, d = d_, qd = bb_.q_dim(), kvd = bb_.kv_dim(), ffn = bb_.ffn_dim;
  const int hd = bb_.head_dim;

  a.xn.resize(size_t(N) * size_t(d));
  rmsnorm_rows(a.x_in.data(), w.attn_norm.w(), N, d, bb_.norm_eps, a.xn.data(), pool);
  // Keys and values come from [context rows ; block rows]; context rows get no input norm.
  a.kv_in.resize(size_t(K) * size_t(d));
  std::copy(c_.begin(), c_.end(), a.kv_in.begin());
  std::copy(a.xn.begin(), a.xn.end(), a.kv_in.begin() + ptrdiff_t(S) * d);

  a.q.resize(size_t(N) * size_t(qd));
  a.kraw.resize(size_t(K) * size_t(kvd));
  a.v.resize(size_t(K) * size_t(kvd));
  matmul_nt(a.xn.data(), w.wq.w(), N, qd, d, a.q.data(), pool);
  matmul_nt(a.kv_in.data(), w.wk.w(), K, kvd, d, a.kraw.data(), pool);
  matmul_nt(a.kv_in.data(), w.wv.w(), K, kvd, d, a.v.data(), pool);

  a.qr.resize(a.q.size());
  a.kr.resize(a.kraw.size());
  rmsnorm_rows(a.q.data(), w.q_norm.w(), N * bb_.n_heads, hd, bb_.norm_eps, a.qr.data(), pool);
  rmsnorm_rows(a.kraw.data(), w.k_norm.w(), K * bb_.n_kv_heads, hd, bb_.norm_eps, a.kr.data(), pool);
  rope_rows(a.qr.data(), positions_.data(), N, bb_.n_heads, hd, bb_.rope_theta, false, pool);
  rope_rows(a.kr.data(), kv_positions_.data(), K, bb_.n_kv_heads, hd, bb_.rope_theta, false, pool);

  const AttentionShape shape{N, K, bb_.n_heads, bb_.n_kv_heads, hd, 1.0f / std::sqrt(float(hd))};
  a.att.resize(size_t(N) * size_t(qd));
  attention_forward(shape, a.qr.data(), a.kr.data(), a.v.data(), ranges_.data(), a.att.data(), pool);

  a.x_mid = a.x_in;
  std::vector<float> o(size_t(N) * size_t(d));
  matmul_nt(a.att.data(), w.wo.w(), N, d, qd, o.data(), pool);
  add_rows(a.x_mid.data(), o.data(), int64_t(o.size()), pool);

  a.hn.resize(size_t(N) * size_t(d));
  rmsnorm_rows(a.x_mid.data(), w.ffn_norm.w(), N, d, bb_.norm_eps, a.hn.data(), pool);
  a.g.resize(size_t(N) * size_t(ffn));
  a.u.resize(a.g.size());
  a.act.resize(a.g.size());
  matmul_nt(a.hn.data(), w.w_gate.w(), N, ffn, d, a.g.data(), pool);
  matmul_nt(a.hn.data(), w.w_up.w(), N, ffn, d, a.u.data(), pool);
  swiglu_forward(a.g.data(), a.u.data(), int64_t(a.g.size()), a.act.data(), pool);
  x_last_ = a.x_mid;
  matmul_nt(a.act.data(), w.w_down.w(), N, d, ffn, o.data(), pool);
  add_rows(x_last_.data(), o.data(), int64_t(o.size()), pool);
}

void DraftTrainModel::target_probs(const TrainSequence& seq, ThreadPool& pool) {
  // p_t for block row (j, k) is the target's distribution at position a_j + k, the one that
  // predicted label k. Rows whose label does not count get zeros.
  const size_t d = size_t(d_), V = size_t(V_);
  std::vector<float> ht(size_t(N_) * d, 0.0f);
  for (int r = 0; r < N_; ++r)
    if (weights_[size_t(r)] > 0)
      std::copy_n(seq.target_hidden + size_t(positions_[size_t(r)]) * d, d, at(ht, size_t(r), d));
  pt_.resize(size_t(N_) * V);
  matmul_nt(ht.data(), lm_head_, N_, V_, d_, pt_.data(), pool);
  pool.parallel_for(N_, 8, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      float* p = pt_.data() + size_t(r) * V;
      if (weights_[size_t(r)] <= 0) {
        std::fill_n(p, V, 0.0f);
        continue;
      }
      const float mx = *std::max_element(p, p + V);
      double sum = 0;
      for (size_t v = 0; v < V; ++v) sum += (p[v] = std::exp(p[v] - mx));
      const float inv = float(1.0 / sum);
      for (size_t v = 0; v < V; ++v) p[v] *= inv;
    }
  });
}

LossTerms DraftTrainModel::forward_backward(const TrainSequence& seq, const std::vector<int>& anchors,
                                            const DraftLossConfig& loss, ThreadPool& pool) {
  build_blocks(seq, anchors, loss.decay_gamma);
  double weight_sum = 0;
  for (float w : weights_) weight_sum += w;
  if (weight_sum <= 0) return LossTerms{};
  run_forward(seq, pool);
  const bool need_pt = loss.weights.l1 > 0 || loss.weights.conf > 0;
  if (need_pt) target_probs(seq, pool);

  const size_t d = size_t(d_);
  dh_.resize(size_t(N_) * d);
  dU_.resize(size_t(N_) * size_t(V_));
  HeadBatch batch;
  batch.n_rows = N_;
  batch.block_size = B_;
  batch.h = h_.data();
  batch.base_logits = U_.data();
  batch.prev = prev_.data();
  batch.labels = labels_.data();
  batch.weights = weights_.data();
  batch.target_probs = need_pt ? pt_.data() : nullptr;
  batch.weight_sum = weight_sum;
  const LossTerms terms = heads_forward_backward(heads_, batch, loss.weights, dh_.data(), dU_.data(), pool);

  // U = h · lm_headᵀ (frozen): dh += dU · lm_head.
  matmul_nn(dU_.data(), lm_head_, N_, d_, V_, dh_.data(), true, pool);
  std::vector<float> dx(size_t(N_) * d);
  rmsnorm_rows_backward(x_last_.data(), norm_.w(), dh_.data(), N_, d_, bb_.norm_eps, dx.data(), norm_.g(),
                        false, pool);

  dc_.assign(size_t(S_) * d, 0.0f);
  for (int l = bb_.n_layers - 1; l >= 0; --l) layer_backward(l, dx, pool);

  // c = RMSNorm_hidden(W_fc f): the taps are the frozen target's, so only weights get gradients.
  std::vector<float> dfc(size_t(S_) * d);
  rmsnorm_rows_backward(fc_out_.data(), hidden_norm_.w(), dc_.data(), S_, d_, bb_.norm_eps, dfc.data(),
                        hidden_norm_.g(), false, pool);
  matmul_tn_add(dfc.data(), seq.taps, S_, d_, config_.tap_dim(), fc_.g(), pool);
  return terms;
}

void DraftTrainModel::layer_backward(int l, std::vector<float>& dx, ThreadPool& pool) {
  Layer& w = layers_[size_t(l)];
  const LayerActs& a = acts_[size_t(l)];
  const int N = N_, S = S_, K = S_ + N_, d = d_, qd = bb_.q_dim(), kvd = bb_.kv_dim(), ffn = bb_.ffn_dim;
  const int hd = bb_.head_dim;

  // MLP: out = x_mid + down(silu(gate(hn)) * up(hn)), hn = RMSNorm_post(x_mid).
  std::vector<float> dact(size_t(N) * size_t(ffn)), dg(dact.size()), du(dact.size());
  matmul_nn(dx.data(), w.w_down.w(), N, ffn, d, dact.data(), false, pool);
  matmul_tn_add(dx.data(), a.act.data(), N, d, ffn, w.w_down.g(), pool);
  swiglu_backward(a.g.data(), a.u.data(), dact.data(), int64_t(dact.size()), dg.data(), du.data(), pool);
  std::vector<float> dhn(size_t(N) * size_t(d));
  matmul_nn(dg.data(), w.w_gate.w(), N, d, ffn, dhn.data(), false, pool);
  matmul_nn(du.data(), w.w_up.w(), N, d, ffn, dhn.data(), true, pool);
  matmul_tn_add(dg.data(), a.hn.data(), N, ffn, d, w.w_gate.g(), pool);
  matmul_tn_add(du.data(), a.hn.data(), N, ffn, d, w.w_up.g(), pool);
  // dx now holds d(x_mid) once the norm's path is added.
  rmsnorm_rows_backward(a.x_mid.data(), w.ffn_norm.w(), dhn.data(), N, d, bb_.norm_eps, dx.data(),
                        w.ffn_norm.g(), true, pool);

  // Attention: x_mid = x_in + o_proj(att).
  std::vector<float> datt(size_t(N) * size_t(qd));
  matmul_nn(dx.data(), w.wo.w(), N, qd, d, datt.data(), false, pool);
  matmul_tn_add(dx.data(), a.att.data(), N, d, qd, w.wo.g(), pool);
  const AttentionShape shape{N, K, bb_.n_heads, bb_.n_kv_heads, hd, 1.0f / std::sqrt(float(hd))};
  std::vector<float> dqr(size_t(N) * size_t(qd)), dkr(size_t(K) * size_t(kvd)), dv(dkr.size());
  attention_backward(shape, a.qr.data(), a.kr.data(), a.v.data(), ranges_.data(), datt.data(), dqr.data(),
                     dkr.data(), dv.data(), pool);
  rope_rows(dqr.data(), positions_.data(), N, bb_.n_heads, hd, bb_.rope_theta, true, pool);
  rope_rows(dkr.data(), kv_positions_.data(), K, bb_.n_kv_heads, hd, bb_.rope_theta, true, pool);
  std::vector<float> dq(dqr.size()), dk(dkr.size());
  rmsnorm_rows_backward(a.q.data(), w.q_norm.w(), dqr.data(), N * bb_.n_heads, hd, bb_.norm_eps, dq.data(),
                        w.q_norm.g(), false, pool);
  rmsnorm_rows_backward(a.kraw.data(), w.k_norm.w(), dkr.data(), K * bb_.n_kv_heads, hd, bb_.norm_eps,
                        dk.data(), w.k_norm.g(), false, pool);

  // Projections: q from xn; k, v from [c ; xn].
  std::vector<float> dkv_in(size_t(K) * size_t(d));
  matmul_nn(dk.data(), w.wk.w(), K, d, kvd, dkv_in.data(), false, pool);
  matmul_nn(dv.data(), w.wv.w(), K, d, kvd, dkv_in.data(), true, pool);
  matmul_tn_add(dk.data(), a.kv_in.data(), K, kvd, d, w.wk.g(), pool);
  matmul_tn_add(dv.data(), a.kv_in.data(), K, kvd, d, w.wv.g(), pool);
  matmul_tn_add(dq.data(), a.xn.data(), N, qd, d, w.wq.g(), pool);
  add_rows(dc_.data(), dkv_in.data(), int64_t(S) * d, pool);
  std::vector<float> dxn(dkv_in.begin() + ptrdiff_t(S) * d, dkv_in.end());
  matmul_nn(dq.data(), w.wq.w(), N, d, qd, dxn.data(), true, pool);
  rmsnorm_rows_backward(a.x_in.data(), w.attn_norm.w(), dxn.data(), N, d, bb_.norm_eps, dx.data(),
                        w.attn_norm.g(), true, pool);
}

}  // namespace dspark

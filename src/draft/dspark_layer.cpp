// One Qwen3 decoder layer of the drafter over the B block tokens (DSPARK.md 1.2-1.3):
//   h = x + o_proj(Attn(RMSNorm_in(x)))
//   y = h + down(silu(gate(RMSNorm_post(h))) * up(RMSNorm_post(h)))
// Attention keys/values = [cached context 0..s-1 ; the block s..s+B-1], no mask.
#include <algorithm>
#include <cmath>

#include "draft/dspark_forward.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace dspark {

namespace {
const float* f32(const TensorView& t) { return static_cast<const float*>(t.data); }
}  // namespace

void DSparkForward::block_attention(int l, int seq, int s) {
  const LayerWeights& w = model_.weights.layers[size_t(l)];
  const int hd = cfg_.head_dim, qd = cfg_.q_dim(), kvd = cfg_.kv_dim();

  for (int t = 0; t < B_; ++t)
    rmsnorm(xb_.data() + size_t(t) * size_t(dim_), x_.data() + size_t(t) * size_t(dim_), f32(w.attn_norm),
            dim_, cfg_.norm_eps);
  matmul(w.wq, xb_.data(), B_, q_.data(), pool_);  // [B, q_dim]
  matmul(w.wk, xb_.data(), B_, k_.data(), pool_);  // [B, kv_dim]
  matmul(w.wv, xb_.data(), B_, v_.data(), pool_);  // [B, kv_dim]

  // Per-head norms, RoPE at the block's own positions s+t; block K/V join the cached context.
  for (int t = 0; t < B_; ++t) {
    const int pos = s + t;
    float* q = q_.data() + size_t(t) * size_t(qd);
    float* k = k_.data() + size_t(t) * size_t(kvd);
    for (int h = 0; h < cfg_.n_heads; ++h) {
      float* qh = q + size_t(h) * size_t(hd);
      rmsnorm(qh, qh, f32(w.q_norm), hd, cfg_.norm_eps);
      rope_halves(qh, hd, pos, cfg_.rope_theta);
    }
    for (int h = 0; h < cfg_.n_kv_heads; ++h) {
      float* kh = k + size_t(h) * size_t(hd);
      rmsnorm(kh, kh, f32(w.k_norm), hd, cfg_.norm_eps);
      rope_halves(kh, hd, pos, cfg_.rope_theta);
    }
    std::copy_n(k, kvd, cache_.key(l, seq, pos));
    std::copy_n(v_.data() + size_t(t) * size_t(kvd), kvd, cache_.value(l, seq, pos));
  }
  cache_.set_length(seq, s + B_);

  // Every (block token, head) attends to all n_keys = s + B positions: bidirectional in the block.
  const int n_keys = s + B_;
  const float scale = 1.0f / std::sqrt(float(hd));
  const int group = cfg_.n_heads / cfg_.n_kv_heads;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / (int64_t(n_keys) * hd * 2));
  pool_.parallel_for(int64_t(B_) * cfg_.n_heads, grain, [&](int64_t begin, int64_t end, int thread) {
    float* scores = scores_[size_t(thread)].data();  // [n_keys]
    for (int64_t job = begin; job < end; ++job) {
      const int t = int(job / cfg_.n_heads), h = int(job % cfg_.n_heads), kvh = h / group;
      const float* q = q_.data() + size_t(t) * size_t(qd) + size_t(h) * size_t(hd);  // [hd]
      for (int p = 0; p < n_keys; ++p) {
        const float* k = cache_.key(l, seq, p) + size_t(kvh) * size_t(hd);
        float dot = 0;
        for (int i = 0; i < hd; ++i) dot += q[i] * k[i];
        scores[p] = dot * scale;
      }
      softmax(scores, n_keys);
      float* o = att_.data() + size_t(t) * size_t(qd) + size_t(h) * size_t(hd);  // [hd]
      std::fill_n(o, hd, 0.0f);
      for (int p = 0; p < n_keys; ++p) {
        const float* v = cache_.value(l, seq, p) + size_t(kvh) * size_t(hd);
        const float a = scores[p];
        for (int i = 0; i < hd; ++i) o[i] += a * v[i];
      }
    }
  });

  matmul(w.wo, att_.data(), B_, out_.data(), pool_);  // [B, q_dim] -> [B, d]
  for (int t = 0; t < B_; ++t)
    add_inplace(x_.data() + size_t(t) * size_t(dim_), out_.data() + size_t(t) * size_t(dim_), dim_);
}

void DSparkForward::block_mlp(int l) {
  const LayerWeights& w = model_.weights.layers[size_t(l)];
  for (int t = 0; t < B_; ++t)
    rmsnorm(xb_.data() + size_t(t) * size_t(dim_), x_.data() + size_t(t) * size_t(dim_), f32(w.ffn_norm),
            dim_, cfg_.norm_eps);
  matmul(w.w_gate, xb_.data(), B_, gate_.data(), pool_);  // [B, ffn_dim]
  matmul(w.w_up, xb_.data(), B_, up_.data(), pool_);      // [B, ffn_dim]
  swiglu(gate_.data(), up_.data(), B_ * cfg_.ffn_dim);
  matmul(w.w_down, gate_.data(), B_, out_.data(), pool_);  // [B, ffn_dim] -> [B, d]
  for (int t = 0; t < B_; ++t)
    add_inplace(x_.data() + size_t(t) * size_t(dim_), out_.data() + size_t(t) * size_t(dim_), dim_);
}

}  // namespace dspark

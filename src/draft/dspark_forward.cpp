// Context absorption and the block driver of the drafter; the decoder layer itself is in
// dspark_layer.cpp.
#include "draft/dspark_forward.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace dspark {

namespace {

const float* f32(const TensorView& t) { return static_cast<const float*>(t.data); }

void expect_matrix(const DSparkModel& m, const TensorView& t, const char* what, int64_t rows, int64_t cols) {
  if (t.empty())
    fail(m.source, ": the drafter has no ", what,
         " (the checkpoint has none: attach the target model with attach_target first)");
  if (t.shape != std::vector<int64_t>{rows, cols})
    fail(m.source, ": ", what, " '", t.name, "' has shape ", shape_str(t.shape), ", expected [", rows, ", ",
         cols, "]");
}

}  // namespace

DSparkForward::DSparkForward(const DSparkModel& model, ThreadPool& pool, int n_seqs, int max_positions)
    : model_(model),
      cfg_(model.config.backbone),
      pool_(pool),
      B_(model.config.block_size),
      dim_(cfg_.dim),
      vocab_(cfg_.vocab_size),
      cache_(cfg_, n_seqs, max_positions) {
  model.validate();
  expect_matrix(model, model.embedding(), "embedding", vocab_, dim_);
  expect_matrix(model, model.output(), "LM head", vocab_, dim_);
  if (max_positions < B_)
    fail(model.source, ": a drafter cache of ", max_positions, " positions cannot hold a block of ", B_);
  const size_t d = size_t(dim_), B = size_t(B_), C = size_t(kChunk);
  ctx_.resize(C * d);
  ctx_k_.resize(C * size_t(cfg_.kv_dim()));
  ctx_v_.resize(C * size_t(cfg_.kv_dim()));
  x_.resize(B * d);
  xb_.resize(B * d);
  out_.resize(B * d);
  h_.resize(B * d);
  q_.resize(B * size_t(cfg_.q_dim()));
  att_.resize(B * size_t(cfg_.q_dim()));
  k_.resize(B * size_t(cfg_.kv_dim()));
  v_.resize(B * size_t(cfg_.kv_dim()));
  gate_.resize(B * size_t(cfg_.ffn_dim));
  up_.resize(B * size_t(cfg_.ffn_dim));
  logits_.resize(B * size_t(vocab_));
  scores_.assign(size_t(pool.size()), std::vector<float>(size_t(max_positions)));
}

void DSparkForward::check_seq(int seq, int extra_positions) const {
  if (seq < 0 || seq >= cache_.n_seqs())
    fail("drafter: no sequence ", seq, " (the drafter cache holds ", cache_.n_seqs(), ")");
  if (extra_positions < 0) fail("drafter: negative number of context rows (", extra_positions, ")");
  const int need = cache_.length(seq) + extra_positions;
  if (need > cache_.capacity())
    fail("drafter: sequence ", seq, " needs ", need, " positions (", cache_.length(seq), " cached + ",
         extra_positions, " new), the drafter cache holds ", cache_.capacity());
}

void DSparkForward::absorb(int seq, const float* taps, int n_rows) {
  check_seq(seq, n_rows);
  if (n_rows > 0 && !taps) fail("drafter: ", n_rows, " context rows but no tap data");
  const size_t width = size_t(model_.config.tap_dim());
  for (int done = 0; done < n_rows; done += kChunk) {
    const int n = std::min(kChunk, n_rows - done);
    absorb_chunk(seq, taps + size_t(done) * width, n, cache_.length(seq));
  }
}

// Context rows [pos0, pos0 + n): shared projection, then per layer only K and V.
void DSparkForward::absorb_chunk(int seq, const float* taps, int n, int pos0) {
  const DSparkWeights& w = model_.weights;
  const int hd = cfg_.head_dim, kvd = cfg_.kv_dim();
  matmul(w.fc, taps, n, ctx_.data(), pool_);  // [n, m*d] -> [n, d]
  for (int i = 0; i < n; ++i) {
    float* c = ctx_.data() + size_t(i) * size_t(dim_);
    rmsnorm(c, c, f32(w.hidden_norm), dim_, cfg_.norm_eps);
  }
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const LayerWeights& lw = w.layers[size_t(l)];
    matmul(lw.wk, ctx_.data(), n, ctx_k_.data(), pool_);  // [n, kv_dim]
    matmul(lw.wv, ctx_.data(), n, ctx_v_.data(), pool_);  // [n, kv_dim]
    for (int i = 0; i < n; ++i) {
      float* k = ctx_k_.data() + size_t(i) * size_t(kvd);
      for (int h = 0; h < cfg_.n_kv_heads; ++h) {
        float* kh = k + size_t(h) * size_t(hd);
        rmsnorm(kh, kh, f32(lw.k_norm), hd, cfg_.norm_eps);
        rope_halves(kh, hd, pos0 + i, cfg_.rope_theta);
      }
      std::copy_n(k, kvd, cache_.key(l, seq, pos0 + i));
      std::copy_n(ctx_v_.data() + size_t(i) * size_t(kvd), kvd, cache_.value(l, seq, pos0 + i));
    }
  }
  cache_.set_length(seq, pos0 + n);
}

void DSparkForward::draft(int seq, const float* pending_taps, int n_pending, int anchor) {
  check_seq(seq, n_pending + B_);  // the block needs B more positions while it runs
  if (anchor < 0 || anchor >= vocab_)
    fail("drafter: anchor token ", anchor, " is outside the vocabulary (", vocab_, ")");
  absorb(seq, pending_taps, n_pending);
  const int s = cache_.length(seq);

  // Block input: the anchor's embedding, then the mask token's (row mask_token_id).
  for (int t = 0; t < B_; ++t)
    dequantize_row(model_.embedding(), t == 0 ? anchor : model_.config.mask_token_id,
                   x_.data() + size_t(t) * size_t(dim_));
  for (int l = 0; l < cfg_.n_layers; ++l) {
    block_attention(l, seq, s);
    block_mlp(l);
  }
  cache_.truncate(seq, s);  // the block's K/V are not context

  for (int t = 0; t < B_; ++t)
    rmsnorm(h_.data() + size_t(t) * size_t(dim_), x_.data() + size_t(t) * size_t(dim_),
            f32(model_.weights.norm), dim_, cfg_.norm_eps);
  matmul(model_.output(), h_.data(), B_, logits_.data(), pool_);  // [B, d] -> [B, V]
}

}  // namespace dspark

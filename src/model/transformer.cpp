#include "model/transformer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace dspark {

namespace {
const float* f32(const TensorView& t) { return static_cast<const float*>(t.data); }
}  // namespace

Transformer::Transformer(const Model& model, ThreadPool& pool) : model_(model), pool_(pool) {
  scores_.resize(size_t(pool.size()));
}

void Transformer::reserve(int n) {
  if (n <= reserved_) return;
  const ModelConfig& c = model_.config;
  const size_t t = size_t(n);
  x_.resize(t * size_t(c.dim));
  xb_.resize(t * size_t(c.dim));
  out_.resize(t * size_t(c.dim));
  q_.resize(t * size_t(c.q_dim()));
  att_.resize(t * size_t(c.q_dim()));
  k_.resize(t * size_t(c.kv_dim()));
  v_.resize(t * size_t(c.kv_dim()));
  gate_.resize(t * size_t(c.ffn_dim));
  up_.resize(t * size_t(c.ffn_dim));
  rope_.resize(t * size_t(c.head_dim));
  reserved_ = n;
}

void Transformer::validate(const Batch& b, const KVCache& cache, const HiddenTaps* taps) const {
  const int vocab = model_.config.vocab_size;
  std::vector<int> next(size_t(cache.n_seqs()));
  for (int s = 0; s < cache.n_seqs(); ++s) next[size_t(s)] = cache.length(s);
  for (int i = 0; i < b.size(); ++i) {
    const int tok = b.tokens[size_t(i)], seq = b.seqs[size_t(i)], pos = b.positions[size_t(i)];
    if (tok < 0 || tok >= vocab)
      fail("batch token ", i, ": id ", tok, " is outside the vocabulary (", vocab, ")");
    if (seq < 0 || seq >= cache.n_seqs()) fail("batch token ", i, ": no sequence ", seq, " in the KV cache");
    if (pos != next[size_t(seq)])
      fail("batch token ", i, ": position ", pos, " does not continue sequence ", seq, " (expected ",
           next[size_t(seq)], ")");
    if (pos >= cache.capacity())
      fail("batch token ", i, ": position ", pos, " exceeds the KV cache capacity of ", cache.capacity());
    ++next[size_t(seq)];
  }
  if (!b.attend_until.empty()) {
    if (int(b.attend_until.size()) != b.size())
      fail("batch: attention ranges for ", b.attend_until.size(), " of ", b.size(), " tokens");
    for (int i = 0; i < b.size(); ++i) {
      const int until = b.attend_until[size_t(i)], pos = b.positions[size_t(i)], seq = b.seqs[size_t(i)];
      if (until < pos || until >= next[size_t(seq)])
        fail("batch token ", i, ": attends up to position ", until, ", outside [", pos, ", ",
             next[size_t(seq)] - 1, "] of sequence ", seq);
    }
  }
  for (int r : b.logit_rows)
    if (r < 0 || r >= b.size()) fail("batch: logit row ", r, " is not a token of the batch");
  if (taps) {
    if (!taps->out && !taps->layers.empty()) fail("hidden taps: no output buffer");
    for (int l : taps->layers)
      if (l < -1 || l >= model_.config.n_layers)
        fail("hidden taps: layer ", l, " does not exist (the model has ", model_.config.n_layers, " layers)");
  }
}

void Transformer::copy_taps(int layer, int n_tokens, const HiddenTaps* taps) {
  if (!taps) return;
  const size_t dim = size_t(model_.config.dim), width = taps->layers.size() * dim;
  for (size_t i = 0; i < taps->layers.size(); ++i) {
    if (taps->layers[i] != layer) continue;
    for (int t = 0; t < n_tokens; ++t)
      std::copy_n(x_.data() + size_t(t) * dim, dim, taps->out + size_t(t) * width + i * dim);
  }
}

void Transformer::forward(const Batch& batch, KVCache& cache, float* logits, const HiddenTaps* taps) {
  validate(batch, cache, taps);
  const ModelConfig& c = model_.config;
  const int T = batch.size();
  if (T == 0) return;
  reserve(T);
  const size_t scores = attention_scratch_floats(c.n_heads, cache.capacity());
  for (auto& s : scores_) s.resize(scores);

  for (int t = 0; t < T; ++t) {
    dequantize_row(model_.tok_embeddings, batch.tokens[size_t(t)], x_.data() + size_t(t) * size_t(c.dim));
    rope_angles(rope_.data() + size_t(t) * size_t(c.head_dim), c.head_dim, batch.positions[size_t(t)],
                c.rope_theta);
  }

  copy_taps(-1, T, taps);
  for (int l = 0; l < c.n_layers; ++l) {
    attention_layer(l, batch, cache);
    ffn_layer(l, T);
    copy_taps(l, T, taps);
  }
  for (int t = 0; t < T; ++t) cache.set_length(batch.seqs[size_t(t)], batch.positions[size_t(t)] + 1);

  // Final norm and the LM head, only for the rows asked for.
  const int n_out = int(batch.logit_rows.size());
  for (int i = 0; i < n_out; ++i)
    rmsnorm(xb_.data() + size_t(i) * size_t(c.dim),
            x_.data() + size_t(batch.logit_rows[size_t(i)]) * size_t(c.dim), f32(model_.output_norm), c.dim,
            c.norm_eps);
  if (taps && taps->final_hidden) std::copy_n(xb_.data(), size_t(n_out) * size_t(c.dim), taps->final_hidden);
  matmul(model_.output, xb_.data(), n_out, logits, pool_);
}

void Transformer::attention_layer(int l, const Batch& batch, KVCache& cache) {
  const ModelConfig& c = model_.config;
  const LayerWeights& w = model_.layers[size_t(l)];
  const int T = batch.size(), hd = c.head_dim, qd = c.q_dim(), kvd = c.kv_dim();

  for (int t = 0; t < T; ++t)
    rmsnorm(xb_.data() + size_t(t) * size_t(c.dim), x_.data() + size_t(t) * size_t(c.dim), f32(w.attn_norm),
            c.dim, c.norm_eps);
  matmul(w.wq, xb_.data(), T, q_.data(), pool_);
  matmul(w.wk, xb_.data(), T, k_.data(), pool_);
  matmul(w.wv, xb_.data(), T, v_.data(), pool_);

  for (int t = 0; t < T; ++t) {
    float* q = q_.data() + size_t(t) * size_t(qd);
    float* k = k_.data() + size_t(t) * size_t(kvd);
    float* v = v_.data() + size_t(t) * size_t(kvd);
    if (c.qkv_bias) {
      add_inplace(q, f32(w.bq), qd);
      add_inplace(k, f32(w.bk), kvd);
      add_inplace(v, f32(w.bv), kvd);
    }
    const int pos = batch.positions[size_t(t)];
    const float* cs = rope_.data() + size_t(t) * size_t(hd);
    for (int h = 0; h < c.n_heads; ++h) {
      float* qh = q + size_t(h) * size_t(hd);
      if (c.qk_norm) rmsnorm(qh, qh, f32(w.q_norm), hd, c.norm_eps);
      if (c.rope_style == RopeStyle::Halves)
        rope_halves(qh, hd, cs);
      else
        rope_adjacent(qh, hd, cs);
    }
    for (int h = 0; h < c.n_kv_heads; ++h) {
      float* kh = k + size_t(h) * size_t(hd);
      if (c.qk_norm) rmsnorm(kh, kh, f32(w.k_norm), hd, c.norm_eps);
      if (c.rope_style == RopeStyle::Halves)
        rope_halves(kh, hd, cs);
      else
        rope_adjacent(kh, hd, cs);
    }
    const int seq = batch.seqs[size_t(t)];
    std::copy_n(k, kvd, cache.key(l, seq, pos));
    std::copy_n(v, kvd, cache.value(l, seq, pos));
  }

  // Each token attends to its sequence's positions 0..pos (or 0..attend_until): causal inside
  // the batch because every token of the batch is already in the cache at its position. A
  // job is one token and a block of its key/value heads: the kernel streams the block's
  // segment of each cached row once for all the query heads that share it. Blocks are as
  // wide as the thread count allows (a single token still gives every thread a couple of
  // jobs); a head's result does not depend on the blocking.
  const int group = c.n_heads / c.n_kv_heads;
  const int kv_per_job = std::clamp(T * c.n_kv_heads / (2 * pool_.size()), 1, c.n_kv_heads);
  const int blocks = (c.n_kv_heads + kv_per_job - 1) / kv_per_job;
  const float scale = 1.0f / std::sqrt(float(hd));
  // Small attention jobs stay together: handing a few hundred multiply-adds to another
  // thread costs more than doing them.
  const int64_t work_per_job = int64_t(cache.length(batch.seqs[0]) + T) * hd * kv_per_job * group * 2;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / work_per_job);
  pool_.parallel_for(int64_t(T) * blocks, grain, [&](int64_t begin, int64_t end, int thread) {
    for (int64_t job = begin; job < end; ++job) {
      const int t = int(job / blocks), kv0 = int(job % blocks) * kv_per_job;
      const int seq = batch.seqs[size_t(t)];
      const size_t first = size_t(t) * size_t(qd) + size_t(kv0 * group) * size_t(hd);
      AttentionArgs a;
      a.q = q_.data() + first;
      a.n_kv = std::min(kv_per_job, c.n_kv_heads - kv0);
      a.group = group;
      a.k = cache.key(l, seq, 0) + size_t(kv0) * size_t(hd);
      a.v = cache.value(l, seq, 0) + size_t(kv0) * size_t(hd);
      a.kv_stride = cache.position_stride();
      a.n_ctx = (batch.attend_until.empty() ? batch.positions[size_t(t)] : batch.attend_until[size_t(t)]) + 1;
      a.head_dim = hd;
      a.scale = scale;
      a.scores = scores_[size_t(thread)].data();
      a.out = att_.data() + first;
      attention(a);
    }
  });

  matmul(w.wo, att_.data(), T, out_.data(), pool_);
  for (int t = 0; t < T; ++t)
    add_inplace(x_.data() + size_t(t) * size_t(c.dim), out_.data() + size_t(t) * size_t(c.dim), c.dim);
}

void Transformer::ffn_layer(int l, int T) {
  const ModelConfig& c = model_.config;
  const LayerWeights& w = model_.layers[size_t(l)];
  for (int t = 0; t < T; ++t)
    rmsnorm(xb_.data() + size_t(t) * size_t(c.dim), x_.data() + size_t(t) * size_t(c.dim), f32(w.ffn_norm),
            c.dim, c.norm_eps);
  matmul(w.w_gate, xb_.data(), T, gate_.data(), pool_);
  matmul(w.w_up, xb_.data(), T, up_.data(), pool_);
  swiglu(gate_.data(), up_.data(), T * c.ffn_dim);
  matmul(w.w_down, gate_.data(), T, out_.data(), pool_);
  for (int t = 0; t < T; ++t)
    add_inplace(x_.data() + size_t(t) * size_t(c.dim), out_.data() + size_t(t) * size_t(c.dim), c.dim);
}

}  // namespace dspark

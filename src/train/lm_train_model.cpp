#include "train/lm_train_model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "train/grad_ops.h"
#include "train/losses.h"
#include "train/products.h"

namespace dspark {

LmTrainModel::LmTrainModel(const ModelConfig& config) : cfg_(config) {
  const ModelConfig& c = cfg_;
  if (c.qkv_bias) fail("language-model training: attention biases are not supported");
  if (c.rope_style != RopeStyle::Halves) fail("language-model training: only rotate-half RoPE is supported");
  if (c.dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.head_dim <= 0 ||
      c.ffn_dim <= 0 || c.vocab_size <= 0 || c.max_seq_len <= 0)
    fail("language-model training: every size must be positive (dim ", c.dim, ", layers ", c.n_layers,
         ", heads ", c.n_heads, "/", c.n_kv_heads, ", head dim ", c.head_dim, ", ffn ", c.ffn_dim,
         ", vocabulary ", c.vocab_size, ", context ", c.max_seq_len, ")");
  if (c.n_heads % c.n_kv_heads != 0)
    fail("language-model training: ", c.n_heads, " heads do not divide into ", c.n_kv_heads, " KV heads");
  if (c.head_dim % 2 != 0) fail("language-model training: head dim ", c.head_dim, " must be even for RoPE");
  embed_ = make_param("model.embed_tokens.weight", {c.vocab_size, c.dim});
  norm_ = make_param("model.norm.weight", {c.dim});
  if (!c.tied_embeddings) output_ = make_param("lm_head.weight", {c.vocab_size, c.dim});
  layers_.reserve(size_t(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) layers_.emplace_back(cfg_, "model.layers." + std::to_string(l) + ".");
  x_.resize(size_t(c.n_layers) + 1);
}

std::vector<Param*> LmTrainModel::params() {
  std::vector<Param*> out{&embed_};
  for (DecoderLayerTrain& l : layers_)
    for (Param* p : l.params()) out.push_back(p);
  out.push_back(&norm_);
  if (!output_.empty()) out.push_back(&output_);
  return out;
}

int64_t LmTrainModel::parameter_count() {
  int64_t n = 0;
  for (Param* p : params()) n += p->size();
  return n;
}

void LmTrainModel::init(uint64_t seed) {
  Rng rng(seed);
  const float residual_scale = 1.0f / std::sqrt(2.0f * float(cfg_.n_layers));
  for (Param* p : params()) {
    if (p->shape.size() == 1) {
      std::fill(p->value.begin(), p->value.end(), 1.0f);
      continue;
    }
    const bool residual = p->name.ends_with("o_proj.weight") || p->name.ends_with("down_proj.weight");
    const float std = 0.02f * (residual ? residual_scale : 1.0f);
    for (float& x : p->value) {  // Box-Muller
      const float u1 = std::max(rng.uniform(), 1e-7f), u2 = rng.uniform();
      x = std * std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853f * u2);
    }
  }
}

void LmTrainModel::zero_grad() {
  for (Param* p : params()) std::fill(p->grad.begin(), p->grad.end(), 0.0f);
}

double LmTrainModel::forward_backward(const int* tokens, int n_seqs, int length, ThreadPool& pool) {
  return run(tokens, n_seqs, length, true, pool);
}

double LmTrainModel::loss(const int* tokens, int n_seqs, int length, ThreadPool& pool) {
  return run(tokens, n_seqs, length, false, pool);
}

double LmTrainModel::run(const int* tokens, int n_seqs, int length, bool backward, ThreadPool& pool) {
  const ModelConfig& c = cfg_;
  if (n_seqs <= 0 || length <= 0) fail("language-model training: an empty batch");
  if (length > c.max_seq_len)
    fail("language-model training: sequences of ", length, " tokens exceed the context of ", c.max_seq_len);
  const int N = n_seqs * length, d = c.dim, V = c.vocab_size;
  inputs_.resize(size_t(N));
  targets_.resize(size_t(N));
  positions_.resize(size_t(N));
  ranges_.resize(size_t(N));
  for (int s = 0; s < n_seqs; ++s)
    for (int i = 0; i < length; ++i) {
      const size_t r = size_t(s) * size_t(length) + size_t(i);
      const int* seq = tokens + size_t(s) * size_t(length + 1);
      for (int t : {seq[i], seq[i + 1]})
        if (t < 0 || t >= V) fail("language-model training: token ", t, " outside the vocabulary of ", V);
      inputs_[r] = seq[i];
      targets_[r] = seq[i + 1];
      positions_[r] = i;
      ranges_[r] = KeyRanges{s * length, s * length + i + 1, 0, 0};  // causal, within its own sequence
    }

  // Forward.
  std::vector<float>& x0 = x_[0];
  x0.resize(size_t(N) * size_t(d));
  for (int r = 0; r < N; ++r)
    std::copy_n(embed_.w() + size_t(inputs_[size_t(r)]) * size_t(d), d, x0.data() + size_t(r) * size_t(d));
  LayerBatch batch;
  batch.n_rows = N;
  batch.positions = positions_.data();
  batch.key_positions = positions_.data();
  batch.ranges = ranges_.data();
  for (int l = 0; l < c.n_layers; ++l) {
    x_[size_t(l) + 1].resize(x0.size());
    layers_[size_t(l)].forward(batch, x_[size_t(l)].data(), x_[size_t(l) + 1].data(), pool);
  }
  h_.resize(x0.size());
  rmsnorm_rows(x_.back().data(), norm_.w(), N, d, c.norm_eps, h_.data(), pool);
  const Param& out = output_.empty() ? embed_ : output_;
  logits_.resize(size_t(N) * size_t(V));
  matmul_nt(h_.data(), out.w(), N, V, d, logits_.data(), pool);

  // Cross-entropy; with backward the logits become their gradient (p - onehot) / N in place.
  std::vector<double> row_loss(static_cast<size_t>(N));
  pool.parallel_for(N, 4, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      float* l = logits_.data() + size_t(r) * size_t(V);
      const int target = targets_[size_t(r)];
      const float target_logit = l[target];
      row_loss[size_t(r)] = softmax_lse(l, V, l) - target_logit;
      if (!backward) continue;
      l[target] -= 1.0f;
      const float inv = 1.0f / float(N);
      for (int v = 0; v < V; ++v) l[v] *= inv;
    }
  });
  double loss = 0;
  for (double x : row_loss) loss += x;
  loss /= N;
  if (!backward) return loss;

  // Backward: logits = h · outᵀ.
  Param& out_param = output_.empty() ? embed_ : output_;
  std::vector<float> dh(x0.size()), dx(x0.size());
  matmul_nn(logits_.data(), out_param.w(), N, d, V, dh.data(), false, pool);
  matmul_tn_add(logits_.data(), h_.data(), N, V, d, out_param.g(), pool);
  rmsnorm_rows_backward(x_.back().data(), norm_.w(), dh.data(), N, d, c.norm_eps, dx.data(), norm_.g(), false,
                        pool);
  for (int l = c.n_layers - 1; l >= 0; --l) layers_[size_t(l)].backward(dx.data(), dx.data(), nullptr, pool);
  // Embedding rows: each row's gradient goes to its token's row (in row order: deterministic).
  for (int r = 0; r < N; ++r) {
    float* g = embed_.g() + size_t(inputs_[size_t(r)]) * size_t(d);
    const float* src = dx.data() + size_t(r) * size_t(d);
    for (int j = 0; j < d; ++j) g[j] += src[j];
  }
  return loss;
}

Model LmTrainModel::model_view(const GenerationTokens& tokens) const {
  Model m;
  m.config = cfg_;
  m.tokens = tokens;
  m.format = "training";
  m.tok_embeddings = view_of(embed_);
  for (const DecoderLayerTrain& l : layers_) m.layers.push_back(l.weights_view());
  m.output_norm = view_of(norm_);
  m.output = output_.empty() ? m.tok_embeddings : view_of(output_);
  m.validate();
  return m;
}

}  // namespace dspark

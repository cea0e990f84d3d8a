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

  fc_ = make_param("fc.weight", {d_, config_.tap_dim()});
  hidden_norm_ = make_param("hidden_norm.weight", {d_});
  norm_ = make_param("norm.weight", {d_});
  layers_.reserve(size_t(bb_.n_layers));
  for (int l = 0; l < bb_.n_layers; ++l) layers_.emplace_back(bb_, "layers." + std::to_string(l) + ".");
  x_.resize(size_t(bb_.n_layers) + 1);
}

std::vector<Param*> DraftTrainModel::params() {
  std::vector<Param*> out{&fc_, &hidden_norm_, &norm_};
  for (DecoderLayerTrain& l : layers_)
    for (Param* p : l.params()) out.push_back(p);
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
  for (const DecoderLayerTrain& l : layers_) w.layers.push_back(l.weights_view());
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
  U_.resize(size_t(N_) * size_t(V_));
  matmul_nt(h_.data(), lm_head_, N_, V_, d_, U_.data(), pool);
}

void DraftTrainModel::run_forward(const TrainSequence& seq, ThreadPool& pool) {
  const size_t d = size_t(d_);
  // Context: c = RMSNorm_hidden(W_fc f) for every position of the sequence.
  fc_out_.resize(size_t(S_) * d);
  c_.resize(size_t(S_) * d);
  matmul_nt(seq.taps, fc_.w(), S_, d_, config_.tap_dim(), fc_out_.data(), pool);
  rmsnorm_rows(fc_out_.data(), hidden_norm_.w(), S_, d_, bb_.norm_eps, c_.data(), pool);

  // Block inputs: the anchor's and the mask token's embedding rows.
  std::vector<float>& x0 = x_[0];
  x0.resize(size_t(N_) * d);
  for (int r = 0; r < N_; ++r)
    dequantize_row(target_.tok_embeddings, tokens_[size_t(r)], at(x0, size_t(r), d));

  LayerBatch batch;
  batch.n_rows = N_;
  batch.n_extra = S_;
  batch.extra = c_.data();
  batch.positions = positions_.data();
  batch.key_positions = kv_positions_.data();
  batch.ranges = ranges_.data();
  for (int l = 0; l < bb_.n_layers; ++l) {
    x_[size_t(l) + 1].resize(size_t(N_) * d);
    layers_[size_t(l)].forward(batch, x_[size_t(l)].data(), x_[size_t(l) + 1].data(), pool);
  }
  const std::vector<float>& x_last = x_.back();
  h_.resize(size_t(N_) * d);
  rmsnorm_rows(x_last.data(), norm_.w(), N_, d_, bb_.norm_eps, h_.data(), pool);
}

void DraftTrainModel::target_probs(const TrainSequence& seq, int r0, int r1, ThreadPool& pool) {
  // p_t for block row (j, k) is the target's distribution at position a_j + k, the one that
  // predicted label k. Rows whose label does not count get zeros.
  const size_t d = size_t(d_), V = size_t(V_), n = size_t(r1 - r0);
  std::vector<float> ht(n * d, 0.0f);
  for (int r = r0; r < r1; ++r)
    if (weights_[size_t(r)] > 0)
      std::copy_n(seq.target_hidden + size_t(positions_[size_t(r)]) * d, d, at(ht, size_t(r - r0), d));
  pt_.resize(n * V);
  matmul_nt(ht.data(), lm_head_, int(n), V_, d_, pt_.data(), pool);
  pool.parallel_for(int64_t(n), 8, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      float* p = pt_.data() + size_t(i) * V;
      if (weights_[size_t(r0 + i)] <= 0) {
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

  // The vocabulary-sized rows (U, p_t and their gradient) are made a chunk of blocks at a
  // time, so memory stays bounded at large vocabularies; the losses are weighted means over
  // the whole sequence (weight_sum), so the chunks' terms and gradients simply add up.
  const size_t d = size_t(d_);
  const int chunk_blocks = int(std::max<int64_t>(1, vocab_chunk_floats / (int64_t(V_) * B_)));
  dh_.resize(size_t(N_) * d);
  LossTerms terms;
  for (int r0 = 0; r0 < N_; r0 += chunk_blocks * B_) {
    const int r1 = std::min(N_, r0 + chunk_blocks * B_), n = r1 - r0;
    U_.resize(size_t(n) * size_t(V_));
    dU_.resize(U_.size());
    matmul_nt(h_.data() + size_t(r0) * d, lm_head_, n, V_, d_, U_.data(), pool);
    if (need_pt) target_probs(seq, r0, r1, pool);
    HeadBatch batch;
    batch.n_rows = n;
    batch.block_size = B_;
    batch.h = h_.data() + size_t(r0) * d;
    batch.base_logits = U_.data();
    batch.prev = prev_.data() + r0;
    batch.labels = labels_.data() + r0;
    batch.weights = weights_.data() + r0;
    batch.target_probs = need_pt ? pt_.data() : nullptr;
    batch.weight_sum = weight_sum;
    const LossTerms t =
        heads_forward_backward(heads_, batch, loss.weights, dh_.data() + size_t(r0) * d, dU_.data(), pool);
    terms.ce += t.ce;
    terms.l1 += t.l1;
    terms.conf += t.conf;
    terms.total += t.total;
    // U = h · lm_headᵀ (frozen): dh += dU · lm_head.
    matmul_nn(dU_.data(), lm_head_, n, d_, V_, dh_.data() + size_t(r0) * d, true, pool);
  }
  std::vector<float> dx(size_t(N_) * d);
  rmsnorm_rows_backward(x_.back().data(), norm_.w(), dh_.data(), N_, d_, bb_.norm_eps, dx.data(), norm_.g(),
                        false, pool);

  dc_.assign(size_t(S_) * d, 0.0f);
  for (int l = bb_.n_layers - 1; l >= 0; --l)
    layers_[size_t(l)].backward(dx.data(), dx.data(), dc_.data(), pool);

  // c = RMSNorm_hidden(W_fc f): the taps are the frozen target's, so only weights get gradients.
  std::vector<float> dfc(size_t(S_) * d);
  rmsnorm_rows_backward(fc_out_.data(), hidden_norm_.w(), dc_.data(), S_, d_, bb_.norm_eps, dfc.data(),
                        hidden_norm_.g(), false, pool);
  matmul_tn_add(dfc.data(), seq.taps, S_, d_, config_.tap_dim(), fc_.g(), pool);
  return terms;
}

}  // namespace dspark

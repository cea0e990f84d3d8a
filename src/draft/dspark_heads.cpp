#include "draft/dspark_heads.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace dspark {

namespace {
const float* f32(const TensorView& t) { return static_cast<const float*>(t.data); }
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
}  // namespace

DSparkHeads::DSparkHeads(const DSparkModel& model, ThreadPool& pool)
    : model_(model),
      pool_(pool),
      d_(model.config.dim()),
      r_(model.config.markov_rank),
      V_(model.config.vocab_size()) {
  model.validate();
  e_.resize(size_t(r_));
  z_.resize(size_t(2 * r_ + d_));
  gco_.resize(size_t(3 * r_));
  u_.resize(size_t(r_));
  bias_.resize(size_t(V_));
}

void DSparkHeads::check_token(int token) const {
  if (token < 0 || token >= V_)
    fail("drafter heads: previous token ", token, " is outside the vocabulary (", V_, ")");
}

const float* DSparkHeads::w1_row(int token) {
  dequantize_row(model_.weights.markov_w1, token, e_.data());
  return e_.data();
}

void DSparkHeads::markov_bias(const float* h_k, int prev_token, float* state, float* bias) {
  check_token(prev_token);
  const DSparkWeights& w = model_.weights;
  const size_t r = size_t(r_), d = size_t(d_);
  switch (markov_type()) {
    case MarkovHead::None:
      std::fill_n(bias, V_, 0.0f);
      return;
    case MarkovHead::Vanilla:
      matmul(w.markov_w2, w1_row(prev_token), 1, bias, pool_);  // [V, r] · [r]
      return;
    case MarkovHead::Gated: {
      const float* e = w1_row(prev_token);
      std::copy_n(h_k, d, z_.data());  // z = [h ; e]  [d + r]
      std::copy_n(e, r, z_.data() + d);
      matmul(w.gate_proj, z_.data(), 1, gco_.data(), pool_);  // [r, d + r] · [d + r]
      for (size_t i = 0; i < r; ++i) u_[i] = sigmoid(gco_[i] + f32(w.gate_bias)[i]) * e[i];
      matmul(w.markov_w2, u_.data(), 1, bias, pool_);
      return;
    }
    case MarkovHead::Rnn: {
      if (!state) fail("drafter heads: the RNN head needs its state vector");
      std::copy_n(state, r, z_.data());  // z = [s ; e ; h]  [2r + d]
      std::copy_n(w1_row(prev_token), r, z_.data() + r);
      std::copy_n(h_k, d, z_.data() + 2 * r);
      matmul(w.joint_proj, z_.data(), 1, gco_.data(), pool_);  // [3r, 2r + d] · [2r + d]
      add_inplace(gco_.data(), f32(w.joint_bias), 3 * r_);
      const float* g = gco_.data();
      const float* c = g + r;
      const float* o = c + r;
      for (size_t i = 0; i < r; ++i) {
        const float keep = sigmoid(g[i]);
        state[i] = keep * state[i] + (1.0f - keep) * std::tanh(c[i]);
        u_[i] = std::tanh(o[i]);
      }
      matmul(w.markov_w2, u_.data(), 1, bias, pool_);
      return;
    }
  }
}

void DSparkHeads::add_markov_bias(const float* h_k, int prev_token, float* state, float* logits) {
  if (!has_markov()) return;
  markov_bias(h_k, prev_token, state, bias_.data());
  add_inplace(logits, bias_.data(), V_);
}

float DSparkHeads::confidence_logit(const float* h_k, int prev_token) {
  if (!has_confidence())
    fail(model_.source, ": this drafter has no confidence head (enable_confidence_head false)");
  const DSparkWeights& w = model_.weights;
  std::copy_n(h_k, d_, z_.data());  // [h ; W1[x_{k-1}]]  [d + r], or [h]  [d]
  if (model_.config.confidence_with_markov) {
    check_token(prev_token);
    std::copy_n(w1_row(prev_token), r_, z_.data() + d_);
  }
  float logit = 0;
  matmul(w.confidence, z_.data(), 1, &logit, pool_);  // [1, d + r] · [d + r]
  return logit + f32(w.confidence_bias)[0];
}

}  // namespace dspark

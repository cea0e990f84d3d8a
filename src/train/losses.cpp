#include "train/losses.h"

#include <algorithm>
#include <cmath>

namespace dspark {

namespace {

// Row loops are written over kLanes independent accumulators so that the compiler turns
// them into vector code without reassociating anything itself; sums are kept in float
// within blocks of kBlock values and in double across blocks.
constexpr int kLanes = 8;
constexpr int kBlock = 512;

template <class F>
double blocked_sum(int n, F&& f) {
  double total = 0;
  for (int b0 = 0; b0 < n; b0 += kBlock) {
    const int b1 = std::min(n, b0 + kBlock);
    float acc[kLanes] = {};
    int i = b0;
    for (; i + kLanes <= b1; i += kLanes)
      for (int j = 0; j < kLanes; ++j) acc[j] += f(i + j);
    float block = 0;
    for (; i < b1; ++i) block += f(i);
    for (int j = 0; j < kLanes; ++j) block += acc[j];
    total += block;
  }
  return total;
}

float max_of(const float* x, int n) {
  float m[kLanes];
  std::fill_n(m, kLanes, x[0]);
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) m[j] = std::max(m[j], x[i + j]);
  for (; i < n; ++i) m[0] = std::max(m[0], x[i]);
  return *std::max_element(m, m + kLanes);
}

// sign(p - q) as -1, 0 or 1, without a branch.
inline float sign_of_difference(float p, float q) { return float(p > q) - float(p < q); }

}  // namespace

double softmax_lse(const float* l, int n, float* p) {
  const float m = max_of(l, n);
  for (int i = 0; i < n; ++i) p[i] = std::exp(l[i] - m);
  const double sum = blocked_sum(n, [&](int i) { return p[i]; });
  const float inv = float(1.0 / sum);
  for (int i = 0; i < n; ++i) p[i] *= inv;
  return double(m) + std::log(sum);
}

double l1_distance(const float* p, const float* q, int n) {
  return blocked_sum(n, [&](int i) { return std::fabs(p[i] - q[i]); });
}

float confidence_target(double l1) { return float(std::clamp(1.0 - 0.5 * l1, 0.0, 1.0)); }

double bce_with_logit(float x, float target) {
  // softplus(x) = max(x, 0) + log(1 + exp(-|x|)) never overflows.
  const double xd = x;
  return std::max(xd, 0.0) + std::log1p(std::exp(-std::fabs(xd))) - double(target) * xd;
}

void logits_grad(const float* p, const float* q, int label, int n, float ce, float l1, float* g) {
  if (l1 == 0.0f) {
    for (int i = 0; i < n; ++i) g[i] = ce * p[i];
  } else {
    // s_i = sign(p_i - q_i); J^T s = p ⊙ (s - Σ_j p_j s_j).
    const float mean = float(blocked_sum(n, [&](int i) { return p[i] * sign_of_difference(p[i], q[i]); }));
    for (int i = 0; i < n; ++i) g[i] = p[i] * (ce + l1 * (sign_of_difference(p[i], q[i]) - mean));
  }
  g[label] -= ce;
}

}  // namespace dspark

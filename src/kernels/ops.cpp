#include "kernels/ops.h"

#include <algorithm>
#include <cmath>

namespace dspark {

void rmsnorm(float* out, const float* x, const float* w, int n, float eps) {
  double ss = 0;  // double: the norm of a wide residual row is sensitive to rounding
  for (int i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const float scale = float(1.0 / std::sqrt(ss / n + eps));
  for (int i = 0; i < n; ++i) out[i] = w[i] * (x[i] * scale);
}

namespace {
// Angle of pair i at position pos, computed in double so long contexts stay accurate.
inline void rope_angle(int i, int head_dim, int pos, float theta, float* c, float* s) {
  const double freq = std::pow(double(theta), -2.0 * i / head_dim);
  const double a = double(pos) * freq;
  *c = float(std::cos(a));
  *s = float(std::sin(a));
}
}  // namespace

void rope_halves(float* v, int head_dim, int pos, float theta) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    float c, s;
    rope_angle(i, head_dim, pos, theta, &c, &s);
    const float a = v[i], b = v[i + half];
    v[i] = a * c - b * s;
    v[i + half] = a * s + b * c;
  }
}

void rope_adjacent(float* v, int head_dim, int pos, float theta) {
  for (int i = 0; i < head_dim / 2; ++i) {
    float c, s;
    rope_angle(i, head_dim, pos, theta, &c, &s);
    const float a = v[2 * i], b = v[2 * i + 1];
    v[2 * i] = a * c - b * s;
    v[2 * i + 1] = a * s + b * c;
  }
}

void rope_angles(float* cs, int head_dim, int pos, float theta) {
  for (int i = 0; i < head_dim / 2; ++i) rope_angle(i, head_dim, pos, theta, &cs[2 * i], &cs[2 * i + 1]);
}

void rope_halves(float* v, int head_dim, const float* cs) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const float c = cs[2 * i], s = cs[2 * i + 1];
    const float a = v[i], b = v[i + half];
    v[i] = a * c - b * s;
    v[i + half] = a * s + b * c;
  }
}

void rope_adjacent(float* v, int head_dim, const float* cs) {
  for (int i = 0; i < head_dim / 2; ++i) {
    const float c = cs[2 * i], s = cs[2 * i + 1];
    const float a = v[2 * i], b = v[2 * i + 1];
    v[2 * i] = a * c - b * s;
    v[2 * i + 1] = a * s + b * c;
  }
}

void softmax(float* x, int n) {
  const float mx = *std::max_element(x, x + n);
  float sum = 0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu(float* gate, const float* up, int n) {
  for (int i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace dspark

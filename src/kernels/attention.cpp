#include "kernels/attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/attention_kernels.h"
#include "kernels/isa.h"

namespace dspark {

namespace kernels {

// The reference: one query head at a time, every sum in index order.
void attention_scalar(const AttentionArgs& a) {
  const int hd = a.head_dim;
  for (int h = 0; h < a.n_kv * a.group; ++h) {
    const float* q = a.q + size_t(h) * size_t(hd);
    const float* k = a.k + (h / a.group) * hd;
    const float* v = a.v + (h / a.group) * hd;
    float* s = scores_row(a, h);
    for (int p = 0; p < a.n_ctx; ++p) {
      const float* kp = k + p * a.kv_stride;
      float dot = 0;
      for (int i = 0; i < hd; ++i) dot += q[i] * kp[i];
      s[p] = dot * a.scale;
    }
    const float mx = *std::max_element(s, s + a.n_ctx);
    float sum = 0;
    for (int p = 0; p < a.n_ctx; ++p) {
      s[p] = std::exp(s[p] - mx);
      sum += s[p];
    }
    const float inv = 1.0f / sum;
    for (int p = 0; p < a.n_ctx; ++p) s[p] *= inv;
    float* o = a.out + size_t(h) * size_t(hd);
    std::fill_n(o, hd, 0.0f);
    for (int p = 0; p < a.n_ctx; ++p) {
      const float* vp = v + p * a.kv_stride;
      for (int i = 0; i < hd; ++i) o[i] += s[p] * vp[i];
    }
  }
}

}  // namespace kernels

void attention(const AttentionArgs& args) {
  switch (kernel_isa()) {
    case Isa::Avx512:
      return kernels::attention_avx512(args);
    case Isa::Avx2:
      return kernels::attention_avx2(args);
    case Isa::Scalar:
      break;
  }
  kernels::attention_scalar(args);
}

}  // namespace dspark

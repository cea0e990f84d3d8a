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
  for (int g = 0; g < a.n_q; ++g) {
    const float* q = a.q + size_t(g) * size_t(hd);
    float* s = scores_row(a, g);
    for (int p = 0; p < a.n_ctx; ++p) {
      const float* k = a.k + p * a.kv_stride;
      float dot = 0;
      for (int i = 0; i < hd; ++i) dot += q[i] * k[i];
      s[p] = dot * a.scale;
    }
    const float mx = *std::max_element(s, s + a.n_ctx);
    float sum = 0;
    for (int p = 0; p < a.n_ctx; ++p) {
      s[p] = std::exp(s[p] - mx);
      sum += s[p];
    }
    float* o = a.out + size_t(g) * size_t(hd);
    std::fill_n(o, hd, 0.0f);
    for (int p = 0; p < a.n_ctx; ++p) {
      const float* v = a.v + p * a.kv_stride;
      for (int i = 0; i < hd; ++i) o[i] += s[p] * v[i];
    }
    const float inv = 1.0f / sum;
    for (int i = 0; i < hd; ++i) o[i] *= inv;
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

// AVX2 attention kernel (with FMA): the contract is in attention.h, the structure is
// attention_avx512.cpp's with 8 lanes and 16 registers. A head size that is not a multiple
// of 8 uses masked loads and stores for its last vector.
#include <immintrin.h>

#include <algorithm>

#include "kernels/attention_kernels.h"

#define DSPARK_AVX2 __attribute__((target("avx2,fma")))
#define DSPARK_AVX2_INLINE DSPARK_AVX2 inline __attribute__((always_inline))

namespace dspark::kernels {

namespace {

constexpr int kLanes = 8;
constexpr int kMaxHeads = 4;
constexpr int kPrefetchRows = 8;  // see attention_avx512.cpp
constexpr int kTileRows = 8;

// All-ones in the lanes below n.
DSPARK_AVX2_INLINE __m256i lanes_below(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

DSPARK_AVX2_INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

DSPARK_AVX2_INLINE float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

DSPARK_AVX2_INLINE void prefetch_row(const float* row, int n) {
  for (int i = 0; i < n; i += 64 / int(sizeof(float)))
    _mm_prefetch(reinterpret_cast<const char*>(row + i), _MM_HINT_T0);
}

// exp(x) for x <= 0, as in attention_avx512.cpp; 2^n is built in the exponent bits.
DSPARK_AVX2_INLINE __m256 exp_nonpositive(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 e = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i pow2 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(e, _mm256_castsi256_ps(pow2));
}

template <int NG>
DSPARK_AVX2_INLINE void scores(const AttentionArgs& a, int g0) {
  const int hd = a.head_dim, block = a.n_kv * hd;
  const int whole = hd - hd % kLanes;
  const __m256i tail = lanes_below(hd % kLanes);
  for (int p = 0; p < a.n_ctx; ++p) {
    const float* row = a.k + p * a.kv_stride;
    if (p + kPrefetchRows < a.n_ctx) prefetch_row(row + kPrefetchRows * a.kv_stride, block);
    for (int j = 0; j < a.n_kv; ++j) {
      const float* k = row + j * hd;
      const int h0 = j * a.group + g0;
      const float* q = a.q + size_t(h0) * size_t(hd);
      __m256 acc[NG];
      for (int g = 0; g < NG; ++g) acc[g] = _mm256_setzero_ps();
      for (int i = 0; i < whole; i += kLanes) {
        const __m256 kv = _mm256_loadu_ps(k + i);
        for (int g = 0; g < NG; ++g) acc[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * hd + i), kv, acc[g]);
      }
      if (whole < hd) {
        const __m256 kv = _mm256_maskload_ps(k + whole, tail);
        for (int g = 0; g < NG; ++g)
          acc[g] = _mm256_fmadd_ps(_mm256_maskload_ps(q + g * hd + whole, tail), kv, acc[g]);
      }
      for (int g = 0; g < NG; ++g) scores_row(a, h0 + g)[p] = hsum(acc[g]) * a.scale;
    }
  }
}

DSPARK_AVX2_INLINE void softmax(float* s, int n) {
  const int whole = n - n % kLanes;
  const __m256i tail = lanes_below(n % kLanes);
  const __m256 tail_ps = _mm256_castsi256_ps(tail);
  __m256 mx = _mm256_set1_ps(-__builtin_inff());
  for (int p = 0; p < whole; p += kLanes) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + p));
  if (whole < n) mx = _mm256_blendv_ps(mx, _mm256_max_ps(mx, _mm256_maskload_ps(s + whole, tail)), tail_ps);
  const __m256 m = _mm256_set1_ps(hmax(mx));
  __m256 sum = _mm256_setzero_ps();
  for (int p = 0; p < whole; p += kLanes) {
    const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(s + p), m));
    _mm256_storeu_ps(s + p, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (whole < n) {
    const __m256 e =
        _mm256_and_ps(exp_nonpositive(_mm256_sub_ps(_mm256_maskload_ps(s + whole, tail), m)), tail_ps);
    _mm256_maskstore_ps(s + whole, tail, e);
    sum = _mm256_add_ps(sum, e);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / hsum(sum));
  for (int p = 0; p < whole; p += kLanes) _mm256_storeu_ps(s + p, _mm256_mul_ps(_mm256_loadu_ps(s + p), inv));
  if (whole < n)
    _mm256_maskstore_ps(s + whole, tail, _mm256_mul_ps(_mm256_maskload_ps(s + whole, tail), inv));
}

template <int NG, int NV>
DSPARK_AVX2_INLINE void weighted_values(const AttentionArgs& a, int g0, int p0, int p1) {
  const int hd = a.head_dim;
  for (int j = 0; j < a.n_kv; ++j) {
    const int h0 = j * a.group + g0;
    const float* s[NG];
    for (int g = 0; g < NG; ++g) s[g] = scores_row(a, h0 + g);
    for (int c = 0; c < hd; c += NV * kLanes) {
      __m256i m[NV];
      for (int i = 0; i < NV; ++i) m[i] = lanes_below(hd - c - i * kLanes);
      const bool full = hd - c >= NV * kLanes;
      __m256 acc[NG][NV];
      for (int g = 0; g < NG; ++g)
        for (int i = 0; i < NV; ++i)
          acc[g][i] = _mm256_maskload_ps(a.out + size_t(h0 + g) * size_t(hd) + c + i * kLanes, m[i]);
      const float* v = a.v + p0 * a.kv_stride + j * hd + c;
      for (int p = p0; p < p1; ++p, v += a.kv_stride) {
        __m256 vv[NV];
        for (int i = 0; i < NV; ++i)
          vv[i] = full ? _mm256_loadu_ps(v + i * kLanes) : _mm256_maskload_ps(v + i * kLanes, m[i]);
        for (int g = 0; g < NG; ++g) {
          const __m256 e = _mm256_broadcast_ss(s[g] + p);
          for (int i = 0; i < NV; ++i) acc[g][i] = _mm256_fmadd_ps(e, vv[i], acc[g][i]);
        }
      }
      for (int g = 0; g < NG; ++g)
        for (int i = 0; i < NV; ++i)
          _mm256_maskstore_ps(a.out + size_t(h0 + g) * size_t(hd) + c + i * kLanes, m[i], acc[g][i]);
    }
  }
}

template <int NG>
DSPARK_AVX2 void heads(const AttentionArgs& a, int g0) {
  scores<NG>(a, g0);
  const int hd = a.head_dim;
  for (int j = 0; j < a.n_kv; ++j)
    for (int g = 0; g < NG; ++g) {
      softmax(scores_row(a, j * a.group + g0 + g), a.n_ctx);
      std::fill_n(a.out + size_t(j * a.group + g0 + g) * size_t(hd), hd, 0.0f);
    }
  for (int p0 = 0; p0 < a.n_ctx; p0 += kTileRows) {
    const int p1 = std::min(a.n_ctx, p0 + kTileRows);
    for (int p = p1; p < std::min(a.n_ctx, p1 + kTileRows); ++p)
      prefetch_row(a.v + p * a.kv_stride, a.n_kv * hd);
    weighted_values<NG, NG <= 2 ? 4 : 2>(a, g0, p0, p1);
  }
}

}  // namespace

DSPARK_AVX2 void attention_avx2(const AttentionArgs& a) {
  for (int g0 = 0; g0 < a.group; g0 += kMaxHeads) {
    switch (std::min(kMaxHeads, a.group - g0)) {
      case 1:
        heads<1>(a, g0);
        break;
      case 2:
        heads<2>(a, g0);
        break;
      case 3:
        heads<3>(a, g0);
        break;
      default:
        heads<4>(a, g0);
        break;
    }
  }
}

}  // namespace dspark::kernels

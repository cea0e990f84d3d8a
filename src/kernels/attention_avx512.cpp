// AVX-512 attention kernel (F, BW, VL, DQ; FMA): the contract is in attention.h.
//
// Up to four query heads of a group pass over the cache together: each key row is loaded
// once for all of them, and each value row chunk once for all of their accumulators. A
// head size that is not a multiple of 16 uses masked loads and stores for its last vector.
#include <immintrin.h>

#include <algorithm>

#include "kernels/attention_kernels.h"

// GCC 12's AVX-512 headers build "undefined" vectors as `__m512 y = y;`, which
// -W(maybe-)uninitialized reports inside inlined intrinsics (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#define DSPARK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
#define DSPARK_AVX512_INLINE DSPARK_AVX512 inline __attribute__((always_inline))

namespace dspark::kernels {

namespace {

constexpr int kLanes = 16;
// Query heads per pass over the cache: their accumulators and the shared row fit the 32
// registers.
constexpr int kMaxHeads = 4;
// Positions ahead whose key/value rows are prefetched: rows of one head are a whole
// kv_dim apart, a stride the hardware prefetchers follow poorly.
constexpr int kPrefetchRows = 8;

DSPARK_AVX512_INLINE __mmask16 lanes_below(int n) {
  return n >= kLanes ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

DSPARK_AVX512_INLINE void prefetch_row(const float* row, int n) {
  for (int i = 0; i < n; i += 64 / int(sizeof(float)))
    _mm_prefetch(reinterpret_cast<const char*>(row + i), _MM_HINT_T0);
}

// exp(x) for x <= 0 (a score minus the row's maximum): x = n ln2 + r with |r| <= ln2/2,
// e^r by Cephes' polynomial, times 2^n. x is clamped at -87, where e^x (about 1.6e-38)
// is already negligible next to the row's largest term, 1.
DSPARK_AVX512_INLINE __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 e = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(e, n);
}

// s[g][p] = scale * q[g] . k[p] for the NG heads starting at g0.
template <int NG>
DSPARK_AVX512_INLINE void scores(const AttentionArgs& a, int g0) {
  const int hd = a.head_dim;
  const float* q = a.q + size_t(g0) * size_t(hd);
  float* s[NG];
  for (int g = 0; g < NG; ++g) s[g] = scores_row(a, g0 + g);
  const __mmask16 tail = lanes_below(hd % kLanes);
  const int whole = hd - hd % kLanes;
  for (int p = 0; p < a.n_ctx; ++p) {
    const float* k = a.k + p * a.kv_stride;
    if (p + kPrefetchRows < a.n_ctx) prefetch_row(k + kPrefetchRows * a.kv_stride, hd);
    __m512 acc[NG];
    for (int g = 0; g < NG; ++g) acc[g] = _mm512_setzero_ps();
    for (int i = 0; i < whole; i += kLanes) {
      const __m512 kv = _mm512_loadu_ps(k + i);
      for (int g = 0; g < NG; ++g) acc[g] = _mm512_fmadd_ps(_mm512_loadu_ps(q + g * hd + i), kv, acc[g]);
    }
    if (tail) {
      const __m512 kv = _mm512_maskz_loadu_ps(tail, k + whole);
      for (int g = 0; g < NG; ++g)
        acc[g] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, q + g * hd + whole), kv, acc[g]);
    }
    for (int g = 0; g < NG; ++g) s[g][p] = _mm512_reduce_add_ps(acc[g]) * a.scale;
  }
}

// Replaces a row of n scores by exp(s - max) and returns 1 / their sum.
DSPARK_AVX512_INLINE float softmax_unnormalised(float* s, int n) {
  const __mmask16 tail = lanes_below(n % kLanes);
  const int whole = n - n % kLanes;
  __m512 mx = _mm512_set1_ps(-__builtin_inff());
  for (int p = 0; p < whole; p += kLanes) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + p));
  if (tail) mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, s + whole));
  const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int p = 0; p < whole; p += kLanes) {
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(s + p), m));
    _mm512_storeu_ps(s + p, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (tail) {
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, s + whole), m));
    _mm512_mask_storeu_ps(s + whole, tail, e);
    sum = _mm512_mask_add_ps(sum, tail, sum, e);
  }
  return 1.0f / _mm512_reduce_add_ps(sum);
}

// out[g] = inv[g] * sum_p e[g][p] v[p] for the NG heads starting at g0, in chunks of NV
// vectors of the head; every element sums the positions in order.
template <int NG, int NV>
DSPARK_AVX512_INLINE void weighted_values(const AttentionArgs& a, int g0, const float* inv) {
  const int hd = a.head_dim;
  const float* s[NG];
  for (int g = 0; g < NG; ++g) s[g] = scores_row(a, g0 + g);
  for (int c = 0; c < hd; c += NV * kLanes) {
    __mmask16 m[NV];
    for (int j = 0; j < NV; ++j) m[j] = lanes_below(hd - c - j * kLanes);
    __m512 acc[NG][NV];
    for (int g = 0; g < NG; ++g)
      for (int j = 0; j < NV; ++j) acc[g][j] = _mm512_setzero_ps();
    const float* v = a.v + c;
    const int row_part = std::min(hd - c, NV * kLanes);
    for (int p = 0; p < a.n_ctx; ++p, v += a.kv_stride) {
      if (p + kPrefetchRows < a.n_ctx) prefetch_row(v + kPrefetchRows * a.kv_stride, row_part);
      __m512 vv[NV];
      for (int j = 0; j < NV; ++j) vv[j] = _mm512_maskz_loadu_ps(m[j], v + j * kLanes);
      for (int g = 0; g < NG; ++g) {
        const __m512 e = _mm512_set1_ps(s[g][p]);
        for (int j = 0; j < NV; ++j) acc[g][j] = _mm512_fmadd_ps(e, vv[j], acc[g][j]);
      }
    }
    for (int g = 0; g < NG; ++g) {
      float* o = a.out + size_t(g0 + g) * size_t(hd) + c;
      const __m512 scale = _mm512_set1_ps(inv[g]);
      for (int j = 0; j < NV; ++j)
        _mm512_mask_storeu_ps(o + j * kLanes, m[j], _mm512_mul_ps(acc[g][j], scale));
    }
  }
}

template <int NG>
DSPARK_AVX512 void heads(const AttentionArgs& a, int g0) {
  scores<NG>(a, g0);
  float inv[NG];
  for (int g = 0; g < NG; ++g) inv[g] = softmax_unnormalised(scores_row(a, g0 + g), a.n_ctx);
  weighted_values<NG, NG <= 2 ? 8 : 4>(a, g0, inv);
}

}  // namespace

DSPARK_AVX512 void attention_avx512(const AttentionArgs& a) {
  for (int g0 = 0; g0 < a.n_q; g0 += kMaxHeads) {
    switch (std::min(kMaxHeads, a.n_q - g0)) {
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

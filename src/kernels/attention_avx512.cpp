// AVX-512 attention kernel (F, BW, VL, DQ; FMA): the contract is in attention.h.
//
// Both passes walk the positions in order over the whole block of key/value heads, so the
// block's segment of each cached row is read once, front to back, and memory streams.
// Scores: up to four query heads of a group share each key load. Values: positions go in
// tiles whose rows stay in L1 while each head's output chunk sits in registers. A head
// size that is not a multiple of 16 uses masked loads and stores for its last vector.
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
// Positions per tile of the value pass: the block's segments of these rows stay in L1
// while every head's output chunk passes over them.
constexpr int kTileRows = 8;

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

// s[h][p] = scale * q[h] . k[p] for query heads g0 .. g0+NG-1 of every key/value head.
template <int NG>
DSPARK_AVX512_INLINE void scores(const AttentionArgs& a, int g0) {
  const int hd = a.head_dim, block = a.n_kv * hd;
  const __mmask16 tail = lanes_below(hd % kLanes);
  const int whole = hd - hd % kLanes;
  for (int p = 0; p < a.n_ctx; ++p) {
    const float* row = a.k + p * a.kv_stride;
    if (p + kPrefetchRows < a.n_ctx) prefetch_row(row + kPrefetchRows * a.kv_stride, block);
    for (int j = 0; j < a.n_kv; ++j) {
      const float* k = row + j * hd;
      const int h0 = j * a.group + g0;
      const float* q = a.q + size_t(h0) * size_t(hd);
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
      for (int g = 0; g < NG; ++g) scores_row(a, h0 + g)[p] = _mm512_reduce_add_ps(acc[g]) * a.scale;
    }
  }
}

// Replaces a row of n scores by their softmax.
DSPARK_AVX512_INLINE void softmax(float* s, int n) {
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
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (int p = 0; p < whole; p += kLanes) _mm512_storeu_ps(s + p, _mm512_mul_ps(_mm512_loadu_ps(s + p), inv));
  if (tail)
    _mm512_mask_storeu_ps(s + whole, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, s + whole), inv));
}

// out[h] += sum_p a[h][p] v[p] over positions [p0, p1) for query heads g0 .. g0+NG-1 of
// every key/value head, in chunks of NV vectors of the head. Every element adds the
// positions in order, so splitting the positions into tiles changes no bit.
template <int NG, int NV>
DSPARK_AVX512_INLINE void weighted_values(const AttentionArgs& a, int g0, int p0, int p1) {
  const int hd = a.head_dim;
  for (int j = 0; j < a.n_kv; ++j) {
    const int h0 = j * a.group + g0;
    const float* s[NG];
    for (int g = 0; g < NG; ++g) s[g] = scores_row(a, h0 + g);
    for (int c = 0; c < hd; c += NV * kLanes) {
      __mmask16 m[NV];
      for (int i = 0; i < NV; ++i) m[i] = lanes_below(hd - c - i * kLanes);
      __m512 acc[NG][NV];
      for (int g = 0; g < NG; ++g)
        for (int i = 0; i < NV; ++i)
          acc[g][i] = _mm512_maskz_loadu_ps(m[i], a.out + size_t(h0 + g) * size_t(hd) + c + i * kLanes);
      const float* v = a.v + p0 * a.kv_stride + j * hd + c;
      for (int p = p0; p < p1; ++p, v += a.kv_stride) {
        __m512 vv[NV];
        for (int i = 0; i < NV; ++i) vv[i] = _mm512_maskz_loadu_ps(m[i], v + i * kLanes);
        for (int g = 0; g < NG; ++g) {
          const __m512 e = _mm512_set1_ps(s[g][p]);
          for (int i = 0; i < NV; ++i) acc[g][i] = _mm512_fmadd_ps(e, vv[i], acc[g][i]);
        }
      }
      for (int g = 0; g < NG; ++g)
        for (int i = 0; i < NV; ++i)
          _mm512_mask_storeu_ps(a.out + size_t(h0 + g) * size_t(hd) + c + i * kLanes, m[i], acc[g][i]);
    }
  }
}

template <int NG>
DSPARK_AVX512 void heads(const AttentionArgs& a, int g0) {
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
    weighted_values<NG, NG <= 2 ? 8 : 4>(a, g0, p0, p1);
  }
}

}  // namespace

DSPARK_AVX512 void attention_avx512(const AttentionArgs& a) {
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

// AVX2 kernels (with FMA and F16C): the contract is in matmul_kernels.h, the lane-major
// activation layout of the integer kernels in matmul_act.h.
//
// The integer kernels follow the AVX-512 ones with 8 lanes: a group of 8 units is
// transposed in registers so that each lane sums one unit's dot product. Without VNNI the
// byte products go through vpmaddubsw (unsigned x signed bytes -> pairs of int16): small
// codes (Q4: 0..15, Q6_K: 0..63) let several chunks add up in int16 before one vpmaddwd;
// Q8_0 uses the sign trick (|w| x sign(x, w)) to stay clear of int16 saturation.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/matmul_act.h"
#include "kernels/matmul_kernels.h"

#define DSPARK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define DSPARK_AVX2_INLINE DSPARK_AVX2 inline __attribute__((always_inline))

namespace dspark::kernels {

namespace {

// Tokens per kernel call: 16 registers hold 4 tokens' accumulators and the weights.
constexpr int kIntTile = 4;
// Weights are prefetched this far ahead of use (see matmul_avx512.cpp).
constexpr size_t kPrefetchBytes = 2048;

DSPARK_AVX2_INLINE __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
DSPARK_AVX2_INLINE __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
DSPARK_AVX2_INLINE __m128i load64(const void* p) { return _mm_loadl_epi64(static_cast<const __m128i*>(p)); }
DSPARK_AVX2_INLINE void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
DSPARK_AVX2_INLINE float half_to_float(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}
DSPARK_AVX2_INLINE float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}
DSPARK_AVX2_INLINE int hsum(__m256i v) {
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i t = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  return _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, 1)));
}

// ---------------------------------------------------------------------------------------
// F32, F16, BF16 weights: fp32 activations, two fp32 accumulators per token.

struct F32Weights {
  using T = float;
  static DSPARK_AVX2_INLINE __m256 load(const float* p) { return _mm256_loadu_ps(p); }
};

struct F16Weights {
  using T = uint16_t;
  static DSPARK_AVX2_INLINE __m256 load(const uint16_t* p) { return _mm256_cvtph_ps(load128(p)); }
};

struct Bf16Weights {  // bf16 is the top half of an fp32
  using T = uint16_t;
  static DSPARK_AVX2_INLINE __m256 load(const uint16_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load128(p)), 16));
  }
};

// Lane x of the result = hsum(v[x]), bit for bit: hsum's tree (lane i + i+4, then + 2,
// then + 1) run on 8 vectors at once. Slot s of the tree ends in lane (s2 s0 s1) (bits
// high to low), a map that is its own inverse.
constexpr int tree_lane(int s) { return (s & 4) | (s & 1) << 1 | (s >> 1 & 1); }

DSPARK_AVX2_INLINE __m256 reduce8(const __m256* v) {
  __m256 b[4], c[2];
  for (int r = 0; r < 4; ++r) {  // lanes i + i+4: two inputs per vector
    const __m256 p = v[tree_lane(r)], q = v[tree_lane(r + 4)];
    b[r] = _mm256_add_ps(_mm256_permute2f128_ps(p, q, 0x20), _mm256_permute2f128_ps(p, q, 0x31));
  }
  for (int r = 0; r < 2; ++r) {  // + 2
    const __m256d p = _mm256_castps_pd(b[r]), q = _mm256_castps_pd(b[r + 2]);
    c[r] =
        _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(p, q)), _mm256_castpd_ps(_mm256_unpackhi_pd(p, q)));
  }
  return _mm256_add_ps(_mm256_shuffle_ps(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),  // + 1
                       _mm256_shuffle_ps(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// Reduces the accumulators of R rows x T tokens (slot t * R + r) and stores the sums.
template <int R, int T>
DSPARK_AVX2_INLINE void store_sums(const RowsArgs& a, int64_t r0, const __m256* acc) {
  static_assert(R * T <= 8);
  if constexpr (R * T == 1) {
    a.y[r0] = hsum(acc[0]);
  } else {
    alignas(32) float sums[8];
    _mm256_store_ps(sums, reduce8(acc));  // lane t * R + r
    for (int t = 0; t < T; ++t) std::memcpy(a.y + t * a.y_stride + r0, sums + t * R, sizeof(float) * R);
  }
}

// Columns [i, n) of a row (fewer than 8), zero-padded to 8, times each token's activations.
template <class W, int T>
DSPARK_AVX2_INLINE void float_tail(const typename W::T* w, const float* const* x, int64_t i, int64_t n,
                                   __m256* acc, int stride) {
  const size_t rest = size_t(n - i);
  typename W::T pad[8] = {};
  std::memcpy(pad, w + i, rest * sizeof(typename W::T));
  const __m256 wv = W::load(pad);
  for (int t = 0; t < T; ++t) {
    float xpad[8] = {};
    std::memcpy(xpad, x[t] + i, rest * sizeof(float));
    acc[t * stride] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xpad), acc[t * stride]);
  }
}

// R rows x T tokens, one accumulator each (as in the AVX-512 kernels).
template <class W, int R, int T>
DSPARK_AVX2_INLINE void float_tile(const RowsArgs& a, int64_t r0) {
  const int64_t n = a.cols;
  const typename W::T* w[R];
  const float* x[T];
  __m256 acc[8];
  for (int r = 0; r < R; ++r)
    w[r] = reinterpret_cast<const typename W::T*>(a.w + size_t(r0 + r) * a.w_stride);
  for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<const float*>(a.act + size_t(t) * a.act_stride);
  for (int s = 0; s < 8; ++s) acc[s] = _mm256_setzero_ps();  // slot t * R + r
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int r = 0; r < R; ++r) prefetch(reinterpret_cast<const uint8_t*>(w[r] + i) + kPrefetchBytes);
    __m256 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = W::load(w[r] + i);
    for (int t = 0; t < T; ++t) {
      const __m256 xv = _mm256_loadu_ps(x[t] + i);
      for (int r = 0; r < R; ++r) acc[t * R + r] = _mm256_fmadd_ps(wv[r], xv, acc[t * R + r]);
    }
  }
  if (i < n)  // the last 1..7 columns
    for (int r = 0; r < R; ++r) float_tail<W, T>(w[r], x, i, n, acc + r, R);
  store_sums<R, T>(a, r0, acc);
}

// The same sums, reading the tile's rows one after the other: back-to-back short rows are
// then one sequential stream for the prefetchers (see matmul_avx512.cpp).
template <class W, int R, int T>
DSPARK_AVX2_INLINE void float_tile_seq(const RowsArgs& a, int64_t r0) {
  const int64_t n = a.cols;
  const float* x[T];
  __m256 acc[8];
  for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<const float*>(a.act + size_t(t) * a.act_stride);
  for (int s = 0; s < 8; ++s) acc[s] = _mm256_setzero_ps();  // slot t * R + r
  for (int r = 0; r < R; ++r) {
    const auto* w = reinterpret_cast<const typename W::T*>(a.w + size_t(r0 + r) * a.w_stride);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      if (i % (64 / sizeof(*w)) == 0) prefetch(reinterpret_cast<const uint8_t*>(w + i) + kPrefetchBytes);
      const __m256 wv = W::load(w + i);
      for (int t = 0; t < T; ++t)
        acc[t * R + r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[t] + i), acc[t * R + r]);
    }
    if (i < n) float_tail<W, T>(w, x, i, n, acc + r, R);
  }
  store_sums<R, T>(a, r0, acc);
}

// As on AVX-512: rows up to these lengths are read one after the other.
constexpr int64_t kSequentialCols1 = 4096, kSequentialCols = 512;
constexpr int kFloatRows = 2, kFloatTile = 4;

template <class W, int T>
DSPARK_AVX2 void float_rows(const RowsArgs& a) {
  int64_t r = 0;
  if (a.cols <= (T == 1 ? kSequentialCols1 : kSequentialCols)) {
    constexpr int kWide = 8 / T >= 8 ? 8 : 8 / T >= 4 ? 4 : 2;  // one reduce8 per tile
    for (; r + kWide <= a.n_rows; r += kWide) float_tile_seq<W, kWide, T>(a, r);
    for (; r < a.n_rows; ++r) float_tile_seq<W, 1, T>(a, r);
    return;
  }
  for (; r + kFloatRows <= a.n_rows; r += kFloatRows) float_tile<W, kFloatRows, T>(a, r);
  for (; r < a.n_rows; ++r) float_tile<W, 1, T>(a, r);
}

// ---------------------------------------------------------------------------------------
// Integer kernels.

// Units of 32 sit in lane order (Q8_0, Q4_0); Q6_K's 16-value sub-blocks, 8 per group
// (half a super-block), sit in lane 4 * (u % 2) + u / 2, as do Q4_K's sub-blocks.
constexpr uint8_t kLaneOf32[8] = {0, 1, 2, 3, 4, 5, 6, 7};
constexpr uint8_t kLaneOf16[8] = {0, 4, 1, 5, 2, 6, 3, 7};
// Q4_K: lanes 0-3 hold the low nibbles of the 4 code chunks (sub-blocks 0, 2, 4, 6), lanes
// 4-7 the high nibbles (sub-blocks 1, 3, 5, 7).
constexpr uint8_t kLaneOfQ4K[8] = {0, 4, 1, 5, 2, 6, 3, 7};

constexpr ActLayout kLayout32{8, 8, false, kLaneOf32};
constexpr ActLayout kLayoutQ4K{8, 8, true, kLaneOfQ4K};
constexpr ActLayout kLayout16{8, 4, false, kLaneOf16};

template <int C>
struct Decoded {
  __m256i w[C];  // codes, lane-major
  __m256 scale;  // weight scale of the lane's unit
  __m256 mins;   // Q4_K: dmin * m of the lane's unit
};

// 4x4 transposes of dwords inside each 128-bit lane: out[k] lane q, dword r = in[r] lane q, dword k.
DSPARK_AVX2_INLINE void transpose4(const __m256i* in, __m256i* out) {
  const __m256i t0 = _mm256_unpacklo_epi32(in[0], in[1]), t1 = _mm256_unpackhi_epi32(in[0], in[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(in[2], in[3]), t3 = _mm256_unpackhi_epi32(in[2], in[3]);
  out[0] = _mm256_unpacklo_epi64(t0, t2);
  out[1] = _mm256_unpackhi_epi64(t0, t2);
  out[2] = _mm256_unpacklo_epi64(t1, t3);
  out[3] = _mm256_unpackhi_epi64(t1, t3);
}

// in[j] = unit j, dwords 0..7  ->  out[k] lane j = unit j, dword k.
DSPARK_AVX2_INLINE void transpose_units(const __m256i* in, __m256i* out) {
  __m256i lo[4], hi[4];
  transpose4(in, lo);      // lanes: units 0-3 dk, units 0-3 d(4+k)
  transpose4(in + 4, hi);  // units 4-7
  for (int k = 0; k < 4; ++k) {
    out[k] = _mm256_permute2x128_si256(lo[k], hi[k], 0x20);
    out[k + 4] = _mm256_permute2x128_si256(lo[k], hi[k], 0x31);
  }
}

// The fp16 scales of 8 blocks S bytes apart.
template <int S>
DSPARK_AVX2_INLINE __m256 gather_scales(const uint8_t* p) {
  uint16_t h[8];
  for (int j = 0; j < 8; ++j) std::memcpy(h + j, p + S * j, 2);
  return _mm256_cvtph_ps(load128(h));
}

// Sum over chunks of small codes (at most 15 or 63) times int8 activations, in int16 pairs
// for `Run` chunks at a time (Run * 2 * max_code * 127 < 32768), then widened to int32.
template <int C, int Run>
DSPARK_AVX2_INLINE __m256i dot_small_codes(const __m256i* w, const uint8_t* x, __m256i acc) {
  for (int k0 = 0; k0 < C; k0 += Run) {
    __m256i p = _mm256_maddubs_epi16(w[k0], load256(x + 32 * k0));
    for (int k = k0 + 1; k < k0 + Run; ++k)
      p = _mm256_add_epi16(p, _mm256_maddubs_epi16(w[k], load256(x + 32 * k)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
  }
  return acc;
}

// Q8_0: codes are the int8 weights themselves; |w| x sign(x, w) keeps vpmaddubsw exact.
struct Q8_0Kernel {
  static constexpr DType kType = DType::Q8_0;
  static constexpr int kChunks = 8;
  static constexpr size_t kGroupBytes = 8 * sizeof(BlockQ8_0);
  static constexpr const ActLayout& kLayout = kLayout32;
  static DSPARK_AVX2_INLINE void decode(const uint8_t* p, Decoded<8>& d) {
    __m256i n[8];
    for (int j = 0; j < 8; ++j) n[j] = load256(p + 34 * j + 2);
    transpose_units(n, d.w);
    d.scale = gather_scales<34>(p);
  }
  static DSPARK_AVX2_INLINE __m256i dot(const Decoded<8>& d, const uint8_t* x) {
    __m256i acc = _mm256_setzero_si256();
    for (int k = 0; k < 8; ++k) {
      const __m256i p =
          _mm256_maddubs_epi16(_mm256_abs_epi8(d.w[k]), _mm256_sign_epi8(load256(x + 32 * k), d.w[k]));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
    }
    return acc;
  }
};

// Q4_0: codes are the nibbles (value + 8); activations carry bias -8 * sum.
struct Q4_0Kernel {
  static constexpr DType kType = DType::Q4_0;
  static constexpr int kChunks = 8;
  static constexpr size_t kGroupBytes = 8 * sizeof(BlockQ4_0);
  static constexpr const ActLayout& kLayout = kLayout32;
  static DSPARK_AVX2_INLINE void decode(const uint8_t* p, Decoded<8>& d) {
    __m256i m[4], q[4];  // m[r]: code bytes of blocks r and 4 + r
    for (int r = 0; r < 4; ++r)
      m[r] = _mm256_inserti128_si256(_mm256_castsi128_si256(load128(p + 18 * r + 2)),
                                     load128(p + 18 * (4 + r) + 2), 1);
    transpose4(m, q);  // q[k] lane j: code bytes 4k .. 4k+3 of block j
    const __m256i low = _mm256_set1_epi8(0x0f);
    for (int k = 0; k < 4; ++k) {
      d.w[k] = _mm256_and_si256(q[k], low);
      d.w[k + 4] = _mm256_and_si256(_mm256_srli_epi16(q[k], 4), low);
    }
    d.scale = gather_scales<18>(p);
  }
  static DSPARK_AVX2_INLINE __m256i dot(const Decoded<8>& d, const uint8_t* x) {
    return dot_small_codes<8, 8>(d.w, x, load256(x + kLayout.bias_offset()));
  }
};

// Q4_K, one super-block per group: unit u = sub-block u, in lane kLaneOfQ4K[u].
struct Q4_KKernel {
  static constexpr DType kType = DType::Q4_K;
  static constexpr int kChunks = 8;
  static constexpr size_t kGroupBytes = sizeof(BlockQ4_K);
  static constexpr const ActLayout& kLayout = kLayoutQ4K;
  static DSPARK_AVX2_INLINE void decode(const uint8_t* p, Decoded<8>& d) {
    // Transpose the packed code bytes first (half the data), then split the nibbles: t[k]
    // lane q holds dword k (q = 0) or 4 + k (q = 1) of the 4 chunks of 32 code bytes.
    __m256i z[4], t[4];
    for (int c = 0; c < 4; ++c) z[c] = load256(p + 16 + 32 * c);
    transpose4(z, t);
    const __m256i mask = _mm256_set1_epi8(0x0f);
    for (int k = 0; k < 4; ++k) {
      const __m256i low = _mm256_and_si256(t[k], mask),
                    high = _mm256_and_si256(_mm256_srli_epi16(t[k], 4), mask);
      d.w[k] = _mm256_permute2x128_si256(low, high, 0x20);
      d.w[k + 4] = _mm256_permute2x128_si256(low, high, 0x31);
    }
    uint8_t sc[8], m[8];  // in lane order: sub-blocks 0, 2, 4, 6, 1, 3, 5, 7
    unpack_q4_k_scales(p + 4, sc, m);
    const __m128i order = _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i sc32 = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(load64(sc), order));
    const __m256i m32 = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(load64(m), order));
    d.scale = _mm256_mul_ps(_mm256_cvtepi32_ps(sc32), _mm256_set1_ps(half_to_float(p)));
    d.mins = _mm256_mul_ps(_mm256_cvtepi32_ps(m32), _mm256_set1_ps(half_to_float(p + 2)));
  }
  static DSPARK_AVX2_INLINE __m256i dot(const Decoded<8>& d, const uint8_t* x) {
    return dot_small_codes<8, 8>(d.w, x, _mm256_setzero_si256());
  }
};

// Q6_K, half a super-block per group (8 sub-blocks of 16); codes 0..63 (value + 32),
// activations carry bias -32 * sum.
struct Q6_KKernel {
  static constexpr DType kType = DType::Q6_K;
  static constexpr int kChunks = 4;
  static constexpr const ActLayout& kLayout = kLayout16;
  // Half `h` of the super-block at p.
  static DSPARK_AVX2_INLINE void decode(const uint8_t* p, int h, Decoded<4>& d) {
    const __m256i low = _mm256_set1_epi8(0x0f), high = _mm256_set1_epi8(0x30);
    const __m256i ql0 = load256(p + 64 * h), ql1 = load256(p + 64 * h + 32), qh = load256(p + 128 + 32 * h);
    __m256i v[4];  // v[q]: the codes of quarter q (32 values) of this half
    v[0] = _mm256_or_si256(_mm256_and_si256(ql0, low), _mm256_and_si256(_mm256_slli_epi16(qh, 4), high));
    v[1] = _mm256_or_si256(_mm256_and_si256(ql1, low), _mm256_and_si256(_mm256_slli_epi16(qh, 2), high));
    v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low), _mm256_and_si256(qh, high));
    v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low),
                           _mm256_and_si256(_mm256_srli_epi16(qh, 2), high));
    transpose4(v, d.w);  // d.w[k] lane 4p + r: sub-block 2r + p of the half, values 4k .. 4k+3
    const __m128i order = _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m128i sc = _mm_shuffle_epi8(load64(p + 192 + 8 * h), order);
    d.scale =
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)), _mm256_set1_ps(half_to_float(p + 208)));
  }
  static DSPARK_AVX2_INLINE __m256i dot(const Decoded<4>& d, const uint8_t* x) {
    return dot_small_codes<4, 2>(d.w, x, load256(x + kLayout.bias_offset()));
  }
};

template <class Q, int NT>
DSPARK_AVX2_INLINE void accumulate_group(const Decoded<Q::kChunks>& d, const uint8_t* const* x, __m256* acc) {
  constexpr const ActLayout& L = Q::kLayout;
  for (int t = 0; t < NT; ++t) {
    const __m256i s = Q::dot(d, x[t]);
    const __m256 scale =
        _mm256_mul_ps(d.scale, _mm256_loadu_ps(reinterpret_cast<const float*>(x[t] + L.scale_offset())));
    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[t]);
    if (L.extra)
      acc[t] = _mm256_fnmadd_ps(_mm256_loadu_ps(reinterpret_cast<const float*>(x[t] + L.extra_offset())),
                                d.mins, acc[t]);
  }
}

template <class Q, int NT>
DSPARK_AVX2 void int8_rows(const RowsArgs& a) {
  constexpr const ActLayout& L = Q::kLayout;
  const int64_t groups = L.groups(a.cols);
  for (int64_t r = 0; r < a.n_rows; ++r) {
    const uint8_t* row = a.w + size_t(r) * a.w_stride;
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t* x[NT];
      for (int t = 0; t < NT; ++t) x[t] = a.act + size_t(t) * a.act_stride + size_t(g) * L.group_bytes();
      Decoded<Q::kChunks> d;
      if constexpr (Q::kType == DType::Q6_K) {
        if (g % 2 == 0)
          for (size_t line = 0; line < sizeof(BlockQ6_K); line += 64)
            prefetch(row + size_t(g / 2) * sizeof(BlockQ6_K) + kPrefetchBytes + line);
        Q::decode(row + size_t(g / 2) * sizeof(BlockQ6_K), int(g % 2), d);
      } else {
        const size_t offset = size_t(g) * Q::kGroupBytes, row_bytes = dtype_row_bytes(Q::kType, a.cols);
        if (offset + Q::kGroupBytes <= row_bytes) {
          for (size_t line = 0; line < Q::kGroupBytes; line += 64)
            prefetch(row + offset + kPrefetchBytes + line);
          Q::decode(row + offset, d);
        } else {  // a partial group: its missing blocks read as zeros
          alignas(32) uint8_t pad[Q::kGroupBytes] = {};
          std::memcpy(pad, row + offset, row_bytes - offset);
          Q::decode(pad, d);
        }
      }
      accumulate_group<Q, NT>(d, x, acc);
    }
    for (int t = 0; t < NT; ++t) a.y[t * a.y_stride + r] = hsum(acc[t]);
  }
}

// ---------------------------------------------------------------------------------------
// Activation preparation (same values as the AVX-512 and scalar quantizers).

DSPARK_AVX2_INLINE float max_abs(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

// q = round-half-even(x * inv) for n values (a multiple of 8); returns the sum of q.
DSPARK_AVX2_INLINE int quantize(const float* x, int n, float inv, int8_t* q) {
  __m256i sum = _mm256_setzero_si256();
  for (int i = 0; i < n; i += 8) {
    __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(inv)));
    v = _mm256_max_epi32(_mm256_min_epi32(v, _mm256_set1_epi32(127)), _mm256_set1_epi32(-127));
    sum = _mm256_add_epi32(sum, v);
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i), _mm_packs_epi16(w, w));
  }
  return hsum(sum);
}

template <int Offset>
DSPARK_AVX2 void prepare_q8_0(const float* x, int64_t cols, uint8_t* out) {
  kLayout32.clear_last_group(out, cols);
  for (int64_t b = 0; b < cols / 32; ++b) {
    int8_t q[32];
    const float d = max_abs(x + 32 * b, 32) / 127.0f;
    const int sum = quantize(x + 32 * b, 32, d != 0.0f ? 1.0f / d : 0.0f, q);
    kLayout32.put(out, b, q, _cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT)), -Offset * sum, 0.0f);
  }
}

DSPARK_AVX2 void prepare_q4_k(const float* x, int64_t cols, uint8_t* out) {
  for (int64_t b = 0; b < cols / kQK; ++b) {
    const float d = max_abs(x + kQK * b, kQK) / 127.0f, inv = d != 0.0f ? 1.0f / d : 0.0f;
    for (int u = 0; u < 8; ++u) {
      int8_t q[32];
      const int sum = quantize(x + kQK * b + 32 * u, 32, inv, q);
      kLayoutQ4K.put(out, 8 * b + u, q, d, 0, d * float(sum));
    }
  }
}

DSPARK_AVX2 void prepare_q6_k(const float* x, int64_t cols, uint8_t* out) {
  for (int64_t b = 0; b < cols / kQK; ++b) {
    const float d = max_abs(x + kQK * b, kQK) / 127.0f, inv = d != 0.0f ? 1.0f / d : 0.0f;
    for (int u = 0; u < 16; ++u) {
      int8_t q[16];
      const int sum = quantize(x + kQK * b + 16 * u, 16, inv, q);
      kLayout16.put(out, 16 * b + u, q, d, -32 * sum, 0.0f);
    }
  }
}

template <const ActLayout& L>
size_t act_bytes(int64_t cols) {
  return round_up_64(L.token_bytes(cols));
}

// ---------------------------------------------------------------------------------------
// Dispatch on the token count.

// Rows<n_tokens>::run for 1 <= n_tokens <= N.
template <int N, template <int> class Rows>
DSPARK_AVX2 void rows_any(const RowsArgs& a) {
  if constexpr (N > 1)
    if (a.n_tokens < N) return rows_any<N - 1, Rows>(a);
  Rows<N>::run(a);
}

template <class W>
struct FloatRows {
  template <int NT>
  struct Of {
    static DSPARK_AVX2 void run(const RowsArgs& a) { float_rows<W, NT>(a); }
  };
};

template <class Q>
struct IntRows {
  template <int NT>
  struct Of {
    static DSPARK_AVX2 void run(const RowsArgs& a) { int8_rows<Q, NT>(a); }
  };
};

const MatmulKernel kKernels[] = {
    {kFloatTile, nullptr, nullptr, rows_any<kFloatTile, FloatRows<F32Weights>::Of>},                 // F32
    {kFloatTile, nullptr, nullptr, rows_any<kFloatTile, FloatRows<F16Weights>::Of>},                 // F16
    {kFloatTile, nullptr, nullptr, rows_any<kFloatTile, FloatRows<Bf16Weights>::Of>},                // BF16
    {kIntTile, act_bytes<kLayout32>, prepare_q8_0<0>, rows_any<kIntTile, IntRows<Q8_0Kernel>::Of>},  // Q8_0
    {kIntTile, act_bytes<kLayout32>, prepare_q8_0<8>, rows_any<kIntTile, IntRows<Q4_0Kernel>::Of>},  // Q4_0
    {kIntTile, act_bytes<kLayoutQ4K>, prepare_q4_k, rows_any<kIntTile, IntRows<Q4_KKernel>::Of>},    // Q4_K
    {kIntTile, act_bytes<kLayout16>, prepare_q6_k, rows_any<kIntTile, IntRows<Q6_KKernel>::Of>},     // Q6_K
};
static_assert(std::size(kKernels) == size_t(DType::Q6_K) + 1);

}  // namespace

const MatmulKernel* avx2_kernels() { return kKernels; }

}  // namespace dspark::kernels

// AVX-512 kernels (F, BW, VL, DQ, VNNI; F16C and FMA): the contract is in matmul_kernels.h,
// the lane-major activation layout of the integer kernels in matmul_act.h.
//
// Integer kernels: a group of 16 units (blocks of 32 values; Q6_K: sub-blocks of 16) is
// loaded and transposed in registers so that lane L of chunk register k holds values
// 4k .. 4k+3 of unit unit_of(L); vpdpbusd (unsigned weight codes x signed activations)
// then sums each unit's whole dot product in its own lane, the unit scales apply once per
// lane, and every token of the tile reuses the decoded registers.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/matmul_act.h"
#include "kernels/matmul_kernels.h"

// GCC 12's AVX-512 headers build "undefined" vectors as `__m512i y = y;`, which
// -Wmaybe-uninitialized reports inside every inlined intrinsic (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define DSPARK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#define DSPARK_AVX512_INLINE DSPARK_AVX512 inline __attribute__((always_inline))

namespace dspark::kernels {

namespace {
// Weights are prefetched this far ahead of use: about the bytes a core consumes during one
// DRAM latency, and past the 4 KiB page ends where the hardware prefetchers stop. Measured:
// K = 1 keeps its speed, and K > 1 gains a lot, since memory keeps streaming while the
// extra tokens are computed.
constexpr size_t kPrefetchBytes = 2048;

DSPARK_AVX512_INLINE void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }

DSPARK_AVX512_INLINE __m512i load512(const void* p) { return _mm512_loadu_si512(p); }
DSPARK_AVX512_INLINE __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
DSPARK_AVX512_INLINE __m128i load128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}
DSPARK_AVX512_INLINE float half_to_float(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// ---------------------------------------------------------------------------------------
// F32, F16, BF16 weights: fp32 activations and multiply-adds.

// Each step decodes kParts vectors of 16 fp32 weights; the activations of that step are the
// kParts vectors at the same offset (for BF16, prepared to match).
struct F32Weights {
  using T = float;
  static constexpr int kParts = 1;
  static constexpr bool kPrepared = false;
  static DSPARK_AVX512_INLINE void load(const float* p, __m512* w) { w[0] = _mm512_loadu_ps(p); }
  static DSPARK_AVX512_INLINE void load(const float* p, int n, __m512* w) {
    w[0] = _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), p);
  }
};

struct F16Weights {
  using T = uint16_t;
  static constexpr int kParts = 1;
  static constexpr bool kPrepared = false;
  static DSPARK_AVX512_INLINE void load(const uint16_t* p, __m512* w) { w[0] = _mm512_cvtph_ps(load256(p)); }
  static DSPARK_AVX512_INLINE void load(const uint16_t* p, int n, __m512* w) {
    w[0] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(__mmask16((1u << n) - 1), p));
  }
};

// bf16 is the top half of an fp32: of 32 weights loaded as 16 pairs, a shift gives the even
// ones and a mask the odd ones; the activations are prepared as even ones, then odd ones.
struct Bf16Weights {
  using T = uint16_t;
  static constexpr int kParts = 2;
  static constexpr bool kPrepared = true;
  static DSPARK_AVX512_INLINE void split(__m512i v, __m512* w) {
    w[0] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    w[1] = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int(0xffff0000u))));
  }
  static DSPARK_AVX512_INLINE void load(const uint16_t* p, __m512* w) { split(load512(p), w); }
  static DSPARK_AVX512_INLINE void load(const uint16_t* p, int n, __m512* w) {
    split(_mm512_maskz_loadu_epi16(__mmask32((uint64_t(1) << n) - 1), p), w);
  }
};

// BF16 activations: each 32 values as the 16 even ones then the 16 odd ones, zero-padded.
size_t bf16_act_bytes(int64_t cols) { return round_up_64(size_t((cols + 31) / 32) * 32 * sizeof(float)); }

DSPARK_AVX512 void prepare_bf16(const float* x, int64_t cols, uint8_t* out) {
  auto* o = reinterpret_cast<float*>(out);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int64_t i = 0; i < cols; i += 32) {
    const int64_t n = std::min<int64_t>(32, cols - i);
    const __m512 a = _mm512_maskz_loadu_ps(__mmask16(n >= 16 ? 0xffff : (1u << n) - 1), x + i);
    const __m512 b = _mm512_maskz_loadu_ps(__mmask16(n >= 32  ? 0xffff
                                                     : n > 16 ? (1u << (n - 16)) - 1
                                                              : 0),
                                           x + i + 16);
    _mm512_storeu_ps(o + i, _mm512_permutex2var_ps(a, even, b));
    _mm512_storeu_ps(o + i + 16, _mm512_permutex2var_ps(a, odd, b));
  }
}

// Horizontal sums, all in one tree: lane i + lane i+8, then + 4, then + 2, then + 1 (the
// order of _mm512_reduce_add_ps). reduce16 runs that tree on 16 vectors at once, so a row's
// sum has the same bits whether it is reduced alone or with 15 others.
DSPARK_AVX512_INLINE float reduce1(__m512 v) {
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

// Where reduce16's tree leaves the sum of its input slot s: bits (s2 s3 s0 s1). The map is
// its own inverse, so slot tree_lane(x) takes the vector whose sum should land in lane x.
constexpr int tree_lane(int s) { return (s >> 2 & 1) << 3 | (s >> 3 & 1) << 2 | (s & 1) << 1 | (s >> 1 & 1); }

// Lane x of the result = reduce1(v[x]), bit for bit.
DSPARK_AVX512_INLINE __m512 reduce16(const __m512* v) {
  __m512 b[8], c[4], d[2];
  for (int r = 0; r < 8; ++r) {  // lanes i + i+8: two inputs per vector, 8 partial sums each
    const __m512 p = v[tree_lane(r)], q = v[tree_lane(r + 8)];
    b[r] = _mm512_add_ps(_mm512_shuffle_f32x4(p, q, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(p, q, _MM_SHUFFLE(3, 2, 3, 2)));
  }
  for (int r = 0; r < 4; ++r)  // + 4: four inputs per vector, one per 128-bit chunk
    c[r] = _mm512_add_ps(_mm512_shuffle_f32x4(b[r], b[r + 4], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(b[r], b[r + 4], _MM_SHUFFLE(3, 1, 3, 1)));
  for (int r = 0; r < 2; ++r) {  // + 2
    const __m512d p = _mm512_castps_pd(c[r]), q = _mm512_castps_pd(c[r + 2]);
    d[r] =
        _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(p, q)), _mm512_castpd_ps(_mm512_unpackhi_pd(p, q)));
  }
  return _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(2, 0, 2, 0)),  // + 1
                       _mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// Reduces the accumulators of R rows x T tokens (slot t * R + r) and stores the sums.
template <int R, int T>
DSPARK_AVX512_INLINE void store_sums(const RowsArgs& a, int64_t r0, const __m512* acc) {
  static_assert(R * T <= 16);
  if constexpr (R * T == 1) {
    a.y[r0] = reduce1(acc[0]);
  } else {
    const __m512 sums = reduce16(acc);  // lane t * R + r
    for (int t = 0; t < T; ++t) {
      float* y = a.y + t * a.y_stride + r0;
      if constexpr (R == 16) {
        _mm512_storeu_ps(y, sums);
      } else if constexpr (R == 8) {
        _mm256_storeu_ps(y, t == 0 ? _mm512_castps512_ps256(sums) : _mm512_extractf32x8_ps(sums, 1));
      } else {
        alignas(64) float lanes[16];
        _mm512_store_ps(lanes, sums);
        std::memcpy(y, lanes + t * R, sizeof(float) * R);
      }
    }
  }
}

// R rows x T tokens, one accumulator each: every weight vector serves T tokens and every
// activation vector R rows. A (row, token) pair always sees the same additions in the same
// order, whatever tile it sits in: the column steps in order, then the reduce1 tree.
// `ahead`: how far ahead the weights are prefetched, from each row's current position.
template <class W, int R, int T>
DSPARK_AVX512_INLINE void float_tile(const RowsArgs& a, int64_t r0, size_t ahead) {
  static_assert(R * T <= 16);
  constexpr int P = W::kParts, kStep = 16 * P;
  const int64_t n = a.cols;
  const typename W::T* w[R];
  const float* x[T];
  __m512 acc[16];
  for (int r = 0; r < R; ++r)
    w[r] = reinterpret_cast<const typename W::T*>(a.w + size_t(r0 + r) * a.w_stride);
  for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<const float*>(a.act + size_t(t) * a.act_stride);
  for (int s = 0; s < 16; ++s) acc[s] = _mm512_setzero_ps();  // slot t * R + r
  int64_t i = 0;
  for (; i + kStep <= n; i += kStep) {
    __m512 xv[T][P];
    for (int t = 0; t < T; ++t)
      for (int part = 0; part < P; ++part) xv[t][part] = _mm512_loadu_ps(x[t] + i + 16 * part);
    for (int r = 0; r < R; ++r) {  // one row at a time: its weights live in P registers
      prefetch(reinterpret_cast<const uint8_t*>(w[r] + i) + ahead);
      __m512 wv[P];
      W::load(w[r] + i, wv);
      for (int t = 0; t < T; ++t)
        for (int part = 0; part < P; ++part)
          acc[t * R + r] = _mm512_fmadd_ps(wv[part], xv[t][part], acc[t * R + r]);
    }
  }
  if (i < n) {  // the last 1 .. kStep-1 columns; zeros past the end
    const int rest = int(n - i);
    __m512 wv[R][P];
    for (int r = 0; r < R; ++r) W::load(w[r] + i, rest, wv[r]);
    for (int t = 0; t < T; ++t)
      for (int part = 0; part < P; ++part) {
        const int m = std::clamp(rest - 16 * part, 0, 16);
        const __m512 xv = W::kPrepared
                              ? _mm512_loadu_ps(x[t] + i + 16 * part)  // zero-padded
                              : _mm512_maskz_loadu_ps(__mmask16((1u << m) - 1), x[t] + i + 16 * part);
        for (int r = 0; r < R; ++r) acc[t * R + r] = _mm512_fmadd_ps(wv[r][part], xv, acc[t * R + r]);
      }
  }
  store_sums<R, T>(a, r0, acc);
}

// The same sums as float_tile, reading the tile's rows one after the other: rows that lie
// back to back are then one sequential stream, which the prefetchers follow far better
// than R interleaved short ones; the R x T sums are still reduced together.
template <class W, int R, int T>
DSPARK_AVX512_INLINE void float_tile_seq(const RowsArgs& a, int64_t r0, size_t ahead) {
  static_assert(R * T <= 16);
  constexpr int P = W::kParts, kStep = 16 * P;
  const int64_t n = a.cols;
  const float* x[T];
  __m512 acc[16];
  for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<const float*>(a.act + size_t(t) * a.act_stride);
  for (int s = 0; s < 16; ++s) acc[s] = _mm512_setzero_ps();  // slot t * R + r
  for (int r = 0; r < R; ++r) {
    const auto* w = reinterpret_cast<const typename W::T*>(a.w + size_t(r0 + r) * a.w_stride);
    int64_t i = 0;
    for (; i + kStep <= n; i += kStep) {
      prefetch(reinterpret_cast<const uint8_t*>(w + i) + ahead);
      __m512 wv[P];
      W::load(w + i, wv);
      for (int t = 0; t < T; ++t)
        for (int part = 0; part < P; ++part)
          acc[t * R + r] = _mm512_fmadd_ps(wv[part], _mm512_loadu_ps(x[t] + i + 16 * part), acc[t * R + r]);
    }
    if (i < n) {  // the last 1 .. kStep-1 columns; zeros past the end
      const int rest = int(n - i);
      __m512 wv[P];
      W::load(w + i, rest, wv);
      for (int t = 0; t < T; ++t)
        for (int part = 0; part < P; ++part) {
          const int m = std::clamp(rest - 16 * part, 0, 16);
          const __m512 xv = W::kPrepared
                                ? _mm512_loadu_ps(x[t] + i + 16 * part)  // zero-padded
                                : _mm512_maskz_loadu_ps(__mmask16((1u << m) - 1), x[t] + i + 16 * part);
          acc[t * R + r] = _mm512_fmadd_ps(wv[part], xv, acc[t * R + r]);
        }
    }
  }
  store_sums<R, T>(a, r0, acc);
}

// Rows up to these lengths are read one after the other (float_tile_seq), for one token
// and for several; longer ones 4 rows at a time, whose streams the prefetchers follow and
// whose weight vectors serve every token of the tile at once (measured on Zen 4: the
// sequential order wins for one token up to 4096 values, for 2-4 tokens up to 512).
constexpr int64_t kSequentialCols1 = 4096, kSequentialCols = 512;
constexpr int kFloatTile = 4;

template <class W, int T>
DSPARK_AVX512 void float_rows(const RowsArgs& a) {
  int64_t r = 0;
  if (a.cols <= (T == 1 ? kSequentialCols1 : kSequentialCols)) {
    constexpr int kWide = 16 / T >= 16 ? 16 : 16 / T >= 8 ? 8 : 4;  // one reduce16 per tile
    for (; r + kWide <= a.n_rows; r += kWide) float_tile_seq<W, kWide, T>(a, r, kPrefetchBytes);
    for (; r < a.n_rows; ++r) float_tile_seq<W, 1, T>(a, r, kPrefetchBytes);
    return;
  }
  for (; r + 4 <= a.n_rows; r += 4) float_tile<W, 4, T>(a, r, kPrefetchBytes);
  for (; r < a.n_rows; ++r) float_tile<W, 1, T>(a, r, kPrefetchBytes);
}

// ---------------------------------------------------------------------------------------
// Integer kernels.

// Lane L of the 32-value-unit kernels holds unit sigma(L) = L with bits 2 and 3 swapped
// (what the transposes below produce); sigma is its own inverse.
constexpr uint8_t kLaneOf32[16] = {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15};
// Lane L of Q6_K holds sub-block 4 * (L % 4) + L / 4 (a 4x4 transpose, its own inverse).
constexpr uint8_t kLaneOf16[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};

// Q4_K (two super-blocks a, b of 8 sub-blocks; unit u = 8 * (u from b) + sub-block): lane
// 4q + r holds the low (q < 2) or high nibbles of code chunk r of a (q even) or b, that is
// unit 8 * (q % 2) + 2r + q / 2.
constexpr uint8_t kUnitOfQ4K[16] = {0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15};
constexpr uint8_t kLaneOfQ4K[16] = {0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15};

constexpr ActLayout kLayout32{16, 8, false, kLaneOf32};
constexpr ActLayout kLayoutQ4K{16, 8, true, kLaneOfQ4K};
constexpr ActLayout kLayout16{16, 4, false, kLaneOf16};

// The units' codes as unsigned bytes, lane-major, and per-lane factors.
template <int C>
struct Decoded {
  __m512i w[C];
  __m512 scale;  // weight scale of the lane's unit
  __m512 mins;   // Q4_K: dmin * m of the lane's unit
};

// 4x4 transposes of dwords inside each 128-bit lane: out[k] lane q, dword r = in[r] lane q, dword k.
DSPARK_AVX512_INLINE void transpose4(const __m512i* in, __m512i* out) {
  const __m512i t0 = _mm512_unpacklo_epi32(in[0], in[1]), t1 = _mm512_unpackhi_epi32(in[0], in[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(in[2], in[3]), t3 = _mm512_unpackhi_epi32(in[2], in[3]);
  out[0] = _mm512_unpacklo_epi64(t0, t2);
  out[1] = _mm512_unpackhi_epi64(t0, t2);
  out[2] = _mm512_unpacklo_epi64(t1, t3);
  out[3] = _mm512_unpackhi_epi64(t1, t3);
}

// in[j] = [unit j: dwords 0..7 | unit j + 8: dwords 0..7]  ->  out[k] lane L = unit sigma(L), dword k.
DSPARK_AVX512_INLINE void transpose_units(const __m512i* in, __m512i* out) {
  __m512i lo[4], hi[4];
  transpose4(in, lo);      // lanes: units 0-3 dk, units 0-3 d(4+k), units 8-11 dk, 8-11 d(4+k)
  transpose4(in + 4, hi);  // the same for units 4-7 and 12-15
  for (int k = 0; k < 4; ++k) {
    out[k] = _mm512_shuffle_i64x2(lo[k], hi[k], _MM_SHUFFLE(2, 0, 2, 0));
    out[k + 4] = _mm512_shuffle_i64x2(lo[k], hi[k], _MM_SHUFFLE(3, 1, 3, 1));
  }
}

// The fp16 scales of 16 blocks S bytes apart (S even), lane L taking block sigma(L). Each
// word permute picks the scales of the kPer blocks that lie within two 64-byte loads.
template <int S>
struct BlockScales {
  static constexpr int kPer = (128 - 2) / S + 1 >= 8 ? 8 : 4;
  struct Table {
    uint16_t index[16 / kPer][32];  // word index per lane (only the low 16 lanes matter)
    uint32_t lanes[16 / kPer];      // the lanes each permute fills
  };
  static constexpr Table make() {
    Table t{};
    for (int pass = 0; pass < 16 / kPer; ++pass)
      for (int lane = 0; lane < 16; ++lane) {
        const int b = kLaneOf32[lane] - pass * kPer;
        if (b < 0 || b >= kPer) continue;
        t.index[pass][lane] = uint16_t(b * S / 2);
        t.lanes[pass] |= 1u << lane;
      }
    return t;
  }
  static constexpr Table kTable = make();

  static DSPARK_AVX512_INLINE __m512 load(const uint8_t* p) {
    static_assert((kPer - 1) * S + 2 <= 128 && S % 2 == 0);
    __m512i words = _mm512_setzero_si512();
    for (int pass = 0; pass < 16 / kPer; ++pass) {
      const uint8_t* q = p + S * kPer * pass;
      const __m512i picked =
          _mm512_permutex2var_epi16(load512(q), load512(kTable.index[pass]), load512(q + 64));
      words = _mm512_mask_mov_epi16(words, kTable.lanes[pass], picked);
    }
    return _mm512_cvtph_ps(_mm512_castsi512_si256(words));
  }
};

// Q8_0: codes are the int8 weights + 128; activations carry bias -128 * sum.
struct Q8_0Kernel {
  static constexpr DType kType = DType::Q8_0;
  static constexpr int kChunks = 8;
  static constexpr size_t kGroupBytes = 16 * sizeof(BlockQ8_0);
  static constexpr const ActLayout& kLayout = kLayout32;
  static DSPARK_AVX512_INLINE void decode(const uint8_t* p, Decoded<8>& d) {
    __m512i n[8];
    for (int j = 0; j < 8; ++j)
      n[j] = _mm512_inserti64x4(_mm512_castsi256_si512(load256(p + 34 * j + 2)),
                                load256(p + 34 * (j + 8) + 2), 1);
    transpose_units(n, d.w);
    for (int k = 0; k < 8; ++k) d.w[k] = _mm512_xor_si512(d.w[k], _mm512_set1_epi8(char(0x80)));
    d.scale = BlockScales<34>::load(p);
  }
};

// Q4_0: codes are the nibbles (value + 8); activations carry bias -8 * sum.
struct Q4_0Kernel {
  static constexpr DType kType = DType::Q4_0;
  static constexpr int kChunks = 8;
  static constexpr size_t kGroupBytes = 16 * sizeof(BlockQ4_0);
  static constexpr const ActLayout& kLayout = kLayout32;
  static DSPARK_AVX512_INLINE void decode(const uint8_t* p, Decoded<8>& d) {
    // m[r]: the 16 code bytes of blocks r, 8 + r, 4 + r, 12 + r in its four 128-bit lanes.
    __m512i m[4], q[4];
    for (int r = 0; r < 4; ++r) {
      m[r] = _mm512_castsi128_si512(load128(p + 18 * r + 2));
      m[r] = _mm512_inserti32x4(m[r], load128(p + 18 * (8 + r) + 2), 1);
      m[r] = _mm512_inserti32x4(m[r], load128(p + 18 * (4 + r) + 2), 2);
      m[r] = _mm512_inserti32x4(m[r], load128(p + 18 * (12 + r) + 2), 3);
    }
    transpose4(m, q);  // q[k] lane L: code bytes 4k .. 4k+3 of block sigma(L)
    const __m512i low = _mm512_set1_epi8(0x0f);
    for (int k = 0; k < 4; ++k) {
      d.w[k] = _mm512_and_si512(q[k], low);                            // values 4k ..
      d.w[k + 4] = _mm512_and_si512(_mm512_srli_epi16(q[k], 4), low);  // values 16 + 4k ..
    }
    d.scale = BlockScales<18>::load(p);
  }
};

// Q4_K, two super-blocks per group: unit u = sub-block u % 8 of super-block u / 8.
struct Q4_KKernel {
  static constexpr DType kType = DType::Q4_K;
  static constexpr int kChunks = 8;
  static constexpr size_t kGroupBytes = 2 * sizeof(BlockQ4_K);
  static constexpr const ActLayout& kLayout = kLayoutQ4K;
  // The 6-bit scales and mins of super-blocks a and b (unpack_q4_k_scales, 32 bits at a
  // time): per 128-bit lane, bytes 0..7 the 8 scales, bytes 8..15 the 8 mins.
  static DSPARK_AVX512_INLINE __m256i scales_mins(const uint8_t* a, const uint8_t* b) {
    const __m256i v =
        _mm256_inserti128_si256(_mm256_castsi128_si256(load128(a)), load128(b), 1);        // u0 u1 u2 .
    const __m256i u = _mm256_srlv_epi32(_mm256_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0)),  // u0 u2 u1 u2>>4
                                        _mm256_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4));
    const __m256i low =
        _mm256_and_si256(u, _mm256_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f,
                                              0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    const __m256i top =
        _mm256_slli_epi32(_mm256_srli_epi32(_mm256_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0)), 6), 4);
    return _mm256_or_si256(low, _mm256_and_si256(top, _mm256_setr_epi32(0, 0x30303030, 0, 0x30303030, 0,
                                                                        0x30303030, 0, 0x30303030)));
  }
  static DSPARK_AVX512_INLINE void decode(const uint8_t* p, Decoded<8>& d) {
    const uint8_t* b = p + sizeof(BlockQ4_K);
    // Transpose the packed bytes first (half the data), then split the nibbles: z[c] holds
    // the 32 code bytes c of a (low 256 bits) and of b; after the 4x4 transposes t[k] lane
    // q holds dword k (q even) or 4 + k (q odd) of the chunks of a (q < 2) or b.
    __m512i z[4], t[4];
    for (int c = 0; c < 4; ++c)
      z[c] =
          _mm512_inserti64x4(_mm512_castsi256_si512(load256(p + 16 + 32 * c)), load256(b + 16 + 32 * c), 1);
    transpose4(z, t);
    const __m512i mask = _mm512_set1_epi8(0x0f);
    for (int k = 0; k < 4; ++k) {
      const __m512i low = _mm512_and_si512(t[k], mask),
                    high = _mm512_and_si512(_mm512_srli_epi16(t[k], 4), mask);
      d.w[k] = _mm512_shuffle_i64x2(low, high, _MM_SHUFFLE(2, 0, 2, 0));
      d.w[k + 4] = _mm512_shuffle_i64x2(low, high, _MM_SHUFFLE(3, 1, 3, 1));
    }
    // Lanes 0-3, 8-11 hold units of a, lanes 4-7, 12-15 units of b (kLaneOfQ4K).
    const __m256i sm = _mm256_permute4x64_epi64(scales_mins(p + 4, b + 4), _MM_SHUFFLE(3, 1, 2, 0));
    const __m128i units = load128(kUnitOfQ4K);
    const __m512i sc = _mm512_cvtepu8_epi32(_mm_shuffle_epi8(_mm256_castsi256_si128(sm), units));
    const __m512i m = _mm512_cvtepu8_epi32(_mm_shuffle_epi8(_mm256_extracti128_si256(sm, 1), units));
    uint32_t da, db;  // fp16 d and dmin of each super-block
    std::memcpy(&da, p, 4);
    std::memcpy(&db, b, 4);
    const __m512 f =
        _mm512_castps128_ps512(_mm_cvtph_ps(_mm_setr_epi32(int(da), int(db), 0, 0)));  // da dma db dmb
    const __m512i pick = _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2);
    d.scale = _mm512_mul_ps(_mm512_cvtepi32_ps(sc), _mm512_permutexvar_ps(pick, f));
    d.mins = _mm512_mul_ps(_mm512_cvtepi32_ps(m),
                           _mm512_permutexvar_ps(_mm512_add_epi32(pick, _mm512_set1_epi32(1)), f));
  }
};

// Q6_K, one super-block per group: unit u = sub-block u of 16 values; codes 0..63 (value +
// 32), activations carry bias -32 * sum.
struct Q6_KKernel {
  static constexpr DType kType = DType::Q6_K;
  static constexpr int kChunks = 4;
  static constexpr size_t kGroupBytes = sizeof(BlockQ6_K);
  static constexpr const ActLayout& kLayout = kLayout16;
  static DSPARK_AVX512_INLINE void decode(const uint8_t* p, Decoded<4>& d) {
    const __m512i low = _mm512_set1_epi8(0x0f), high = _mm512_set1_epi8(0x30);
    __m512i v[4];  // v[m]: the codes of values 64m .. 64m+63 in order
    for (int half = 0; half < 2; ++half) {
      const __m512i ql = load512(p + 64 * half);
      const __m256i qh = load256(p + 128 + 32 * half);
      // Quarter 0 and 2 take bits from qh, quarter 1 and 3 from qh >> 2 (the upper 256 bits).
      const __m512i h = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
      const __m512i h01 = _mm512_and_si512(_mm512_slli_epi16(h, 4), high);  // bits 0-1 -> 4-5
      const __m512i h23 = _mm512_and_si512(h, high);                        // bits 4-5 stay
      v[2 * half] = _mm512_ternarylogic_epi32(low, ql, h01, 0xca);          // low ? ql : h01
      v[2 * half + 1] = _mm512_ternarylogic_epi32(low, _mm512_srli_epi16(ql, 4), h23, 0xca);
    }
    transpose4(v, d.w);  // d.w[k] lane 4q + m: sub-block 4m + q, values 4k .. 4k+3
    const __m128i sc = _mm_shuffle_epi8(load128(p + 192), load128(kLaneOf16));
    d.scale =
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)), _mm512_set1_ps(half_to_float(p + 208)));
  }
};

// One group of decoded weights against T tokens, each with its own accumulator.
template <class Q, int T>
DSPARK_AVX512_INLINE void int8_group(const Decoded<Q::kChunks>& d, const uint8_t* x, size_t x_stride,
                                     __m512* acc) {
  constexpr const ActLayout& L = Q::kLayout;
  for (int t = 0; t < T; ++t, x += x_stride) {
    __m512i s = L.extra ? _mm512_setzero_si512() : load512(x + L.bias_offset());
    for (int k = 0; k < Q::kChunks; ++k) s = _mm512_dpbusd_epi32(s, d.w[k], load512(x + 64 * k));
    const __m512 xs = _mm512_loadu_ps(reinterpret_cast<const float*>(x + L.scale_offset()));
    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(d.scale, xs), acc[t]);
    if (L.extra)
      acc[t] = _mm512_fnmadd_ps(_mm512_loadu_ps(reinterpret_cast<const float*>(x + L.extra_offset())), d.mins,
                                acc[t]);
  }
}

// Groups [g0, g1) of one weight row against T tokens, into the accumulators acc[T]: each
// group is decoded once for all T tokens (T accumulators and a decoded group fit the 32
// registers).
template <class Q, int T>
DSPARK_AVX512_INLINE void int8_span(const RowsArgs& a, const uint8_t* row, int64_t g0, int64_t g1,
                                    __m512* acc) {
  constexpr const ActLayout& L = Q::kLayout;
  const int64_t full = std::min(g1, a.cols / (int64_t(L.lanes) * L.unit_values()));
  Decoded<Q::kChunks> d;
  for (int64_t g = g0; g < full; ++g) {
    const uint8_t* group = row + size_t(g) * Q::kGroupBytes;
    for (size_t line = 0; line < Q::kGroupBytes; line += 64) prefetch(group + kPrefetchBytes + line);
    Q::decode(group, d);
    int8_group<Q, T>(d, a.act + size_t(g) * L.group_bytes(), a.act_stride, acc);
  }
  if (full < g1) {  // the row's last group is partial: its missing blocks read as zeros
    const size_t offset = size_t(full) * Q::kGroupBytes;
    alignas(64) uint8_t pad[Q::kGroupBytes] = {};
    std::memcpy(pad, row + offset, dtype_row_bytes(Q::kType, a.cols) - offset);
    Q::decode(pad, d);
    int8_group<Q, T>(d, a.act + size_t(full) * L.group_bytes(), a.act_stride, acc);
  }
}

// One row after the other. (Going over long rows in column spans, so that a tile's
// activations stay in L1, measured faster with cache-resident weights but slower from
// DRAM: interleaving the rows' streams in short spans defeats the prefetchers.)
template <class Q, int T>
DSPARK_AVX512 void int8_rows(const RowsArgs& a) {
  const int64_t groups = Q::kLayout.groups(a.cols);
  for (int64_t r = 0; r < a.n_rows; ++r) {
    __m512 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    int8_span<Q, T>(a, a.w + size_t(r) * a.w_stride, 0, groups, acc);
    for (int t = 0; t < T; ++t) a.y[t * a.y_stride + r] = _mm512_reduce_add_ps(acc[t]);
  }
}

constexpr int kIntTile = 8;

// ---------------------------------------------------------------------------------------
// Activation preparation.

DSPARK_AVX512_INLINE float max_abs(const float* x, int n) {
  __m512 m = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
  return _mm512_reduce_max_ps(m);
}

// q = round-half-even(x * inv) for n values (a multiple of 16); returns the sum of q.
DSPARK_AVX512_INLINE int quantize(const float* x, int n, float inv, int8_t* q) {
  __m512i sum = _mm512_setzero_si512();
  for (int i = 0; i < n; i += 16) {
    __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), _mm512_set1_ps(inv)));
    v = _mm512_max_epi32(_mm512_min_epi32(v, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(v));
    sum = _mm512_add_epi32(sum, v);
  }
  return _mm512_reduce_add_epi32(sum);
}

// Q8_0 activations (fp16-rounded scale per 32 values) for Q8_0 (offset 128) and Q4_0 (8).
template <int Offset>
DSPARK_AVX512 void prepare_q8_0(const float* x, int64_t cols, uint8_t* out) {
  kLayout32.clear_last_group(out, cols);
  for (int64_t b = 0; b < cols / 32; ++b) {
    int8_t q[32];
    const float d = max_abs(x + 32 * b, 32) / 127.0f;
    const int sum = quantize(x + 32 * b, 32, d != 0.0f ? 1.0f / d : 0.0f, q);
    kLayout32.put(out, b, q, _cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT)), -Offset * sum, 0.0f);
  }
}

// Q8_K activations (fp32 scale per 256 values): Q4_K units of 32 with their sums, Q6_K
// units of 16 with bias -32 * sum.
DSPARK_AVX512 void prepare_q4_k(const float* x, int64_t cols, uint8_t* out) {
  kLayoutQ4K.clear_last_group(out, cols);
  for (int64_t b = 0; b < cols / kQK; ++b) {
    const float d = max_abs(x + kQK * b, kQK) / 127.0f, inv = d != 0.0f ? 1.0f / d : 0.0f;
    for (int u = 0; u < 8; ++u) {
      int8_t q[32];
      const int sum = quantize(x + kQK * b + 32 * u, 32, inv, q);
      kLayoutQ4K.put(out, 8 * b + u, q, d, 0, d * float(sum));
    }
  }
}

DSPARK_AVX512 void prepare_q6_k(const float* x, int64_t cols, uint8_t* out) {
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
  return L.token_bytes(cols);
}

// ---------------------------------------------------------------------------------------
// Dispatch on the token count.

// Rows<n_tokens>::run for 1 <= n_tokens <= N.
template <int N, template <int> class Rows>
DSPARK_AVX512 void rows_any(const RowsArgs& a) {
  if constexpr (N > 1)
    if (a.n_tokens < N) return rows_any<N - 1, Rows>(a);
  Rows<N>::run(a);
}

template <class W>
struct FloatRows {
  template <int NT>
  struct Of {
    static DSPARK_AVX512 void run(const RowsArgs& a) { float_rows<W, NT>(a); }
  };
};

template <class Q>
struct IntRows {
  template <int NT>
  struct Of {
    static DSPARK_AVX512 void run(const RowsArgs& a) { int8_rows<Q, NT>(a); }
  };
};

const MatmulKernel kKernels[] = {
    {kFloatTile, nullptr, nullptr, rows_any<kFloatTile, FloatRows<F32Weights>::Of>},                   // F32
    {kFloatTile, nullptr, nullptr, rows_any<kFloatTile, FloatRows<F16Weights>::Of>},                   // F16
    {kFloatTile, bf16_act_bytes, prepare_bf16, rows_any<kFloatTile, FloatRows<Bf16Weights>::Of>},      // BF16
    {kIntTile, act_bytes<kLayout32>, prepare_q8_0<128>, rows_any<kIntTile, IntRows<Q8_0Kernel>::Of>},  // Q8_0
    {kIntTile, act_bytes<kLayout32>, prepare_q8_0<8>, rows_any<kIntTile, IntRows<Q4_0Kernel>::Of>},    // Q4_0
    {kIntTile, act_bytes<kLayoutQ4K>, prepare_q4_k, rows_any<kIntTile, IntRows<Q4_KKernel>::Of>},      // Q4_K
    {kIntTile, act_bytes<kLayout16>, prepare_q6_k, rows_any<kIntTile, IntRows<Q6_KKernel>::Of>},       // Q6_K
};
static_assert(std::size(kKernels) == size_t(DType::Q6_K) + 1);

}  // namespace

const MatmulKernel* avx512_kernels() { return kKernels; }

}  // namespace dspark::kernels

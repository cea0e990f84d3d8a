// AVX-512 tile loop of gemm_f32: 6 rows x 32 columns of c in 12 registers; each step of k
// loads two vectors of the packed panel and broadcasts one value of each row.
#include <immintrin.h>

#include <algorithm>

#include "kernels/gemm.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define DSPARK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

namespace dspark::kernels {

namespace {

constexpr int kWidth = 32, kRows = 6;

template <int R>
DSPARK_AVX512 void tile(const float* a, int k, const float* panel, int r0, int col0, int width, float* c,
                        int ldc, bool accumulate) {
  __m512 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  const float* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = a + size_t(r0 + r) * size_t(k);
  for (int t = 0; t < k; ++t) {
    const __m512 b0 = _mm512_loadu_ps(panel + size_t(t) * kWidth);
    const __m512 b1 = _mm512_loadu_ps(panel + size_t(t) * kWidth + 16);
    for (int r = 0; r < R; ++r) {
      const __m512 x = _mm512_set1_ps(rows[r][t]);
      acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
    }
  }
  const __mmask16 m0 = __mmask16(width >= 16 ? 0xffff : (1u << width) - 1);
  const __mmask16 m1 = __mmask16(width >= 32 ? 0xffff : width <= 16 ? 0 : (1u << (width - 16)) - 1);
  for (int r = 0; r < R; ++r) {
    float* out = c + size_t(r0 + r) * size_t(ldc) + size_t(col0);
    if (accumulate) {
      acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_maskz_loadu_ps(m0, out));
      acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_maskz_loadu_ps(m1, out + 16));
    }
    _mm512_mask_storeu_ps(out, m0, acc[r][0]);
    _mm512_mask_storeu_ps(out + 16, m1, acc[r][1]);
  }
}

DSPARK_AVX512 void panel_rows(const float* a, int k, const float* panel, int, int row0, int row1, int col0,
                              int width, float* c, int ldc, bool accumulate) {
  int r = row0;
  for (; r + kRows <= row1; r += kRows) tile<kRows>(a, k, panel, r, col0, width, c, ldc, accumulate);
  switch (row1 - r) {
    case 5:
      tile<5>(a, k, panel, r, col0, width, c, ldc, accumulate);
      break;
    case 4:
      tile<4>(a, k, panel, r, col0, width, c, ldc, accumulate);
      break;
    case 3:
      tile<3>(a, k, panel, r, col0, width, c, ldc, accumulate);
      break;
    case 2:
      tile<2>(a, k, panel, r, col0, width, c, ldc, accumulate);
      break;
    case 1:
      tile<1>(a, k, panel, r, col0, width, c, ldc, accumulate);
      break;
    default:
      break;
  }
}

}  // namespace

GemmKernel gemm_kernel_avx512() { return GemmKernel{kWidth, panel_rows}; }

}  // namespace dspark::kernels

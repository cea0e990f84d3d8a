// AVX2 tile loop of gemm_f32: 6 rows x 16 columns of c in 12 registers; each step of k
// loads two vectors of the packed panel and broadcasts one value of each row.
#include <immintrin.h>

#include <algorithm>

#include "kernels/gemm.h"

#define DSPARK_AVX2 __attribute__((target("avx2,fma")))

namespace dspark::kernels {

namespace {

constexpr int kWidth = 16, kRows = 6;

template <int R>
DSPARK_AVX2 void tile(const float* a, int k, const float* panel, int r0, int col0, int width, float* c,
                      int ldc, bool accumulate) {
  __m256 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  const float* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = a + size_t(r0 + r) * size_t(k);
  for (int t = 0; t < k; ++t) {
    const __m256 b0 = _mm256_loadu_ps(panel + size_t(t) * kWidth);
    const __m256 b1 = _mm256_loadu_ps(panel + size_t(t) * kWidth + 8);
    for (int r = 0; r < R; ++r) {
      const __m256 x = _mm256_broadcast_ss(rows[r] + t);
      acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float* out = c + size_t(r0 + r) * size_t(ldc) + size_t(col0);
    alignas(32) float tmp[kWidth];
    _mm256_store_ps(tmp, acc[r][0]);
    _mm256_store_ps(tmp + 8, acc[r][1]);
    for (int j = 0; j < width; ++j) out[j] = accumulate ? out[j] + tmp[j] : tmp[j];
  }
}

DSPARK_AVX2 void panel_rows(const float* a, int k, const float* panel, int, int row0, int row1, int col0,
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

GemmKernel gemm_kernel_avx2() { return GemmKernel{kWidth, panel_rows}; }

}  // namespace dspark::kernels

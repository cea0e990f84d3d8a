#include "train/products.h"

#include <vector>

#include "kernels/gemm.h"

namespace dspark {

namespace {

// Scratch that only grows, one per calling thread (the trainer calls from one thread).
float* grown(size_t n) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

}  // namespace

void transpose(const float* in, int rows, int cols, float* out, ThreadPool& pool) {
  constexpr int kTile = 32;  // tiles keep both the reads and the writes within a few cache lines
  const int row_tiles = (rows + kTile - 1) / kTile;
  pool.parallel_for(row_tiles, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t rt = begin; rt < end; ++rt) {
      const int r0 = int(rt) * kTile, r1 = std::min(rows, r0 + kTile);
      for (int c0 = 0; c0 < cols; c0 += kTile) {
        const int c1 = std::min(cols, c0 + kTile);
        for (int r = r0; r < r1; ++r)
          for (int c = c0; c < c1; ++c)
            out[size_t(c) * size_t(rows) + size_t(r)] = in[size_t(r) * size_t(cols) + size_t(c)];
      }
    }
  });
}

void matmul_nt(const float* a, const float* b, int n, int m, int k, float* c, ThreadPool& pool) {
  gemm_f32(a, b, n, m, k, c, false, pool);
}

void matmul_nn(const float* a, const float* b, int n, int m, int k, float* c, bool accumulate,
               ThreadPool& pool) {
  gemm_f32(a, b, n, m, k, c, accumulate, pool, GemmB::Plain);
}

void matmul_tn_add(const float* a, const float* b, int n, int m, int k, float* c, ThreadPool& pool) {
  if (n == 0 || m == 0 || k == 0) return;
  // c[m, k] += aᵀ[m, n] · b[n, k]
  float* at = grown(size_t(m) * size_t(n));
  transpose(a, n, m, at, pool);
  gemm_f32(at, b, m, k, n, c, true, pool, GemmB::Plain);
}

}  // namespace dspark

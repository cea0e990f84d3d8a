#include "kernels/gemm.h"

#include <algorithm>
#include <vector>

#include "kernels/isa.h"

namespace dspark {

namespace kernels {

namespace {
void scalar_panel(const float* a, int k, const float* panel, int panel_width, int row0, int row1, int col0,
                  int width, float* c, int ldc, bool accumulate) {
  for (int r = row0; r < row1; ++r)
    for (int j = 0; j < width; ++j) {
      float s = 0;
      for (int t = 0; t < k; ++t)
        s += a[size_t(r) * size_t(k) + size_t(t)] * panel[size_t(t) * size_t(panel_width) + size_t(j)];
      float& out = c[size_t(r) * size_t(ldc) + size_t(col0 + j)];
      out = accumulate ? out + s : s;
    }
}
}  // namespace

GemmKernel gemm_kernel_scalar() { return GemmKernel{8, scalar_panel}; }

}  // namespace kernels

void gemm_f32(const float* a, const float* b, int n, int m, int k, float* c, bool accumulate,
              ThreadPool& pool, GemmB layout) {
  if (n <= 0 || m <= 0) return;
  if (k <= 0) {
    if (!accumulate) std::fill_n(c, size_t(n) * size_t(m), 0.0f);
    return;
  }
  const Isa isa = kernel_isa();
  const kernels::GemmKernel kern = isa == Isa::Avx512 ? kernels::gemm_kernel_avx512()
                                   : isa == Isa::Avx2 ? kernels::gemm_kernel_avx2()
                                                      : kernels::gemm_kernel_scalar();
  const int pw = kern.panel_width, panels = (m + pw - 1) / pw;
  // Pack b: panel p holds columns [p·pw, p·pw + pw) of c's b, i.e. k rows of pw floats (a
  // gather from a transposed b, a plain copy from a [k, m] one).
  thread_local std::vector<float> packed;
  const size_t panel_floats = size_t(k) * size_t(pw);
  if (packed.size() < panel_floats * size_t(panels)) packed.resize(panel_floats * size_t(panels));
  float* pk = packed.data();
  pool.parallel_for(panels, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t p = begin; p < end; ++p) {
      float* dst = pk + size_t(p) * panel_floats;
      const int col0 = int(p) * pw, width = std::min(pw, m - col0);
      for (int t = 0; t < k; ++t) {
        float* row = dst + size_t(t) * size_t(pw);
        if (layout == GemmB::Plain)
          std::copy_n(b + size_t(t) * size_t(m) + size_t(col0), width, row);
        else
          for (int j = 0; j < width; ++j) row[j] = b[size_t(col0 + j) * size_t(k) + size_t(t)];
        for (int j = width; j < pw; ++j) row[j] = 0.0f;
      }
    }
  });
  // Jobs: (block of rows, panel); a row block keeps its rows of a in cache across panels.
  constexpr int kRowBlock = 48;
  const int row_blocks = (n + kRowBlock - 1) / kRowBlock;
  pool.parallel_for(int64_t(row_blocks) * panels, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t job = begin; job < end; ++job) {
      const int rb = int(job / panels), p = int(job % panels);
      const int row0 = rb * kRowBlock, row1 = std::min(n, row0 + kRowBlock);
      const int col0 = p * pw;
      kern.run(a, k, pk + size_t(p) * panel_floats, pw, row0, row1, col0, std::min(pw, m - col0), c, m,
               accumulate);
    }
  });
}

}  // namespace dspark

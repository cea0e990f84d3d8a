// Dense fp32 matrix products for training: c[n, m] (+)= a[n, k] · b, row-major, with b
// given as [m, k] (c = a · bᵀ: a linear layer's [out, in] weight) or as [k, m] (c = a · b).
//
// Unlike matmul.h (weights streamed once for a handful of tokens, batch invariant), these
// are for products where every dimension is large: b is packed into panels of columns and
// a register tile of rows × columns accumulates outer products, so the arithmetic, not the
// loads, sets the speed. Results depend on the ISA level and are not batch invariant.
#pragma once

#include "core/thread_pool.h"

namespace dspark {

enum class GemmB { Transposed /* b is [m, k] */, Plain /* b is [k, m] */ };

void gemm_f32(const float* a, const float* b, int n, int m, int k, float* c, bool accumulate,
              ThreadPool& pool, GemmB layout = GemmB::Transposed);

namespace kernels {

// One ISA level's tile loop: rows [row0, row1) of c against one packed panel of `width`
// columns starting at column col0 (panel: k rows of panel_width floats, zero-padded).
using GemmPanelFn = void (*)(const float* a, int k, const float* panel, int panel_width, int row0, int row1,
                             int col0, int width, float* c, int ldc, bool accumulate);

struct GemmKernel {
  int panel_width;  // columns per packed panel
  GemmPanelFn run;
};

GemmKernel gemm_kernel_scalar();
GemmKernel gemm_kernel_avx2();
GemmKernel gemm_kernel_avx512();

}  // namespace kernels
}  // namespace dspark

// Dense fp32 matrix products for training, in the three shapes backward passes need. All
// of them run on one kernel (kernels/gemm.h, chosen per ISA), which takes b as [m, k] or
// [k, m]; only aᵀ · b needs a transposed copy of a, O(size) against the product's O(n·m·k).
#pragma once

#include "core/thread_pool.h"

namespace dspark {

// c[n, m] = a[n, k] · b[m, k]ᵀ            (a linear layer's forward: b is its [out, in] weight)
void matmul_nt(const float* a, const float* b, int n, int m, int k, float* c, ThreadPool& pool);

// c[n, m] (+)= a[n, k] · b[k, m]           (input gradient: dx = dy · W)
void matmul_nn(const float* a, const float* b, int n, int m, int k, float* c, bool accumulate,
               ThreadPool& pool);

// c[m, k] += a[n, m]ᵀ · b[n, k]            (weight gradient: dW += dyᵀ · x)
void matmul_tn_add(const float* a, const float* b, int n, int m, int k, float* c, ThreadPool& pool);

// out[cols, rows] = in[rows, cols]ᵀ
void transpose(const float* in, int rows, int cols, float* out, ThreadPool& pool);

}  // namespace dspark

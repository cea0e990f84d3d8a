// Matrix products of a weight tensor with a batch of fp32 activation rows:
//   y[t][r] = sum_c W[r][c] * x[t][c]    for t < n_tokens, r < W.rows()
// W stays in its stored type and is decoded on the fly:
//   F32, F16, BF16: fp32 activations, fp32 multiply-adds;
//   Q8_0, Q4_0:     activations quantized once per call to 8 bits per 32-value block
//                   (Q8_0 blocks), integer dot products, one float scale per block;
//   Q4_K, Q6_K:     activations quantized to Q8_K (8 bits, one scale per 256 values).
// The kernels are chosen at run time for the CPU (kernels/isa.h).
//
// Batch invariance: a (row, token) result is computed by the same instructions in the same
// order whatever n_tokens is and wherever the token sits in the batch, and whatever the
// thread count, so a token's result is the same bit for bit however it is batched. (Results
// differ between ISA levels, within each type's stated tolerance.)
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace dspark {

// n_tokens rows of x (each W.cols() floats) give n_tokens rows of y (each W.rows() floats).
// Reuses per-thread scratch that only grows: no allocation once warmed up.
void matmul(const TensorView& w, const float* x, int n_tokens, float* y, ThreadPool& pool);

// Converts row `row` of W to fp32 (embedding lookups, small vectors such as norms).
void dequantize_row(const TensorView& w, int64_t row, float* out);

}  // namespace dspark

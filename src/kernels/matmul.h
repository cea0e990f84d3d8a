// Matrix products of a weight tensor with a batch of fp32 activation rows:
//   y[t][r] = sum_c W[r][c] * x[t][c]    for t < n_tokens, r < W.rows()
// W stays in its stored type (F32, F16, BF16, Q8_0) and is converted on the fly.
// Batch invariance: each output is one dot product whose accumulation order depends only
// on the column count, never on n_tokens or the thread count, so a token's result is the
// same bit for bit however it is batched.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace dspark {

void matmul(const TensorView& w, const float* x, int n_tokens, float* y, ThreadPool& pool);

// One row of W dotted with x (n = W.cols()); the building block above, exposed for tests.
float dot_row(const TensorView& w, int64_t row, const float* x);

// Converts row `row` of W to fp32 (embedding lookups, small vectors such as norms).
void dequantize_row(const TensorView& w, int64_t row, float* out);

}  // namespace dspark
